#include "resume.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "tessera/core/error.h"
#include "tessera/parallel/model_sync.h"

namespace tessera::train {

std::optional<Checkpoint> checkpoint_of_rank_zero(const CheckpointDir& dir,
                                                  comm::ProcessGroup* group,
                                                  std::vector<std::string>* skipped) {
  const bool lead = group == nullptr || group->rank() == 0;
  std::optional<Checkpoint> chosen;
  if (lead) chosen = dir.latest_valid(skipped);
  if (group == nullptr || group->size() == 1) return chosen;
  // An empty path says rank 0 has none.
  const std::string path = parallel::broadcast_bytes(*group, chosen ? chosen->path : "", 0);
  if (path.empty()) return std::nullopt;
  const std::string bytes =
      parallel::broadcast_bytes(*group, lead ? encode_checkpoint(*chosen) : std::string(), 0);
  if (lead) return chosen;
  return decode_checkpoint(bytes, path);
}

void load_on_every_rank(comm::ProcessGroup* group, const std::string& path,
                        const std::function<void()>& load) {
  if (group == nullptr || group->size() == 1) {
    load();  // its own error says it best
    return;
  }
  std::string failure;
  try {
    load();
  } catch (const std::exception& e) {
    failure = e.what();
    if (failure.empty()) failure = "an error without a message";
  }
  const std::vector<std::string> failures = parallel::allgather_bytes(*group, failure);
  // Ranks that failed alike are named together: a wrong config usually fails them all.
  std::vector<std::pair<std::string, std::vector<std::size_t>>> reasons;
  for (std::size_t r = 0; r < failures.size(); ++r) {
    if (failures[r].empty()) continue;
    auto same = std::find_if(reasons.begin(), reasons.end(),
                             [&](const auto& reason) { return reason.first == failures[r]; });
    if (same == reasons.end()) {
      reasons.push_back({failures[r], {r}});
    } else {
      same->second.push_back(r);
    }
  }
  std::string message;
  for (const auto& [reason, ranks] : reasons) {
    std::string names;
    for (std::size_t r : ranks) names += (names.empty() ? "" : ", ") + std::to_string(r);
    message += detail::concat(message.empty() ? "" : "; ", ranks.size() == 1 ? "rank " : "ranks ",
                              names, " could not load it: ", reason);
  }
  if (!message.empty()) {
    throw FormatError("resume: checkpoint " + path +
                      " (rank 0's newest valid one, sent to every rank): " + message);
  }
}

}  // namespace tessera::train
