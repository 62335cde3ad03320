#include "bucket_plan.h"

namespace tessera::parallel {

std::vector<std::vector<std::size_t>> plan_buckets(const std::vector<autograd::Variable>& params,
                                                   std::size_t first_bytes, std::size_t bytes) {
  std::vector<std::vector<std::size_t>> buckets;
  std::size_t limit = first_bytes;
  std::size_t filled = 0;  // bytes in the last bucket
  for (std::size_t k = params.size(); k-- > 0;) {
    const std::size_t size = static_cast<std::size_t>(params[k].numel()) * sizeof(float);
    if (buckets.empty() || (filled + size > limit && !buckets.back().empty())) {
      if (!buckets.empty()) limit = bytes;
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(k);
    filled += size;
  }
  return buckets;
}

}  // namespace tessera::parallel
