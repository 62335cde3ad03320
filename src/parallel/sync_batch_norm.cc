#include "tessera/parallel/sync_batch_norm.h"

#include <vector>

#include "tessera/autograd/node.h"
#include "tessera/comm/work.h"
#include "tessera/nn/normalization.h"
#include "tessera/parallel/dtype_map.h"

namespace tessera::parallel {
namespace {

// A contiguous copy of t summed over the ranks (in place, so not t's own memory).
Tensor summed_over_ranks(const Tensor& t, comm::ProcessGroup& group) {
  Tensor out = t.clone();
  group
      .allreduce(out.raw_data(), static_cast<std::size_t>(out.numel()), to_comm(out.dtype()),
                 comm::ReduceOp::kSum)
      ->wait();
  return out;
}

}  // namespace

autograd::Variable allreduce_sum(const autograd::Variable& x, comm::ProcessGroup& group) {
  comm::ProcessGroup* g = &group;
  return autograd::make_result(
      summed_over_ranks(x.data(), group), "allreduce_sum", {x},
      [g](const Tensor& grad, const std::vector<bool>&) -> std::vector<Tensor> {
        return {summed_over_ranks(grad, *g)};
      });
}

autograd::BatchStatsReduction batch_stats_over(comm::ProcessGroup& group) {
  comm::ProcessGroup* g = &group;
  return {.sum = [g](const autograd::Variable& v) { return allreduce_sum(v, *g); },
          .count =
              [g](int64_t local) {
                int64_t total = local;
                g->allreduce(&total, 1, comm::DataType::kInt64, comm::ReduceOp::kSum)->wait();
                return total;
              }};
}

void convert_sync_batchnorm(nn::Module& model, comm::ProcessGroup& group) {
  model.apply([&group](nn::Module& m) {
    if (auto* bn = dynamic_cast<nn::BatchNorm*>(&m)) {
      bn->set_batch_stats_reduction(batch_stats_over(group));
    }
  });
}

}  // namespace tessera::parallel
