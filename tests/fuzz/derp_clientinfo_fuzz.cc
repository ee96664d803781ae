// Fuzzes the handshake JSON and the ClientInfo box. The input is used three ways:
// - as ClientInfo/ServerInfo JSON: what decodes must re-encode, and that encoding must decode to
//   the same values and encode to the same bytes again (the encoder's output is canonical);
// - sealed as the JSON of a ClientInfo frame with fixed keys: OpenClientInfo must agree exactly
//   with DecodeClientInfoJson on the same text;
// - as a raw ClientInfo payload opened with a fixed server key (fails cleanly).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "lib/derp/frame.h"
#include "lib/derp/handshake.h"

namespace {

using derpkit::Bytes;
using derpkit::ByteSpan;
using namespace derpkit::derp;  // NOLINT(google-build-using-namespace): test driver

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool SameInfo(const ClientInfo& a, const ClientInfo& b) {
  if (a.mesh_key.has_value() != b.mesh_key.has_value()) return false;
  if (a.mesh_key && !a.mesh_key->ConstantTimeEquals(*b.mesh_key)) return false;
  return a.version == b.version && a.can_ack_pings == b.can_ack_pings &&
         a.is_prober == b.is_prober && a.app_name == b.app_name;
}

const PrivateKey kServer = PrivateKey::FromRaw(std::array<std::byte, kKeySize>{std::byte{1}});
const PrivateKey kClient = PrivateKey::FromRaw(std::array<std::byte, kKeySize>{std::byte{2}});

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  const auto info = DecodeClientInfoJson(text);
  if (info) {
    const std::string json = EncodeClientInfoJson(*info);
    const auto again = DecodeClientInfoJson(json);
    Check(again.has_value() && SameInfo(*info, *again) && EncodeClientInfoJson(*again) == json);
  }

  if (const auto server_info = DecodeServerInfoJson(text)) {
    const std::string json = EncodeServerInfoJson(*server_info);
    const auto again = DecodeServerInfoJson(json);
    Check(again.has_value() && again->version == server_info->version &&
          again->token_bucket_bytes_per_second == server_info->token_bucket_bytes_per_second &&
          again->token_bucket_bytes_burst == server_info->token_bucket_bytes_burst &&
          EncodeServerInfoJson(*again) == json);
  }

  if (size + kKeySize + kNonceSize + kBoxOverheadSize <= kMaxClientInfoSize) {
    Nonce nonce{};
    nonce[0] = static_cast<std::byte>(size);
    Bytes frame;
    AppendClientInfoJson(frame, kClient, kServer.Public(), text, nonce);
    const auto opened = OpenClientInfo(ByteSpan(frame).subspan(kFrameHeaderSize), kServer);
    Check(opened.has_value() == info.has_value());
    if (opened) {
      Check(opened->client == kClient.Public() && SameInfo(opened->info, *info));
    } else {
      Check(opened.error() == info.error());
    }
  }

  (void)OpenClientInfo(std::as_bytes(std::span(data, size)), kServer);
  return 0;
}
