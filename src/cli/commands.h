#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace tessera::cli {

// Thrown by a command that has already said what went wrong and wants the program to end with
// `code` (the launcher passes on a failed worker's exit code this way). Not a std::exception, so
// that no handler of errors catches it by accident.
class ExitCode {
 public:
  explicit ExitCode(int code) : code_(code) {}
  [[nodiscard]] int code() const { return code_; }

 private:
  int code_;
};

// Each adds its subcommand to the app; the callback runs it. A command signals failure by
// throwing: tessera::ConfigError and CLI11's errors exit 2, any other error exits 1.
// `argv` is the program's whole command line: the launcher starts its workers with it, less its own
// options.
void add_train_command(CLI::App& app, std::vector<std::string> argv);
// `tessera launch`: any program as the ranks of a job (launch_command.cc). `program` is the
// program's command line, split off the arguments before parsing (take_launched_program).
void add_launch_command(CLI::App& app, std::vector<std::string> program);
void add_eval_command(CLI::App& app);
void add_predict_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_config_command(CLI::App& app);

}  // namespace tessera::cli
