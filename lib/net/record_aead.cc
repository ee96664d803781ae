// Per-thread cached AEAD state for TLS 1.3 records (see record_aead.h for which library does
// which suite, and why).

#include "lib/net/record_aead.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>

#ifdef DERPKIT_HAVE_IPSEC_MB
#include <intel-ipsec-mb.h>
#endif

namespace derpkit::net {

namespace {

thread_local std::uint64_t key_schedules_on_this_thread = 0;

#ifdef DERPKIT_HAVE_IPSEC_MB
// ipsec-mb's code paths, each made ready by its init function (a table of function pointers to
// that code), in the order of ipsec-mb's IMB_ARCH.
struct IpsecCodePath {
  IpsecMbCode code;
  IMB_ARCH arch;
  void (*init)(IMB_MGR*);
  const char* name;
};
constexpr IpsecCodePath kIpsecCodePaths[] = {
    {IpsecMbCode::kSse, IMB_ARCH_SSE, init_mb_mgr_sse, "SSE"},
    {IpsecMbCode::kAvx, IMB_ARCH_AVX, init_mb_mgr_avx, "AVX"},
    {IpsecMbCode::kAvx2, IMB_ARCH_AVX2, init_mb_mgr_avx2, "AVX2"},
    {IpsecMbCode::kAvx512, IMB_ARCH_AVX512, init_mb_mgr_avx512, "AVX-512"},
};

// One manager, made once and then only read by the direct AEAD calls, so every thread shares it.
// Null when the CPU has no AES-NI (ipsec-mb would run AES in software there) or the library fails
// to start.
struct IpsecMb {
  IMB_MGR* mgr = nullptr;
  IMB_ARCH arch = IMB_ARCH_NONE;
};
// `path` null: the CPU's best code as ipsec-mb judges it (init_mb_mgr_auto).
IpsecMb MakeIpsecMb(const IpsecCodePath* path) {
  IpsecMb made;
  made.mgr = alloc_mb_mgr(0);
  if (made.mgr == nullptr) return made;
  if (path == nullptr) {
    init_mb_mgr_auto(made.mgr, &made.arch);
  } else {
    path->init(made.mgr);
    made.arch = path->arch;
  }
  if (imb_get_errno(made.mgr) != 0 || made.arch < IMB_ARCH_SSE) {
    free_mb_mgr(made.mgr);
    made.mgr = nullptr;
  }
  return made;
}
const IpsecMb& Best() {
  static const IpsecMb best = MakeIpsecMb(nullptr);
  return best;
}
// The manager for `code`, or null when the CPU cannot run it. Only code paths up to Best()'s are
// ever made, so no instruction the CPU lacks is tried; they are made on the first request for any
// (the relay never asks: it runs Best()).
const IMB_MGR* ManagerFor(IpsecMbCode code) {
  if (code == IpsecMbCode::kBest || Best().mgr == nullptr) return Best().mgr;
  static const auto forced = [] {
    std::array<IpsecMb, std::size(kIpsecCodePaths)> made{};
    for (std::size_t i = 0; i < made.size(); ++i) {
      if (kIpsecCodePaths[i].arch <= Best().arch) made[i] = MakeIpsecMb(&kIpsecCodePaths[i]);
    }
    return made;
  }();
  for (std::size_t i = 0; i < forced.size(); ++i) {
    if (kIpsecCodePaths[i].code == code) return forced[i].mgr;
  }
  return nullptr;
}
// The name of the code Best() runs ("AVX-512"), for the relay's startup log.
const char* BestCodeName() {
  for (const IpsecCodePath& path : kIpsecCodePaths) {
    if (path.arch == Best().arch) return path.name;
  }
  return "unknown";
}
using IpsecManager = IMB_MGR;
// One key's expanded AES key and GHASH powers (~1 KB), on the alignment ipsec-mb's vector code
// loads them with.
struct alignas(64) IpsecGcmKey {
  gcm_key_data data;
};
bool IpsecAvailable() { return Best().mgr != nullptr; }
const IpsecManager* BestIpsecManager() { return Best().mgr; }
#else
struct IpsecGcmKey {};
struct IpsecManager {};
const IpsecManager* BestIpsecManager() { return nullptr; }
#endif

// Which ipsec-mb code this thread's records run, or null for the portable pair: the default
// (DefaultRecordCipher) unless a test or the bench chose (UseRecordCipherOnThisThread). Read once
// per record, by AeadCache::For.
thread_local const IpsecManager* ipsec_on_this_thread = BestIpsecManager();

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

// One key's cipher state for one direction. kIpsecChacha needs nothing but the key (ChaCha20
// has no key schedule); the others hold the library's own state.
enum class StateKind { kNone, kIpsecGcm, kIpsecChacha, kGnutlsGcm, kEvpChacha };

struct Entry {
  StateKind kind = StateKind::kNone;
  std::unique_ptr<IpsecGcmKey> ipsec_gcm;        // kIpsecGcm
  const IpsecManager* ipsec = nullptr;           // kIpsecGcm, kIpsecChacha: the code it runs
  gnutls_aead_cipher_hd_t gnutls_gcm = nullptr;  // kGnutlsGcm
  EVP_CIPHER_CTX* evp_chacha = nullptr;          // kEvpChacha
  Tls13Suite suite = Tls13Suite::kAes128GcmSha256;
  std::uint64_t last_used = 0;
  std::array<std::uint8_t, 32> key{};

  // `code`: the ipsec-mb code to run, or null for the portable pair.
  static StateKind KindFor(Tls13Suite suite, const IpsecManager* code) {
    const bool chacha = suite == Tls13Suite::kChacha20Poly1305Sha256;
    if (code != nullptr) return chacha ? StateKind::kIpsecChacha : StateKind::kIpsecGcm;
    return chacha ? StateKind::kEvpChacha : StateKind::kGnutlsGcm;
  }
  // The same key, suite, library and (for ipsec-mb, whose code paths lay out a GCM key's
  // precomputed powers each their own way) code path; a portable entry's `ipsec` is null.
  bool Serves(const TrafficKeys& keys, StateKind wanted, const IpsecManager* code) const {
    return kind == wanted && ipsec == code && suite == keys.suite &&
           std::memcmp(key.data(), keys.key.data(), Tls13KeyBytes(suite)) == 0;
  }
  void Drop() {
#ifdef DERPKIT_HAVE_IPSEC_MB
    if (ipsec_gcm != nullptr) OPENSSL_cleanse(&ipsec_gcm->data, sizeof ipsec_gcm->data);
#endif
    ipsec_gcm.reset();
    ipsec = nullptr;
    if (gnutls_gcm != nullptr) gnutls_aead_cipher_deinit(gnutls_gcm);
    gnutls_gcm = nullptr;
    EVP_CIPHER_CTX_free(evp_chacha);
    evp_chacha = nullptr;
    OPENSSL_cleanse(key.data(), key.size());
    kind = StateKind::kNone;
  }
  bool Load(const TrafficKeys& keys, int encrypt, StateKind wanted, const IpsecManager* code) {
    const std::size_t key_bytes = Tls13KeyBytes(keys.suite);
    switch (wanted) {
      case StateKind::kIpsecGcm:
#ifdef DERPKIT_HAVE_IPSEC_MB
        ipsec_gcm = std::make_unique<IpsecGcmKey>();
        (keys.suite == Tls13Suite::kAes256GcmSha384 ? code->gcm256_pre : code->gcm128_pre)(
            keys.key.data(), &ipsec_gcm->data);
        break;
#else
        return false;
#endif
      case StateKind::kIpsecChacha:
        break;
      case StateKind::kGnutlsGcm: {
        gnutls_datum_t datum{const_cast<unsigned char*>(keys.key.data()),
                             static_cast<unsigned int>(key_bytes)};
        if (gnutls_aead_cipher_init(&gnutls_gcm, GcmAlgorithm(keys.suite), &datum) != 0) {
          gnutls_gcm = nullptr;
          return false;
        }
        break;
      }
      case StateKind::kEvpChacha:
        evp_chacha = EVP_CIPHER_CTX_new();
        if (evp_chacha == nullptr || EVP_CipherInit_ex(evp_chacha, Chacha(), nullptr,
                                                       keys.key.data(), nullptr, encrypt) != 1) {
          Drop();
          return false;
        }
        break;
      case StateKind::kNone:
        return false;
    }
    kind = wanted;
    ipsec = code;
    suite = keys.suite;
    std::memcpy(key.data(), keys.key.data(), key_bytes);
    return true;
  }
};

// Seals (or opens) body[0 .. bytes) in place with ipsec-mb under an entry of kind kIpsecGcm or
// kIpsecChacha, authenticating the record header `aad`, and writes the tag it computed to
// `tag_out` (opening: the caller compares). ipsec-mb's direct calls cannot fail; false only where
// ipsec-mb is not built in (no entry of those kinds exists there).
bool IpsecCrypt(const Entry& e, bool seal, const std::uint8_t* nonce, const std::uint8_t* aad,
                unsigned char* body, std::size_t bytes, std::uint8_t* tag_out) {
#ifdef DERPKIT_HAVE_IPSEC_MB
  const IMB_MGR* mgr = e.ipsec;
  if (e.kind == StateKind::kIpsecGcm) {
    const bool aes256 = e.suite == Tls13Suite::kAes256GcmSha384;
    const aes_gcm_enc_dec_t crypt = seal ? (aes256 ? mgr->gcm256_enc : mgr->gcm128_enc)
                                         : (aes256 ? mgr->gcm256_dec : mgr->gcm128_dec);
    gcm_context_data ctx;
    crypt(&e.ipsec_gcm->data, &ctx, body, body, bytes, nonce, aad, kRecordHeaderBytes, tag_out,
          kRecordTagBytes);
    return true;
  }
  chacha20_poly1305_context_data ctx;
  mgr->chacha20_poly1305_init(e.key.data(), &ctx, nonce, aad, kRecordHeaderBytes);
  (seal ? mgr->chacha20_poly1305_enc_update : mgr->chacha20_poly1305_dec_update)(e.key.data(), &ctx,
                                                                                 body, body, bytes);
  mgr->chacha20_poly1305_finalize(&ctx, tag_out, kRecordTagBytes);
  return true;
#else
  (void)e, (void)seal, (void)nonce, (void)aad, (void)body, (void)bytes, (void)tag_out;
  return false;
#endif
}

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
    const IpsecManager* code = ipsec_on_this_thread;
    const StateKind wanted = Entry::KindFor(keys.suite, code);
    std::uint64_t index_bits = 0;
    std::memcpy(&index_bits, keys.key.data(), sizeof index_bits);
    auto& set = sets_[index_bits % kSets];
    ++clock_;
    Entry* victim = &set[0];
    for (Entry& e : set) {
      if (e.Serves(keys, wanted, code)) {
        e.last_used = clock_;
        return &e;
      }
      if (e.last_used < victim->last_used) victim = &e;
    }
    victim->Drop();  // the least recently used (or never used) entry of the set
    ++key_schedules_on_this_thread;
    if (!victim->Load(keys, encrypt_, wanted, code)) return nullptr;
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
  const auto* aad = reinterpret_cast<const std::uint8_t*>(header.data());
  switch (e->kind) {
    case StateKind::kIpsecGcm:
    case StateKind::kIpsecChacha:
      return IpsecCrypt(*e, /*seal=*/true, nonce.data(), aad, body, bytes, tag)
                 ? AeadOutcome::kOk
                 : AeadOutcome::kFailed;
    case StateKind::kGnutlsGcm: {
      giovec_t aad_iov{header.data(), header.size()};
      giovec_t data{body, bytes};
      std::size_t tag_bytes = kRecordTagBytes;
      return gnutls_aead_cipher_encryptv2(e->gnutls_gcm, nonce.data(), nonce.size(), &aad_iov, 1,
                                          &data, 1, tag, &tag_bytes) == 0
                 ? AeadOutcome::kOk
                 : AeadOutcome::kFailed;
    }
    case StateKind::kEvpChacha:
      if (EvpSealRecordBody(e->evp_chacha, nonce.data(), aad, body, bytes, tag)) {
        return AeadOutcome::kOk;
      }
      e->Drop();  // an EVP context's state after a failed call is unknown: make it afresh
      return AeadOutcome::kFailed;
    default:
      return AeadOutcome::kFailed;
  }
}

AeadOutcome OpenRecordBody(const TrafficKeys& keys, std::span<const std::uint8_t, 12> nonce,
                           std::span<std::byte, kRecordHeaderBytes> header, unsigned char* body,
                           std::size_t bytes, const unsigned char* tag) {
  Entry* e = OpenCache().For(keys);
  if (e == nullptr) return AeadOutcome::kFailed;
  const auto* aad = reinterpret_cast<const std::uint8_t*>(header.data());
  switch (e->kind) {
    case StateKind::kIpsecGcm:
    case StateKind::kIpsecChacha: {
      // ipsec-mb decrypts and returns the tag it computed; the comparison is ours, in constant
      // time.
      std::array<std::uint8_t, kRecordTagBytes> computed;
      if (!IpsecCrypt(*e, /*seal=*/false, nonce.data(), aad, body, bytes, computed.data())) {
        return AeadOutcome::kFailed;
      }
      return CRYPTO_memcmp(computed.data(), tag, computed.size()) == 0 ? AeadOutcome::kOk
                                                                       : AeadOutcome::kBadTag;
    }
    case StateKind::kGnutlsGcm: {
      giovec_t aad_iov{header.data(), header.size()};
      giovec_t data{body, bytes};
      const int opened =
          gnutls_aead_cipher_decryptv2(e->gnutls_gcm, nonce.data(), nonce.size(), &aad_iov, 1,
                                       &data, 1, const_cast<unsigned char*>(tag), kRecordTagBytes);
      if (opened == 0) return AeadOutcome::kOk;
      return opened == GNUTLS_E_DECRYPTION_FAILED ? AeadOutcome::kBadTag : AeadOutcome::kFailed;
    }
    case StateKind::kEvpChacha: {
      const AeadOutcome outcome =
          EvpOpenRecordBody(e->evp_chacha, nonce.data(), aad, body, bytes, tag);
      if (outcome == AeadOutcome::kFailed) e->Drop();
      return outcome;
    }
    default:
      return AeadOutcome::kFailed;
  }
}

std::uint64_t AeadKeySchedulesOnThisThread() { return key_schedules_on_this_thread; }

namespace {

// The manager that runs `cipher`: null for the portable pair; nothing when this build or CPU
// cannot run it.
std::optional<const IpsecManager*> ManagerOf(const RecordCipher& cipher) {
  if (cipher.library == RecordCipherLibrary::kPortable) return nullptr;
#ifdef DERPKIT_HAVE_IPSEC_MB
  if (const IpsecManager* mgr = ManagerFor(cipher.code)) return mgr;
#endif
  return std::nullopt;
}

}  // namespace

RecordCipher DefaultRecordCipher() {
#ifdef DERPKIT_HAVE_IPSEC_MB
  if (IpsecAvailable()) {
    return {RecordCipherLibrary::kIpsecMb, IpsecMbCode::kBest,
            std::string("ipsec-mb best (") + BestCodeName() + ")"};
  }
#endif
  return {RecordCipherLibrary::kPortable, IpsecMbCode::kBest, "portable"};
}

std::vector<RecordCipher> RecordCiphersHere() {
  std::vector<RecordCipher> here = {DefaultRecordCipher()};
  if (here.front().library == RecordCipherLibrary::kPortable) return here;
#ifdef DERPKIT_HAVE_IPSEC_MB
  for (auto path = std::rbegin(kIpsecCodePaths); path != std::rend(kIpsecCodePaths); ++path) {
    if (ManagerFor(path->code) != nullptr) {
      here.push_back(
          {RecordCipherLibrary::kIpsecMb, path->code, std::string("ipsec-mb ") + path->name});
    }
  }
#endif
  here.push_back({RecordCipherLibrary::kPortable, IpsecMbCode::kBest, "portable"});
  return here;
}

bool UseRecordCipherOnThisThread(const RecordCipher& cipher) {
  const std::optional<const IpsecManager*> mgr = ManagerOf(cipher);
  if (mgr) ipsec_on_this_thread = *mgr;
  return mgr.has_value();
}

std::string DefaultRecordCipherLibraryName() {
#ifdef DERPKIT_HAVE_IPSEC_MB
  if (IpsecAvailable()) {
    return std::string("intel-ipsec-mb ") + imb_get_version_str() + " (" + BestCodeName() +
           " code)";
  }
#endif
  return std::string("GnuTLS ") + gnutls_check_version(nullptr) + " (AES-GCM) and " +
         OpenSSL_version(OPENSSL_VERSION) + " (ChaCha20-Poly1305)";
}

}  // namespace derpkit::net
