#include "agent_channel.h"

#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <sstream>
#include <utility>

#include "tessera/comm/errors.h"
#include "tessera/core/env.h"
#include "tessera/core/error.h"
#include "worker_process.h"

namespace tessera::cli {

using Clock = std::chrono::steady_clock;

std::string place_line(const WorkerPlace& p) {
  return detail::concat("place ", p.rank, " ", p.world_size, " ", p.local_rank, " ",
                        p.local_world_size, " ", p.nnodes, " ", p.attempt);
}

std::optional<WorkerPlace> parse_place(const std::string& line) {
  std::istringstream in(line);
  std::string word;
  WorkerPlace p;
  if (!(in >> word) || word != "place") return std::nullopt;
  if (!(in >> p.rank >> p.world_size >> p.local_rank >> p.local_world_size >> p.nnodes >>
        p.attempt)) {
    return std::nullopt;
  }
  if (p.world_size < 1 || p.rank < 0 || p.rank >= p.world_size || p.local_rank < 0 ||
      p.local_rank >= p.local_world_size || p.nnodes < 1 || p.attempt < 0 || !(in >> word).fail()) {
    return std::nullopt;
  }
  return p;
}

std::optional<AgentChannel> AgentChannel::from_environment() {
  const std::optional<std::string> fd = env_string("TESSERA_AGENT_FD");
  if (!fd || *fd != std::to_string(kAgentChannelFd)) return std::nullopt;
  return AgentChannel(kAgentChannelFd);
}

std::optional<std::string> AgentChannel::next_line(std::chrono::milliseconds wait) {
  const auto until = Clock::now() + wait;
  for (;;) {
    if (const auto end = partial_.find('\n'); end != std::string::npos) {
      std::string line = partial_.substr(0, end);
      partial_.erase(0, end + 1);
      return line;
    }
    if (closed_) return std::nullopt;
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::max<long long>(0, left)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return std::nullopt;
    char buffer[512];
    const ssize_t n = ::read(fd_, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      closed_ = true;
      continue;
    }
    partial_.append(buffer, static_cast<size_t>(n));
  }
}

bool AgentChannel::pause_requested() {
  while (std::optional<std::string> line = next_line(std::chrono::milliseconds(0))) {
    if (*line == "pause") paused_ = true;
  }
  return std::exchange(paused_, false);
}

std::optional<WorkerPlace> AgentChannel::stand_by(const std::string& reason,
                                                  std::chrono::milliseconds deadline) {
  std::string said = reason.substr(0, reason.find('\n'));
  write_all(fd_, "standby " + said + "\n");
  const auto until = Clock::now() + deadline;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    if (left.count() <= 0) break;
    std::optional<std::string> line = next_line(left);
    if (!line) {
      if (closed_) return std::nullopt;
      continue;
    }
    if (*line == "stop") return std::nullopt;
    if (std::optional<WorkerPlace> place = parse_place(*line)) return place;
    // "pause" comes late to a worker that already left its group.
  }
  throw comm::TimeoutError(detail::concat("waited ", deadline.count() / 1000,
                                          " s for the elastic agent to place this worker in a "
                                          "new round after its group broke (",
                                          said, ")"));
}

}  // namespace tessera::cli
