// The AEAD of one TLS 1.3 record body, in place: what tls13_records.cc calls to seal and open,
// with the cipher state cached per thread so that a record under a key in use costs no key
// schedule. No record framing here (header, nonce, padding are tls13_records.cc's).
//
// Libraries, chosen by measurement (bench/record-ciphers prints each per record):
// - Intel's ipsec-mb where it is built in (x86-64) and the CPU has AES-NI, for every suite: one
//   call per record (three for ChaCha20-Poly1305) through its best code for this CPU (VAES and
//   VPCLMULQDQ on 512-bit registers where present). Here, per 1.4 KB record, AES-128-GCM seals
//   and opens in ~150-200 ns against GnuTLS's ~450-520 ns; with one record per DERP frame, as
//   Tailscale's client writes, that is ~0.7 us of each relayed packet. ChaCha20-Poly1305 takes
//   ~1.0 us against OpenSSL EVP's ~1.5-2.1 us (16 KB: 1.2x). Without AVX-512 its AVX2, AVX and
//   SSE code still seal AES-GCM 5-30% faster than GnuTLS at 1.4 KB; its AVX2 ChaCha20-Poly1305
//   is 15-25% faster than OpenSSL's AVX2 code at 1.4 KB and ~25% slower at 16 KB
//   (bench/MEASUREMENTS.md).
// - Otherwise (other architectures, no AES-NI): AES-GCM by GnuTLS's AEAD calls, one call per
//   record over AES-NI/PCLMUL assembly where present (OpenSSL 3's EVP spends ~100-150 ns more per
//   1.4 KB record on parameter plumbing: EVP_CipherInit_ex for the nonce, the tag ctrl, each
//   through OSSL_PARAM lookups by name), and ChaCha20-Poly1305 by OpenSSL's EVP, whose AVX-512
//   code is 2x (1.4 KB) to 6x (16 KB) faster than GnuTLS's.
//
// Thread affinity: the caches are thread_local (one per direction); call from any thread.
#pragma once

#include <openssl/types.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lib/net/tls13_records.h"

namespace derpkit::net {

enum class AeadOutcome { kOk, kBadTag, kFailed };

// Encrypts body[0 .. bytes) in place under `keys` and `nonce`, authenticating `header` too, and
// writes the 16-byte tag to `tag`. kFailed if the cipher library refuses (no kBadTag here).
AeadOutcome SealRecordBody(const TrafficKeys& keys, std::span<const std::uint8_t, 12> nonce,
                           std::span<std::byte, kRecordHeaderBytes> header, unsigned char* body,
                           std::size_t bytes, unsigned char* tag);

// Checks `tag` over `header` and body[0 .. bytes) and decrypts the body in place. kBadTag when
// the record is not authentic (its bytes are then unspecified), kFailed on a library failure.
AeadOutcome OpenRecordBody(const TrafficKeys& keys, std::span<const std::uint8_t, 12> nonce,
                           std::span<std::byte, kRecordHeaderBytes> header, unsigned char* body,
                           std::size_t bytes, const unsigned char* tag);

// The same through an OpenSSL EVP context that already holds the key and direction: the portable
// ChaCha20-Poly1305 path above, and the AES-GCM path before GnuTLS (bench/record-ciphers times it
// against SealRecordBody/OpenRecordBody). After kFailed (or false) the context's state is unknown.
bool EvpSealRecordBody(EVP_CIPHER_CTX* ctx, const std::uint8_t* nonce, const unsigned char* header,
                       unsigned char* body, std::size_t bytes, unsigned char* tag);
AeadOutcome EvpOpenRecordBody(EVP_CIPHER_CTX* ctx, const std::uint8_t* nonce,
                              const unsigned char* header, unsigned char* body, std::size_t bytes,
                              const unsigned char* tag);

// Which library seals and opens records: Intel's ipsec-mb (every suite), or the portable pair,
// GnuTLS for AES-GCM and OpenSSL's EVP for ChaCha20-Poly1305.
enum class RecordCipherLibrary { kIpsecMb, kPortable };
// ipsec-mb's code paths for AES-GCM and ChaCha20-Poly1305. The relay runs the best the CPU has
// (kBest: on this machine AVX-512 with VAES); the others are what a CPU without AVX-512 (AVX2,
// AVX) or without AVX (SSE) would run.
enum class IpsecMbCode { kBest, kSse, kAvx, kAvx2, kAvx512 };

// One way to seal and open records: a library and, for ipsec-mb, one of its code paths. The
// relay runs DefaultRecordCipher(); the test that checks they all agree and bench/record-ciphers,
// which times each, run every one of RecordCiphersHere().
struct RecordCipher {
  RecordCipherLibrary library = RecordCipherLibrary::kPortable;
  IpsecMbCode code = IpsecMbCode::kBest;  // ipsec-mb only
  std::string name;                       // "ipsec-mb best (AVX-512)", "ipsec-mb AVX2", "portable"
};
// ipsec-mb's best code when built in (x86-64) and the CPU has AES-NI, else the portable pair.
RecordCipher DefaultRecordCipher();
// Every one this build and CPU can run: the default first, then ipsec-mb's code paths the CPU
// has from AVX-512 down, then the portable pair.
std::vector<RecordCipher> RecordCiphersHere();
// Makes this thread seal and open with `cipher` from now on. False, changing nothing, when it
// cannot run here.
bool UseRecordCipherOnThisThread(const RecordCipher& cipher);
// What seals records by default, for the relay's startup log: e.g. "intel-ipsec-mb 1.3.0
// (AVX-512 code)".
std::string DefaultRecordCipherLibraryName();

// How many key schedules (cache misses: cipher state made for a key) this thread has made.
std::uint64_t AeadKeySchedulesOnThisThread();

}  // namespace derpkit::net
