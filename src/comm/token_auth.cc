#include "tessera/comm/token_auth.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "store_protocol.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace {

std::string openssl_error() {
  char text[256];
  ERR_error_string_n(ERR_get_error(), text, sizeof(text));
  return text;
}

// HMAC-SHA256 under `token` of: label, the protocol magic, both nonces, each length-prefixed so
// that no two different inputs run together into the same bytes.
std::string proof(std::string_view label, std::string_view token, std::string_view server_nonce,
                  std::string_view client_nonce) {
  FrameWriter message;
  message.str(label).str(kStoreMagic).str(server_nonce).str(client_nonce);
  const std::string bytes = message.finish();
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  // An empty key is a valid HMAC key; a non-null pointer keeps OpenSSL from treating it as absent.
  static constexpr unsigned char kEmpty = 0;
  const void* key = token.empty() ? static_cast<const void*>(&kEmpty) : token.data();
  if (HMAC(EVP_sha256(), key, static_cast<int>(token.size()),
           reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), mac,
           &length) == nullptr ||
      length != kProofBytes) {
    throw CommError("store handshake: HMAC-SHA256 failed: " + openssl_error());
  }
  return std::string(reinterpret_cast<const char*>(mac), length);
}

}  // namespace

std::string random_nonce() {
  std::string nonce(kNonceBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(nonce.data()), static_cast<int>(nonce.size())) !=
      1) {
    throw CommError("store handshake: no random bytes for a nonce: " + openssl_error());
  }
  return nonce;
}

std::string client_proof(std::string_view token, std::string_view server_nonce,
                         std::string_view client_nonce) {
  return proof("client", token, server_nonce, client_nonce);
}

std::string server_proof(std::string_view token, std::string_view server_nonce,
                         std::string_view client_nonce) {
  return proof("server", token, server_nonce, client_nonce);
}

bool proofs_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace tessera::comm
