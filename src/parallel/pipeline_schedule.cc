#include "tessera/parallel/pipeline_schedule.h"

#include <algorithm>

#include "tessera/core/error.h"

namespace tessera::parallel {

PipelineSchedule parse_pipeline_schedule(const std::string& name) {
  if (name == "gpipe") return PipelineSchedule::kGpipe;
  if (name == "1f1b") return PipelineSchedule::kOneFOneB;
  throw Error("pipeline schedule \"" + name + "\" is unknown (known: gpipe, 1f1b)");
}

std::vector<PipelineOp> pipeline_schedule(PipelineSchedule schedule, int stage, int stages,
                                          int micro_batches) {
  if (stages < 1 || stage < 0 || stage >= stages || micro_batches < 1) {
    throw Error(detail::concat("pipeline_schedule: stage ", stage, " of ", stages, " with ",
                               micro_batches, " micro-batches"));
  }
  std::vector<PipelineOp> ops;
  const int m = micro_batches;
  const int warmup = schedule == PipelineSchedule::kGpipe ? m : std::min(stages - 1 - stage, m);
  for (int i = 0; i < warmup; ++i) ops.push_back({PipelineOp::kForward, i});
  for (int i = 0; i < m - warmup; ++i) {
    ops.push_back({PipelineOp::kForward, warmup + i});
    ops.push_back({PipelineOp::kBackward, i});
  }
  for (int i = m - warmup; i < m; ++i) ops.push_back({PipelineOp::kBackward, i});
  return ops;
}

}  // namespace tessera::parallel
