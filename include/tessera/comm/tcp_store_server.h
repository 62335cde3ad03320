#pragma once

#include <atomic>
#include <string>
#include <thread>

namespace tessera::comm {

struct TcpStoreServerOptions {
  // Interface to listen on: an address or a host name. Loopback unless the job spans hosts.
  // "0.0.0.0" or "::" listen on every interface and say so on stderr.
  std::string host = "127.0.0.1";
  // 0 picks a free port; read it back with TcpStoreServer::port().
  int port = 0;
  // Every client must prove it holds this token first (non-empty; see make_job_token()).
  std::string token;
};

// The server side of TcpStore: one thread that serves any number of clients over TCP, hosted by
// the launcher (or by rank 0). Each connection starts with a mutual challenge-response over the
// job token (the token never crosses the wire); one that fails it, or does not complete it within
// a short deadline, is refused and logged on stderr with the peer's address. At most a bounded
// number of connections may await their handshake: a newer one closes the oldest, so idle
// strangers cannot lock the job's ranks out. When the process runs out of file descriptors the
// server keeps serving the open connections and accepts again once descriptors are free. Waits
// longer than kMaxTimeout are cut to it. Keys live as long as the server.
// Not copyable; stop() or the destructor ends the thread and closes every connection.
class TcpStoreServer {
 public:
  // Listens at once; throws CommError naming the address when it cannot bind, ValueError on an
  // empty host or token.
  explicit TcpStoreServer(TcpStoreServerOptions options);
  TcpStoreServer(const TcpStoreServer&) = delete;
  TcpStoreServer& operator=(const TcpStoreServer&) = delete;
  ~TcpStoreServer();

  [[nodiscard]] const std::string& host() const { return options_.host; }
  // The port listened on (the chosen one when options.port was 0).
  [[nodiscard]] int port() const { return port_; }
  // "HOST:PORT" ("[HOST]:PORT" for IPv6), as clients reach it.
  [[nodiscard]] std::string address() const;

  // Stops serving and joins the thread. Idempotent.
  void stop() noexcept;

 private:
  void serve() noexcept;

  TcpStoreServerOptions options_;
  int listen_fd_ = -1;
  int wake_read_fd_ = -1;
  int wake_write_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace tessera::comm
