#pragma once

#include "tessera/core/error.h"

namespace tessera::comm {

// An operation, a wait or a connection attempt passed its deadline. The message names what was
// waited for (operation and sequence number, group, store key or address), which ranks did not
// arrive where that is known, and how long it waited.
class TimeoutError : public Error {
 public:
  using Error::Error;
};

// A communication failure that is not a timeout: a peer closed its connection, the store refused
// the job token, a group is unusable after an earlier failure. Backend exceptions
// (gloo::IoException, MPI error codes) become CommError at the backend boundary.
class CommError : public Error {
 public:
  using Error::Error;
};

// Ranks issued different collectives at the same point of their sequence (kind, dtype, count,
// root or reduce op differ). Names the first rank that diverges from rank 0 and both calls.
class CollectiveMismatchError : public CommError {
 public:
  using CommError::CommError;
};

}  // namespace tessera::comm
