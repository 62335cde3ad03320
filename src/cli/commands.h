#pragma once

#include <CLI/CLI.hpp>

namespace tessera::cli {

// Each adds its subcommand to the app; the callback runs it. A command signals failure by
// throwing: tessera::ConfigError and CLI11's errors exit 2, any other error exits 1.
void add_train_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_config_command(CLI::App& app);

}  // namespace tessera::cli
