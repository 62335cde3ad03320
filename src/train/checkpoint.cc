#include "tessera/train/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "tessera/core/atomic_file.h"
#include "tessera/core/crc32.h"
#include "tessera/core/error.h"

namespace tessera::train {
namespace {

constexpr char kMagic[8] = {'T', 'S', 'R', 'A', 'C', 'K', 'P', 'T'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kMaxPayload = uint64_t{1} << 40;

// Reads the little-endian fields of a checkpoint's bytes in place, each read checked against
// what is left.
class Cursor {
 public:
  Cursor(std::string_view bytes, const std::string& path) : bytes_(bytes), path_(path) {}
  template <typename T>
  T read() {
    T v;
    std::memcpy(&v, take(sizeof(T), "a field").data(), sizeof(T));
    return v;
  }
  std::string_view take(uint64_t n, const char* what) {
    if (n > bytes_.size() - at_) {
      throw FormatError(detail::concat("checkpoint ", path_, ": truncated at byte ", bytes_.size(),
                                       ": ", what, " of ", n, " bytes at byte ", at_, " has only ",
                                       bytes_.size() - at_, " bytes left"));
    }
    std::string_view out = bytes_.substr(at_, n);
    at_ += n;
    return out;
  }
  [[nodiscard]] uint64_t left() const { return bytes_.size() - at_; }

 private:
  std::string_view bytes_;
  const std::string& path_;
  uint64_t at_ = 0;
};

constexpr uint64_t kHeaderBytes = sizeof(kMagic) + sizeof(uint32_t) + sizeof(uint64_t);

}  // namespace

const std::string& Checkpoint::section(const std::string& name) const {
  auto it = sections.find(name);
  if (it == sections.end()) {
    throw FormatError("checkpoint " + path + ": missing section '" + name + "'");
  }
  return it->second;
}

std::string encode_checkpoint(const Checkpoint& checkpoint) {
  // One buffer of the final size, written once: large checkpoints are copied as few times as
  // possible (fresh memory costs a page fault a page).
  uint64_t payload = 2 * sizeof(uint64_t);
  for (const auto& [name, bytes] : checkpoint.sections) {
    payload += 2 * sizeof(uint64_t) + name.size() + bytes.size();
  }
  std::string out;
  out.reserve(kHeaderBytes + payload + sizeof(uint32_t));
  auto put = [&out](const auto& v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
  auto put_string = [&](const std::string& text) {
    put(static_cast<uint64_t>(text.size()));
    out.append(text);
  };
  out.append(kMagic, sizeof(kMagic));
  put(kVersion);
  put(payload);
  put(static_cast<int64_t>(checkpoint.step));
  put(static_cast<uint64_t>(checkpoint.sections.size()));
  for (const auto& [name, bytes] : checkpoint.sections) {
    put_string(name);
    put_string(bytes);
  }
  put(crc32(std::as_bytes(std::span(out.data() + kHeaderBytes, payload))));
  return out;
}

Checkpoint decode_checkpoint(const std::string& bytes, const std::string& path) {
  Cursor in(bytes, path);
  if (bytes.size() < sizeof(kMagic) || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    throw FormatError("checkpoint " + path + ": not a tessera checkpoint (bad magic number)");
  }
  (void)in.take(sizeof(kMagic), "the magic number");
  const auto version = in.read<uint32_t>();
  if (version != kVersion) {
    throw FormatError(detail::concat("checkpoint ", path, ": unsupported version ", version,
                                     " (this build reads version ", kVersion, ")"));
  }
  // The length lies outside the checksum: believe it only as far as the file agrees.
  const auto size = in.read<uint64_t>();
  if (size > kMaxPayload || in.left() != size + sizeof(uint32_t)) {
    throw FormatError(detail::concat("checkpoint ", path, ": the header gives a payload of ", size,
                                     " bytes, but ", in.left(),
                                     " bytes follow it (expected the payload and a 4-byte "
                                     "checksum): the file is truncated or corrupt"));
  }
  const std::string_view body = in.take(size, "the payload");
  const auto stored = in.read<uint32_t>();
  const uint32_t actual = crc32(std::as_bytes(std::span(body.data(), body.size())));
  if (stored != actual) {
    throw FormatError(detail::concat("checkpoint ", path, ": checksum mismatch (stored ", std::hex,
                                     stored, ", computed ", actual, "): the file is corrupt"));
  }
  Cursor p(body, path);
  Checkpoint c;
  c.path = path;
  c.step = p.read<int64_t>();
  if (c.step < 0) {
    throw FormatError(detail::concat("checkpoint ", path, ": negative step ", c.step));
  }
  const auto count = p.read<uint64_t>();
  for (uint64_t i = 0; i < count; ++i) {
    const std::string_view name = p.take(p.read<uint64_t>(), "a section name");
    const std::string_view section = p.take(p.read<uint64_t>(), "a section");
    c.sections[std::string(name)] = std::string(section);
  }
  return c;
}

void write_checkpoint(const std::string& path, const Checkpoint& checkpoint) {
  write_file_atomically(path, encode_checkpoint(checkpoint), "checkpoint");
}

Checkpoint read_checkpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError("checkpoint " + path + ": cannot open");
  std::string bytes;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(0);
  if (size < 0) throw FormatError("checkpoint " + path + ": cannot read its size");
  bytes.resize(static_cast<size_t>(size));
  if (!in.read(bytes.data(), size)) throw FormatError("checkpoint " + path + ": read failed");
  return decode_checkpoint(bytes, path);
}

CheckpointDir::CheckpointDir(std::string dir, int64_t keep) : dir_(std::move(dir)), keep_(keep) {
  if (keep < 1) throw ValueError(detail::concat("CheckpointDir: keep ", keep, " must be >= 1"));
}

std::vector<std::string> CheckpointDir::list() const {
  std::vector<std::string> out;
  for (auto& [step, path] : list_by_step()) out.push_back(std::move(path));
  return out;
}

int64_t CheckpointDir::newest_step() const {
  const auto all = list_by_step();
  return all.empty() ? -1 : all.back().first;
}

std::vector<std::pair<int64_t, std::string>> CheckpointDir::list_by_step() const {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("step-", 0) != 0 || entry.path().extension() != ".ckpt") continue;
    try {
      found.emplace_back(std::stoll(name.substr(5)), entry.path().string());
    } catch (const std::exception&) {
      continue;  // not one of ours
    }
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::string CheckpointDir::path_for(int64_t step) const {
  char name[64];
  std::snprintf(name, sizeof(name), "step-%010lld.ckpt", static_cast<long long>(step));
  return (std::filesystem::path(dir_) / name).string();
}

std::string CheckpointDir::save(const Checkpoint& checkpoint) {
  std::filesystem::create_directories(dir_);
  std::string path = path_for(checkpoint.step);
  write_checkpoint(path, checkpoint);
  auto all = list();
  for (size_t i = 0; i + keep_ < all.size(); ++i) std::filesystem::remove(all[i]);
  return path;
}

std::optional<Checkpoint> CheckpointDir::latest_valid(std::vector<std::string>* skipped) const {
  auto all = list();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      return read_checkpoint(*it);
    } catch (const Error& e) {
      if (skipped) skipped->push_back(e.what());
    }
  }
  return std::nullopt;
}

}  // namespace tessera::train
