// The TOML config loader and the model builder behind it: any text is a Config or a
// tessera::Error, and what to_toml writes reads back to the same Config.
#include <cstdint>
#include <optional>
#include <string>

#include "tessera/core/error.h"
#include "tessera/core/random.h"
#include "tessera/train/config.h"
#include "tessera/train/model_builder.h"

using namespace tessera;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::optional<train::Config> config;
  try {
    config = train::parse_config(text, "fuzz.toml");
  } catch (const Error&) {
    return 0;
  }
  // Outside the try: a config that loaded must write out as TOML that loads again, unchanged.
  const std::string once = train::to_toml(*config);
  const std::string twice = train::to_toml(train::parse_config(once, "fuzz-roundtrip.toml"));
  if (once != twice) __builtin_trap();
  try {
    Generator init(0);
    Generator dropout(0);
    (void)train::build_model(*config, {1, 8, 8}, init, dropout, nullptr, {},
                             /*memory_limit=*/64 << 20);
  } catch (const Error&) {
  }
  return 0;
}
