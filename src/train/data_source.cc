#include "tessera/train/data_source.h"

#include <cctype>

#include "tessera/core/error.h"
#include "tessera/data/builtin.h"
#include "tessera/data/csv_reader.h"
#include "tessera/data/idx_file.h"
#include "tessera/data/in_memory_dataset.h"
#include "tessera/data/libsvm_reader.h"
#include "tessera/data/mmap_idx_dataset.h"

namespace tessera::train {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::unique_ptr<data::Dataset> open_dataset(const std::string& spec, const Config& config,
                                            const std::string& key) {
  auto colon = spec.find(':');
  std::string scheme = spec.substr(0, colon);
  std::string rest = colon == std::string::npos ? "" : spec.substr(colon + 1);
  for (const auto& name : data::builtin_names()) {
    if (spec == name) return data::load_builtin(name);
  }
  if (scheme == "idx") {
    auto comma = rest.find(',');
    if (comma == std::string::npos) {
      throw ConfigError(config.source, 0, key, "expected idx:IMAGES,LABELS, got '" + spec + "'");
    }
    std::string images = rest.substr(0, comma);
    std::string labels = rest.substr(comma + 1);
    if (ends_with(images, ".gz")) {
      auto x = data::IdxFile::read(images).to_float32(1.0f / 255.0f);
      auto y = data::IdxFile::read(labels).to_int64();
      if (x.dim() == 3) x = x.reshape({x.size(0), 1, x.size(1), x.size(2)});
      return std::make_unique<data::InMemoryDataset>(x, y);
    }
    return std::make_unique<data::MmapIdxDataset>(images, labels);
  }
  if (scheme == "csv") {
    data::CsvOptions options;
    const std::string& column = config.data.label_column;
    bool numeric = !column.empty() && (std::isdigit(static_cast<unsigned char>(column[0])) ||
                                       (column[0] == '-' && column.size() > 1));
    if (numeric) {
      options.label_index = std::stoll(column);
    } else {
      options.label_column = column;
    }
    return std::make_unique<data::InMemoryDataset>(data::read_csv(rest, options));
  }
  if (scheme == "libsvm") {
    return std::make_unique<data::InMemoryDataset>(
        data::read_libsvm(rest, {.num_features = config.data.num_features}));
  }
  std::string known;
  for (const auto& name : data::builtin_names()) known += name + ", ";
  throw ConfigError(config.source, 0, key,
                    "unknown data set '" + spec + "' (known: " + known +
                        "idx:IMAGES,LABELS, csv:PATH, libsvm:PATH)");
}

}  // namespace tessera::train
