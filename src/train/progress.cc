#include "tessera/train/progress.h"

#include <unistd.h>

#include <algorithm>

namespace tessera::train {

Progress::Progress(std::FILE* out, int64_t every)
    : out_(out), tty_(out != nullptr && ::isatty(::fileno(out))), every_(every) {}

void Progress::start_epoch(int64_t epoch, int64_t epochs, int64_t total) {
  epoch_ = epoch;
  epochs_ = epochs;
  total_ = total;
  start_ = std::chrono::steady_clock::now();
  last_draw_ = {};
}

void Progress::update(int64_t done, double loss, double samples_per_s) {
  if (out_ == nullptr) return;
  auto now = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double eta = done > 0 && total_ > done
                   ? elapsed / static_cast<double>(done) * static_cast<double>(total_ - done)
                   : 0.0;
  if (tty_) {
    // Redraw at most 10 times a second: drawing is not free and nobody reads faster.
    if (now - last_draw_ < std::chrono::milliseconds(100) && done != total_) return;
    last_draw_ = now;
    constexpr int kWidth = 30;
    int filled =
        total_ > 0 ? static_cast<int>(kWidth * std::min<int64_t>(done, total_) / total_) : 0;
    std::string bar(static_cast<size_t>(filled), '=');
    bar.resize(kWidth, ' ');
    std::fprintf(out_, "\repoch %lld/%lld [%s] %lld/%lld  loss %.4f  %.0f samples/s  ETA %.0fs ",
                 static_cast<long long>(epoch_ + 1), static_cast<long long>(epochs_), bar.c_str(),
                 static_cast<long long>(done), static_cast<long long>(total_), loss, samples_per_s,
                 eta);
    std::fflush(out_);
  } else if (done % every_ == 0 || done == total_) {
    std::fprintf(out_, "epoch %lld/%lld step %lld/%lld  loss %.4f  %.0f samples/s  ETA %.0fs\n",
                 static_cast<long long>(epoch_ + 1), static_cast<long long>(epochs_),
                 static_cast<long long>(done), static_cast<long long>(total_), loss, samples_per_s,
                 eta);
    std::fflush(out_);
  }
}

void Progress::end_epoch(const std::string& summary) {
  if (out_ == nullptr) return;
  if (tty_) std::fprintf(out_, "\n");
  if (!summary.empty()) std::fprintf(out_, "%s\n", summary.c_str());
  std::fflush(out_);
}

}  // namespace tessera::train
