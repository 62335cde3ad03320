#include "ps_setup.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "tessera/comm/address.h"
#include "tessera/comm/tcp_store.h"
#include "tessera/core/error.h"
#include "tessera/parallel/model_sync.h"

namespace tessera::train {
namespace {

using parallel::ps::OptimizerSpec;
using std::chrono::milliseconds;

OptimizerSpec optimizer_spec(const Config& config) {
  const OptimizerConfig& o = config.optimizer;
  if (o.clip_grad_norm > 0) {
    throw ConfigError(config.source, 0, "optimizer.clip_grad_norm",
                      "is not supported with [parallel] strategy \"ps\": the servers update "
                      "their shards alone and never see the whole gradient's norm");
  }
  OptimizerSpec spec{.weight_decay = static_cast<float>(o.weight_decay),
                     .beta1 = static_cast<float>(o.beta1),
                     .beta2 = static_cast<float>(o.beta2),
                     .eps = static_cast<float>(o.eps),
                     .initial_accumulator = static_cast<float>(o.initial_accumulator)};
  if (o.name == "sgd") {
    spec.kind = OptimizerSpec::Kind::kSgd;
    spec.momentum = static_cast<float>(o.momentum);
    spec.nesterov = o.nesterov;
  } else if (o.name == "adam") {
    spec.kind = OptimizerSpec::Kind::kAdam;
  } else if (o.name == "adagrad") {
    spec.kind = OptimizerSpec::Kind::kAdagrad;
  } else {
    throw ConfigError(
        config.source, 0, "optimizer.name",
        "\"" + o.name + "\" is not one of the parameter servers' optimizers: sgd, adam, adagrad");
  }
  return spec;
}

}  // namespace

parallel::ps::TableSpec model_table(const Config& config, int64_t parameters) {
  return {.id = kModelTable,
          .kind = parallel::ps::TableSpec::Kind::kDense,
          .size = parameters,
          .optimizer = optimizer_spec(config)};
}

parallel::ps::TableSpec feature_table(const Config& config, int64_t dim) {
  return {.id = kModelTable,
          .kind = parallel::ps::TableSpec::Kind::kSparse,
          .dim = dim,
          .init_scale = static_cast<float>(config.model.init_scale),
          .seed = config.train.seed,
          .optimizer = optimizer_spec(config)};
}

parallel::ps::WorkerOptions worker_options(const Config& config, int index,
                                           std::vector<std::string> servers, std::string token) {
  const ParallelConfig& p = config.parallel;
  const auto timeout = milliseconds(static_cast<int64_t>(p.timeout_s * 1000.0));
  // Well inside the servers' heartbeat timeout, so that a busy worker is never taken for a dead
  // one.
  const auto quarter = milliseconds(static_cast<int64_t>(p.heartbeat_timeout_s * 250.0));
  return {.index = static_cast<uint32_t>(index),
          .servers = std::move(servers),
          .token = std::move(token),
          .connect_timeout = timeout,
          .timeout = timeout + std::chrono::minutes(1),
          .heartbeat_interval = std::clamp(quarter, milliseconds(1), milliseconds(1000)),
          // A server that dies under asp or ssp may come back from its checkpoint (the launcher's
          // --max-restarts); under bsp its death ends the job.
          .reconnect_timeout = p.consistency == "bsp" ? milliseconds(0) : timeout};
}

parallel::ps::Consistency consistency(const ParallelConfig& config) {
  if (config.consistency == "asp") return parallel::ps::Consistency::kAsp;
  if (config.consistency == "ssp") return parallel::ps::Consistency::kSsp;
  return parallel::ps::Consistency::kBsp;
}

int ps_workers(const Config& config, int world_size) {
  const int64_t workers = world_size - config.parallel.servers;
  if (workers < 1) {
    throw ConfigError(config.source, 0, "parallel.servers",
                      detail::concat(config.parallel.servers, " servers leave no worker among the ",
                                     world_size, " processes: start more (--nproc)"));
  }
  return static_cast<int>(workers);
}

std::string agree_token(comm::ProcessGroup& world, const std::string& token) {
  if (!token.empty()) return token;
  return parallel::broadcast_bytes(world, world.rank() == 0 ? comm::make_job_token() : "", 0);
}

int64_t parameter_count(const std::vector<autograd::Variable>& params) {
  int64_t n = 0;
  for (const auto& p : params) n += p.data().numel();
  return n;
}

void gather_values(const std::vector<autograd::Variable>& params, std::span<float> out) {
  for (const auto& p : params) {
    const Tensor t = p.data().contiguous();
    std::copy_n(t.data<float>(), t.numel(), out.begin());
    out = out.subspan(static_cast<size_t>(t.numel()));
  }
}

void gather_grads(const std::vector<autograd::Variable>& params, std::span<float> out) {
  for (const auto& p : params) {
    const int64_t n = p.data().numel();
    if (p.grad().defined()) {
      const Tensor g = p.grad().contiguous();
      std::copy_n(g.data<float>(), n, out.begin());
    } else {  // unused in this step's graph
      std::fill_n(out.begin(), n, 0.0f);
    }
    out = out.subspan(static_cast<size_t>(n));
  }
}

void assign_values(const std::vector<autograd::Variable>& params, std::span<const float> values) {
  for (const auto& p : params) {
    Tensor t = p.data();
    TESSERA_CHECK(t.is_contiguous());
    std::copy_n(values.begin(), t.numel(), t.data<float>());
    values = values.subspan(static_cast<size_t>(t.numel()));
  }
}

std::string server_address_file(const Config& config, int index) {
  return (std::filesystem::path(config.train.run_dir) / "ps" /
          detail::concat("server-", index, ".address"))
      .string();
}

std::string server_done_file(const Config& config, int index) {
  return (std::filesystem::path(config.train.run_dir) / "ps" /
          detail::concat("server-", index, ".done"))
      .string();
}

std::vector<std::string> server_addresses(const Config& config) {
  std::vector<std::string> addresses;
  for (int i = 0; i < config.parallel.servers; ++i) {
    const std::string file = server_address_file(config, i);
    std::ifstream in(file);
    std::string address;
    std::getline(in, address);
    const auto at = comm::parse_host_port(address);
    if (!at || at->port == 0) {
      throw FormatError(detail::concat(file, ": expected the HOST:PORT ps server ", i,
                                       " serves at, got '", address, "'"));
    }
    addresses.push_back(address);
  }
  return addresses;
}

std::vector<std::string> exchange_addresses(comm::ProcessGroup& world, const std::string& mine) {
  std::vector<std::string> all = parallel::allgather_bytes(world, mine);
  std::vector<std::string> servers;
  for (auto& address : all) {
    if (!address.empty()) servers.push_back(std::move(address));
  }
  return servers;
}

}  // namespace tessera::train
