// record-ciphers: what one TLS 1.3 record costs the relay to seal and to open, per record, with
// the record layer's own SealRecord/OpenRecord (lib/net/tls13_records) under each library it can
// use: intel-ipsec-mb (the default where built in) in its best code for this CPU and in each other
// code path the CPU can run (what a CPU without AVX-512, or without AVX, would get), and the
// portable GnuTLS for AES-GCM / EVP for ChaCha20-Poly1305; beside the same work done through
// OpenSSL 3's EVP interface. One thread, no sockets; backs the README's figures for the
// per-record cost of TLS.
//
// Usage: record-ciphers [--records N]   (prints a table; ~2 s with the default 200,000)

#include <openssl/evp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "lib/net/record_aead.h"
#include "lib/net/tls13_records.h"

namespace {

using derpkit::net::ContentType;
using derpkit::net::kRecordHeaderBytes;
using derpkit::net::kRecordTagBytes;
using derpkit::net::Tls13Suite;
using derpkit::net::TrafficKeys;
using Clock = std::chrono::steady_clock;

// Nanoseconds per call of `one`, after a warm-up.
template <class F>
double NanosPerCall(int calls, F&& one) {
  for (int i = 0; i < 1000; ++i) one();
  const auto start = Clock::now();
  for (int i = 0; i < calls; ++i) one();
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() / calls;
}

// One key's EVP contexts for both directions (cached, so each record sets only its nonce).
struct EvpRecords {
  EVP_CIPHER* cipher;
  EVP_CIPHER_CTX* seal = EVP_CIPHER_CTX_new();
  EVP_CIPHER_CTX* open = EVP_CIPHER_CTX_new();
  EvpRecords(const char* name, const unsigned char* key, const unsigned char* nonce)
      : cipher(EVP_CIPHER_fetch(nullptr, name, nullptr)) {
    EVP_CipherInit_ex(seal, cipher, nullptr, key, nonce, 1);
    EVP_CipherInit_ex(open, cipher, nullptr, key, nonce, 0);
  }
  ~EvpRecords() {
    EVP_CIPHER_CTX_free(seal);
    EVP_CIPHER_CTX_free(open);
    EVP_CIPHER_free(cipher);
  }
  // The record layer's EVP path (net::EvpSealRecordBody / EvpOpenRecordBody), as AES-GCM ran
  // before GnuTLS and as ChaCha20-Poly1305 still runs.
  bool Seal(unsigned char* record, int body_bytes, const unsigned char* nonce) {
    unsigned char* body = record + kRecordHeaderBytes;
    return derpkit::net::EvpSealRecordBody(seal, nonce, record, body, body_bytes,
                                           body + body_bytes);
  }
  bool Open(unsigned char* record, int body_bytes, const unsigned char* nonce) {
    unsigned char* body = record + kRecordHeaderBytes;
    return derpkit::net::EvpOpenRecordBody(open, nonce, record, body, body_bytes,
                                           body + body_bytes) == derpkit::net::AeadOutcome::kOk;
  }
};

// Nanoseconds per seal and per open.
struct Costs {
  double seal = 1e18, open = 1e18;
};

void Rows(const char* suite_name, const char* evp_name, Tls13Suite suite, std::size_t plaintext,
          int calls) {
  TrafficKeys keys;
  keys.suite = suite;
  for (std::size_t i = 0; i < keys.key.size(); ++i) keys.key[i] = static_cast<std::uint8_t>(i * 7);
  const std::size_t record_bytes = kRecordHeaderBytes + plaintext + 1 + kRecordTagBytes;
  std::vector<std::byte> record(record_bytes);
  std::vector<std::byte> sealed(record_bytes);

  // Ours: seal with the same sequence number each call (the cost does not depend on it); open a
  // copy of one sealed record each call, with the sequence number that sealed it.
  keys.seq = 0;
  (void)derpkit::net::SealRecord(keys, ContentType::kApplicationData, record, plaintext);
  std::memcpy(sealed.data(), record.data(), record_bytes);
  auto* raw = reinterpret_cast<unsigned char*>(record.data());
  EvpRecords evp(evp_name, keys.key.data(), keys.iv.data());
  const int body = static_cast<int>(plaintext + 1);
  std::vector<unsigned char> evp_sealed(record_bytes);
  evp.Seal(raw, body, keys.iv.data());
  std::memcpy(evp_sealed.data(), raw, record_bytes);
  int failed = 0;
  const std::vector<derpkit::net::RecordCipher> ciphers = derpkit::net::RecordCiphersHere();
  std::vector<Costs> ours(ciphers.size());
  Costs evp_costs;
  // Five rounds taking turns, the fastest of each kept: this VM's speed wanders by 30% within
  // seconds, and turns keep that from favouring one side.
  constexpr int kRounds = 5;
  double copy = 1e18;
  for (int round = 0; round < kRounds; ++round) {
    const int n = calls / kRounds;
    for (std::size_t i = 0; i < ciphers.size(); ++i) {
      derpkit::net::UseRecordCipherOnThisThread(ciphers[i]);
      ours[i].seal = std::min(ours[i].seal, NanosPerCall(n, [&] {
                                keys.seq = 0;
                                (void)derpkit::net::SealRecord(keys, ContentType::kApplicationData,
                                                               record, plaintext);
                              }));
      ours[i].open = std::min(ours[i].open, NanosPerCall(n, [&] {
                                std::memcpy(record.data(), sealed.data(), record_bytes);
                                keys.seq = 0;
                                failed += !derpkit::net::OpenRecord(keys, record).has_value();
                              }));
    }
    double& evp_seal = evp_costs.seal;
    double& evp_open = evp_costs.open;
    evp_seal = std::min(evp_seal, NanosPerCall(n, [&] { evp.Seal(raw, body, keys.iv.data()); }));
    evp_open = std::min(evp_open, NanosPerCall(n, [&] {
                          std::memcpy(raw, evp_sealed.data(), record_bytes);
                          failed += !evp.Open(raw, body, keys.iv.data());
                        }));
    copy = std::min(
        copy, NanosPerCall(n, [&] { std::memcpy(record.data(), sealed.data(), record_bytes); }));
  }
  // The portable pair is GnuTLS for AES-GCM and EVP for ChaCha20-Poly1305: say which.
  const bool gcm = suite != Tls13Suite::kChacha20Poly1305Sha256;
  for (std::size_t i = 0; i < ciphers.size(); ++i) {
    const bool portable = ciphers[i].library == derpkit::net::RecordCipherLibrary::kPortable;
    const std::string name =
        portable ? (gcm ? "portable: GnuTLS" : "portable: EVP") : ciphers[i].name;
    std::printf("%-29s %6zu  %-26s %7.0f %7.0f%s\n", suite_name, plaintext, name.c_str(),
                ours[i].seal, ours[i].open - copy, failed != 0 ? "  (OPEN FAILED)" : "");
  }
  std::printf("%-29s %6zu  %-26s %7.0f %7.0f%s\n", suite_name, plaintext, "OpenSSL EVP directly",
              evp_costs.seal, evp_costs.open - copy, failed != 0 ? "  (OPEN FAILED)" : "");
  derpkit::net::UseRecordCipherOnThisThread(ciphers.front());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "record-ciphers: the cost of sealing and opening one TLS 1.3 record, the relay's record "
      "layer under each library (intel-ipsec-mb; GnuTLS or EVP) beside OpenSSL EVP.\nExample: "
      "record-ciphers --records 200000"};
  int records = 200000;
  app.add_option("--records", records, "records per measurement")
      ->check(CLI::Range(1000, 10000000));
  CLI11_PARSE(app, argc, argv);
  std::printf(
      "ns per record, one thread, fastest of 5 rounds (open excludes the copy that restores the "
      "sealed record); the relay uses %s\n\n",
      derpkit::net::DefaultRecordCipherLibraryName().c_str());
  std::printf("%-29s %6s  %-26s %7s %7s\n", "suite", "bytes", "implementation", "seal", "open");
  for (std::size_t plaintext : {std::size_t{1405}, std::size_t{16384}}) {
    Rows("TLS_AES_128_GCM_SHA256", "AES-128-GCM", Tls13Suite::kAes128GcmSha256, plaintext, records);
    Rows("TLS_AES_256_GCM_SHA384", "AES-256-GCM", Tls13Suite::kAes256GcmSha384, plaintext, records);
    Rows("TLS_CHACHA20_POLY1305_SHA256", "ChaCha20-Poly1305", Tls13Suite::kChacha20Poly1305Sha256,
         plaintext, records);
  }
  return 0;
}
