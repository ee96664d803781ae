// derp-load --sender bursty (see bursty_sender.h). TakeOver runs on the main thread between the
// connect phase and the run; WriteFrame and BurstySend run on the pair's sender thread.
#include "bench/bursty_sender.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <thread>

#include "lib/net/direct_tls_stream.h"

namespace derpkit::bench {
namespace {

// A write blocked this long returns (EAGAIN) so that the thread can look at the clock: it keeps
// retrying while the window lasts and gives up after, instead of hanging on a relay that stopped
// reading.
constexpr timeval kSendTimeout{0, 200'000};

// The coarse sleep between bursts, as a simple C load generator sleeps.
constexpr timespec kBurstSleep{0, 1'000'000};

std::error_code Errno() { return {errno, std::system_category()}; }

}  // namespace

Expected<BlockingWriter, std::string> BlockingWriter::TakeOver(net::Stream& stream) {
  SSL* ssl = nullptr;
  if (stream.is_tls()) {
    // derpclient's TLS streams run OpenSSL straight on the socket: after ServerInfo nothing is in
    // flight either way (the relay sends nothing unprompted and every write of ours left), so
    // the SSL can move to a blocking socket BIO once the stream holds no unsent bytes.
    auto* tls = dynamic_cast<net::DirectTlsStream*>(&stream);
    if (tls == nullptr || tls->native_handle() == nullptr) {
      return Unexpected{
          std::string("the TLS stream is not a net::DirectTlsStream; cannot take it over")};
    }
    if (tls->unsent_bytes() > 0) {
      return Unexpected{std::string("TLS bytes still waiting to be sent; cannot take over")};
    }
    ssl = tls->native_handle();
  } else if (dynamic_cast<net::TcpStream*>(&stream) == nullptr) {
    return Unexpected{std::string(stream.kind()) + " streams cannot be written blocking"};
  }
  auto& socket = stream.tcp();
  std::error_code ec;
  socket.non_blocking(false, ec);
  if (!ec) socket.native_non_blocking(false, ec);
  if (ec) return Unexpected{"making the socket blocking: " + ec.message()};
  const int fd = socket.native_handle();
  if (::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &kSendTimeout, sizeof kSendTimeout) != 0) {
    return Unexpected{"SO_SNDTIMEO: " + Errno().message()};
  }
  if (ssl != nullptr) {
    BIO* sock = BIO_new_socket(fd, BIO_NOCLOSE);
    if (sock == nullptr) return Unexpected{std::string("BIO_new_socket failed")};
    // Frees the stream's own BIO; the stream frees the SSL (with our socket BIO) when it is
    // destroyed.
    SSL_set_bio(ssl, sock, sock);
  }
  return BlockingWriter(fd, ssl);
}

std::error_code BlockingWriter::WriteFrame(const std::byte* data, std::size_t size,
                                           Clock::time_point give_up) {
  while (size > 0) {
    ++write_calls_;
    if (ssl_ == nullptr) {
      const ssize_t n = ::write(fd_, data, size);
      if (n > 0) {
        data += n;
        size -= static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return Errno();
    } else {
      ERR_clear_error();
      const int n = SSL_write(ssl_, data, static_cast<int>(size));
      if (n > 0) {
        // Partial writes are on (DirectTlsStream sets SSL_MODE_ENABLE_PARTIAL_WRITE), so a frame
        // over one record's 16 KiB returns per record; DERP frames of --size 1400 are one record.
        data += n;
        size -= static_cast<std::size_t>(n);
        continue;
      }
      const int why = SSL_get_error(ssl_, n);
      if (why == SSL_ERROR_SYSCALL) {
        if (errno == 0) return std::make_error_code(std::errc::connection_reset);
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return Errno();
      } else if (why != SSL_ERROR_WANT_WRITE && why != SSL_ERROR_WANT_READ) {
        return std::make_error_code(std::errc::protocol_error);
      }
    }
    // The send timeout expired: back-pressure. Retry the same bytes unless the run is over.
    if (Clock::now() >= give_up) return std::make_error_code(std::errc::timed_out);
  }
  return {};
}

void BurstySend(BlockingWriter& writer, derp::PublicKey dst, std::size_t size,
                double packets_per_second, const Window& w, FlowStats& st) {
  Bytes frame = BuildFrames(dst, size, 1);
  std::byte* payload = frame.data() + kSendPayloadOffset;
  // A write blocked by back-pressure may finish this long after the window, then we stop.
  const auto give_up = w.measure_end + std::chrono::seconds(1);
  std::uint64_t seq = 0;
  std::this_thread::sleep_until(w.start);
  for (;;) {
    auto now = Clock::now();
    if (now >= w.measure_end) break;
    // Every frame due by now and not yet written (none skipped: a sender held up by a blocked
    // write catches up on its next wake-up, as a naive generator does).
    std::uint64_t due = 1;
    if (packets_per_second > 0) {
      const double elapsed = std::chrono::duration<double>(now - w.start).count();
      const auto owed = static_cast<std::uint64_t>(std::floor(elapsed * packets_per_second));
      due = owed > st.frames_written ? owed - st.frames_written : 0;
    }
    for (; due > 0; --due) {
      const std::int64_t now_ns = ToNs(now);
      StoreStamp(payload, now_ns, seq++);
      if (auto ec = writer.WriteFrame(frame.data(), frame.size(), give_up)) {
        NoteError(st.send_error, w, "send", ec);
        st.write_calls = writer.write_calls();
        return;
      }
      ++st.frames_written;
      if (w.Measures(now_ns)) {
        ++st.sent_packets;
        st.sent_bytes += size;
      }
      now = Clock::now();
      if (now >= w.measure_end) break;
    }
    if (packets_per_second > 0) ::nanosleep(&kBurstSleep, nullptr);
  }
  st.write_calls = writer.write_calls();
}

}  // namespace derpkit::bench
