#include "tessera/comm/store.h"

#include <algorithm>

#include "tessera/core/error.h"

namespace tessera::comm {

Store::Store(std::chrono::milliseconds timeout) : timeout_(std::min(timeout, kMaxTimeout)) {
  if (timeout.count() <= 0) {
    throw ValueError(detail::concat("Store: timeout ", timeout.count(), " ms must be positive"));
  }
}

Store::~Store() = default;

}  // namespace tessera::comm
