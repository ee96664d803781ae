// Small helpers shared by the integration tests: payloads, and the captured keys and files of
// ../shared/testdata (DERPKIT_TESTDATA_DIR).
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>

#include "lib/derp/keys.h"
#include "lib/util/bytes.h"

namespace derpkit::testing {

// The bytes of `s`, as a packet payload.
inline Bytes Payload(std::string_view s) { return Bytes(AsBytes(s).begin(), AsBytes(s).end()); }

// A disco-looking packet (magic "TS💬" and padding to 70 bytes).
inline Bytes DiscoPayload() {
  Bytes p = {std::byte{0x54}, std::byte{0x53}, std::byte{0xf0},
             std::byte{0x9f}, std::byte{0x92}, std::byte{0xac}};
  p.resize(70, std::byte{0});
  return p;
}

// The contents of a file under ../shared/testdata.
inline std::string ReadTestdata(const std::string& rel) {
  std::ifstream in(std::string(DERPKIT_TESTDATA_DIR) + "/" + rel, std::ios::binary);
  EXPECT_TRUE(in) << rel;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A captured key by its name in keys/keys.json ("server", "A", "M", ...).
inline derp::PrivateKey CapturedKey(const std::string& name) {
  const auto keys = nlohmann::json::parse(ReadTestdata("keys/keys.json"));
  for (const auto& k : keys["Keys"]) {
    if (k["Name"] == name) return *derp::PrivateKey::FromText(k["Private"].get<std::string>());
  }
  ADD_FAILURE() << "no key " << name;
  return {};
}

}  // namespace derpkit::testing
