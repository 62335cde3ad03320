#pragma once

#include <chrono>

namespace tessera::comm {

// Deadline of every collective, of the rendezvous and of store waits unless set otherwise: long
// enough for a slow first step on a loaded host, short enough that a hang ends with an error.
inline constexpr std::chrono::milliseconds kDefaultTimeout = std::chrono::seconds(300);

// How long a store client keeps retrying to connect before it throws TimeoutError.
inline constexpr std::chrono::milliseconds kDefaultConnectTimeout = std::chrono::seconds(60);

// The longest wait a store honours: a longer timeout (a client's, or what the network says) is cut
// to it. Beyond any job's patience, and far from overflowing a clock's time point.
inline constexpr std::chrono::milliseconds kMaxTimeout = std::chrono::hours(24 * 365);

}  // namespace tessera::comm
