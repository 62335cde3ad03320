#pragma once

#include <functional>
#include <ostream>
#include <string>

namespace tessera {

// Replaces `path` with `bytes` so that a crash at any moment leaves either the old file or the
// new one, never a part: a temporary file in the same directory, fsync, rename over `path`, fsync
// of the directory. Throws Error naming the file and the failed step (`what` starts the message:
// "checkpoint", "ps server 1 checkpoint").
void write_file_atomically(const std::string& path, const std::string& bytes,
                           const std::string& what);
// The same with the contents written by `write` to the temporary file's stream (seekable), for
// files too large to build in memory first.
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write,
                           const std::string& what);

}  // namespace tessera
