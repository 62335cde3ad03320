#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <typeinfo>
#include <vector>

namespace tessera::data::testing {

// A fresh directory under the test temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::path(::testing::TempDir()) / "tessera_data_XXXXXX");
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] std::filesystem::path operator/(const std::string& name) const {
    return path_ / name;
  }

  // Writes bytes to name and returns its path.
  std::filesystem::path write(const std::string& name, const std::string& bytes) const {
    const std::filesystem::path p = path_ / name;
    std::ofstream out(p, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + p.string());
    return p;
  }
  std::filesystem::path write(const std::string& name, const std::vector<uint8_t>& bytes) const {
    return write(name, std::string(bytes.begin(), bytes.end()));
  }
  // Writes bytes gzip-compressed.
  std::filesystem::path write_gz(const std::string& name, const std::vector<uint8_t>& bytes) const {
    const std::filesystem::path p = path_ / name;
    gzFile f = gzopen(p.c_str(), "wb");
    if (f == nullptr) throw std::runtime_error("cannot write " + p.string());
    const int written = gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
    if (written != static_cast<int>(bytes.size())) throw std::runtime_error("gzwrite failed");
    return p;
  }

 private:
  std::filesystem::path path_;
};

// The bytes of an IDX file: magic 0 0 type ndims, big-endian dims, then payload as given.
inline std::vector<uint8_t> idx_bytes(uint8_t type, const std::vector<uint32_t>& dims,
                                      const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> out{0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    out.push_back(static_cast<uint8_t>(d >> 24));
    out.push_back(static_cast<uint8_t>(d >> 16));
    out.push_back(static_cast<uint8_t>(d >> 8));
    out.push_back(static_cast<uint8_t>(d));
  }
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

// n bytes 0, 1, 2, ... (mod 256).
inline std::vector<uint8_t> ramp(size_t n, uint8_t start = 0) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(start + i);
  return out;
}

// Runs fn, expects it to throw exactly E (or a subclass), and returns what(); an empty string
// (with a test failure) otherwise.
template <typename E, typename Fn>
std::string thrown_message(Fn&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected " << typeid(E).name() << ", got another error: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected " << typeid(E).name() << ", nothing thrown";
  return "";
}

}  // namespace tessera::data::testing

// Asserts that `statement` throws `type` whose what() contains every one of the given strings.
#define EXPECT_THROW_WITH(statement, type, ...)                                      \
  do {                                                                               \
    const std::string tessera_message_ =                                             \
        ::tessera::data::testing::thrown_message<type>([&] { (void)(statement); });  \
    for (const std::string& tessera_part_ : std::vector<std::string>{__VA_ARGS__}) { \
      EXPECT_NE(tessera_message_.find(tessera_part_), std::string::npos)             \
          << "message lacks \"" << tessera_part_ << "\": " << tessera_message_;      \
    }                                                                                \
  } while (0)
