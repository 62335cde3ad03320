#include "tessera/train/parameter_server.h"

#include <sys/resource.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "ps_setup.h"
#include "sparse_model.h"
#include "tessera/comm/address.h"
#include "tessera/comm/socket.h"
#include "tessera/core/atomic_file.h"
#include "tessera/core/memory.h"
#include "tessera/core/random.h"
#include "tessera/parallel/ps/server.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/data_source.h"
#include "tessera/train/model_builder.h"

namespace tessera::train {
namespace {

using std::chrono::milliseconds;

// The model's starting values, as every worker builds them from the same seed.
std::vector<float> initial_parameters(const Config& config) {
  const std::unique_ptr<data::Dataset> train =
      open_dataset(config.data.train, config, "data.train");
  Generator init(config.train.seed);
  Generator dropout(config.train.seed);
  Shape out_shape;
  const auto model = build_model(config, train->sample_shape(), init, dropout, &out_shape);
  const std::vector<autograd::Variable> params = model->parameters();
  std::vector<float> values(static_cast<size_t>(parameter_count(params)));
  gather_values(params, values);
  return values;
}

milliseconds seconds(double s) { return milliseconds(static_cast<int64_t>(s * 1000.0)); }

}  // namespace

bool is_parameter_server(const Config& config, int rank, int world_size) {
  return config.parallel.strategy == "ps" && rank >= ps_workers(config, world_size);
}

std::vector<int> expendable_ranks(const Config& config, int world_size) {
  if (config.parallel.strategy != "ps" || config.parallel.consistency == "bsp") return {};
  std::vector<int> ranks;
  for (int r = 1; r < ps_workers(config, world_size); ++r) ranks.push_back(r);
  return ranks;
}

namespace {

// The tables a server holds for `config`: the layers' parameters as one dense table, or a sparse
// model's feature rows.
struct Tables {
  std::vector<parallel::ps::TableSpec> specs;
  std::map<uint32_t, std::vector<float>> initial;
  std::string what;  // for the log
};

Tables tables_of(const Config& config, int index) {
  if (config.model.type != "layers") {
    const int64_t dim = SparseModel(config.model).dim();
    return {{feature_table(config, dim)},
            {},
            detail::concat("rows of ", dim, dim == 1 ? " float (" : " floats (", config.model.type,
                           ") hashed from feature ids, created on first touch")};
  }
  std::vector<float> initial = initial_parameters(config);
  const auto size = static_cast<int64_t>(initial.size());
  const parallel::ps::Range r = parallel::ps::shard_range(size, index, config.parallel.servers);
  return {{model_table(config, size)},
          {{kModelTable, std::move(initial)}},
          detail::concat("parameters [", r.begin, ", ", r.end, ") of ", size)};
}

void log_done(const ServeOptions& options, const Config& config, int index,
              parallel::ps::Server& server) {
  if (!options.log) return;
  const parallel::ps::ServerStats st = server.stats();
  std::string held;
  if (config.model.type != "layers") {
    const int64_t rows = server.sparse_rows(kModelTable);
    const int64_t bytes = rows * SparseModel(config.model).dim() * int64_t{sizeof(float)};
    held = detail::concat(", holds ", rows, " rows = ", format_bytes(static_cast<uint64_t>(bytes)),
                          " of parameters");
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::fprintf(options.log,
               "ps server %d: done (%lld pulls, %lld pushes, %lld of them through shared memory, "
               "%lld malformed messages, %lld refused connections%s, peak resident memory %s)\n",
               index, static_cast<long long>(st.pulls), static_cast<long long>(st.pushes),
               static_cast<long long>(st.shared), static_cast<long long>(st.malformed),
               static_cast<long long>(st.refused), held.c_str(),
               format_bytes(static_cast<uint64_t>(usage.ru_maxrss) * 1024).c_str());
}

}  // namespace

namespace {

std::string checkpoint_dir(const Config& config) {
  return (std::filesystem::path(config.train.run_dir) / "ps").string();
}

// --resume: the step checkpoint of the run's newest valid checkpoint, which the workers resume
// from (Trainer::resume picks the same one); "" when there is none.
std::string resume_from(const Config& config, int index) {
  const CheckpointDir dir((std::filesystem::path(config.train.run_dir) / "checkpoints").string(),
                          config.train.keep_checkpoints);
  std::vector<std::string> skipped;
  const std::optional<Checkpoint> latest = dir.latest_valid(&skipped);
  if (!latest) return "";
  const std::string file =
      parallel::ps::checkpoint_file(checkpoint_dir(config), index, latest->step);
  if (!std::filesystem::exists(file)) {
    throw FormatError(detail::concat("checkpoint ", latest->path, " (step ", latest->step,
                                     ") has no parameter-server checkpoint ", file,
                                     ": the servers cannot resume with it"));
  }
  return file;
}

// A worker of a network goes on from its servers' step (rank 0 appending to the metrics and
// writing the checkpoints from there); the sparse models' workers cannot rejoin yet.
bool workers_rejoin(const Config& config) {
  return config.parallel.consistency != "bsp" && config.model.type == "layers";
}

// Serves until every worker is done; `port` 0: any free one. Returns the address it served at.
void run_server(const Config& config, int index, int workers, const std::string& token,
                const ServeOptions& options, const std::string& restore_from, int port,
                const std::function<void(const std::string&)>& listening) {
  const ParallelConfig& par = config.parallel;
  Tables tables = tables_of(config, index);
  parallel::ps::Server server(
      {.index = index,
       .servers = static_cast<int>(par.servers),
       .workers = workers,
       .consistency = consistency(par),
       .staleness = par.staleness,
       .token = token,
       .host = options.host,
       .port = port,
       .timeout = seconds(par.timeout_s),
       .heartbeat_timeout = seconds(par.heartbeat_timeout_s),
       .rejoin_window = options.workers_restarted && workers_rejoin(config)
                            ? seconds(par.heartbeat_timeout_s)
                            : std::chrono::milliseconds::zero(),
       .log = options.log,
       .checkpoint_dir = checkpoint_dir(config),
       .checkpoint_interval = par.server_checkpoint_s > 0 ? seconds(par.server_checkpoint_s)
                                                          : std::chrono::hours(24 * 365),
       .keep_step_checkpoints = static_cast<int>(config.train.keep_checkpoints),
       .restore_from = restore_from,
       .on_hung = options.on_hung ? [&options](uint32_t worker) {
         options.on_hung(static_cast<int>(worker));  // workers are ranks 0 .. workers - 1
       } : std::function<void(uint32_t)>()},
      std::move(tables.specs), tables.initial);
  const std::string address = comm::format_address(options.host, server.port());
  if (options.log) {
    std::fprintf(options.log, "ps server %d of %lld at %s: %s, %d workers, %s%s\n", index,
                 static_cast<long long>(par.servers), address.c_str(), tables.what.c_str(), workers,
                 par.consistency.c_str(),
                 restore_from.empty() ? "" : (", from " + restore_from).c_str());
  }
  listening(address);
  // Bounded by the workers' heartbeats rather than by time: a worker that dies or hangs is
  // declared lost after heartbeat_timeout_s, and a job may train for as long as it needs.
  server.wait_until_done(std::chrono::hours(24 * 365));
  server.stop();
  write_file_atomically(server_done_file(config, index), "done\n",
                        detail::concat("ps server ", index, " done mark"));
  log_done(options, config, index, server);
}

}  // namespace

std::vector<int> restartable_ranks(const Config& config, int world_size) {
  if (config.parallel.strategy != "ps" || config.parallel.consistency == "bsp") return {};
  const int workers = ps_workers(config, world_size);
  std::vector<int> ranks;
  if (workers_rejoin(config)) {
    for (int r = 0; r < workers; ++r) ranks.push_back(r);
  }
  if (config.parallel.server_checkpoint_s > 0) {
    for (int r = workers; r < world_size; ++r) ranks.push_back(r);
  }
  return ranks;
}

void serve_parameters(const Config& config, comm::ProcessGroup& world,
                      const ServeOptions& options) {
  const int workers = ps_workers(config, world.size());
  const int index = world.rank() - workers;
  const std::string token = agree_token(world, options.job_token);
  const std::string from = options.resume ? resume_from(config, index) : "";
  run_server(config, index, workers, token, options, from, 0, [&](const std::string& address) {
    // Processes the launcher starts again (a server, a worker) find the servers here.
    const std::string file = server_address_file(config, index);
    std::filesystem::create_directories(std::filesystem::path(file).parent_path());
    std::filesystem::remove(server_done_file(config, index));  // a run before this one's
    write_file_atomically(file, address + "\n", detail::concat("ps server ", index, " address"));
    (void)exchange_addresses(world, address);
  });
}

bool parameter_servers_finished(const Config& config) {
  for (int i = 0; i < config.parallel.servers; ++i) {
    if (!std::filesystem::exists(server_done_file(config, i))) return false;
  }
  return true;
}

void restart_parameter_server(const Config& config, int rank, int world_size,
                              const ServeOptions& options) {
  const int workers = ps_workers(config, world_size);
  const int index = rank - workers;
  if (options.job_token.empty()) {
    throw ValueError("ps server " + std::to_string(index) +
                     ": a restarted server needs the job token (TESSERA_JOB_TOKEN)");
  }
  const std::string address = server_addresses(config)[static_cast<size_t>(index)];
  const auto at = comm::parse_host_port(address);
  ServeOptions same = options;
  same.host = at->host;
  if (config.parallel.consistency == "bsp") {
    throw ValueError(detail::concat(
        "ps server ", index,
        ": a synchronous (bsp) job cannot go on from a server's checkpoint (the rounds after it "
        "are lost with the workers' gradients); restart the job with --resume instead"));
  }
  run_server(config, index, workers, options.job_token, same,
             parallel::ps::checkpoint_file(checkpoint_dir(config), index), at->port,
             [](const std::string&) {});
}

}  // namespace tessera::train
