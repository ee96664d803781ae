// Per-thread cached AEAD state for TLS 1.3 records (see record_aead.h for which library does
// which suite, and why).

#include "lib/net/record_aead.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <cstring>
#include <memory>
#include <optional>

#ifdef DERPKIT_HAVE_IPSEC_MB
#include <intel-ipsec-mb.h>
#endif

namespace derpkit::net {

namespace {

thread_local std::uint64_t key_schedules_on_this_thread = 0;
thread_local std::optional<GcmLibrary> gcm_library_on_this_thread;

#ifdef DERPKIT_HAVE_IPSEC_MB
// ipsec-mb's manager: a table of function pointers for this CPU's best code, made once. The GCM
// calls only read it, so every thread shares it. Null when the CPU has no AES-NI (ipsec-mb would
// fall back to AES in software there; GnuTLS is no slower) or the library fails to start.
struct IpsecMb {
  IMB_MGR* mgr = nullptr;
  IMB_ARCH arch = IMB_ARCH_NONE;
};
const IpsecMb& Ipsec() {
  static const IpsecMb ipsec = [] {
    IpsecMb made;
    made.mgr = alloc_mb_mgr(0);
    if (made.mgr == nullptr) return made;
    init_mb_mgr_auto(made.mgr, &made.arch);
    if (imb_get_errno(made.mgr) != 0 || made.arch < IMB_ARCH_SSE) {
      free_mb_mgr(made.mgr);
      made.mgr = nullptr;
    }
    return made;
  }();
  return ipsec;
}
const char* IpsecArchName(IMB_ARCH arch) {
  switch (arch) {
    case IMB_ARCH_SSE:
      return "SSE";
    case IMB_ARCH_AVX:
      return "AVX";
    case IMB_ARCH_AVX2:
      return "AVX2";
    case IMB_ARCH_AVX512:
      return "AVX-512";
    default:
      return "no AES-NI";
  }
}
// One key's expanded AES key and GHASH powers (~1 KB), on the alignment ipsec-mb's vector code
// loads them with.
struct alignas(64) IpsecGcmKey {
  gcm_key_data data;
};
#endif

GcmLibrary GcmLibraryOnThisThread() {
  if (!gcm_library_on_this_thread) gcm_library_on_this_thread = DefaultGcmLibrary();
  return *gcm_library_on_this_thread;
}

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

// One key's cipher state, exactly one of: ipsec-mb's key data or a GnuTLS handle (AES-GCM), or
// an EVP context for one direction (ChaCha20-Poly1305).
struct Entry {
#ifdef DERPKIT_HAVE_IPSEC_MB
  std::unique_ptr<IpsecGcmKey> ipsec;
#endif
  gnutls_aead_cipher_hd_t gcm = nullptr;
  EVP_CIPHER_CTX* chacha = nullptr;
  Tls13Suite suite = Tls13Suite::kAes128GcmSha256;
  GcmLibrary library = GcmLibrary::kGnutls;  // for AES-GCM: which of the first two
  std::uint64_t last_used = 0;
  std::array<std::uint8_t, 32> key{};

  bool loaded() const { return gcm != nullptr || chacha != nullptr || has_ipsec(); }
  bool has_ipsec() const {
#ifdef DERPKIT_HAVE_IPSEC_MB
    return ipsec != nullptr;
#else
    return false;
#endif
  }
  // Whether this entry serves `keys` under the library this thread uses for AES-GCM.
  bool Serves(const TrafficKeys& keys, GcmLibrary gcm_library) const {
    return loaded() && suite == keys.suite &&
           (suite == Tls13Suite::kChacha20Poly1305Sha256 || library == gcm_library) &&
           std::memcmp(key.data(), keys.key.data(), Tls13KeyBytes(suite)) == 0;
  }
  void Drop() {
#ifdef DERPKIT_HAVE_IPSEC_MB
    if (ipsec != nullptr) OPENSSL_cleanse(&ipsec->data, sizeof ipsec->data);
    ipsec.reset();
#endif
    if (gcm != nullptr) gnutls_aead_cipher_deinit(gcm);
    EVP_CIPHER_CTX_free(chacha);
    gcm = nullptr;
    chacha = nullptr;
    OPENSSL_cleanse(key.data(), key.size());
  }
  bool Load(const TrafficKeys& keys, int encrypt, GcmLibrary gcm_library) {
    const std::size_t key_bytes = Tls13KeyBytes(keys.suite);
    if (keys.suite == Tls13Suite::kChacha20Poly1305Sha256) {
      chacha = EVP_CIPHER_CTX_new();
      if (chacha == nullptr ||
          EVP_CipherInit_ex(chacha, Chacha(), nullptr, keys.key.data(), nullptr, encrypt) != 1) {
        Drop();
        return false;
      }
    } else if (gcm_library == GcmLibrary::kIpsecMb) {
#ifdef DERPKIT_HAVE_IPSEC_MB
      const IMB_MGR* mgr = Ipsec().mgr;
      if (mgr == nullptr) return false;
      ipsec = std::make_unique<IpsecGcmKey>();
      (keys.suite == Tls13Suite::kAes256GcmSha384 ? mgr->gcm256_pre : mgr->gcm128_pre)(
          keys.key.data(), &ipsec->data);
#else
      return false;
#endif
    } else {
      gnutls_datum_t datum{const_cast<unsigned char*>(keys.key.data()),
                           static_cast<unsigned int>(key_bytes)};
      if (gnutls_aead_cipher_init(&gcm, GcmAlgorithm(keys.suite), &datum) != 0) {
        gcm = nullptr;
        return false;
      }
    }
    suite = keys.suite;
    library = gcm_library;
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
    const GcmLibrary gcm_library = GcmLibraryOnThisThread();
    std::uint64_t index_bits = 0;
    std::memcpy(&index_bits, keys.key.data(), sizeof index_bits);
    auto& set = sets_[index_bits % kSets];
    ++clock_;
    Entry* victim = &set[0];
    for (Entry& e : set) {
      if (e.Serves(keys, gcm_library)) {
        e.last_used = clock_;
        return &e;
      }
      if (e.last_used < victim->last_used) victim = &e;
    }
    victim->Drop();  // the least recently used (or never used) entry of the set
    ++key_schedules_on_this_thread;
    if (!victim->Load(keys, encrypt_, gcm_library)) return nullptr;
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
#ifdef DERPKIT_HAVE_IPSEC_MB
  if (e->ipsec != nullptr) {
    const IMB_MGR* mgr = Ipsec().mgr;
    gcm_context_data ctx;
    (keys.suite == Tls13Suite::kAes256GcmSha384 ? mgr->gcm256_enc : mgr->gcm128_enc)(
        &e->ipsec->data, &ctx, body, body, bytes, nonce.data(),
        reinterpret_cast<const std::uint8_t*>(header.data()), header.size(), tag, kRecordTagBytes);
    return AeadOutcome::kOk;
  }
#endif
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
#ifdef DERPKIT_HAVE_IPSEC_MB
  if (e->ipsec != nullptr) {
    // ipsec-mb decrypts and returns the tag it computed; the comparison is ours, in constant
    // time.
    const IMB_MGR* mgr = Ipsec().mgr;
    gcm_context_data ctx;
    std::array<std::uint8_t, kRecordTagBytes> computed;
    (keys.suite == Tls13Suite::kAes256GcmSha384 ? mgr->gcm256_dec : mgr->gcm128_dec)(
        &e->ipsec->data, &ctx, body, body, bytes, nonce.data(),
        reinterpret_cast<const std::uint8_t*>(header.data()), header.size(), computed.data(),
        computed.size());
    return CRYPTO_memcmp(computed.data(), tag, computed.size()) == 0 ? AeadOutcome::kOk
                                                                     : AeadOutcome::kBadTag;
  }
#endif
  giovec_t aad{header.data(), header.size()};
  giovec_t data{body, bytes};
  const int opened =
      gnutls_aead_cipher_decryptv2(e->gcm, nonce.data(), nonce.size(), &aad, 1, &data, 1,
                                   const_cast<unsigned char*>(tag), kRecordTagBytes);
  if (opened == 0) return AeadOutcome::kOk;
  return opened == GNUTLS_E_DECRYPTION_FAILED ? AeadOutcome::kBadTag : AeadOutcome::kFailed;
}

std::uint64_t AeadKeySchedulesOnThisThread() { return key_schedules_on_this_thread; }

GcmLibrary DefaultGcmLibrary() {
#ifdef DERPKIT_HAVE_IPSEC_MB
  if (Ipsec().mgr != nullptr) return GcmLibrary::kIpsecMb;
#endif
  return GcmLibrary::kGnutls;
}

bool UseGcmLibraryOnThisThread(GcmLibrary library) {
#ifdef DERPKIT_HAVE_IPSEC_MB
  if (library == GcmLibrary::kIpsecMb && Ipsec().mgr == nullptr) return false;
#else
  if (library == GcmLibrary::kIpsecMb) return false;
#endif
  gcm_library_on_this_thread = library;
  return true;
}

std::string DefaultGcmLibraryName() {
#ifdef DERPKIT_HAVE_IPSEC_MB
  if (DefaultGcmLibrary() == GcmLibrary::kIpsecMb) {
    return std::string("intel-ipsec-mb ") + imb_get_version_str() + " (" +
           IpsecArchName(Ipsec().arch) + " code)";
  }
#endif
  return std::string("GnuTLS ") + gnutls_check_version(nullptr);
}

}  // namespace derpkit::net
