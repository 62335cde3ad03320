#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

// Number parsing shared by the text readers (CSV, LIBSVM). Internal to tessera_data.
namespace tessera::data::text {

inline bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

// The whole of s as a number (std::from_chars' general format; a leading '+' allowed).
template <typename T>
inline bool parse_number(std::string_view s, T& out) {
  if (s.size() > 1 && s.front() == '+' && s[1] != '-') s.remove_prefix(1);
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// A class label: an integer ("3", "+1", "-1") or a number with an integral value ("3.0").
inline bool parse_label(std::string_view s, int64_t& out) {
  if (parse_number(s, out)) return true;
  double value = 0.0;
  if (!parse_number(s, value) || !std::isfinite(value) || value != std::floor(value) ||
      std::fabs(value) > 9.0e15) {
    return false;
  }
  out = static_cast<int64_t>(value);
  return true;
}

// A field as an error message shows it: quoted, cut to 40 characters.
inline std::string quoted(std::string_view s) {
  constexpr size_t kMax = 40;
  std::string out;
  out.reserve(kMax + 5);
  out.push_back('\'');
  out.append(s.substr(0, kMax));
  if (s.size() > kMax) out.append("...");
  out.push_back('\'');
  return out;
}

}  // namespace tessera::data::text
