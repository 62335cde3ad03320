#include "stage_state.h"

#include <set>
#include <utility>

#include "section_bytes.h"
#include "tessera/tensor/tensor_io.h"

namespace tessera::train {
namespace {

using Entries = std::vector<std::pair<std::string, Tensor>>;

void read_entries(const std::string& bytes, const std::string& source, Entries& out,
                  std::set<std::string>& seen) {
  from_bytes(bytes, source, [&](BinaryReader& r) {
    const uint64_t count = r.read_u64();
    for (uint64_t i = 0; i < count; ++i) {
      std::string name = r.read_string();
      Tensor value = read_tensor(r);
      if (seen.insert(name).second) out.emplace_back(std::move(name), std::move(value));
    }
  });
}

std::string write_entries(const Entries& entries) {
  return to_bytes([&](BinaryWriter& w) {
    w.write_u64(entries.size());
    for (const auto& [name, value] : entries) {
      w.write_string(name);
      write_tensor(w, value);
    }
  });
}

}  // namespace

std::string merge_stage_states(const std::vector<std::string>& stages, const std::string& source) {
  Entries entries;
  std::set<std::string> seen;
  for (const std::string& s : stages) read_entries(s, source, entries, seen);
  return write_entries(entries);
}

std::string stage_state(const std::string& whole, const nn::Module& stage,
                        const std::string& source) {
  Entries all;
  std::set<std::string> seen;
  read_entries(whole, source, all, seen);
  std::set<std::string> wanted;
  for (const auto& [name, p] : stage.named_parameters()) wanted.insert(name);
  for (const auto& [name, b] : stage.named_buffers()) wanted.insert(name);
  Entries mine;
  for (auto& [name, value] : all) {
    if (wanted.count(name)) mine.emplace_back(name, std::move(value));
  }
  return write_entries(mine);
}

}  // namespace tessera::train
