#pragma once

namespace tessera::autograd {

// Whether operations on this thread record a graph for backward (default: yes).
bool grad_enabled();

// Turns graph recording off for its scope on this thread (evaluation, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace tessera::autograd
