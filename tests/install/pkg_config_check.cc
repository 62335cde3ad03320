// A program built by check_installed.sh with nothing but `pkg-config --cflags --libs tessera`.
// It joins a job and trains through the Trainer from a TOML config, which needs every library
// tessera.pc lists (the Gloo, MPI and shared-memory backends, TOML, JSON metrics, gzipped IDX
// data, oneDNN, OpenBLAS, OpenMP): one missing fails the link.
// Usage (as one rank): tessera launch --nproc 1 pkg_config_check RUN_DIR
#include <cstdio>
#include <exception>
#include <memory>

#include "tessera/comm/init.h"
#include "tessera/train/config.h"
#include "tessera/train/trainer.h"

using namespace tessera;

namespace {

// Two steps of a linear classifier on Fashion-MNIST, nothing to evaluate.
constexpr const char* kConfig = R"(
[model]
layers = [{ type = "flatten" }, { type = "linear", out = 10 }]
[data]
test = ""
[train]
epochs = 1
max_steps = 2
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s RUN_DIR\n", argv[0]);
    return 2;
  }
  try {
    std::unique_ptr<comm::ProcessGroup> group = comm::init_from_env();
    train::Config config = train::parse_config(kConfig, "pkg_config_check");
    config.train.run_dir = argv[1];
    train::Trainer trainer(config, {.group = group.get(), .progress = nullptr});
    const train::TrainResult result = trainer.run();
    group->shutdown();
    std::printf("trained %lld steps\n", static_cast<long long>(result.steps));
    return result.steps == 2 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pkg_config_check: %s\n", e.what());
    return 1;
  }
}
