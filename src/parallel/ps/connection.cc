#include "connection.h"

#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cerrno>

#include "tessera/comm/token_auth.h"
#include "tessera/core/error.h"

namespace tessera::parallel::ps {
namespace {

void check_io(comm::IoStatus status, const std::string& error, const std::string& peer,
              std::string_view what) {
  switch (status) {
    case comm::IoStatus::kOk:
      return;
    case comm::IoStatus::kTimeout:
      throw comm::TimeoutError(detail::concat("ps: timed out ", what, " (peer ", peer, ")"));
    case comm::IoStatus::kClosed:
      throw comm::CommError(detail::concat("ps: ", peer, " closed the connection while ", what));
    case comm::IoStatus::kError:
      throw comm::CommError(detail::concat("ps: ", what, " (peer ", peer, "): ", error));
  }
}

// Writes every byte of `iov` before `deadline`, advancing through partial writes.
comm::IoStatus send_vectors(int fd, std::span<iovec> iov, Clock::time_point deadline,
                            std::string* error) {
  while (!iov.empty()) {
    msghdr message{};
    message.msg_iov = iov.data();
    message.msg_iovlen = iov.size();
    const ssize_t n = ::sendmsg(fd, &message, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return comm::IoStatus::kTimeout;
      pollfd p{.fd = fd, .events = POLLOUT, .revents = 0};
      if (::poll(&p, 1, static_cast<int>(std::min<int64_t>(left + 1, 60'000))) < 0 &&
          errno != EINTR) {
        *error = comm::errno_message(errno);
        return comm::IoStatus::kError;
      }
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) return comm::IoStatus::kClosed;
    if (n < 0) {
      *error = comm::errno_message(errno);
      return comm::IoStatus::kError;
    }
    auto sent = static_cast<size_t>(n);
    while (!iov.empty() && sent >= iov.front().iov_len) {
      sent -= iov.front().iov_len;
      iov = iov.subspan(1);
    }
    if (!iov.empty()) {
      iov.front().iov_base = static_cast<char*>(iov.front().iov_base) + sent;
      iov.front().iov_len -= sent;
    }
  }
  return comm::IoStatus::kOk;
}

// Replies to small requests come back sooner than a sleeping thread wakes up on a virtual
// machine: looking for a message without sleeping for this long first cuts a small round trip
// several times, at the cost of this much CPU time per message that arrives later.
constexpr auto kSpin = std::chrono::microseconds(30);

void spin_until_readable(int fd) {
  const auto until = Clock::now() + kSpin;
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  while (::poll(&p, 1, 0) == 0 && Clock::now() < until) sched_yield();
}

std::string as_string(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::span<const std::byte> as_bytes(std::string_view text) {
  return std::as_bytes(std::span<const char>(text.data(), text.size()));
}

// Reads a handshake message of the expected type and exactly `bytes` bytes.
std::string receive_fixed(Connection& c, MessageType type, uint64_t bytes,
                          Clock::time_point deadline, std::string_view what) {
  const Header h = c.receive_header(deadline, false, what);
  BodyBuffer body;
  std::span<std::byte> out = body.resize(h.body_bytes);
  c.receive(out, deadline, what);
  if (h.type == MessageType::kRefused) {
    throw comm::CommError(
        detail::concat("ps: ", c.peer(), " refused the connection: ", as_string(out)));
  }
  if (h.type != type || h.body_bytes != bytes) {
    throw ProtocolError(detail::concat("ps: ", c.peer(), " sent ", to_string(h.type), " of ",
                                       h.body_bytes, " bytes while ", what));
  }
  return as_string(out);
}

}  // namespace

Connection::Connection(comm::Socket socket, std::string peer)
    : socket_(std::move(socket)), peer_(std::move(peer)) {}

void Connection::send(const Header& header, std::span<const std::span<const std::byte>> parts,
                      Clock::time_point deadline) {
  // One sendmsg for the header and every part: with Nagle off, separate writes would each leave
  // as a segment of their own and each wake the receiver.
  const HeaderBytes head = encode_header(header);
  std::array<iovec, 8> iov{};
  size_t count = 0;
  iov[count++] = {const_cast<std::byte*>(head.data()), head.size()};
  for (const auto& part : parts) {
    TESSERA_CHECK(count < iov.size());
    if (!part.empty()) iov[count++] = {const_cast<std::byte*>(part.data()), part.size()};
  }
  std::string error;
  check_io(send_vectors(socket_.fd(), std::span<iovec>(iov.data(), count), deadline, &error), error,
           peer_, "sending a message");
}

Header Connection::receive_header(Clock::time_point deadline, bool authenticated,
                                  std::string_view waiting_for) {
  spin_until_readable(socket_.fd());
  HeaderBytes bytes{};
  receive(bytes, deadline, waiting_for);
  return decode_header(bytes, authenticated);
}

void Connection::receive(std::span<std::byte> out, Clock::time_point deadline,
                         std::string_view waiting_for) {
  std::string error;
  check_io(comm::recv_all(socket_.fd(), out.data(), out.size(), deadline, &error), error, peer_,
           waiting_for);
}

void Connection::shutdown() { ::shutdown(socket_.fd(), SHUT_RDWR); }

std::span<std::byte> BodyBuffer::resize(uint64_t bytes) {
  const uint64_t words = (bytes + 7) / 8;
  if (words > capacity_) {
    words_ = std::make_unique_for_overwrite<uint64_t[]>(words);
    capacity_ = words;
  }
  return {reinterpret_cast<std::byte*>(words_.get()), static_cast<size_t>(bytes)};
}

void handshake_as_worker(Connection& c, std::string_view token, uint32_t worker,
                         Clock::time_point deadline) {
  const std::string server_nonce = receive_fixed(c, MessageType::kChallenge, comm::kNonceBytes,
                                                 deadline, "waiting for the challenge");
  const std::string nonce = comm::random_nonce();
  const std::string proof = comm::client_proof(token, server_nonce, nonce);
  c.send({.type = MessageType::kHello, .sender = worker, .body_bytes = nonce.size() + proof.size()},
         {as_bytes(nonce), as_bytes(proof)}, deadline);
  const std::string server_proof =
      receive_fixed(c, MessageType::kWelcome, comm::kProofBytes, deadline, "waiting for welcome");
  if (!comm::proofs_equal(server_proof, comm::server_proof(token, server_nonce, nonce))) {
    throw comm::CommError(detail::concat("ps: ", c.peer(),
                                         " does not hold this job's token: not a server of "
                                         "this job"));
  }
}

uint32_t handshake_as_server(Connection& c, std::string_view token, uint32_t workers,
                             Clock::time_point deadline) {
  const std::string nonce = comm::random_nonce();
  c.send({.type = MessageType::kChallenge, .body_bytes = nonce.size()}, {as_bytes(nonce)},
         deadline);
  const Header h = c.receive_header(deadline, false, "waiting for hello");
  BodyBuffer body;
  const std::string hello = as_string([&] {
    std::span<std::byte> out = body.resize(h.body_bytes);
    c.receive(out, deadline, "waiting for hello");
    return out;
  }());
  auto refuse = [&](const std::string& why) {
    c.send({.type = MessageType::kRefused, .body_bytes = why.size()}, {as_bytes(why)}, deadline);
    return comm::CommError(detail::concat("ps: refused ", c.peer(), ": ", why));
  };
  if (h.type != MessageType::kHello || hello.size() != comm::kNonceBytes + comm::kProofBytes) {
    throw refuse(
        detail::concat("expected hello, got ", to_string(h.type), " of ", hello.size(), " bytes"));
  }
  const std::string client_nonce = hello.substr(0, comm::kNonceBytes);
  if (!comm::proofs_equal(hello.substr(comm::kNonceBytes),
                          comm::client_proof(token, nonce, client_nonce))) {
    throw refuse("wrong job token");
  }
  if (h.sender >= workers) {
    throw refuse(detail::concat("worker ", h.sender, " is not one of this job's ", workers));
  }
  const std::string proof = comm::server_proof(token, nonce, client_nonce);
  c.send({.type = MessageType::kWelcome, .body_bytes = proof.size()}, {as_bytes(proof)}, deadline);
  return h.sender;
}

}  // namespace tessera::parallel::ps
