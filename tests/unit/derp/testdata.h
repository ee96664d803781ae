// Helpers for the DERP unit tests: reading shared/testdata files and the test keys.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "lib/derp/keys.h"
#include "lib/util/bytes.h"

namespace derpkit::derp::testing {

inline std::string TestdataPath(std::string_view relative) {
  return std::string(DERPKIT_TESTDATA_DIR) + "/" + std::string(relative);
}

// Returns the file's bytes; fails the test (and returns empty) when it cannot be read.
inline std::string ReadTestdata(std::string_view relative) {
  std::ifstream in(TestdataPath(relative), std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << TestdataPath(relative);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline Bytes ReadTestdataBytes(std::string_view relative) {
  const std::string s = ReadTestdata(relative);
  const ByteSpan b = AsBytes(s);
  return Bytes(b.begin(), b.end());
}

inline nlohmann::json ReadTestdataJson(std::string_view relative) {
  return nlohmann::json::parse(ReadTestdata(relative));
}

struct TestKey {
  PrivateKey priv;
  PublicKey pub;
};

// The keys of shared/testdata/keys/keys.json by name ("server", "A", ...).
inline std::map<std::string, TestKey> LoadTestKeys() {
  std::map<std::string, TestKey> keys;
  const nlohmann::json doc = ReadTestdataJson("keys/keys.json");
  for (const auto& k : doc["Keys"]) {
    auto priv = PrivateKey::FromText(k["Private"].get<std::string>());
    auto pub = PublicKey::FromText(k["Public"].get<std::string>());
    EXPECT_TRUE(priv.has_value() && pub.has_value()) << k["Name"];
    if (priv && pub) keys[k["Name"].get<std::string>()] = TestKey{*priv, *pub};
  }
  return keys;
}

inline Bytes Hex(std::string_view hex) { return BytesFromHex(hex); }

}  // namespace derpkit::derp::testing
