// A TLS 1.3 Stream that runs the record layer itself after OpenSSL's handshake was handed over
// (DirectTlsStream::TakeTls13): the connection holds the socket, two TrafficKeys (208 bytes of
// secrets, keys, IVs and sequence numbers; 440 bytes in all) and nothing else while idle.
//
// Design (the why is in tls13_stream.cc):
// - TryRead receives straight into the caller's buffer and opens every whole record there in
//   place (one AEAD pass), moving the plaintext down over the headers. Only a record cut off by
//   the end of a read is copied into `partial_` (capacity exists only then); a record whose
//   plaintext does not fit the caller's buffer keeps the rest in `held_`.
// - WriteAll seals records of up to 16 KiB into a per-thread scratch (several records per
//   send()), encrypting in place; what the socket does not take waits in `unsent_`, which has
//   capacity only while the socket is full.
// - Post-handshake messages: KeyUpdate (answered when requested, before our next application
//   data, one answer for requests that arrive while the socket is full; more than 32 in a row
//   without application data are an unexpected_message); anything else is an
//   unexpected_message. close_notify reads as asio::error::eof, a FIN without it as
//   asio::ssl::error::stream_truncated, a bad record as a tls13_error and a fatal alert sent.
//
// Thread affinity: the io_context (shard) thread that owns the socket; every call from there. One
// read (ReadSome, or WaitReadable + TryRead) and one WriteAll may be in progress at the same time.
#pragma once

#include <asio.hpp>
#include <cstddef>
#include <span>
#include <system_error>
#include <vector>

#include "lib/net/drained_wait.h"
#include "lib/net/gather.h"
#include "lib/net/socket_io.h"
#include "lib/net/stream.h"
#include "lib/net/tls13_records.h"

namespace derpkit::net {

// Errors of the record layer (category "tls13").
enum class Tls13Error {
  // The record layer's verdicts: RecordError + 1, in its order (the stream converts by adding 1).
  kBadRecordHeader = static_cast<int>(RecordError::kBadHeader) + 1,
  kRecordOverflow = static_cast<int>(RecordError::kOverflow) + 1,
  kBadRecordMac = static_cast<int>(RecordError::kBadRecordMac) + 1,
  kNoContentType = static_cast<int>(RecordError::kNoContentType) + 1,
  kCipherFailure = static_cast<int>(RecordError::kInternal) + 1,
  kUnexpectedMessage,  // a post-handshake message other than KeyUpdate, or a stray record type
  kDecodeError,        // a malformed alert or handshake message
  kPeerAlert,          // the peer sent a fatal alert
};
const std::error_category& Tls13Category();
std::error_code MakeTls13Error(Tls13Error e);

class Tls13Stream final : public Stream {
 public:
  // `read` protects what the peer sends, `write` what we send; both at the sequence numbers of
  // the first application record (0 right after the handshake).
  Tls13Stream(asio::ip::tcp::socket socket, const TrafficKeys& read, const TrafficKeys& write);
  ~Tls13Stream() override;
  Tls13Stream(const Tls13Stream&) = delete;
  Tls13Stream& operator=(const Tls13Stream&) = delete;

  awaitable<IoResult> ReadSome(std::span<std::byte> buf) override;
  awaitable<IoResult> WriteAll(std::span<const asio::const_buffer> bufs) override;
  bool supports_try_read() const override { return true; }
  awaitable<std::error_code> WaitReadable() override;
  IoResult TryRead(std::span<std::byte> buf) override;
  // Seals up to kBatchRecords records of `bufs` and sends them without waiting; what the socket
  // refuses waits in unsent_ (has_pending_output) and the next TryWrite returns would_block
  // until the socket has taken it.
  bool supports_try_write() const override { return true; }
  IoResult TryWrite(std::span<const asio::const_buffer> bufs) override;
  bool has_pending_output() const override { return unsent_bytes() > 0; }
  // Sends close_notify and waits until the socket took it; never waits for the peer's.
  awaitable<void> ShutdownGracefully() override;
  void Close() override;
  // Everything but the socket is plain state: the stream moves with its keys and sequence
  // numbers (the caller has left nothing unsent).
  bool can_change_loop() const override { return !closed_; }
  void LeaveLoop() override;
  void JoinLoop(asio::io_context& io) override;
  asio::ip::tcp::socket& tcp() override { return socket_; }
  bool is_tls() const override { return true; }
  const char* kind() const override { return "tls"; }

  Tls13Suite suite() const { return read_.suite; }
  std::size_t unsent_bytes() const { return unsent_.size(); }
  // Bytes held between calls (a partial record, undelivered plaintext, unsent ciphertext): 0
  // when idle.
  std::size_t buffered_bytes() const {
    return partial_.capacity() + held_.capacity() + unsent_.capacity();
  }
  // Key updates received from the peer (for tests and logs).
  std::uint64_t key_updates_received() const { return key_updates_received_; }

 private:
  enum class Step { kMore, kStop };
  // TryRead's two ways to get bytes: complete the record in partial_, or receive into the
  // caller's buffer after the `total` plaintext bytes already there.
  Step ReadIntoPartial(std::span<std::byte> buf, std::size_t& total);
  Step ReadDirect(std::span<std::byte> buf, std::size_t& total);
  // Opens one whole record in place and acts on it. Returns the application bytes at
  // record[5 ..] (0 for a control record); on failure read_error_ is set and nothing returned.
  std::size_t ProcessRecord(std::span<std::byte> record);
  void HandleHandshake(std::span<const std::byte> body);
  void HandleAlert(std::span<const std::byte> body);
  // Ends reading with `ec` and, for our own verdicts, sends a fatal alert.
  void FailRead(std::error_code ec, int alert_description);
  // Sends the KeyUpdate a peer's request is owed (key_update_owed_), and switches our write key.
  void SendOwedKeyUpdate();
  // Seals one control record (alert, KeyUpdate) and sends or queues it.
  bool SendControl(ContentType type, std::span<const std::byte> body);
  // Seals records of up to 16 KiB from `cursor` into the per-thread scratch, at most
  // kBatchRecords of them, and hands them to SendOrKeep: the scratch is free again on return.
  // Returns the plaintext bytes sealed; on a cipher failure write_error_ is set.
  std::size_t SealAndSend(GatherCursor& cursor);
  // Sends `bytes` at once as far as the socket takes them and keeps the rest in unsent_.
  void SendOrKeep(std::span<const std::byte> bytes, bool more_follows);
  void SendUnsent();
  awaitable<std::error_code> FlushUnsent();
  bool ReadableNow() const;

  asio::ip::tcp::socket socket_;
  TrafficKeys read_;
  TrafficKeys write_;
  std::vector<std::byte> partial_;  // raw bytes of an incomplete record
  std::vector<std::byte> held_;     // opened plaintext the caller's buffer had no room for
  std::size_t held_offset_ = 0;
  KeptBytes unsent_;  // ciphertext the socket did not take yet
  std::uint64_t key_updates_received_ = 0;
  int key_updates_in_a_row_ = 0;  // since the last application data record
  bool key_update_owed_ = false;  // a requested KeyUpdate not sent yet (sent before our next data)
  std::error_code read_error_;    // sticky: returned by every later read (eof after close_notify)
  std::error_code write_error_;   // sticky
  bool closed_ = false;
  bool shutdown_sent_ = false;
  // The last recv found the socket empty (short, or EAGAIN) and no readiness wait has completed
  // since: the next wait needs no re-arming (lib/net/drained_wait.h). False at the start, as
  // bytes may have come with the handshake.
  bool socket_empty_ = false;
  SocketReactor* reactor_ = nullptr;  // ReactorOf(socket_), at the first wait
  SocketInTransit transit_;
};

}  // namespace derpkit::net
