#include "tessera/data/mmap_idx_dataset.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "idx_detail.h"
#include "tessera/core/error.h"

namespace tessera::data {

namespace {

// Owns a read-only mapping until released.
struct Mapping {
  void* data = nullptr;
  size_t bytes = 0;
  Mapping() = default;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (data != nullptr) munmap(data, bytes);
  }
};

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

MmapIdxDataset::MmapIdxDataset(const std::filesystem::path& images_path,
                               const std::filesystem::path& labels_path,
                               const MmapIdxOptions& options)
    : path_(images_path) {
  const std::string name = images_path.string();
  Fd file{open(name.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) {
    throw ValueError(detail::concat(name, ": cannot open: ", std::strerror(errno)));
  }
  struct stat info {};
  if (fstat(file.fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    throw ValueError(name + ": cannot map: not a regular file");
  }
  const auto file_size = static_cast<int64_t>(info.st_size);
  if (file_size == 0) {
    (void)IdxFile::parse_header({}, name);  // throws the empty-file FormatError
  }
  Mapping mapping;
  mapping.bytes = static_cast<size_t>(file_size);
  mapping.data = mmap(nullptr, mapping.bytes, PROT_READ, MAP_PRIVATE, file.fd, 0);
  if (mapping.data == MAP_FAILED) {
    mapping.data = nullptr;
    throw Error(
        detail::concat(name, ": mmap of ", file_size, " bytes failed: ", std::strerror(errno)));
  }
  const auto* bytes = static_cast<const uint8_t*>(mapping.data);
  if (file_size >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) {
    throw ValueError(detail::concat(name,
                                    ": gzip-compressed; memory mapping needs the "
                                    "uncompressed file (gunzip -k it), or read it into "
                                    "memory with IdxFile::read"));
  }
  header_ = IdxFile::parse_header(
      std::span(bytes, static_cast<size_t>(std::min<int64_t>(file_size, 4 + 4 * 255))), name);
  check_idx_size(header_, file_size, false, name);

  size_ = header_.dims[0];
  sample_shape_.assign(header_.dims.begin() + 1, header_.dims.end());
  if (options.add_channel_axis && header_.dims.size() == 3) {
    sample_shape_.insert(sample_shape_.begin(), 1);
  }
  sample_numel_ = shape_numel(sample_shape_);
  multiplier_ = static_cast<float>(options.normalize.multiplier());
  offset_ = static_cast<float>(options.normalize.offset());

  const IdxFile labels = IdxFile::read(labels_path);
  if (labels.dims().size() != 1) {
    throw FormatError(detail::concat(labels_path.string(), ": byte offset 3: labels have dims ",
                                     shape_str(labels.dims()), ", expected one dimension [N]"));
  }
  if (labels.dims()[0] != size_) {
    throw ValueError(detail::concat(labels_path.string(), ": ", labels.dims()[0], " labels, but ",
                                    name, " holds ", size_, " samples"));
  }
  labels_ = labels.to_int64();
  set_origin({labels_path.string(), {}});

  map_ = mapping.data;
  map_bytes_ = mapping.bytes;
  mapping.data = nullptr;
}

MmapIdxDataset::~MmapIdxDataset() {
  if (map_ != nullptr) munmap(map_, map_bytes_);
}

int64_t MmapIdxDataset::read_into(int64_t index, std::span<float> out) {
  check_read(index, out, "MmapIdxDataset::read_into");
  const int64_t sample_bytes = sample_numel_ * idx_type_size(header_.type);
  const uint8_t* src =
      static_cast<const uint8_t*>(map_) + header_.data_offset + index * sample_bytes;
  idx_to_float(header_.type, src, out.data(), sample_numel_, multiplier_, offset_);
  return labels_.data<int64_t>()[index];
}

int64_t MmapIdxDataset::label(int64_t index) {
  check_index(index, "MmapIdxDataset::label");
  return labels_.data<int64_t>()[index];
}

}  // namespace tessera::data
