// Fuzzes what derp-relay's ACME client and TLS-ALPN-01 responder parse from the outside: the
// CA's JSON (directory, order, authorization, problem) and two ClientHello extension bodies
// (ALPN, server_name). The first input byte picks the parser; the rest is its input. Any input
// must parse or fail with a message, and whatever parses must hold its invariants: every ALPN
// name non-empty and inside the input, the server name non-empty without NUL, an order's and
// an authorization's required strings present.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "lib/acme/client_hello.h"
#include "lib/acme/messages.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool Inside(std::string_view part, std::span<const std::uint8_t> whole) {
  const auto* begin = reinterpret_cast<const char*>(whole.data());
  return part.data() >= begin && part.data() + part.size() <= begin + whole.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::span<const std::uint8_t> body(data + 1, size - 1);
  const std::string_view text(reinterpret_cast<const char*>(body.data()), body.size());
  switch (data[0] % 6) {
    case 0: {
      auto d = derpkit::acme::ParseDirectory(text);
      if (d)
        Check(!d->new_nonce.empty() || text.find("newNonce") != std::string_view::npos);
      else
        Check(!d.error().empty());
      break;
    }
    case 1: {
      auto o = derpkit::acme::ParseOrder(text);
      if (!o) Check(!o.error().empty());
      break;
    }
    case 2: {
      auto a = derpkit::acme::ParseAuthorization(text);
      if (!a) Check(!a.error().empty());
      break;
    }
    case 3: {
      auto p = derpkit::acme::ParseProblem(text);
      if (p)
        Check(p->status == 0 || (p->status >= 100 && p->status <= 599));
      else
        Check(!p.error().empty());
      break;
    }
    case 4: {
      auto names = derpkit::acme::ParseAlpnExtension(body);
      if (names) {
        Check(!names->empty());
        for (std::string_view n : *names) Check(!n.empty() && Inside(n, body));
      } else {
        Check(!names.error().empty());
      }
      break;
    }
    default: {
      auto name = derpkit::acme::ParseServerNameExtension(body);
      if (name) {
        Check(!name->empty() && Inside(*name, body) && name->find('\0') == std::string_view::npos);
      } else {
        Check(!name.error().empty());
      }
      break;
    }
  }
  return 0;
}
