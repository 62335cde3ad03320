#include "tessera/parallel/ps/tables.h"

#include <cmath>
#include <set>

#include "tessera/core/error.h"

namespace tessera::parallel::ps {
namespace {

void check_setting(uint32_t table, const char* name, float value) {
  if (!std::isfinite(value) || value < 0.0f) {
    throw ValueError(detail::concat("ps table ", table, ": optimizer ", name, " is ", value,
                                    ", must be finite and >= 0"));
  }
}

void check_optimizer(uint32_t table, const OptimizerSpec& o) {
  check_setting(table, "momentum", o.momentum);
  check_setting(table, "weight_decay", o.weight_decay);
  check_setting(table, "eps", o.eps);
  check_setting(table, "initial_accumulator", o.initial_accumulator);
  check_setting(table, "ftrl_beta", o.ftrl_beta);
  check_setting(table, "l1", o.l1);
  check_setting(table, "l2", o.l2);
  if (!(o.beta1 >= 0.0f && o.beta1 < 1.0f) || !(o.beta2 >= 0.0f && o.beta2 < 1.0f)) {
    throw ValueError(detail::concat("ps table ", table, ": adam betas (", o.beta1, ", ", o.beta2,
                                    ") must be in [0, 1)"));
  }
}

}  // namespace

Range shard_range(int64_t size, int server, int servers) {
  const int64_t base = size / servers;
  const int64_t extra = size % servers;
  const int64_t begin = server * base + std::min<int64_t>(server, extra);
  return {begin, begin + base + (server < extra ? 1 : 0)};
}

int server_of_key(uint64_t key, int servers) {
  // splitmix64's finaliser: every input bit moves every output bit.
  key ^= key >> 30;
  key *= 0xbf58476d1ce4e5b9ULL;
  key ^= key >> 27;
  key *= 0x94d049bb133111ebULL;
  key ^= key >> 31;
  return static_cast<int>(key % static_cast<uint64_t>(servers));
}

void check_tables(const std::vector<TableSpec>& tables) {
  std::set<uint32_t> ids;
  for (const TableSpec& t : tables) {
    if (!ids.insert(t.id).second) {
      throw ValueError(detail::concat("ps table ", t.id, " is declared twice"));
    }
    if (t.kind == TableSpec::Kind::kDense && t.size <= 0) {
      throw ValueError(
          detail::concat("ps table ", t.id, ": a dense table needs size > 0, got ", t.size));
    }
    if (t.kind == TableSpec::Kind::kSparse && (t.dim <= 0 || t.dim > (1 << 20))) {
      throw ValueError(
          detail::concat("ps table ", t.id, ": a sparse table needs 0 < dim <= 2^20, got ", t.dim));
    }
    if (!std::isfinite(t.init_scale) || t.init_scale < 0.0f) {
      throw ValueError(detail::concat("ps table ", t.id, ": init_scale ", t.init_scale,
                                      " must be finite and >= 0"));
    }
    check_optimizer(t.id, t.optimizer);
  }
}

const char* to_string(Consistency consistency) {
  switch (consistency) {
    case Consistency::kBsp:
      return "bsp";
    case Consistency::kAsp:
      return "asp";
    case Consistency::kSsp:
      return "ssp";
  }
  return "?";
}

}  // namespace tessera::parallel::ps
