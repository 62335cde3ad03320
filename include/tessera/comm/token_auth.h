#pragma once

#include <cstddef>
#include <string>
#include <string_view>

// The mutual challenge-response over the job token (HMAC-SHA256 from OpenSSL's libcrypto) that
// the store and the parameter server run on every connection.
// Each side sends a fresh nonce; the client proves it holds the token with a MAC over both nonces,
// then the server proves it with a MAC under another label, so neither proof can be replayed to
// the other side and the token itself never crosses the wire.
namespace tessera::comm {

inline constexpr std::size_t kNonceBytes = 32;
inline constexpr std::size_t kProofBytes = 32;

// kNonceBytes from the system's random source. Throws CommError when it fails.
[[nodiscard]] std::string random_nonce();

// What the client sends, and what the server answers with, to prove they hold `token`.
[[nodiscard]] std::string client_proof(std::string_view token, std::string_view server_nonce,
                                       std::string_view client_nonce);
[[nodiscard]] std::string server_proof(std::string_view token, std::string_view server_nonce,
                                       std::string_view client_nonce);

// Compares in time that depends only on the lengths, so timing does not tell how much of a
// forged proof was right.
[[nodiscard]] bool proofs_equal(std::string_view a, std::string_view b);

}  // namespace tessera::comm
