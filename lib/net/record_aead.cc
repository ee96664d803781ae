// Per-thread cached AEAD state for TLS 1.3 records (see record_aead.h for which library does
// which suite, and why).

#include "lib/net/record_aead.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <cstring>

namespace derpkit::net {

namespace {

thread_local std::uint64_t key_schedules_on_this_thread = 0;

gnutls_cipher_algorithm_t GcmAlgorithm(Tls13Suite suite) {
  return suite == Tls13Suite::kAes256GcmSha384 ? GNUTLS_CIPHER_AES_256_GCM
                                               : GNUTLS_CIPHER_AES_128_GCM;
}

// Fetched once: passing EVP_chacha20_poly1305() to every EVP_CipherInit_ex would fetch the
// provider's implementation again on each call.
const EVP_CIPHER* Chacha() {
  static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
  return cipher;
}

// One key's cipher state: a GnuTLS handle (AES-GCM) or an EVP context for one direction
// (ChaCha20-Poly1305), never both.
struct Entry {
  gnutls_aead_cipher_hd_t gcm = nullptr;
  EVP_CIPHER_CTX* chacha = nullptr;
  Tls13Suite suite = Tls13Suite::kAes128GcmSha256;
  std::uint64_t last_used = 0;
  std::array<std::uint8_t, 32> key{};

  bool loaded() const { return gcm != nullptr || chacha != nullptr; }
  void Drop() {
    if (gcm != nullptr) gnutls_aead_cipher_deinit(gcm);
    EVP_CIPHER_CTX_free(chacha);
    gcm = nullptr;
    chacha = nullptr;
    OPENSSL_cleanse(key.data(), key.size());
  }
  bool Load(const TrafficKeys& keys, int encrypt) {
    const std::size_t key_bytes = Tls13KeyBytes(keys.suite);
    if (keys.suite == Tls13Suite::kChacha20Poly1305Sha256) {
      chacha = EVP_CIPHER_CTX_new();
      if (chacha == nullptr ||
          EVP_CipherInit_ex(chacha, Chacha(), nullptr, keys.key.data(), nullptr, encrypt) != 1) {
        Drop();
        return false;
      }
    } else {
      gnutls_datum_t datum{const_cast<unsigned char*>(keys.key.data()),
                           static_cast<unsigned int>(key_bytes)};
      if (gnutls_aead_cipher_init(&gcm, GcmAlgorithm(keys.suite), &datum) != 0) {
        gcm = nullptr;
        return false;
      }
    }
    suite = keys.suite;
    std::memcpy(key.data(), keys.key.data(), key_bytes);
    return true;
  }
};

// Entries per thread and direction, keyed by the key bytes: a record under a key seen lately
// (the connections a shard is serving right now) makes no key schedule. An idle connection holds
// none of this; the cache is per thread, not per connection.
//
// Set-associative (64 sets of 4, indexed by the key's own bytes, which are uniformly random
// HKDF output), so a lookup compares at most 4 keys however many entries there are. The
// capacity matters more than it looks: with a plain LRU of 8 entries, 10 senders taking turns
// (bench row tlsrec-*: 10 pairs) missed on every record, because a cyclic pattern just longer
// than an LRU evicts each key just before it comes back. State is made on first use (~1 KB per
// key): a thread that serves few keys holds few; at most 256 per direction.
class AeadCache {
 public:
  static constexpr std::size_t kSets = 64;
  static constexpr std::size_t kWays = 4;

  explicit AeadCache(int encrypt) : encrypt_(encrypt) {}
  ~AeadCache() {
    for (auto& set : sets_) {
      for (Entry& e : set) e.Drop();
    }
  }
  AeadCache(const AeadCache&) = delete;
  AeadCache& operator=(const AeadCache&) = delete;

  // The entry for `keys`, loaded (one key schedule) if none holds that key; nullptr if the
  // library refuses the key.
  Entry* For(const TrafficKeys& keys) {
    const std::size_t key_bytes = Tls13KeyBytes(keys.suite);
    std::uint64_t index_bits = 0;
    std::memcpy(&index_bits, keys.key.data(), sizeof index_bits);
    auto& set = sets_[index_bits % kSets];
    ++clock_;
    Entry* victim = &set[0];
    for (Entry& e : set) {
      if (e.loaded() && e.suite == keys.suite &&
          std::memcmp(e.key.data(), keys.key.data(), key_bytes) == 0) {
        e.last_used = clock_;
        return &e;
      }
      if (e.last_used < victim->last_used) victim = &e;
    }
    victim->Drop();  // the least recently used (or never used) entry of the set
    ++key_schedules_on_this_thread;
    if (!victim->Load(keys, encrypt_)) return nullptr;
    victim->last_used = clock_;
    return victim;
  }

 private:
  int encrypt_;
  std::array<std::array<Entry, kWays>, kSets> sets_{};
  std::uint64_t clock_ = 0;
};

AeadCache& SealCache() {
  thread_local AeadCache cache(1);
  return cache;
}
AeadCache& OpenCache() {
  thread_local AeadCache cache(0);
  return cache;
}

}  // namespace

bool EvpSealRecordBody(EVP_CIPHER_CTX* ctx, const std::uint8_t* nonce, const unsigned char* header,
                       unsigned char* body, std::size_t bytes, unsigned char* tag) {
  int n = 0;
  return EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, nonce, 1) == 1 &&
         EVP_EncryptUpdate(ctx, nullptr, &n, header, static_cast<int>(kRecordHeaderBytes)) == 1 &&
         EVP_EncryptUpdate(ctx, body, &n, body, static_cast<int>(bytes)) == 1 &&
         EVP_EncryptFinal_ex(ctx, body + n, &n) == 1 &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kRecordTagBytes), tag) ==
             1;
}

AeadOutcome EvpOpenRecordBody(EVP_CIPHER_CTX* ctx, const std::uint8_t* nonce,
                              const unsigned char* header, unsigned char* body, std::size_t bytes,
                              const unsigned char* tag) {
  int n = 0;
  if (EVP_CipherInit_ex(ctx, nullptr, nullptr, nullptr, nonce, 0) != 1 ||
      EVP_DecryptUpdate(ctx, nullptr, &n, header, static_cast<int>(kRecordHeaderBytes)) != 1 ||
      EVP_DecryptUpdate(ctx, body, &n, body, static_cast<int>(bytes)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kRecordTagBytes),
                          const_cast<unsigned char*>(tag)) != 1) {
    return AeadOutcome::kFailed;
  }
  return EVP_DecryptFinal_ex(ctx, body + n, &n) == 1 ? AeadOutcome::kOk : AeadOutcome::kBadTag;
}

AeadOutcome SealRecordBody(const TrafficKeys& keys, std::span<const std::uint8_t, 12> nonce,
                           std::span<std::byte, kRecordHeaderBytes> header, unsigned char* body,
                           std::size_t bytes, unsigned char* tag) {
  Entry* e = SealCache().For(keys);
  if (e == nullptr) return AeadOutcome::kFailed;
  if (e->chacha != nullptr) {
    if (EvpSealRecordBody(e->chacha, nonce.data(), reinterpret_cast<unsigned char*>(header.data()),
                          body, bytes, tag)) {
      return AeadOutcome::kOk;
    }
    e->Drop();  // an EVP context's state after a failed call is unknown: make it afresh
    return AeadOutcome::kFailed;
  }
  giovec_t aad{header.data(), header.size()};
  giovec_t data{body, bytes};
  std::size_t tag_bytes = kRecordTagBytes;
  return gnutls_aead_cipher_encryptv2(e->gcm, nonce.data(), nonce.size(), &aad, 1, &data, 1, tag,
                                      &tag_bytes) == 0
             ? AeadOutcome::kOk
             : AeadOutcome::kFailed;
}

AeadOutcome OpenRecordBody(const TrafficKeys& keys, std::span<const std::uint8_t, 12> nonce,
                           std::span<std::byte, kRecordHeaderBytes> header, unsigned char* body,
                           std::size_t bytes, const unsigned char* tag) {
  Entry* e = OpenCache().For(keys);
  if (e == nullptr) return AeadOutcome::kFailed;
  if (e->chacha != nullptr) {
    const AeadOutcome outcome = EvpOpenRecordBody(
        e->chacha, nonce.data(), reinterpret_cast<unsigned char*>(header.data()), body, bytes, tag);
    if (outcome == AeadOutcome::kFailed) e->Drop();
    return outcome;
  }
  giovec_t aad{header.data(), header.size()};
  giovec_t data{body, bytes};
  const int opened =
      gnutls_aead_cipher_decryptv2(e->gcm, nonce.data(), nonce.size(), &aad, 1, &data, 1,
                                   const_cast<unsigned char*>(tag), kRecordTagBytes);
  if (opened == 0) return AeadOutcome::kOk;
  return opened == GNUTLS_E_DECRYPTION_FAILED ? AeadOutcome::kBadTag : AeadOutcome::kFailed;
}

std::uint64_t AeadKeySchedulesOnThisThread() { return key_schedules_on_this_thread; }

}  // namespace derpkit::net
