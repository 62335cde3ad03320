#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "tessera/train/config.h"
#include "tessera/train/trainer.h"

namespace tessera::cli {

void add_train_command(CLI::App& app) {
  struct Args {
    std::string config;
    std::vector<std::string> overrides;
    bool resume = false;
    bool quiet = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "train",
      "Train a model from a TOML config.\n\n"
      "Metrics go to <run_dir>/metrics.jsonl (one JSON object per line), checkpoints to\n"
      "<run_dir>/checkpoints. Examples:\n"
      "  tessera train examples/fashion_mnist_mlp.toml\n"
      "  tessera train cfg.toml --set optimizer.lr=0.05 --set train.epochs=3\n"
      "  tessera train cfg.toml --resume     # continue from the newest valid checkpoint");
  cmd->add_option("config", args->config, "TOML config file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--set", args->overrides,
                  "Override a setting: table.key=value (TOML value; bare words are strings)");
  cmd->add_flag("--resume", args->resume, "Continue from the newest valid checkpoint in run_dir");
  cmd->add_flag("-q,--quiet", args->quiet, "No progress output (metrics are still written)");
  cmd->callback([args] {
    train::Config config = train::load_config(args->config, args->overrides);
    train::Trainer trainer(config,
                           {.resume = args->resume, .progress = args->quiet ? nullptr : stderr});
    train::TrainResult r = trainer.run();
    std::printf("trained %lld steps in %.1f s (%.0f samples/s)", static_cast<long long>(r.steps),
                r.wall_seconds, r.samples_per_s);
    if (r.test.count > 0) {
      std::printf("; test accuracy %.2f%%, test loss %.4f", 100.0 * r.test.accuracy, r.test.loss);
    }
    std::printf("\n");
    if (!r.last_checkpoint.empty()) std::printf("checkpoint: %s\n", r.last_checkpoint.c_str());
  });
}

}  // namespace tessera::cli
