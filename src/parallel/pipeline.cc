#include "tessera/parallel/pipeline.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "pipeline_wire.h"
#include "tessera/autograd/functions.h"
#include "tessera/autograd/grad_mode.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"
#include "tessera/parallel/dtype_map.h"
#include "tessera/tensor/storage.h"

namespace tessera::parallel {
namespace {

using autograd::Variable;
using Clock = std::chrono::steady_clock;

// Tags of the messages between neighbours; messages of one (peer, tag) arrive in order. A
// header's tensor follows on the next tag.
constexpr uint32_t kActivationHeader = 1;
constexpr uint32_t kGradient = 3;
constexpr uint32_t kEvalHeader = 4;

// Rows [begin, end) of micro-batch m of `rows` rows cut into `parts`.
std::pair<int64_t, int64_t> micro_rows(int64_t rows, int parts, int m) {
  return {rows * m / parts, rows * (m + 1) / parts};
}

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

struct Pipeline::MicroBatch {
  Tensor input;               // first stage: its rows of the batch
  Tensor targets;             // last stage: its rows' targets
  double weight = 0;          // its share of the batch's rows
  Variable in;                // what the stage ran on (a leaf that collects the input's gradient)
  Variable out;               // the stage's output, or on the last stage the weighted loss
  std::string dropout_state;  // the dropout generator before the forward (recompute)
};

Pipeline::Pipeline(nn::Module& stage, comm::ProcessGroup& group, PipelineOptions options)
    : module_(stage), group_(group), options_(options) {
  if (options_.micro_batches < 1) {
    throw ValueError(
        detail::concat("pipeline: micro_batches must be >= 1, got ", options_.micro_batches));
  }
}

Pipeline::~Pipeline() {
  try {
    reap_sends(true);
  } catch (...) {  // a failed send was already reported by the step that made it
  }
}

double Pipeline::train_batch(const Tensor& input, const Tensor& targets,
                             const MicroBatchLoss& loss) {
  const auto start = Clock::now();
  const int64_t rows = input.size(0);
  if (rows < 1) throw ValueError("pipeline: an empty batch");
  // A batch shorter than micro_batches (an epoch's last) has one micro-batch per row.
  const int parts = static_cast<int>(std::min<int64_t>(options_.micro_batches, rows));
  if (is_last() && targets.size(0) % rows != 0) {
    throw ValueError(detail::concat("pipeline: ", targets.size(0), " targets for ", rows,
                                    " rows; each row needs as many"));
  }
  stats_ = {};
  base_bytes_ = live_storage_bytes();
  std::map<int, MicroBatch> flight;
  double batch_loss = 0;
  for (const PipelineOp& op : pipeline_schedule(options_.schedule, stage(), stages(), parts)) {
    reap_sends(false);
    if (op.kind == PipelineOp::kForward) {
      MicroBatch& mb = flight[op.micro_batch];
      const auto [begin, end] = micro_rows(rows, parts, op.micro_batch);
      mb.weight = static_cast<double>(end - begin) / static_cast<double>(rows);
      if (is_first()) mb.input = input.slice(0, begin, end).contiguous();
      if (is_last()) {
        const int64_t per_row = targets.size(0) / rows;
        mb.targets = targets.slice(0, begin * per_row, end * per_row).contiguous();
      }
      run_forward(mb, loss);
      if (is_last()) batch_loss += mb.out.data().item();
      stats_.peak_in_flight = std::max(stats_.peak_in_flight, static_cast<int>(flight.size()));
    } else {
      run_backward(flight.at(op.micro_batch), loss);
      flight.erase(op.micro_batch);
    }
    sample_memory();
  }
  reap_sends(true);
  group_.broadcast(&batch_loss, 1, comm::DataType::kFloat64, stages() - 1)->wait();
  stats_.seconds = since(start);
  stats_.idle = std::max(0.0, stats_.seconds - stats_.compute);
  return batch_loss;
}

// The stage's output for a micro-batch: on the last stage the loss, weighted by the micro-batch's
// share of the rows.
Variable Pipeline::stage_output(MicroBatch& mb, const MicroBatchLoss& loss) {
  Variable out = module_(mb.in);
  if (!is_last()) return out;
  return autograd::mul_scalar(loss(out, mb.targets), mb.weight);
}

void Pipeline::run_forward(MicroBatch& mb, const MicroBatchLoss& loss) {
  Tensor x = is_first() ? mb.input : receive(stage() - 1, kActivationHeader, nullptr);
  mb.in = Variable(x, /*requires_grad=*/!is_first());
  if (options_.dropout) mb.dropout_state = options_.dropout->state();
  const auto start = Clock::now();
  if (options_.recompute) {
    autograd::NoGradGuard no_grad;
    mb.out = stage_output(mb, loss);
  } else {
    mb.out = stage_output(mb, loss);
  }
  stats_.compute += since(start);
  if (!is_last()) {
    send(mb.out.data().contiguous(), stage() + 1, kActivationHeader, /*with_header=*/true);
    if (options_.recompute) mb.out = Variable();
  }
}

void Pipeline::run_backward(MicroBatch& mb, const MicroBatchLoss& loss) {
  auto start = Clock::now();
  if (options_.recompute) {
    // Draw the same dropout masks as the first forward, then go on from where the generator is.
    std::string now = options_.dropout ? options_.dropout->state() : std::string();
    if (options_.dropout) options_.dropout->set_state(mb.dropout_state);
    mb.out = stage_output(mb, loss);
    if (options_.dropout) options_.dropout->set_state(now);
  }
  if (is_last()) {
    mb.out.backward();
  } else {
    stats_.compute += since(start);
    const Shape shape = mb.out.shape();
    Tensor grad = receive(stage() + 1, kGradient, &shape);
    start = Clock::now();
    mb.out.backward(grad);
  }
  stats_.compute += since(start);
  if (!is_first()) {
    Tensor g = mb.in.grad();
    if (!g.defined()) g = Tensor::zeros(mb.in.shape(), mb.in.data().dtype());
    send(g.contiguous(), stage() - 1, kGradient, /*with_header=*/false);
  }
  mb = MicroBatch{};
}

void Pipeline::send(Tensor tensor, int dst, uint32_t tag, bool with_header) {
  if (with_header) {
    Pending h{Tensor::empty({static_cast<int64_t>(kMaxTensorRank + 2)}, DType::kInt64), nullptr};
    const TensorHeader values = header_of(tensor);
    std::copy(values.begin(), values.end(), h.buffer.data<int64_t>());
    h.work = group_.send(h.buffer.raw_data(), values.size(), comm::DataType::kInt64, dst, tag);
    pending_.push_back(std::move(h));
    ++tag;  // the values follow on the next tag
  }
  Pending p{std::move(tensor), nullptr};
  p.work = group_.send(p.buffer.raw_data(), static_cast<size_t>(p.buffer.numel()),
                       to_comm(p.buffer.dtype()), dst, tag);
  pending_.push_back(std::move(p));
}

// Waits for a neighbour's tensor: of shape `known`, or announced by a header on `tag` and sent
// on tag + 1.
Tensor Pipeline::receive(int src, uint32_t tag, const Shape* known) {
  Tensor t;
  if (known) {
    t = Tensor::empty(*known);
  } else {
    TensorHeader h{};
    group_.recv(h.data(), h.size(), comm::DataType::kInt64, src, tag)->wait();
    const TensorSpec spec = decode_header(h, src, group_.name());
    t = Tensor::empty(spec.shape, spec.dtype);
    ++tag;
  }
  group_.recv(t.raw_data(), static_cast<size_t>(t.numel()), to_comm(t.dtype()), src, tag)->wait();
  return t;
}

void Pipeline::reap_sends(bool all) {
  while (!pending_.empty() && (all || pending_.front().work->is_completed())) {
    pending_.front().work->wait();
    pending_.pop_front();
  }
}

void Pipeline::sample_memory() {
  const size_t live = live_storage_bytes();
  if (live > base_bytes_) {
    stats_.peak_activation_bytes = std::max(stats_.peak_activation_bytes, live - base_bytes_);
  }
}

Tensor Pipeline::forward(const Tensor& input) {
  autograd::NoGradGuard no_grad;
  if (stages() == 1) return module_(Variable(input)).data();
  Tensor x = is_first() ? input : receive(stage() - 1, kEvalHeader, nullptr);
  Tensor y = module_(Variable(x)).data().contiguous();
  if (!is_last()) send(y, stage() + 1, kEvalHeader, /*with_header=*/true);
  // Every stage gets the last stage's output: its shape first, then its values.
  TensorHeader h = is_last() ? header_of(y) : TensorHeader{};
  group_.broadcast(h.data(), h.size(), comm::DataType::kInt64, stages() - 1)->wait();
  Tensor out = y;
  if (!is_last()) {
    const TensorSpec spec = decode_header(h, stages() - 1, group_.name());
    out = Tensor::empty(spec.shape, spec.dtype);
  }
  group_
      .broadcast(out.raw_data(), static_cast<size_t>(out.numel()), to_comm(out.dtype()),
                 stages() - 1)
      ->wait();
  reap_sends(true);
  return out;
}

}  // namespace tessera::parallel
