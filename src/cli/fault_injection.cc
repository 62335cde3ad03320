#include "fault_injection.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tessera/core/error.h"

namespace tessera::cli {
namespace {

[[noreturn]] void fault_error(const std::string& entry, const std::string& message) {
  throw ConfigError("environment", 0, "TESSERA_FAULTS",
                    "\"" + entry + "\": " + message +
                        " (KIND:rank=R:step=S[:attempt=A|any][:ms=M], KIND sigkill, host, "
                        "sigstop, exit or slow)");
}

std::int64_t number(const std::string& entry, const std::string& text) {
  std::size_t used = 0;
  long long v = -1;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || v < 0)
    fault_error(entry, "\"" + text + "\" is not a count");
  return v;
}

Fault parse_fault(const std::string& entry) {
  std::istringstream parts(entry);
  std::string part;
  std::getline(parts, part, ':');
  Fault f;
  bool known = false;
  for (Fault::Kind kind :
       {Fault::Kind::kSigkill, Fault::Kind::kHost, Fault::Kind::kSigstop, Fault::Kind::kExit,
        Fault::Kind::kSlow, Fault::Kind::kCorrupt, Fault::Kind::kTruncate}) {
    if (part == fault_name(kind)) {
      f.kind = kind;
      known = true;
    }
  }
  if (!known) fault_error(entry, "unknown kind \"" + part + "\"");
  bool has_rank = false;
  bool has_step = false;
  while (std::getline(parts, part, ':')) {
    const std::size_t eq = part.find('=');
    const std::string key = part.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : part.substr(eq + 1);
    if (key == "rank") {
      f.rank = static_cast<int>(number(entry, value));
      has_rank = true;
    } else if (key == "step") {
      f.step = number(entry, value);
      has_step = true;
    } else if (key == "ms") {
      f.ms = number(entry, value);
    } else if (key == "attempt") {
      f.attempt = value == "any" ? -1 : static_cast<int>(number(entry, value));
    } else {
      fault_error(entry, "unknown field \"" + key + "\"");
    }
  }
  if (!has_rank || !has_step) fault_error(entry, "needs rank= and step=");
  return f;
}

// The newest step-*.ckpt in `dir` (names sort by step), or "" when there is none.
std::string newest_checkpoint(const std::string& dir) {
  std::string newest;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step-", 0) == 0 && entry.path().extension() == ".ckpt" &&
        (newest.empty() || name > std::filesystem::path(newest).filename().string())) {
      newest = entry.path().string();
    }
  }
  return newest;
}

// Damages the newest checkpoint as `kind` says and says which.
void damage_newest_checkpoint(Fault::Kind kind, const std::string& dir) {
  const std::string path = newest_checkpoint(dir);
  if (path.empty()) return;
  const auto size = std::filesystem::file_size(path);
  if (kind == Fault::Kind::kTruncate) {
    std::filesystem::resize_file(path, size / 2);
  } else {
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(static_cast<std::streamoff>(size / 2));
    const char byte = static_cast<char>(file.get() ^ 0x5a);
    file.seekp(static_cast<std::streamoff>(size / 2));
    file.put(byte);
  }
  std::fprintf(stderr, "fault injected: %s %s\n", fault_name(kind), path.c_str());
}

}  // namespace

const char* fault_name(Fault::Kind kind) {
  switch (kind) {
    case Fault::Kind::kSigkill:
      return "sigkill";
    case Fault::Kind::kHost:
      return "host";
    case Fault::Kind::kSigstop:
      return "sigstop";
    case Fault::Kind::kExit:
      return "exit";
    case Fault::Kind::kSlow:
      return "slow";
    case Fault::Kind::kCorrupt:
      return "corrupt";
    case Fault::Kind::kTruncate:
      return "truncate";
  }
  return "?";
}

std::vector<Fault> parse_faults(const std::string& text) {
  std::vector<Fault> faults;
  std::istringstream entries(text);
  for (std::string entry; std::getline(entries, entry, ',');) {
    if (!entry.empty()) faults.push_back(parse_fault(entry));
  }
  return faults;
}

std::function<void(int64_t)> fault_hook(const std::vector<Fault>& faults, int rank, int attempt,
                                        const std::string& checkpoint_dir) {
  std::vector<Fault> mine;
  for (const Fault& f : faults) {
    if (f.rank == rank && (f.attempt == -1 || f.attempt == attempt)) mine.push_back(f);
  }
  if (mine.empty()) return nullptr;
  return [mine, rank, checkpoint_dir](int64_t step) {
    for (const Fault& f : mine) {
      if (f.step != step) continue;
      std::fprintf(stderr, "fault injected: rank %d at step %lld: %s\n", rank,
                   static_cast<long long>(step), fault_name(f.kind));
      std::fflush(stderr);
      switch (f.kind) {
        case Fault::Kind::kSlow:
          std::this_thread::sleep_for(std::chrono::milliseconds(f.ms));
          break;
        case Fault::Kind::kExit:
          ::_exit(1);
        case Fault::Kind::kHost:
          ::kill(::getppid(), SIGKILL);
          ::raise(SIGKILL);
          break;
        case Fault::Kind::kCorrupt:
        case Fault::Kind::kTruncate:
          damage_newest_checkpoint(f.kind, checkpoint_dir);
          std::fflush(stderr);
          ::raise(SIGKILL);
          break;
        case Fault::Kind::kSigkill:
          ::raise(SIGKILL);
          break;
        case Fault::Kind::kSigstop:
          ::raise(SIGSTOP);
          break;
      }
    }
  };
}

}  // namespace tessera::cli
