#pragma once

// The line protocol between an elastic job's agent and each of its workers, over a socket pair
// (the worker's end is descriptor kAgentChannelFd, named by TESSERA_AGENT_FD), by which a worker
// survives a failure in its process: it keeps its memory copy of the training state, and the
// agent places it in the next round instead of starting a new process.
//
//   worker -> agent   "standby <reason>"   its group broke (or it left it when asked); it waits
//   agent -> worker   "place <rank> <world size> <local rank> <local world size> <nnodes>
//                      <attempt>"          train on in the next round at this place
//   agent -> worker   "pause"              the round ends (a host joins): leave the group
//   agent -> worker   "stop"               exit: the job ends, or the round has no place for it
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace tessera::cli {

constexpr int kAgentChannelFd = 3;

struct WorkerPlace {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  int nnodes = 1;
  std::int64_t attempt = 0;
};

// "place ..." for `p`, and back (nullopt: not a place line).
[[nodiscard]] std::string place_line(const WorkerPlace& p);
[[nodiscard]] std::optional<WorkerPlace> parse_place(const std::string& line);

// Thrown out of training when the agent asked the worker to pause.
class PauseRequested : public std::exception {
 public:
  [[nodiscard]] const char* what() const noexcept override {
    return "the elastic agent asked this worker to leave its group (the round ends)";
  }
};

// The worker's end. Not thread-safe.
class AgentChannel {
 public:
  // The channel the agent gave this process (TESSERA_AGENT_FD), or nullopt without one.
  [[nodiscard]] static std::optional<AgentChannel> from_environment();

  // Whether the agent asked for a pause since the last call; never blocks.
  [[nodiscard]] bool pause_requested();
  // Tells the agent the group is gone (`reason`) and waits up to `deadline` for its new place;
  // nullopt when the agent says stop or has gone. Throws TimeoutError naming what it waited for.
  [[nodiscard]] std::optional<WorkerPlace> stand_by(const std::string& reason,
                                                    std::chrono::milliseconds deadline);

 private:
  explicit AgentChannel(int fd) : fd_(fd) {}
  // The next complete line, waiting up to `wait` (0: only what has arrived); nullopt: none yet,
  // or the agent closed its end (closed_).
  std::optional<std::string> next_line(std::chrono::milliseconds wait);

  int fd_;
  std::string partial_;
  bool closed_ = false;
  bool paused_ = false;
};

}  // namespace tessera::cli
