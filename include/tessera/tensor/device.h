#pragma once

#include <string>

namespace tessera {

// Where a tensor's storage lives. Only the CPU exists today; a CUDA backend adds kCuda behind the
// same Tensor interface.
enum class DeviceType { kCpu };

struct Device {
  DeviceType type = DeviceType::kCpu;
  int index = 0;
  bool operator==(const Device&) const = default;
};

inline std::string device_name(Device device) {
  return device.type == DeviceType::kCpu ? "cpu" : "unknown";
}

}  // namespace tessera
