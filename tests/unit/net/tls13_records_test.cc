// The TLS 1.3 record layer's crypto against RFC 8448's example trace (§3, simple 1-RTT: the
// application traffic secrets, the keys and IVs derived from them and the two application_data
// records with their exact bytes), plus the failure cases. Single-threaded, no sockets.
#include "lib/net/tls13_records.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "lib/net/record_aead.h"
#include "lib/util/bytes.h"

namespace derpkit::net {
namespace {

std::vector<std::uint8_t> Hex(std::string_view hex) {
  const Bytes b = BytesFromHex(hex);
  std::vector<std::uint8_t> out(b.size());
  for (std::size_t i = 0; i < b.size(); ++i) out[i] = std::to_integer<std::uint8_t>(b[i]);
  return out;
}

// RFC 8448 §3.
constexpr std::string_view kClientApSecret =
    "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5";
constexpr std::string_view kServerApSecret =
    "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643";
constexpr std::string_view kClientApKey = "17422dda596ed5d9acd890e3c63f5051";
constexpr std::string_view kClientApIv = "5b78923dee08579033e523d9";
constexpr std::string_view kServerApKey = "9f02283b6c9c07efc26bb9f2ac92e356";
constexpr std::string_view kServerApIv = "cf782b88dd83549aadf1e984";
// The 50-byte payload 00 01 .. 31 each side sends: the client's at sequence number 0, the
// server's at 1 (its NewSessionTicket took 0).
constexpr std::string_view kClientRecord =
    "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f2b9819a8a5b46b395bd54a9a"
    "20441e2b62974e1f5a6292a2977014bd1e3deae63aeebb21694915e4";
constexpr std::string_view kServerRecord =
    "17030300432e937e11ef4ac740e538ad36005fc4a46932fc3225d05f82aa1b36e30efaf97d90e6dffc602dcb"
    "501a59a8fcc49c4bf2e5f0a21c0047c2abf332540dd032e167c2955d";

Bytes Payload50() {
  Bytes p(50);
  for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<std::byte>(i);
  return p;
}

// A record buffer with `plaintext` at offset 5 and room for the type byte and tag.
Bytes RecordRoom(ByteSpan plaintext) {
  Bytes r(kRecordHeaderBytes + plaintext.size() + 1 + kRecordTagBytes);
  std::copy(plaintext.begin(), plaintext.end(), r.begin() + kRecordHeaderBytes);
  return r;
}

TrafficKeys Keys(Tls13Suite suite, std::string_view secret_hex) {
  auto keys = MakeTrafficKeys(suite, Hex(secret_hex));
  EXPECT_TRUE(keys.has_value()) << (keys ? "" : keys.error());
  return keys ? *keys : TrafficKeys{};
}

TEST(Tls13Records, DerivesRfc8448ApplicationKeys) {
  const TrafficKeys client = Keys(Tls13Suite::kAes128GcmSha256, kClientApSecret);
  const TrafficKeys server = Keys(Tls13Suite::kAes128GcmSha256, kServerApSecret);
  EXPECT_EQ(std::vector<std::uint8_t>(client.key.begin(), client.key.begin() + 16),
            Hex(kClientApKey));
  EXPECT_EQ(std::vector<std::uint8_t>(client.iv.begin(), client.iv.end()), Hex(kClientApIv));
  EXPECT_EQ(std::vector<std::uint8_t>(server.key.begin(), server.key.begin() + 16),
            Hex(kServerApKey));
  EXPECT_EQ(std::vector<std::uint8_t>(server.iv.begin(), server.iv.end()), Hex(kServerApIv));
  EXPECT_EQ(client.seq, 0u);
}

TEST(Tls13Records, SealsRfc8448RecordsByteForByte) {
  const Bytes payload = Payload50();
  TrafficKeys client = Keys(Tls13Suite::kAes128GcmSha256, kClientApSecret);
  Bytes record = RecordRoom(payload);
  auto size = SealRecord(client, ContentType::kApplicationData, record, payload.size());
  ASSERT_TRUE(size.has_value()) << size.error();
  EXPECT_EQ(*size, record.size());
  EXPECT_EQ(HexEncode(record), kClientRecord);
  EXPECT_EQ(client.seq, 1u);

  TrafficKeys server = Keys(Tls13Suite::kAes128GcmSha256, kServerApSecret);
  server.seq = 1;
  record = RecordRoom(payload);
  size = SealRecord(server, ContentType::kApplicationData, record, payload.size());
  ASSERT_TRUE(size.has_value()) << size.error();
  EXPECT_EQ(HexEncode(record), kServerRecord);
}

TEST(Tls13Records, OpensRfc8448RecordsInPlace) {
  TrafficKeys server = Keys(Tls13Suite::kAes128GcmSha256, kServerApSecret);
  server.seq = 1;
  Bytes record = BytesFromHex(kServerRecord);
  auto opened = OpenRecord(server, record);
  ASSERT_TRUE(opened.has_value()) << RecordErrorText(opened.error());
  EXPECT_EQ(opened->type, ContentType::kApplicationData);
  ASSERT_EQ(opened->plaintext_bytes, 50u);
  const Bytes payload = Payload50();
  EXPECT_TRUE(std::equal(payload.begin(), payload.end(), record.begin() + kRecordHeaderBytes));
  EXPECT_EQ(server.seq, 2u);
}

TEST(Tls13Records, RejectsTamperingWrongSequenceAndLength) {
  TrafficKeys client = Keys(Tls13Suite::kAes128GcmSha256, kClientApSecret);
  Bytes record = BytesFromHex(kClientRecord);
  record[20] ^= std::byte{1};
  auto opened = OpenRecord(client, record);
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error(), RecordError::kBadRecordMac);
  EXPECT_EQ(client.seq, 0u) << "a failed record must not advance the sequence number";

  client.seq = 1;  // the right bytes under the wrong nonce
  record = BytesFromHex(kClientRecord);
  opened = OpenRecord(client, record);
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error(), RecordError::kBadRecordMac);

  // 2^14 + 256 + 1 bytes of ciphertext: record_overflow from the header alone.
  const std::array<std::byte, 5> too_long{std::byte{23}, std::byte{3}, std::byte{3},
                                          std::byte{0x41}, std::byte{0x01}};
  auto size = RecordSize(too_long);
  ASSERT_FALSE(size.has_value());
  EXPECT_EQ(size.error(), RecordError::kOverflow);
  const std::array<std::byte, 5> max_len{std::byte{23}, std::byte{3}, std::byte{3}, std::byte{0x41},
                                         std::byte{0x00}};
  size = RecordSize(max_len);
  ASSERT_TRUE(size.has_value());
  EXPECT_EQ(*size, 5u + 16384 + 256);
  // An outer type other than application_data, or another legacy version.
  const std::array<std::byte, 5> handshake{std::byte{22}, std::byte{3}, std::byte{3}, std::byte{0},
                                           std::byte{40}};
  EXPECT_EQ(RecordSize(handshake).error(), RecordError::kBadHeader);
  const std::array<std::byte, 5> tls10{std::byte{23}, std::byte{3}, std::byte{1}, std::byte{0},
                                       std::byte{40}};
  EXPECT_EQ(RecordSize(tls10).error(), RecordError::kBadHeader);
}

TEST(Tls13Records, ToleratesPaddingAndRejectsAllPadding) {
  TrafficKeys writer = Keys(Tls13Suite::kAes128GcmSha256, kClientApSecret);
  TrafficKeys reader = writer;
  // Sealing "hello" + type 22 + three zeros with an inner type of 0 gives the inner plaintext
  // "hello" 16 00 00 00 00: a handshake record with four bytes of padding.
  Bytes inner = {std::byte{'h'}, std::byte{'e'}, std::byte{'l'}, std::byte{'l'}, std::byte{'o'},
                 std::byte{22},  std::byte{0},   std::byte{0},   std::byte{0}};
  Bytes record = RecordRoom(inner);
  ASSERT_TRUE(SealRecord(writer, static_cast<ContentType>(0), record, inner.size()).has_value());
  auto opened = OpenRecord(reader, record);
  ASSERT_TRUE(opened.has_value()) << RecordErrorText(opened.error());
  EXPECT_EQ(opened->type, ContentType::kHandshake);
  EXPECT_EQ(opened->plaintext_bytes, 5u);

  Bytes zeros(7);
  record = RecordRoom(zeros);
  ASSERT_TRUE(SealRecord(writer, static_cast<ContentType>(0), record, zeros.size()).has_value());
  opened = OpenRecord(reader, record);
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error(), RecordError::kNoContentType);
}

// Connections taking turns, as a shard's busy senders and receivers do, each key once per
// round: every key is scheduled once, then only nonces are set. (With the LRU of 8 entries this
// cache replaced, 10 keys in turn missed on every record: 10 pairs of a benchmark, one key
// schedule per record.)
TEST(Tls13Records, KeysTakingTurnsStayCached) {
  for (const int key_count : {10, 32}) {
    SCOPED_TRACE(key_count);
    std::vector<TrafficKeys> writers;
    std::vector<TrafficKeys> readers;
    for (int k = 0; k < key_count; ++k) {
      // Distinct secrets, so distinct keys; fixed, so the test is the same on every run.
      std::vector<std::uint8_t> secret(32, static_cast<std::uint8_t>(k));
      secret[0] = static_cast<std::uint8_t>(key_count);
      auto made = MakeTrafficKeys(Tls13Suite::kAes128GcmSha256, secret);
      ASSERT_TRUE(made.has_value()) << made.error();
      writers.push_back(*made);
      readers.push_back(*made);
    }
    const std::uint64_t before = AeadKeySchedulesOnThisThread();
    Bytes plaintext(1400, std::byte{0x33});
    for (int round = 0; round < 5; ++round) {
      for (int k = 0; k < key_count; ++k) {
        Bytes record = RecordRoom(plaintext);
        std::copy(plaintext.begin(), plaintext.end(), record.begin() + kRecordHeaderBytes);
        ASSERT_TRUE(SealRecord(writers[k], ContentType::kApplicationData, record, plaintext.size())
                        .has_value());
        auto opened = OpenRecord(readers[k], record);
        ASSERT_TRUE(opened.has_value()) << RecordErrorText(opened.error());
        ASSERT_EQ(opened->plaintext_bytes, plaintext.size());
      }
    }
    // One schedule per key and direction (seal and open caches are separate), in the first
    // round only.
    EXPECT_EQ(AeadKeySchedulesOnThisThread() - before, 2u * static_cast<unsigned>(key_count));
  }
}

TEST(Tls13Records, EverySuiteRoundTripsAcrossKeyUpdates) {
  for (const Tls13Suite suite : {Tls13Suite::kAes128GcmSha256, Tls13Suite::kAes256GcmSha384,
                                 Tls13Suite::kChacha20Poly1305Sha256}) {
    SCOPED_TRACE(Tls13SuiteName(suite));
    const std::vector<std::uint8_t> secret(Tls13SecretBytes(suite), 0x5a);
    auto made = MakeTrafficKeys(suite, secret);
    ASSERT_TRUE(made.has_value()) << made.error();
    TrafficKeys writer = *made;
    TrafficKeys reader = *made;
    for (int update = 0; update < 3; ++update) {
      for (const std::size_t size :
           {std::size_t{0}, std::size_t{1}, std::size_t{1400}, kMaxRecordPlaintextBytes}) {
        Bytes plaintext(size);
        for (std::size_t i = 0; i < size; ++i) plaintext[i] = static_cast<std::byte>(i * 7 + 1);
        Bytes record = RecordRoom(plaintext);
        ASSERT_TRUE(SealRecord(writer, ContentType::kApplicationData, record, size).has_value());
        auto opened = OpenRecord(reader, record);
        ASSERT_TRUE(opened.has_value()) << RecordErrorText(opened.error());
        ASSERT_EQ(opened->plaintext_bytes, size);
        EXPECT_TRUE(
            std::equal(plaintext.begin(), plaintext.end(), record.begin() + kRecordHeaderBytes));
      }
      const auto old_key = writer.key;
      ASSERT_TRUE(UpdateTrafficKeys(writer).has_value());
      ASSERT_TRUE(UpdateTrafficKeys(reader).has_value());
      EXPECT_NE(writer.key, old_key);
      EXPECT_EQ(writer.seq, 0u);
    }
    // Keys that were not updated in step cannot read the updated writer's records.
    TrafficKeys stale = *made;
    Bytes plaintext(10);
    Bytes record = RecordRoom(plaintext);
    ASSERT_TRUE(SealRecord(writer, ContentType::kApplicationData, record, 10).has_value());
    EXPECT_FALSE(OpenRecord(stale, record).has_value());
  }
  // A secret of the wrong length for the suite.
  EXPECT_FALSE(
      MakeTrafficKeys(Tls13Suite::kAes256GcmSha384, std::vector<std::uint8_t>(32, 1)).has_value());
  EXPECT_EQ(Tls13SuiteFromId(0x1301), Tls13Suite::kAes128GcmSha256);
  EXPECT_EQ(Tls13SuiteFromId(0x1303), Tls13Suite::kChacha20Poly1305Sha256);
  EXPECT_FALSE(Tls13SuiteFromId(0x1304).has_value());  // TLS_AES_128_CCM_SHA256: not ours
}

// Every record cipher this build and CPU can run (RecordCiphersHere: the portable pair, and
// ipsec-mb in each code path the CPU has), saying so where ipsec-mb is not built in (or the CPU
// has no AES-NI) and only the portable pair runs.
std::vector<RecordCipher> CiphersToTest() {
  std::vector<RecordCipher> ciphers = RecordCiphersHere();
  if (ciphers.size() == 1) {
    std::printf("note: ipsec-mb not available here; the portable libraries only\n");
  }
  return ciphers;
}

// A key cached for one ipsec-mb code path is not reused by another (their GCM key layouts
// differ), so a thread that switches code makes a key schedule for the key again, and the records
// it seals then are the chosen code's.
TEST(Tls13Records, EachIpsecMbCodeMakesItsOwnKeySchedule) {
  const std::vector<RecordCipher> ciphers = CiphersToTest();
  const Bytes payload = Payload50();
  // A key no other test uses, so no cache on this thread holds it yet.
  const auto made =
      MakeTrafficKeys(Tls13Suite::kAes128GcmSha256, std::vector<std::uint8_t>(32, 0xa7));
  ASSERT_TRUE(made.has_value()) << made.error();
  std::string first_record;
  for (const RecordCipher& cipher : ciphers) {
    SCOPED_TRACE(cipher.name);
    ASSERT_TRUE(UseRecordCipherOnThisThread(cipher));
    for (int round = 0; round < 2; ++round) {
      const std::uint64_t schedules_before = AeadKeySchedulesOnThisThread();
      TrafficKeys writer = *made;
      Bytes record = RecordRoom(payload);
      ASSERT_TRUE(SealRecord(writer, ContentType::kApplicationData, record, payload.size()));
      if (first_record.empty()) first_record = HexEncode(record);
      EXPECT_EQ(HexEncode(record), first_record);
      // The first record after a switch schedules the key; the second reuses it.
      EXPECT_EQ(AeadKeySchedulesOnThisThread() - schedules_before, round == 0 ? 1u : 0u);
    }
  }
  ASSERT_TRUE(UseRecordCipherOnThisThread(DefaultRecordCipher()));
}

// The record cipher libraries (record_aead.h) against each other and against RFC 8448: each
// seals the RFC's record byte for byte, each opens what the other sealed at every size class
// (empty, under one block, block edges, one DERP frame, a full record) in every suite, and each
// rejects a flipped bit anywhere in the ciphertext or tag. Where ipsec-mb is not built in (or the
// CPU has no AES-NI) only the portable pair runs, and the test says so.
TEST(Tls13Records, RecordCipherLibrariesAgree) {
  const std::vector<RecordCipher> ciphers = CiphersToTest();
  for (const RecordCipher& cipher : ciphers) {
    SCOPED_TRACE(cipher.name);
    ASSERT_TRUE(UseRecordCipherOnThisThread(cipher));
    const Bytes payload = Payload50();
    TrafficKeys client = Keys(Tls13Suite::kAes128GcmSha256, kClientApSecret);
    Bytes record = RecordRoom(payload);
    ASSERT_TRUE(SealRecord(client, ContentType::kApplicationData, record, payload.size()));
    EXPECT_EQ(HexEncode(record), kClientRecord);
    TrafficKeys server = Keys(Tls13Suite::kAes128GcmSha256, kServerApSecret);
    server.seq = 1;
    record = BytesFromHex(kServerRecord);
    ASSERT_TRUE(OpenRecord(server, record).has_value());
    EXPECT_TRUE(std::equal(payload.begin(), payload.end(), record.begin() + kRecordHeaderBytes));
  }
  for (const Tls13Suite suite : {Tls13Suite::kAes128GcmSha256, Tls13Suite::kAes256GcmSha384,
                                 Tls13Suite::kChacha20Poly1305Sha256}) {
    SCOPED_TRACE(Tls13SuiteName(suite));
    const std::vector<std::uint8_t> secret(Tls13SecretBytes(suite), 0x3c);
    for (const RecordCipher& sealer : ciphers) {
      for (const RecordCipher& opener : ciphers) {
        SCOPED_TRACE("sealer " + sealer.name + ", opener " + opener.name);
        auto made = MakeTrafficKeys(suite, secret);
        ASSERT_TRUE(made.has_value()) << made.error();
        TrafficKeys writer = *made;
        TrafficKeys reader = *made;
        for (const std::size_t size :
             {std::size_t{0}, std::size_t{1}, std::size_t{14}, std::size_t{15}, std::size_t{16},
              std::size_t{17}, std::size_t{63}, std::size_t{64}, std::size_t{255},
              std::size_t{1400}, std::size_t{4097}, kMaxRecordPlaintextBytes}) {
          SCOPED_TRACE(size);
          Bytes plaintext(size);
          for (std::size_t i = 0; i < size; ++i) plaintext[i] = static_cast<std::byte>(i * 13 + 5);
          Bytes record = RecordRoom(plaintext);
          ASSERT_TRUE(UseRecordCipherOnThisThread(sealer));
          ASSERT_TRUE(SealRecord(writer, ContentType::kApplicationData, record, size));
          ASSERT_TRUE(UseRecordCipherOnThisThread(opener));
          // A flipped bit in the first ciphertext byte, the last, or the tag: rejected, and the
          // sequence number stays.
          for (const std::size_t flip :
               {kRecordHeaderBytes, record.size() - kRecordTagBytes - 1, record.size() - 1}) {
            Bytes tampered = record;
            tampered[flip] ^= std::byte{0x80};
            TrafficKeys probe = reader;
            auto opened = OpenRecord(probe, tampered);
            ASSERT_FALSE(opened.has_value());
            EXPECT_EQ(opened.error(), RecordError::kBadRecordMac);
            EXPECT_EQ(probe.seq, reader.seq);
          }
          auto opened = OpenRecord(reader, record);
          ASSERT_TRUE(opened.has_value()) << RecordErrorText(opened.error());
          ASSERT_EQ(opened->plaintext_bytes, size);
          EXPECT_TRUE(
              std::equal(plaintext.begin(), plaintext.end(), record.begin() + kRecordHeaderBytes));
        }
      }
    }
  }
  ASSERT_TRUE(UseRecordCipherOnThisThread(DefaultRecordCipher()));
}

}  // namespace
}  // namespace derpkit::net
