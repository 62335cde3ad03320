#include "section_bytes.h"

#include <sstream>
#include <utility>

namespace tessera::train {

std::string to_bytes(const std::function<void(BinaryWriter&)>& write) {
  std::ostringstream out;
  BinaryWriter w(out);
  write(w);
  return std::move(out).str();  // the buffer itself, not a copy of it
}

void from_bytes(const std::string& bytes, const std::string& what,
                const std::function<void(BinaryReader&)>& read) {
  std::istringstream in(bytes);
  BinaryReader r(in, what);
  read(r);
}

}  // namespace tessera::train
