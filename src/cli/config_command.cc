#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "tessera/train/config.h"

namespace tessera::cli {

void add_config_command(CLI::App& app) {
  CLI::App* config = app.add_subcommand("config", "Work with config files");
  config->require_subcommand(1);
  struct Args {
    std::string path;
    std::vector<std::string> overrides;
  };
  auto args = std::make_shared<Args>();
  CLI::App* show = config->add_subcommand(
      "show",
      "Print the fully resolved config (defaults and --set overrides applied) as TOML.\n"
      "Example: tessera config show examples/fashion_mnist_mlp.toml --set optimizer.lr=0.05");
  show->add_option("config", args->path, "TOML config file")->required()->check(CLI::ExistingFile);
  show->add_option("--set", args->overrides, "Override a setting: table.key=value");
  show->callback([args] {
    std::fputs(train::to_toml(train::load_config(args->path, args->overrides)).c_str(), stdout);
  });
}

}  // namespace tessera::cli
