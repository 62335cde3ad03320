#include "tessera/data/builtin.h"

#include <system_error>

#include "tessera/core/error.h"
#include "tessera/data/idx_file.h"

namespace tessera::data {

namespace {

struct BuiltinEntry {
  const char* name;
  const char* folder;
  const char* package;
  const char* images;  // file name without .gz
  const char* labels;
};

constexpr BuiltinEntry kBuiltins[] = {
    {"fashion-mnist:train", "fashion-mnist", "dataset-fashion-mnist", "train-images-idx3-ubyte",
     "train-labels-idx1-ubyte"},
    {"fashion-mnist:test", "fashion-mnist", "dataset-fashion-mnist", "t10k-images-idx3-ubyte",
     "t10k-labels-idx1-ubyte"},
};

bool is_file(const std::filesystem::path& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

// The .gz file as Debian installs it, else an uncompressed copy; throws naming the package.
std::filesystem::path find_file(const BuiltinEntry& entry, const char* file,
                                const BuiltinOptions& options) {
  const std::filesystem::path dir = options.root / entry.folder;
  const std::filesystem::path gz = dir / (std::string(file) + ".gz");
  if (is_file(gz)) return gz;
  const std::filesystem::path plain = dir / file;
  if (is_file(plain)) return plain;
  throw ValueError(detail::concat(
      "load_builtin(\"", entry.name, "\"): ", gz.string(),
      " not found; install the Debian package ", entry.package, " (sudo apt-get install ",
      entry.package, ")",
      options.root == BuiltinOptions{}.root
          ? ""
          : detail::concat(", which installs it under ", BuiltinOptions{}.root.string(),
                           ", or copy the files into ", dir.string())));
}

}  // namespace

std::unique_ptr<ByteImageDataset> load_builtin(const std::string& name,
                                               const BuiltinOptions& options) {
  for (const BuiltinEntry& entry : kBuiltins) {
    if (name != entry.name) continue;
    const std::filesystem::path images_path = find_file(entry, entry.images, options);
    const std::filesystem::path labels_path = find_file(entry, entry.labels, options);
    IdxFile images = IdxFile::read(images_path);
    if (images.dims().size() != 3 || images.type() != IdxType::kUInt8) {
      throw FormatError(detail::concat(
          images_path.string(), ": byte offset 2: ", idx_type_name(images.type()), " dims ",
          shape_str(images.dims()), ", expected unsigned bytes [N, rows, columns]"));
    }
    const Shape dims = images.dims();
    const IdxFile labels = IdxFile::read(labels_path);
    if (labels.dims().size() != 1 || labels.dims()[0] != dims[0]) {
      throw FormatError(detail::concat(labels_path.string(), ": byte offset 4: dims ",
                                       shape_str(labels.dims()), ", expected [", dims[0],
                                       "] to match ", images_path.string()));
    }
    auto dataset =
        std::make_unique<ByteImageDataset>(std::move(images).take_raw(), Shape{1, dims[1], dims[2]},
                                           labels.to_int64(), options.normalize);
    dataset->set_origin({labels_path.string(), {}});
    return dataset;
  }
  std::string known;
  for (const BuiltinEntry& entry : kBuiltins) {
    known += known.empty() ? "" : ", ";
    known += entry.name;
  }
  throw ValueError(detail::concat("load_builtin: unknown data set \"", name, "\"; known: ", known,
                                  name.starts_with("mnist")
                                      ? " (Debian packages no MNIST; read its IDX files with "
                                        "IdxFile::read)"
                                      : ""));
}

std::vector<std::string> builtin_names() {
  std::vector<std::string> names;
  for (const BuiltinEntry& entry : kBuiltins) names.emplace_back(entry.name);
  return names;
}

}  // namespace tessera::data
