#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "tessera/comm/process_group.h"
#include "tessera/core/random.h"
#include "tessera/nn/module.h"
#include "tessera/parallel/pipeline_schedule.h"
#include "tessera/tensor/tensor.h"

namespace tessera::parallel {

struct PipelineOptions {
  int micro_batches = 1;
  PipelineSchedule schedule = PipelineSchedule::kOneFOneB;
  // Keep only each micro-batch's input during forward and run the stage's forward again, with
  // gradients, just before its backward: activation memory of one micro-batch per stage instead
  // of one per micro-batch in flight, for a second forward.
  bool recompute = false;
  // The generator the stage's dropout layers draw from: put back for a recomputation, so that it
  // drops what the first forward dropped. nullptr: the stage has no dropout.
  Generator* dropout = nullptr;
};

// What the last train_batch cost this stage.
struct PipelineStepStats {
  double seconds = 0;  // wall time of the whole batch
  double compute = 0;  // of which running the stage's layers, forward and backward
  // The rest: waiting for neighbours (the pipeline's bubble) and passing tensors.
  double idle = 0;
  // Most tensor memory held above what was live when the batch began, sampled after each forward
  // and backward: the activations kept for backward (and the buffers in flight).
  size_t peak_activation_bytes = 0;
  int peak_in_flight = 0;  // most micro-batches between their forward and their backward
};

// The mean loss of one micro-batch: the last stage's output for its rows, and their targets.
using MicroBatchLoss =
    std::function<autograd::Variable(const autograd::Variable& output, const Tensor& targets)>;

// One stage of a pipeline-parallel model (GPipe, PipeDream's 1F1B): rank s of `group` runs the
// layers of stage s. A batch is cut into micro-batches that stream through the stages; each
// stage sends its output to the next stage and the gradient of its input to the previous one,
// without waiting for the send, so that sends overlap the next micro-batch's compute. Gradients
// are the whole batch's: the same as one process running every layer on the batch, whatever the
// number of stages, micro-batches, schedule or recomputation. Borrows the stage and the group;
// one per process.
class Pipeline {
 public:
  Pipeline(nn::Module& stage, comm::ProcessGroup& group, PipelineOptions options);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  [[nodiscard]] int stage() const { return group_.rank(); }
  [[nodiscard]] int stages() const { return group_.size(); }
  [[nodiscard]] bool is_first() const { return stage() == 0; }
  [[nodiscard]] bool is_last() const { return stage() == stages() - 1; }

  // Forward and backward of one batch. Every stage passes the same batch: the first stage reads
  // `input`, the last one `targets` and `loss`; rows (and the targets of each row, targets having
  // a multiple of input's rows) are dealt to micro-batches in order, as evenly as they go (one
  // row each when the batch has fewer rows than micro_batches).
  // Adds to the stage's parameter gradients those of the batch's mean loss, each micro-batch's
  // loss weighted by its share of the rows, and returns that loss on every stage.
  double train_batch(const Tensor& input, const Tensor& targets, const MicroBatchLoss& loss);

  // The whole model's output for `input` (read on the first stage), without gradients, on every
  // stage: for evaluation.
  [[nodiscard]] Tensor forward(const Tensor& input);

  [[nodiscard]] const PipelineStepStats& last_step() const { return stats_; }

 private:
  struct MicroBatch;
  struct Pending {  // a send in flight and the buffer it reads
    Tensor buffer;
    std::shared_ptr<comm::Work> work;
  };
  void run_forward(MicroBatch& mb, const MicroBatchLoss& loss);
  void run_backward(MicroBatch& mb, const MicroBatchLoss& loss);
  autograd::Variable stage_output(MicroBatch& mb, const MicroBatchLoss& loss);
  void send(Tensor tensor, int dst, uint32_t tag, bool with_header);
  Tensor receive(int src, uint32_t tag, const Shape* known);
  void reap_sends(bool all);
  void sample_memory();

  nn::Module& module_;
  comm::ProcessGroup& group_;
  PipelineOptions options_;
  PipelineStepStats stats_;
  std::deque<Pending> pending_;
  size_t base_bytes_ = 0;
};

}  // namespace tessera::parallel
