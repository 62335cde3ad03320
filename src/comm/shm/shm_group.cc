#include "shm_group_internal.h"

#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <exception>
#include <random>
#include <thread>
#include <utility>

#include "duration.h"
#include "group_setup.h"
#include "p2p_engine.h"
#include "reduce_kernels.h"
#include "tessera/comm/errors.h"
#include "tessera/core/error.h"

namespace tessera::comm {
namespace shm {
namespace {

// Group names may hold '/' and ':' (sub-groups): not in a file name.
std::string file_name_part(const std::string& text) {
  std::string out;
  for (char c : text) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    out += ok ? c : '_';
  }
  return out.substr(0, 120);
}

std::string random_hex() {
  std::random_device device;
  std::uniform_int_distribution<std::uint64_t> dist;
  const std::uint64_t value = dist(device);
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace

ShmGroup::ShmGroup(Setup setup)
    : ProcessGroup(setup.rank, setup.size, std::move(setup.options)),
      store_(std::move(setup.store)),
      key_prefix_(std::move(setup.key_prefix)),
      shm_options_(std::move(setup.shm)),
      layout_(setup.size, shm_options_.slot_bytes, shm_options_.pool_bytes) {
  join(Clock::now() + options().timeout);
  if (layout_.pool_bytes() > 0) {
    pool_ =
        std::make_unique<BufferPool>(segment_, layout_.pool_offset(rank()), layout_.pool_bytes());
  }
  worker_ = std::make_shared<OpWorker>("tessera-shm");
}

ShmGroup::~ShmGroup() { shutdown_noexcept(); }

void ShmGroup::join(Clock::time_point deadline) {
  const auto start = Clock::now();
  const std::string where =
      detail::concat("rendezvous of shared-memory group ", name(), " (rank ", rank(), " of ",
                     size(), ") through the ", store_->description());
  const std::string key = key_prefix_ + "/shm/segment";
  auto remaining = [&] {
    return std::max(std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()),
                    std::chrono::milliseconds(1));
  };
  if (rank() == 0) {
    const std::string segment_name = detail::concat(shm_options_.segment_name_prefix, "-",
                                                    random_hex(), "-", file_name_part(name()));
    segment_ = Segment::create(segment_name, layout_.total_bytes(), layout_.hot_bytes());
    base_ = segment_->base();
    SegmentHeader* header = layout_.header(base_);
    header->magic = kSegmentMagic;
    header->version = kSegmentVersion;
    header->size = size();
    header->slot_bytes = layout_.slot_bytes();
    header->ring_bytes = layout_.ring_bytes();
    header->pool_bytes = layout_.pool_bytes();
    header->total_bytes = layout_.total_bytes();
    // The store's lock orders these writes before any rank that reads the name maps the segment.
    store_->set(key, segment_name);
  } else {
    std::string segment_name;
    try {
      segment_name = store_->get(key, remaining());
    } catch (const TimeoutError&) {
      throw TimeoutError(detail::concat(where, ": rank 0 did not create the segment within ",
                                        to_ms(Clock::now() - start), " ms"));
    }
    segment_ = Segment::open(segment_name, layout_.total_bytes(), layout_.hot_bytes());
    base_ = segment_->base();
    check_header(where, segment_name);
  }
  RankBlock* mine = block(rank());
  mine->pid = static_cast<std::int32_t>(::getpid());
  shared(mine->state)
      .store(static_cast<std::uint32_t>(RankState::kRunning), std::memory_order_release);
  // Every rank waits for all to map the segment, so all fail alike when one never comes.
  std::vector<int> missing;
  for (;;) {
    missing.clear();
    for (int r = 0; r < size(); ++r) {
      if (shared(block(r)->state).load(std::memory_order_acquire) ==
          static_cast<std::uint32_t>(RankState::kJoining)) {
        missing.push_back(r);
      }
    }
    if (missing.empty()) break;
    if (Clock::now() >= deadline) {
      throw TimeoutError(detail::concat(where, ": ", rank_list(missing),
                                        " did not map the segment within ",
                                        to_ms(Clock::now() - start), " ms"));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (rank() == 0) {
    // Everyone has it mapped: from now on nothing of the group is left in /dev/shm, whatever
    // happens to the ranks. The key goes too, so a later group of this name starts afresh.
    segment_->unlink();
    store_->remove(key);
  }
}

void ShmGroup::check_header(const std::string& where, const std::string& segment_name) const {
  const SegmentHeader* header = layout_.header(base_);
  if (header->magic != kSegmentMagic || header->version != kSegmentVersion) {
    throw CommError(detail::concat(where, ": segment /dev/shm/", segment_name,
                                   " is not a tessera shared-memory segment of version ",
                                   kSegmentVersion, " (magic ", header->magic, ", version ",
                                   header->version, ")"));
  }
  if (header->size != size() || header->slot_bytes != layout_.slot_bytes() ||
      header->ring_bytes != layout_.ring_bytes() || header->pool_bytes != layout_.pool_bytes() ||
      header->total_bytes != layout_.total_bytes()) {
    throw CommError(detail::concat(
        where, ": segment /dev/shm/", segment_name, " is for ", header->size, " ranks with ",
        header->slot_bytes, "-byte slots, ", header->ring_bytes, "-byte rings and ",
        header->pool_bytes, "-byte pools in ", header->total_bytes, " bytes; this rank expects ",
        size(), ", ", layout_.slot_bytes(), ", ", layout_.ring_bytes(), " and ",
        layout_.pool_bytes(), " in ", layout_.total_bytes()));
  }
}

void ShmGroup::do_shutdown() {
  // Operations already issued run to completion (each within its deadline) first.
  if (worker_) worker_->stop();
  if (p2p_) p2p_->stop();
  if (base_ != nullptr) {
    RankBlock* mine = block(rank());
    auto state = shared(mine->state);
    if (state.load() == static_cast<std::uint32_t>(RankState::kRunning)) {
      state.store(static_cast<std::uint32_t>(RankState::kClosed));
    }
    // Ranks asleep waiting for this one wake up and see it left.
    futex_wake_all(low_word(&mine->progress));
  }
  pool_.reset();  // buffers still allocated keep the segment mapped
  segment_.reset();
  base_ = nullptr;
}

std::shared_ptr<std::byte[]> ShmGroup::do_allocate(std::size_t bytes) {
  return pool_ ? pool_->allocate(bytes) : nullptr;
}

void ShmGroup::publish_failure(RankState state, const std::string& reason) noexcept {
  RankBlock* mine = block(rank());
  auto current = shared(mine->state);
  if (current.load() != static_cast<std::uint32_t>(RankState::kRunning)) return;
  const std::size_t n = std::min(reason.size(), kReasonBytes - 1);
  std::memcpy(mine->reason, reason.data(), n);
  mine->reason[n] = '\0';
  current.store(static_cast<std::uint32_t>(state));  // seq_cst: after the text, before the wake
  futex_wake_all(low_word(&mine->progress));
}

std::shared_ptr<Work> ShmGroup::enqueue(const CallSignature& call, Body body) {
  const std::uint64_t seq = ++seq_;
  auto work = std::make_shared<AsyncWork>(describe_op(call.kind, seq, name()));
  post_work(
      worker_, work,
      [this, seq, call, body = std::move(body), work] { run(seq, call, body, *work); },
      options().timeout);
  return work;
}

void ShmGroup::run(std::uint64_t seq, const CallSignature& call, const Body& body,
                   AsyncWork& work) {
  if (std::string reason = failure_.reason(); !reason.empty()) {
    work.fail(std::make_exception_ptr(CommError(detail::concat(
        describe_op(call.kind, seq, name()), ": not run: the group failed earlier: ", reason))));
    return;
  }
  Op op;
  op.seq = seq;
  op.call = call;
  op.start = Clock::now();
  op.deadline = op.start + options().timeout;
  op.entry_step = step_;
  // Our record of the collective, read by the others when they meet us in it.
  RankBlock* mine = block(rank());
  OpRecord& record = mine->records[seq % kOpRecords];
  const CallSignature::Wire wire = call.encode();
  shared(record.seq).store(0, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  std::memcpy(record.signature, wire.data(), wire.size());
  shared(record.seq).store(seq, std::memory_order_release);
  try {
    body(op);
    shared(mine->completed).store(seq, std::memory_order_relaxed);
    work.complete();
  } catch (const CollectiveMismatchError& e) {
    fail(RankState::kMismatch, e.what(), std::current_exception(), work);
  } catch (const TimeoutError& e) {
    fail(RankState::kTimedOut, e.what(), std::current_exception(), work);
  } catch (const Error& e) {
    fail(RankState::kFailed, e.what(), std::current_exception(), work);
  } catch (const std::exception& e) {
    const std::string message = detail::concat(describe_op(call.kind, seq, name()), ": ", e.what());
    fail(RankState::kFailed, message, std::make_exception_ptr(CommError(message)), work);
  }
}

void ShmGroup::fail(RankState state, const std::string& message, std::exception_ptr error,
                    AsyncWork& work) {
  failure_.record(message);
  publish_failure(state, message);
  work.fail(std::move(error));
}

void ShmGroup::start_p2p() {
  if (p2p_) return;
  p2p_ =
      std::make_unique<P2pEngine>(base_, layout_, rank(), name(), options().timeout,
                                  [this](const std::string& reason) { failure_.record(reason); });
}

std::shared_ptr<Work> ShmGroup::failed_p2p(const char* kind, int peer, std::uint32_t tag,
                                           const std::string& reason) const {
  auto work = std::make_shared<AsyncWork>(
      detail::concat(kind, " to/from rank ", peer, " (tag ", tag, ") on group ", name()));
  work->fail(std::make_exception_ptr(CommError(
      detail::concat(work->description(), ": not run: the group failed earlier: ", reason))));
  return work;
}

std::shared_ptr<Work> ShmGroup::do_send(const void* data, std::size_t count, DataType dtype,
                                        int dst, std::uint32_t tag) {
  if (std::string reason = failure_.reason(); !reason.empty()) {
    return failed_p2p("send", dst, tag, reason);
  }
  start_p2p();
  return p2p_->send(data, count * data_type_size(dtype), dst, tag);
}

std::shared_ptr<Work> ShmGroup::do_recv(void* data, std::size_t count, DataType dtype, int src,
                                        std::uint32_t tag) {
  if (std::string reason = failure_.reason(); !reason.empty()) {
    return failed_p2p("recv", src, tag, reason);
  }
  start_p2p();
  return p2p_->recv(data, count * data_type_size(dtype), src, tag);
}

std::unique_ptr<ProcessGroup> ShmGroup::do_split(int color, int key, std::string name) {
  const int index = ++splits_;
  auto exchange = std::make_shared<std::vector<std::int64_t>>(2 * static_cast<std::size_t>(size()));
  auto mine =
      std::make_shared<std::array<std::int64_t, 2>>(std::array<std::int64_t, 2>{color, key});
  const CallSignature call{.kind = OpKind::kSplit};
  auto work = enqueue(call, [this, exchange, mine](Op& o) {
    allgatherv_chunks(
        reinterpret_cast<const std::byte*>(mine->data()),
        reinterpret_cast<std::byte*>(exchange->data()),
        std::vector<std::size_t>(static_cast<std::size_t>(size()), sizeof(std::int64_t) * 2), o);
  });
  work->wait();
  if (color == kNoColor) return nullptr;
  const SplitPlace place = split_place(*exchange, color, rank());
  Setup setup;
  setup.store = store_;
  setup.key_prefix = detail::concat(key_prefix_, "/split", index, "/", color);
  setup.rank = place.rank;
  setup.size = place.size;
  setup.options = options();
  setup.options.name =
      name.empty() ? detail::concat(this->name(), "/split", index, ":", color) : std::move(name);
  setup.shm = shm_options_;
  return std::make_unique<ShmGroup>(std::move(setup));
}

}  // namespace shm

std::unique_ptr<ProcessGroup> make_shm_group(std::shared_ptr<Store> store, int rank, int size,
                                             GroupOptions options, ShmOptions shm_options) {
  check_group_args("make_shm_group", store.get(), rank, size, options);
  const std::size_t slot = shm_options.slot_bytes;
  if (slot % shm::kCacheLine != 0 || slot < shm::kCacheLine * static_cast<std::size_t>(size)) {
    throw ValueError(detail::concat("make_shm_group: slot_bytes ", slot,
                                    " must be a multiple of 64 and at least 64 * size (", 64 * size,
                                    ")"));
  }
  const std::string& prefix = shm_options.segment_name_prefix;
  const bool prefix_ok = !prefix.empty() && prefix.size() <= 100 &&
                         std::all_of(prefix.begin(), prefix.end(), [](char c) {
                           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                  (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
                         });
  if (!prefix_ok) {
    throw ValueError(detail::concat("make_shm_group: segment_name_prefix '", prefix,
                                    "' must be 1-100 letters, digits, '-', '_' or '.'"));
  }
  shm::ShmGroup::Setup setup;
  setup.store = std::move(store);
  setup.key_prefix = "comm/" + options.name;
  setup.rank = rank;
  setup.size = size;
  setup.options = std::move(options);
  setup.shm = std::move(shm_options);
  return std::make_unique<shm::ShmGroup>(std::move(setup));
}

}  // namespace tessera::comm
