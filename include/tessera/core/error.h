#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace tessera {

// Base of every error tessera throws on a user's mistake or a failed operation.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A tensor's shape does not fit the operation (names the op and the shapes).
class ShapeError : public Error {
 public:
  using Error::Error;
};

// A tensor's dtype does not fit the operation.
class DTypeError : public Error {
 public:
  using Error::Error;
};

// An index (class label, embedding row, axis) lies outside its range.
class IndexError : public Error {
 public:
  using Error::Error;
};

// A value that is not valid for its parameter (negative size, unknown name).
class ValueError : public Error {
 public:
  using Error::Error;
};

// Serialized data (checkpoint, state) that cannot be read back.
class FormatError : public Error {
 public:
  using Error::Error;
};

// A configuration mistake: names the file, the line (0 when unknown, e.g. a --set override) and
// the key ("optimizer.lr"); what() reads "FILE:LINE: KEY: MESSAGE".
class ConfigError : public Error {
 public:
  ConfigError(std::string file, int line, std::string key, const std::string& message)
      : Error(format(file, line, key, message)),
        file_(std::move(file)),
        line_(line),
        key_(std::move(key)) {}
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  const std::string& key() const { return key_; }

 private:
  static std::string format(const std::string& file, int line, const std::string& key,
                            const std::string& message) {
    std::ostringstream out;
    out << file;
    if (line > 0) out << ':' << line;
    out << ": ";
    if (!key.empty()) out << key << ": ";
    out << message;
    return out.str();
  }
  std::string file_;
  int line_;
  std::string key_;
};

// An internal invariant failed: a bug in tessera, not in the caller's input.
class InternalError : public Error {
 public:
  using Error::Error;
};

namespace detail {

template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

}  // namespace detail

}  // namespace tessera

// Throws InternalError with file:line when an internal invariant does not hold.
#define TESSERA_CHECK(cond, ...)                                                  \
  do {                                                                            \
    if (!(cond)) {                                                                \
      throw ::tessera::InternalError(::tessera::detail::concat(                   \
          __FILE__, ":", __LINE__, ": check failed: " #cond " ", ##__VA_ARGS__)); \
    }                                                                             \
  } while (0)

#define TESSERA_CHECK_EQ(a, b, ...)                                                                \
  do {                                                                                             \
    const auto& tessera_a_ = (a);                                                                  \
    const auto& tessera_b_ = (b);                                                                  \
    if (!(tessera_a_ == tessera_b_)) {                                                             \
      throw ::tessera::InternalError(                                                              \
          ::tessera::detail::concat(__FILE__, ":", __LINE__, ": check failed: " #a " == " #b " (", \
                                    tessera_a_, " vs ", tessera_b_, ") ", ##__VA_ARGS__));         \
    }                                                                                              \
  } while (0)
