#include "tessera/parallel/model_sync.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "tessera/comm/work.h"
#include "tessera/core/error.h"
#include "tessera/parallel/dtype_map.h"

namespace tessera::parallel {
namespace {

std::string describe(const std::string& name, const Tensor& t) {
  return name + " " + shape_str(t.shape()) + " " + dtype_name(t.dtype());
}

}  // namespace

std::vector<std::string> allgather_bytes(comm::ProcessGroup& group, const std::string& bytes) {
  const int n = group.size();
  std::vector<int64_t> lengths(static_cast<std::size_t>(n));
  int64_t length = static_cast<int64_t>(bytes.size());
  group.allgather(&length, lengths.data(), 1, comm::DataType::kInt64)->wait();
  // Bytes travel as zero-padded int32 words: comm has no byte type.
  std::vector<std::size_t> words(lengths.size());
  std::size_t total_words = 0;
  for (std::size_t r = 0; r < lengths.size(); ++r) {
    words[r] = (static_cast<std::size_t>(lengths[r]) + 3) / 4;
    total_words += words[r];
  }
  std::vector<int32_t> in((bytes.size() + 3) / 4, 0);
  if (!bytes.empty()) std::memcpy(in.data(), bytes.data(), bytes.size());
  std::vector<int32_t> out(total_words);
  group.allgatherv(in.data(), in.size(), out.data(), words, comm::DataType::kInt32)->wait();
  std::vector<std::string> all;
  std::size_t at = 0;
  for (std::size_t r = 0; r < lengths.size(); ++r) {
    all.emplace_back(reinterpret_cast<const char*>(out.data() + at),
                     static_cast<std::size_t>(lengths[r]));
    at += words[r];
  }
  return all;
}

std::string broadcast_bytes(comm::ProcessGroup& group, const std::string& bytes, int root) {
  const bool sending = group.rank() == root;
  int64_t length = sending ? static_cast<int64_t>(bytes.size()) : 0;
  group.broadcast(&length, 1, comm::DataType::kInt64, root)->wait();
  TESSERA_CHECK(length >= 0, "broadcast_bytes: rank ", root, " sent length ", length);
  // Zero-padded int32 words, as in allgather_bytes.
  std::vector<int32_t> words((static_cast<std::size_t>(length) + 3) / 4, 0);
  if (sending && !bytes.empty()) std::memcpy(words.data(), bytes.data(), bytes.size());
  group.broadcast(words.data(), words.size(), comm::DataType::kInt32, root)->wait();
  return {reinterpret_cast<const char*>(words.data()), static_cast<std::size_t>(length)};
}

void check_same_model(const nn::Module& model, comm::ProcessGroup& group, const char* who) {
  std::string mine;
  for (auto& [name, p] : model.named_parameters()) mine += describe(name, p.data()) + "\n";
  for (auto& [name, b] : model.named_buffers()) mine += describe(name, b) + "\n";
  const int n = group.size();
  std::vector<std::string> models = allgather_bytes(group, mine);
  auto lines = [](const std::string& s) {
    std::vector<std::string> v;
    std::size_t start = 0;
    while (start < s.size()) {
      std::size_t end = s.find('\n', start);
      v.push_back(s.substr(start, end - start));
      start = end + 1;
    }
    return v;
  };
  auto reference = lines(models[0]);
  for (int r = 1; r < n; ++r) {
    auto other = lines(models[static_cast<std::size_t>(r)]);
    for (std::size_t i = 0; i < std::max(reference.size(), other.size()); ++i) {
      std::string a = i < reference.size() ? reference[i] : "(nothing)";
      std::string b = i < other.size() ? other[i] : "(nothing)";
      if (a != b) {
        throw Error(detail::concat(who,
                                   ": the ranks built different models: "
                                   "entry ",
                                   i, " is '", a, "' on rank 0 but '", b, "' on rank ", r));
      }
    }
  }
}

void broadcast_module(const nn::Module& model, comm::ProcessGroup& group) {
  std::vector<std::shared_ptr<comm::Work>> works;
  std::vector<Tensor> targets;
  for (auto& [name, p] : model.named_parameters()) targets.push_back(p.data());
  for (auto& [name, b] : model.named_buffers()) targets.push_back(b);
  for (auto& t : targets) {
    if (!t.is_contiguous())
      throw ValueError("broadcast_module: non-contiguous parameter or buffer");
    works.push_back(
        group.broadcast(t.raw_data(), static_cast<std::size_t>(t.numel()), to_comm(t.dtype()), 0));
  }
  for (auto& w : works) w->wait();
}

}  // namespace tessera::parallel
