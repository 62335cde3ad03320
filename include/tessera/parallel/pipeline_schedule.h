#pragma once

#include <string>
#include <vector>

namespace tessera::parallel {

// The order in which one stage of a pipeline runs its micro-batches' forward and backward passes.
//   kGpipe     every forward, then every backward (GPipe): the stage holds all M micro-batches'
//              activations at once.
//   kOneFOneB  PipeDream's 1F1B: stage s runs K - 1 - s forwards to fill the pipeline, then
//              alternates one forward and one backward, then drains: it holds at most K - s
//              micro-batches' activations, however large M is.
// Both have the same idle "bubble", (K - 1) / (M + K - 1) of a step with equal stages.
enum class PipelineSchedule { kGpipe, kOneFOneB };

// "gpipe" or "1f1b"; throws Error naming the others for anything else.
[[nodiscard]] PipelineSchedule parse_pipeline_schedule(const std::string& name);

struct PipelineOp {
  enum Kind { kForward, kBackward };
  Kind kind;
  int micro_batch;
  friend bool operator==(const PipelineOp&, const PipelineOp&) = default;
};

// The ops of stage `stage` of `stages` on `micro_batches` micro-batches, in the order it runs them:
// each micro-batch's forward once, and its backward once after it. Backwards run in the order of
// the forwards, as the next stage returns their gradients.
[[nodiscard]] std::vector<PipelineOp> pipeline_schedule(PipelineSchedule schedule, int stage,
                                                        int stages, int micro_batches);

}  // namespace tessera::parallel
