#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

// Helpers for end-to-end tests: real processes (the `tessera` binary, this test binary in a worker
// role), their output in files, and waits that always end.
namespace tessera::e2e {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// Path of the `tessera` binary under test (a compile definition of this test).
[[nodiscard]] std::string tessera_binary();

// A child process whose stdout and stderr go to files. Its environment is the test's, without any
// launcher's variables (TESSERA_*, OMPI_*, PMI_*, PMIX_*, SLURM_*, MASTER_ADDR/PORT: a test run
// inside a Slurm job must not look like a job step to the binary), plus `env` ("NAME=value").
// It dies with the test process (PR_SET_PDEATHSIG). Not thread-safe.
class Process {
 public:
  Process(std::vector<std::string> args, std::vector<std::string> env, const fs::path& log_stem);
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  // Kills the process (SIGKILL) and reaps it when it is still running.
  ~Process();

  [[nodiscard]] pid_t pid() const { return pid_; }
  // The exit code (128 + signal when a signal ended it) once it exits within `timeout`; nullopt
  // when it did not, and then it has been killed.
  [[nodiscard]] std::optional<int> wait(milliseconds timeout);
  [[nodiscard]] std::string out() const;
  [[nodiscard]] std::string err() const;
  // Waits until stdout or stderr contains `text`; false when `timeout` passed or the process exited
  // without printing it.
  [[nodiscard]] bool wait_for_output(const std::string& text, milliseconds timeout);

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  fs::path out_path_;
  fs::path err_path_;
};

// What a finished `tessera` command left: its exit code (-1 when it did not finish in time, which
// fails the test) and output.
struct Finished {
  int code = -1;
  std::string out;
  std::string err;
};
// Runs `tessera ARGS...` with its output in `log_stem`.out/.err, waiting at most `timeout`.
[[nodiscard]] Finished run_tessera(std::vector<std::string> args, const fs::path& log_stem,
                                   milliseconds timeout);

[[nodiscard]] std::string read_file(const fs::path& path);
// True while `pid` exists and is not a zombie.
[[nodiscard]] bool pid_alive(pid_t pid);
// The pid the launcher reported for `rank` ("rank R (pid P)" on its first line); nullopt if none.
[[nodiscard]] std::optional<pid_t> worker_pid(const std::string& launcher_err, int rank);
// Every worker pid the launcher reported.
[[nodiscard]] std::vector<pid_t> worker_pids(const std::string& launcher_err);
// "HOST:PORT" of the store the launcher reported ("store at HOST:PORT;").
[[nodiscard]] std::string store_address(const std::string& launcher_err);
// A TCP port that was free a moment ago on 127.0.0.1 (for a store that a rank hosts).
[[nodiscard]] int free_port();
// The value of variable `name` in the environment `pid` started with ("" when it has none);
// readable only by the process's owner.
[[nodiscard]] std::string environment_of(pid_t pid, const std::string& name);
// The "model" section of a checkpoint file: equal sections, bit-identical parameters.
[[nodiscard]] std::string model_of(const fs::path& checkpoint);
// Number of lines of `text` containing `needle`.
[[nodiscard]] int count_lines_with(const std::string& text, const std::string& needle);

// A temporary directory with a small two-class CSV data set (train.csv: 240 rows, 4 features)
// and a config for it (strategy "ddp", batch 16 per rank); removed at destruction.
class TrainingJob {
 public:
  explicit TrainingJob(const std::string& name);
  TrainingJob(const TrainingJob&) = delete;
  TrainingJob& operator=(const TrainingJob&) = delete;
  ~TrainingJob();

  // Writes <dir>/<name>.toml and returns its path: `epochs` epochs, a metrics line every
  // `log_every` steps, run_dir <dir>/run.
  [[nodiscard]] fs::path config(int epochs, int log_every, const std::string& name = "job",
                                const std::string& strategy = "ddp") const;
  [[nodiscard]] const fs::path& dir() const { return dir_; }
  [[nodiscard]] fs::path metrics() const { return dir_ / "run" / "metrics.jsonl"; }

 private:
  fs::path dir_;
};

// The running test's name, for scratch directories and logs.
std::string test_name();

}  // namespace tessera::e2e
