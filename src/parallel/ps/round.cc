#include "round.h"

#include <algorithm>

#include "message.h"
#include "tessera/core/error.h"

namespace tessera::parallel::ps {

bool Round::add(uint32_t worker, int64_t clock) {
  if (clock != version_) {
    throw ProtocolError(detail::concat("worker ", worker, " pushed step ", clock,
                                       " while the synchronous round is at step ", version_));
  }
  if (pushed_[worker]) {
    throw ProtocolError(
        detail::concat("worker ", worker, " pushed step ", clock, " twice to the same table"));
  }
  pushed_[worker] = true;
  return ++count_ == workers();
}

void Round::finish() {
  ++version_;
  count_ = 0;
  std::fill(pushed_.begin(), pushed_.end(), false);
}

void Round::start_at(int64_t version) {
  version_ = version;
  count_ = 0;
  std::fill(pushed_.begin(), pushed_.end(), false);
}

std::string Round::missing() const {
  std::string out;
  for (size_t w = 0; w < pushed_.size(); ++w) {
    if (pushed_[w]) continue;
    if (!out.empty()) out += ", ";
    out += std::to_string(w);
  }
  return out;
}

}  // namespace tessera::parallel::ps
