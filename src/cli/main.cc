// The `tessera` command: train from a TOML config, evaluate and inspect checkpoints.
// Exit codes: 0 success, 2 usage or configuration error, 1 runtime failure; the launcher
// (`tessera train --nproc N`) exits with its failed worker's code (128 + signal when a signal
// ended it).
#include <malloc.h>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "launcher_flags.h"
#include "tessera/core/error.h"

#ifndef TESSERA_VERSION
#define TESSERA_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  // A training step frees and allocates the same large tensors again and again. By default glibc
  // hands blocks above its mmap threshold back to the kernel on free, and every step then faults
  // its pages in afresh (measured on the CNN: 459k page faults and 6.9 s of CPU in 60 steps; with
  // these settings 46k and 6.0 s). Keep them in the heap for reuse instead.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  CLI::App app{
      "tessera: distributed machine-learning training.\n\n"
      "Examples:\n"
      "  tessera train examples/fashion_mnist_mlp.toml\n"
      "  tessera train examples/fashion_mnist_cnn.toml --set optimizer.lr=0.05\n"
      "  tessera train cfg.toml --nproc 4             # 4 workers on this host\n"
      "  tessera eval runs/fashion_mnist_mlp/checkpoints/step-0000009380.ckpt "
      "--data fashion-mnist:test\n"
      "  tessera inspect runs/fashion_mnist_mlp/checkpoints/step-0000009380.ckpt\n"
      "  tessera config show examples/fashion_mnist_mlp.toml\n"
      "  tessera launch --nproc 4 ./my_program      # any program, as 4 ranks\n",
      "tessera"};
  app.set_version_flag("--version", std::string("tessera ") + TESSERA_VERSION);
  app.require_subcommand(1);
  std::vector<std::string> args(argv, argv + argc);
  tessera::cli::add_train_command(app, args);
  // The launched program's options are its own: CLI11 sees only what comes before it.
  std::vector<std::string> program;
  if (args.size() > 1 && args[1] == "launch")
    program = tessera::cli::take_launched_program(args, 2);
  tessera::cli::add_launch_command(app, std::move(program));
  tessera::cli::add_eval_command(app);
  tessera::cli::add_predict_command(app);
  tessera::cli::add_inspect_command(app);
  tessera::cli::add_config_command(app);
  try {
    std::vector<char*> parsed;
    for (std::string& a : args) parsed.push_back(a.data());
    app.parse(static_cast<int>(parsed.size()), parsed.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const tessera::cli::ExitCode& e) {
    return e.code();
  } catch (const tessera::ConfigError& e) {
    std::fprintf(stderr, "tessera: config error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tessera: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
