#include <cstdio>
#include <sstream>
#include <string>

#include "commands.h"
#include "tessera/core/serialize.h"
#include "tessera/tensor/tensor_io.h"
#include "tessera/train/checkpoint.h"

namespace tessera::cli {

void add_inspect_command(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "inspect",
      "Show a checkpoint: step, checksum status, sections, parameters and their shapes.\n"
      "Exits 1 when the checksum does not match.\n"
      "Example: tessera inspect runs/fashion_mnist_mlp/checkpoints/step-0000009380.ckpt");
  cmd->add_option("checkpoint", *path, "Checkpoint file (.ckpt)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->callback([path] {
    train::Checkpoint c;
    try {
      c = train::read_checkpoint(*path);
    } catch (const Error& e) {
      std::printf("checkpoint %s\nchecksum: FAILED: %s\n", path->c_str(), e.what());
      throw;
    }
    std::printf("checkpoint %s\nstep: %lld\nchecksum: ok (CRC-32 verified)\nsections:\n",
                path->c_str(), static_cast<long long>(c.step));
    for (const auto& [name, bytes] : c.sections) {
      std::printf("  %-10s %10zu bytes\n", name.c_str(), bytes.size());
    }
    std::istringstream in(c.section("model"));
    BinaryReader r(in, *path + " [model]");
    uint64_t count = r.read_u64();
    int64_t total = 0;
    std::printf("model state (%llu entries):\n", static_cast<unsigned long long>(count));
    for (uint64_t i = 0; i < count; ++i) {
      std::string name = r.read_string();
      Tensor t = read_tensor(r);
      total += t.numel();
      std::printf("  %-24s %-10s %s\n", name.c_str(), dtype_name(t.dtype()),
                  shape_str(t.shape()).c_str());
    }
    std::printf("values: %lld\n", static_cast<long long>(total));
  });
}

}  // namespace tessera::cli
