#pragma once

#include <cstdint>
#include <string>
#include <vector>

// What a parameter server holds: tables, each dense (a flat float range split across the servers)
// or sparse (rows of `dim` floats keyed by 64-bit ids, hashed across the servers and created on
// first touch), and how the servers update them. Servers and workers are given the same list.
namespace tessera::parallel::ps {

// When a worker may go on: kBsp waits for every worker's gradient of the step before anyone
// pulls the next parameters (the same as one process on the global batch); kAsp never waits;
// kSsp lets a worker run at most `staleness` steps ahead of the slowest.
enum class Consistency { kBsp, kAsp, kSsp };

// The update a server applies to what is pushed. State (momentum, accumulators) lives on the
// servers only. kSgd, kAdagrad and kAdam follow PyTorch's formulas; kFtrl is McMahan et al.'s
// FTRL-Proximal with the push's learning rate as alpha.
struct OptimizerSpec {
  enum class Kind { kSgd, kAdagrad, kAdam, kFtrl };
  Kind kind = Kind::kSgd;
  float momentum = 0.0f;          // sgd
  bool nesterov = false;          // sgd
  float weight_decay = 0.0f;      // sgd, adagrad, adam
  float beta1 = 0.9f;             // adam
  float beta2 = 0.999f;           // adam
  float eps = 1e-8f;              // adagrad, adam (Adagrad's default in PyTorch is 1e-10)
  float initial_accumulator = 0;  // adagrad
  float ftrl_beta = 1.0f;         // ftrl
  float l1 = 0.0f;                // ftrl
  float l2 = 0.0f;                // ftrl
};

struct TableSpec {
  enum class Kind { kDense, kSparse };
  uint32_t id = 0;
  Kind kind = Kind::kDense;
  int64_t size = 0;  // dense: elements in the whole table
  int64_t dim = 0;   // sparse: floats per row
  // sparse: a new row starts uniform in [-init_scale, init_scale], drawn from (seed, key) alone so
  // that it is the same whichever server creates it and whenever.
  float init_scale = 0.0f;
  uint64_t seed = 0;
  OptimizerSpec optimizer = {};
};

// The half-open range [begin, end) of a dense table of `size` elements that server `server` of
// `servers` holds: contiguous, sizes differing by at most one.
struct Range {
  int64_t begin = 0;
  int64_t end = 0;
  [[nodiscard]] int64_t size() const { return end - begin; }
};
[[nodiscard]] Range shard_range(int64_t size, int server, int servers);

// The server that holds a sparse row: a mixed hash of the key, so that ids with structure
// (consecutive, strided) still spread evenly.
[[nodiscard]] int server_of_key(uint64_t key, int servers);

// Checks a list of tables: unique ids, positive sizes and dims, finite optimizer settings. Throws
// ValueError naming the table and the setting.
void check_tables(const std::vector<TableSpec>& tables);

[[nodiscard]] const char* to_string(Consistency consistency);

}  // namespace tessera::parallel::ps
