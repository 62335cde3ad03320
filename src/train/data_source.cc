#include "tessera/train/data_source.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "tessera/core/error.h"
#include "tessera/data/builtin.h"
#include "tessera/data/chunked_csv_dataset.h"
#include "tessera/data/chunked_libsvm_dataset.h"
#include "tessera/data/csv_reader.h"
#include "tessera/data/idx_file.h"
#include "tessera/data/in_memory_dataset.h"
#include "tessera/data/libsvm_reader.h"
#include "tessera/data/mmap_idx_dataset.h"
#include "tessera/data/text_dataset.h"

namespace tessera::train {
namespace {

// Rows a streamed CSV file parses at a time: a few MB of floats for tables of hundreds of columns.
constexpr int64_t kStreamedRows = 4096;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

namespace {

std::unique_ptr<data::Dataset> open_libsvm(const std::string& path, const Config& config,
                                           const DataLayout* layout) {
  data::LibsvmOptions options{.num_features = config.data.num_features};
  if (layout != nullptr) {
    if (options.num_features == 0 && layout->sample_shape.size() == 1) {
      options.num_features = layout->sample_shape[0];
    }
    options.class_labels = layout->class_labels;
  }
  if (config.data.stream) {
    return std::make_unique<data::ChunkedLibsvmDataset>(path, options, kStreamedRows);
  }
  return std::make_unique<data::InMemoryDataset>(data::read_libsvm(path, options));
}

// "PATH" or "PATH:FROM-TO" (fractions of the file); the vocabulary is the training set's.
std::unique_ptr<data::Dataset> open_text(const std::string& rest, const Config& config,
                                         const std::string& key, const DataLayout* layout) {
  if (config.data.seq_len < 1) {
    throw ConfigError(config.source, 0, "data.seq_len",
                      "must be set (>= 1) for text data ('" + key + "' reads text)");
  }
  std::string path = rest;
  double from = 0.0, to = 1.0;
  if (const auto colon = rest.rfind(':'); colon != std::string::npos) {
    const std::string range = rest.substr(colon + 1);
    const auto dash = range.find('-');
    char* end = nullptr;
    const std::string first = range.substr(0, dash);
    from = std::strtod(first.c_str(), &end);
    const bool first_ok = dash != std::string::npos && !first.empty() && *end == '\0';
    const std::string second = dash == std::string::npos ? "" : range.substr(dash + 1);
    to = std::strtod(second.c_str(), &end);
    if (!first_ok || second.empty() || *end != '\0' || !(from >= 0 && from < to && to <= 1)) {
      throw ConfigError(config.source, 0, key,
                        "expected text:PATH or text:PATH:FROM-TO with 0 <= FROM < TO <= 1 "
                        "(fractions of the file), got 'text:" +
                            rest + "'");
    }
    path = rest.substr(0, colon);
  }
  std::vector<int64_t> vocabulary;
  if (layout != nullptr) vocabulary = layout->class_labels;
  return std::make_unique<data::TextDataset>(path, config.data.seq_len, from, to,
                                             std::move(vocabulary));
}

data::CsvOptions csv_options(const Config& config) {
  data::CsvOptions options;
  const std::string& column = config.data.label_column;
  bool numeric = !column.empty() && (std::isdigit(static_cast<unsigned char>(column[0])) ||
                                     (column[0] == '-' && column.size() > 1));
  if (!numeric) {
    options.label_column = column;
    return options;
  }
  int64_t index = 0;
  const auto [end, ec] = std::from_chars(column.data(), column.data() + column.size(), index);
  if (ec != std::errc() || end != column.data() + column.size()) {
    throw ConfigError(config.source, 0, "data.label_column",
                      "'" + column + "' is neither a column name nor a column index");
  }
  options.label_index = index;
  return options;
}

std::unique_ptr<data::Dataset> open_csv(const std::string& path, const Config& config,
                                        const DataLayout* layout) {
  data::CsvOptions options = csv_options(config);
  if (layout != nullptr && layout->labels_optional && !options.label_column.empty()) {
    const data::CsvReader header(path, data::CsvOptions{});
    const auto& names = header.column_names();
    if (std::find(names.begin(), names.end(), options.label_column) == names.end()) {
      options = data::CsvOptions{};  // features alone
    }
  }
  return open_csv_file(path, options, config);
}

std::unique_ptr<data::Dataset> open_any(const std::string& spec, const Config& config,
                                        const std::string& key, const DataLayout* layout) {
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
      auto dataset = std::make_unique<data::InMemoryDataset>(x, y);
      dataset->set_origin({labels, {}});
      return dataset;
    }
    return std::make_unique<data::MmapIdxDataset>(images, labels);
  }
  if (scheme == "csv") return open_csv(rest, config, layout);
  if (scheme == "libsvm") return open_libsvm(rest, config, layout);
  if (scheme == "text") return open_text(rest, config, key, layout);
  std::string known;
  for (const auto& name : data::builtin_names()) known += name + ", ";
  throw ConfigError(config.source, 0, key,
                    "unknown data set '" + spec + "' (known: " + known +
                        "idx:IMAGES,LABELS, csv:PATH, libsvm:PATH, text:PATH[:FROM-TO])");
}

}  // namespace

std::unique_ptr<data::Dataset> open_csv_file(const std::string& path,
                                             const data::CsvOptions& options,
                                             const Config& config) {
  if (config.data.stream) {
    return std::make_unique<data::ChunkedCsvDataset>(path, options, kStreamedRows);
  }
  return std::make_unique<data::InMemoryDataset>(data::read_csv(path, options));
}

std::unique_ptr<data::Dataset> open_dataset(const std::string& spec, const Config& config,
                                            const std::string& key, const DataLayout* layout) {
  std::unique_ptr<data::Dataset> dataset = open_any(spec, config, key, layout);
  if (layout != nullptr && !layout->sample_shape.empty() &&
      dataset->sample_shape() != layout->sample_shape) {
    throw ConfigError(
        config.source, 0, key,
        detail::concat("'", spec, "' has samples of shape ", shape_str(dataset->sample_shape()),
                       ", the model takes ", shape_str(layout->sample_shape)));
  }
  return dataset;
}

}  // namespace tessera::train
