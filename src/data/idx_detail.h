#pragma once

#include <cstdint>
#include <string>

#include "tessera/data/idx_file.h"

// Shared by IdxFile and MmapIdxDataset, so both convert to bit-identical values and report
// sizes the same way. Internal to tessera_data.
namespace tessera::data {

// dst[i] = value_i * multiplier + offset for n big-endian elements of `type` at src. The switch
// on the type runs once per call; the loops are per type (and vectorise for uint8).
void idx_to_float(IdxType type, const uint8_t* src, float* dst, int64_t n, float multiplier,
                  float offset);

// dst[i] = value_i for n big-endian integer elements of `type` at src (the caller rejects float
// types).
void idx_to_int64(IdxType type, const uint8_t* src, int64_t* dst, int64_t n);

// Throws FormatError naming `path` and the byte offset unless the file's total (decompressed,
// when gz) size `available` is exactly header.data_offset + header.data_bytes().
void check_idx_size(const IdxHeader& header, int64_t available, bool gz, const std::string& path);

}  // namespace tessera::data
