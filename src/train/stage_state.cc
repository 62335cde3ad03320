#include "stage_state.h"

#include <functional>
#include <set>
#include <utility>

#include "section_bytes.h"
#include "tessera/tensor/tensor_io.h"

namespace tessera::train {
namespace {

// Calls `take` with each entry of a state, one at a time, so that only the entries kept are alive
// together: a stage never holds the whole model.
void for_each_entry(const std::string& bytes, const std::string& source,
                    const std::function<void(std::string name, Tensor value)>& take) {
  from_bytes(bytes, source, [&](BinaryReader& r) {
    const uint64_t count = r.read_u64();
    for (uint64_t i = 0; i < count; ++i) {
      std::string name = r.read_string();
      take(std::move(name), read_tensor(r));
    }
  });
}

// A state of `count` entries whose encoding is `body`.
std::string state_of(uint64_t count, const std::string& body) {
  return to_bytes([&](BinaryWriter& w) { w.write_u64(count); }) + body;
}

}  // namespace

std::string merge_stage_states(const std::vector<std::string>& stages, const std::string& source) {
  std::set<std::string> seen;
  const std::string body = to_bytes([&](BinaryWriter& w) {
    for (const std::string& s : stages) {
      for_each_entry(s, source, [&](std::string name, Tensor value) {
        if (!seen.insert(name).second) return;
        w.write_string(name);
        write_tensor(w, value);
      });
    }
  });
  return state_of(seen.size(), body);
}

std::string stage_state(const std::string& whole, const nn::Module& stage,
                        const std::string& source, const EntryPart& part) {
  std::set<std::string> wanted;
  for (const auto& [name, p] : stage.named_parameters()) wanted.insert(name);
  for (const auto& [name, b] : stage.named_buffers()) wanted.insert(name);
  uint64_t count = 0;
  const std::string body = to_bytes([&](BinaryWriter& w) {
    for_each_entry(whole, source, [&](std::string name, Tensor value) {
      if (!wanted.erase(name)) return;  // another stage's, or a repeat
      w.write_string(name);
      write_tensor(w, part ? part(name, value) : value);
      ++count;
    });
  });
  return state_of(count, body);
}

}  // namespace tessera::train
