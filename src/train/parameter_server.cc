#include "tessera/train/parameter_server.h"

#include <chrono>

#include "ps_setup.h"
#include "tessera/comm/socket.h"
#include "tessera/core/random.h"
#include "tessera/parallel/ps/server.h"
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

void serve_parameters(const Config& config, comm::ProcessGroup& world,
                      const ServeOptions& options) {
  const ParallelConfig& par = config.parallel;
  const int workers = ps_workers(config, world.size());
  const int index = world.rank() - workers;
  const std::string token = agree_token(world, options.job_token);
  const std::vector<float> initial = initial_parameters(config);
  const auto size = static_cast<int64_t>(initial.size());
  parallel::ps::Server server({.index = index,
                               .servers = static_cast<int>(par.servers),
                               .workers = workers,
                               .consistency = consistency(par),
                               .staleness = par.staleness,
                               .token = token,
                               .host = options.host,
                               .timeout = seconds(par.timeout_s),
                               .heartbeat_timeout = seconds(par.heartbeat_timeout_s),
                               .log = options.log},
                              {model_table(config, size)}, {{kModelTable, initial}});
  const std::string address = comm::format_address(options.host, server.port());
  if (options.log) {
    const parallel::ps::Range r = parallel::ps::shard_range(size, index, par.servers);
    std::fprintf(options.log,
                 "ps server %d of %lld at %s: parameters [%lld, %lld) of %lld, %d workers, %s\n",
                 index, static_cast<long long>(par.servers), address.c_str(),
                 static_cast<long long>(r.begin), static_cast<long long>(r.end),
                 static_cast<long long>(size), workers, par.consistency.c_str());
  }
  (void)exchange_addresses(world, address);
  // Bounded by the workers' heartbeats rather than by time: a worker that dies or hangs is
  // declared lost after heartbeat_timeout_s, and a job may train for as long as it needs.
  server.wait_until_done(std::chrono::hours(24 * 365));
  server.stop();
  if (options.log) {
    const parallel::ps::ServerStats st = server.stats();
    std::fprintf(options.log,
                 "ps server %d: done (%lld pulls, %lld pushes, %lld malformed messages, %lld "
                 "refused connections)\n",
                 index, static_cast<long long>(st.pulls), static_cast<long long>(st.pushes),
                 static_cast<long long>(st.malformed), static_cast<long long>(st.refused));
  }
}

}  // namespace tessera::train
