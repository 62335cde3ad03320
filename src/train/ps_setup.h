#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tessera/autograd/variable.h"
#include "tessera/comm/process_group.h"
#include "tessera/parallel/ps/tables.h"
#include "tessera/parallel/ps/worker.h"
#include "tessera/train/config.h"

// What the ps strategy's workers and servers must agree on, derived from the config alone, and
// the one exchange they make over the job's group at start.
namespace tessera::train {

// The model as one dense table (id kModelTable) of `parameters` floats, updated by the servers
// with [optimizer]. Throws ConfigError for a setting the servers do not have (adamw, clipping).
inline constexpr uint32_t kModelTable = 0;
[[nodiscard]] parallel::ps::TableSpec model_table(const Config& config, int64_t parameters);
[[nodiscard]] parallel::ps::Consistency consistency(const ParallelConfig& config);
// A sparse model's feature rows (ModelConfig type "logistic" or "fm") as one sparse table (id
// kModelTable) of `dim` floats per row.
[[nodiscard]] parallel::ps::TableSpec feature_table(const Config& config, int64_t dim);

// How worker `index` reaches the servers at `servers`, with the config's deadlines.
[[nodiscard]] parallel::ps::WorkerOptions worker_options(const Config& config, int index,
                                                         std::vector<std::string> servers,
                                                         std::string token);

// Workers of a job of `world_size` processes; ConfigError when no process would train.
[[nodiscard]] int ps_workers(const Config& config, int world_size);

// The model's parameters as one flat float vector, in the order of `params`. A parameter without
// a gradient (unused by this step) contributes zeros.
[[nodiscard]] int64_t parameter_count(const std::vector<autograd::Variable>& params);
void gather_values(const std::vector<autograd::Variable>& params, std::span<float> out);
void gather_grads(const std::vector<autograd::Variable>& params, std::span<float> out);
void assign_values(const std::vector<autograd::Variable>& params, std::span<const float> values);

// Collective over every process of the job. The token every process uses: `token` when the job
// has one (every process then has the same), else one rank 0 makes.
[[nodiscard]] std::string agree_token(comm::ProcessGroup& world, const std::string& token);
// Where server `index` notes the address it serves at (<run_dir>/ps/server-<index>.address), for
// the processes the launcher starts again, which join no group.
[[nodiscard]] std::string server_address_file(const Config& config, int index);
// Where server `index` notes that it finished serving (<run_dir>/ps/server-<index>.done): every
// worker was done, so a worker started again after that has nothing left to train.
[[nodiscard]] std::string server_done_file(const Config& config, int index);
// The servers' addresses from those files; FormatError naming a file that is missing or wrong.
[[nodiscard]] std::vector<std::string> server_addresses(const Config& config);

// Collective: servers give their "host:port", workers "". The servers' addresses in server order.
[[nodiscard]] std::vector<std::string> exchange_addresses(comm::ProcessGroup& world,
                                                          const std::string& mine);

}  // namespace tessera::train
