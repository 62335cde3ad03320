#include "tessera/train/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tessera/core/atomic_file.h"
#include "tessera/core/crc32.h"
#include "tessera/core/error.h"
#include "tessera/core/serialize.h"

namespace tessera::train {
namespace {

constexpr char kMagic[8] = {'T', 'S', 'R', 'A', 'C', 'K', 'P', 'T'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kMaxPayload = uint64_t{1} << 40;

Checkpoint decode_stream(std::istream& in, const std::string& path) {
  BinaryReader r(in, "checkpoint " + path);
  char magic[8];
  r.read_bytes(std::as_writable_bytes(std::span(magic)));
  if (std::memcmp(magic, kMagic, sizeof(kMagic)) != 0) {
    throw FormatError("checkpoint " + path + ": not a tessera checkpoint (bad magic number)");
  }
  uint32_t version = r.read_u32();
  if (version != kVersion) {
    throw FormatError(detail::concat("checkpoint ", path, ": unsupported version ", version,
                                     " (this build reads version ", kVersion, ")"));
  }
  // The length lies outside the checksum: believe it only as far as the file agrees.
  const uint64_t size = r.read_u64();
  const std::optional<uint64_t> left = r.remaining();
  if (size > kMaxPayload || !left || *left != size + sizeof(uint32_t)) {
    throw FormatError(detail::concat("checkpoint ", path, ": the header gives a payload of ", size,
                                     " bytes, but ", left.value_or(0),
                                     " bytes follow it (expected the payload and a 4-byte "
                                     "checksum): the file is truncated or corrupt"));
  }
  std::string body(size, '\0');
  r.read_bytes(std::as_writable_bytes(std::span(body.data(), body.size())));
  uint32_t stored = r.read_u32();
  uint32_t actual = crc32(std::as_bytes(std::span(body.data(), body.size())));
  if (stored != actual) {
    throw FormatError(detail::concat("checkpoint ", path, ": checksum mismatch (stored ", std::hex,
                                     stored, ", computed ", actual, "): the file is corrupt"));
  }
  std::istringstream payload(body);
  BinaryReader p(payload, "checkpoint " + path);
  Checkpoint c;
  c.path = path;
  c.step = p.read_i64();
  if (c.step < 0) {
    throw FormatError(detail::concat("checkpoint ", path, ": negative step ", c.step));
  }
  uint64_t count = p.read_u64();
  for (uint64_t i = 0; i < count; ++i) {
    std::string name = p.read_string();
    c.sections[name] = p.read_string(kMaxPayload);
  }
  return c;
}

}  // namespace

const std::string& Checkpoint::section(const std::string& name) const {
  auto it = sections.find(name);
  if (it == sections.end()) {
    throw FormatError("checkpoint " + path + ": missing section '" + name + "'");
  }
  return it->second;
}

std::string encode_checkpoint(const Checkpoint& checkpoint) {
  std::ostringstream payload;
  BinaryWriter w(payload);
  w.write_i64(checkpoint.step);
  w.write_u64(checkpoint.sections.size());
  for (const auto& [name, bytes] : checkpoint.sections) {
    w.write_string(name);
    w.write_string(bytes);
  }
  std::string body = payload.str();
  std::ostringstream file;
  BinaryWriter f(file);
  f.write_bytes(std::as_bytes(std::span(kMagic)));
  f.write_u32(kVersion);
  f.write_u64(body.size());
  f.write_bytes(std::as_bytes(std::span(body.data(), body.size())));
  f.write_u32(crc32(std::as_bytes(std::span(body.data(), body.size()))));
  return file.str();
}

void write_checkpoint(const std::string& path, const Checkpoint& checkpoint) {
  write_file_atomically(path, encode_checkpoint(checkpoint), "checkpoint");
}

Checkpoint read_checkpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FormatError("checkpoint " + path + ": cannot open");
  return decode_stream(in, path);
}

Checkpoint decode_checkpoint(const std::string& bytes, const std::string& path) {
  std::istringstream in(bytes);
  return decode_stream(in, path);
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
