// Fuzzes the key text parsers with the same input: derper's key file, the mesh key file, and
// nodekey:/privkey:/untyped hex. Whatever parses must format back to text that parses to the
// same key; key text must format back to the input itself, modulo hex case.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "lib/derp/keys.h"

namespace {

using namespace derpkit::derp;  // NOLINT(google-build-using-namespace): test driver

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (const auto key = ParseKeyFile(text)) {
    const std::string file = FormatKeyFile(*key);
    const auto again = ParseKeyFile(file);
    Check(again.has_value() && again->bytes == key->bytes && FormatKeyFile(*again) == file);
  }

  if (const auto mesh = MeshKey::Parse(text)) {
    const auto again = MeshKey::Parse(mesh->ToHex());
    Check(again.has_value() && again->ConstantTimeEquals(*mesh));
  }

  if (const auto pub = PublicKey::FromText(text)) {
    Check(pub->ToText() == Lower(text));
    Check(PublicKey::FromHex(pub->ToHex()).value_or(PublicKey{}) == *pub);
  }
  if (const auto pub = PublicKey::FromHex(text)) Check(pub->ToHex() == Lower(text));
  if (const auto priv = PrivateKey::FromText(text)) Check(priv->ToText() == Lower(text));
  return 0;
}
