#include <gtest/gtest.h>

#include <vector>

#include "data_test_util.h"
#include "tessera/core/error.h"
#include "tessera/data/chunked_csv_dataset.h"
#include "tessera/data/csv_reader.h"
#include "tessera/data/idx_file.h"
#include "tessera/data/in_memory_dataset.h"
#include "tessera/data/mmap_idx_dataset.h"

namespace tessera::data {
namespace {

using testing::idx_bytes;
using testing::ramp;
using testing::TempDir;

InMemoryDataset small_dataset() {
  // 4 samples of shape [2, 3]: sample i holds 10*i + 0..5.
  std::vector<float> x;
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 6; ++j) x.push_back(static_cast<float>(10 * i + j));
  }
  return InMemoryDataset(Tensor::from_vector(x, {4, 2, 3}),
                         Tensor::from_vector(std::vector<int64_t>{5, 6, 7, 8}, {4}));
}

TEST(InMemoryDataset, GetReturnsOneSampleAndItsLabel) {
  InMemoryDataset data = small_dataset();
  EXPECT_EQ(data.size(), 4);
  EXPECT_EQ(data.sample_shape(), (Shape{2, 3}));
  const Example e = data.get(2);
  EXPECT_EQ(e.features.shape(), (Shape{2, 3}));
  EXPECT_EQ(e.features.to_vector<float>(), (std::vector<float>{20, 21, 22, 23, 24, 25}));
  EXPECT_EQ(e.label, 7);
}

TEST(InMemoryDataset, GetBatchGathersInTheGivenOrder) {
  InMemoryDataset data = small_dataset();
  const std::vector<int64_t> indices{3, 0, 3};
  const Batch b = data.get_batch(indices);
  EXPECT_EQ(b.x.shape(), (Shape{3, 2, 3}));
  EXPECT_EQ(b.x.dtype(), DType::kFloat32);
  EXPECT_EQ(b.y.dtype(), DType::kInt64);
  EXPECT_EQ(b.y.to_vector<int64_t>(), (std::vector<int64_t>{8, 5, 8}));
  EXPECT_EQ(b.x.at({1, 1, 2}), 5.0);
  EXPECT_EQ(b.x.at({2, 0, 0}), 30.0);
  EXPECT_EQ(b.size(), 3);
}

TEST(InMemoryDataset, ConvertsDtypesAndNonContiguousInput) {
  // float64 features, transposed (non-contiguous); int32 labels.
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {3, 2}).t();  // [2, 3]
  InMemoryDataset data(x, Tensor::from_vector(std::vector<int32_t>{1, 0}, {2}));
  EXPECT_EQ(data.features().dtype(), DType::kFloat32);
  EXPECT_EQ(data.get(1).features.to_vector<float>(), (std::vector<float>{2, 4, 6}));
  EXPECT_EQ(data.labels().dtype(), DType::kInt64);
}

TEST(InMemoryDataset, RejectsMismatchedShapesDtypesAndIndices) {
  EXPECT_THROW_WITH(InMemoryDataset(Tensor::zeros({3, 2}), Tensor::zeros({4}, DType::kInt64)),
                    ShapeError, "labels [4]", "N = 3");
  EXPECT_THROW_WITH(InMemoryDataset(Tensor::zeros({3, 2}), Tensor::zeros({3})), DTypeError,
                    "labels are float32");
  EXPECT_THROW_WITH(
      InMemoryDataset(Tensor::zeros({3}, DType::kInt64), Tensor::zeros({3}, DType::kInt64)),
      DTypeError, "features are int64");
  EXPECT_THROW_WITH(InMemoryDataset(Tensor::scalar(1.0), Tensor::zeros({1}, DType::kInt64)),
                    ShapeError, "leading sample axis");
  InMemoryDataset data = small_dataset();
  EXPECT_THROW_WITH(data.get(4), IndexError, "index 4", "[0, 4)");
  EXPECT_THROW_WITH(data.get(-1), IndexError, "index -1");
  std::vector<float> wrong(5);
  EXPECT_THROW_WITH(data.read_into(0, wrong), ShapeError, "holds 5 floats", "needs 6");
}

TEST(MmapIdxDataset, GivesTheSameValuesAsTheInMemoryReader) {
  TempDir dir;
  // 5 images of 3x4, bytes spread over 0..255.
  std::vector<uint8_t> pixels(60);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 37 % 256);
  const auto images = dir.write("images", idx_bytes(0x08, {5, 3, 4}, pixels));
  const auto labels = dir.write_gz("labels.gz", idx_bytes(0x08, {5}, {4, 3, 2, 1, 0}));
  const NormalizeOptions norm{.mean = 0.25, .std = 0.5};
  MmapIdxDataset mapped(images, labels, {.normalize = norm});
  EXPECT_EQ(mapped.size(), 5);
  EXPECT_EQ(mapped.sample_shape(), (Shape{1, 3, 4}));

  const Tensor expected = IdxFile::read(images).to_float32(static_cast<float>(norm.multiplier()),
                                                           static_cast<float>(norm.offset()));
  InMemoryDataset in_memory(expected.reshape({5, 1, 3, 4}), IdxFile::read(labels).to_int64());
  const std::vector<int64_t> order{4, 1, 0, 3, 2};
  const Batch a = mapped.get_batch(order);
  const Batch b = in_memory.get_batch(order);
  EXPECT_EQ(a.x.shape(), b.x.shape());
  EXPECT_EQ(a.x.to_vector<float>(), b.x.to_vector<float>());  // bit-identical
  EXPECT_EQ(a.y.to_vector<int64_t>(), (std::vector<int64_t>{0, 3, 4, 1, 2}));
  // And the normalisation is (raw / 255 - mean) / std.
  EXPECT_NEAR(a.x.at({0, 0, 0, 1}), (pixels[4 * 12 + 1] / 255.0 - 0.25) / 0.5, 1e-6);

  MmapIdxDataset flat(images, labels, {.add_channel_axis = false});
  EXPECT_EQ(flat.sample_shape(), (Shape{3, 4}));
}

TEST(MmapIdxDataset, RejectsGzipTruncatedAndMismatchedFiles) {
  TempDir dir;
  const auto labels = dir.write("labels", idx_bytes(0x08, {2}, {1, 0}));
  const auto gz = dir.write_gz("images.gz", idx_bytes(0x08, {2, 2, 2}, ramp(8)));
  EXPECT_THROW_WITH(MmapIdxDataset(gz, labels), ValueError, gz.string(), "gzip", "gunzip");

  // Dims [2, 2, 2] need 8 data bytes; 5 are there.
  const auto cut = dir.write("cut", idx_bytes(0x08, {2, 2, 2}, ramp(5)));
  EXPECT_THROW_WITH(MmapIdxDataset(cut, labels), FormatError, cut.string(),
                    "truncated at byte offset 21", "24 bytes");

  auto magic = idx_bytes(0x08, {2, 2, 2}, ramp(8));
  magic[1] = 7;
  const auto bad = dir.write("bad", magic);
  EXPECT_THROW_WITH(MmapIdxDataset(bad, labels), FormatError, bad.string(), "byte offset 0",
                    "magic number");

  const auto three = dir.write("three", idx_bytes(0x08, {3, 2, 2}, ramp(12)));
  EXPECT_THROW_WITH(MmapIdxDataset(three, labels), ValueError, "2 labels", "3 samples");

  const auto empty = dir.write("empty", std::string());
  EXPECT_THROW_WITH(MmapIdxDataset(empty, labels), FormatError, empty.string(), "empty file");
  EXPECT_THROW_WITH(MmapIdxDataset(dir / "absent", labels), ValueError, "absent", "cannot open");
}

// A CSV file of n records "i*0.5, i+1, label=i%5" with a header.
std::string numbered_csv(int n) {
  std::string text = "a,b,label\n";
  for (int i = 0; i < n; ++i) {
    text +=
        std::to_string(i * 0.5) + "," + std::to_string(i + 1) + "," + std::to_string(i % 5) + "\n";
    if (i % 7 == 3) text += "\n";  // blank lines are not records
  }
  return text;
}

TEST(ChunkedCsvDataset, MatchesTheInMemoryReaderChunkByChunk) {
  TempDir dir;
  const auto path = dir.write("n.csv", numbered_csv(103));
  const CsvOptions options{.label_column = "label"};
  ChunkedCsvDataset streamed(path, options, 10);
  InMemoryDataset whole = read_csv(path, options);
  EXPECT_EQ(streamed.size(), 103);
  EXPECT_EQ(streamed.num_chunks(), 11);
  EXPECT_EQ(streamed.sample_shape(), (Shape{2}));
  std::vector<int64_t> all(103);
  for (int64_t i = 0; i < 103; ++i) all[i] = i;
  const Batch a = streamed.get_batch(all);
  const Batch b = whole.get_batch(all);
  EXPECT_EQ(a.x.to_vector<float>(), b.x.to_vector<float>());
  EXPECT_EQ(a.y.to_vector<int64_t>(), b.y.to_vector<int64_t>());
  // Sequential access parses each chunk once.
  EXPECT_EQ(streamed.chunks_loaded(), 11);
  // Going back re-reads a chunk (allowed, but it costs a parse).
  EXPECT_EQ(streamed.get(5).label, 0);
  EXPECT_EQ(streamed.chunks_loaded(), 12);
  EXPECT_EQ(streamed.get(102).features.to_vector<float>(), (std::vector<float>{51, 103}));
}

// Two threads stream one file, each through a reader of its own: reads interleaved between the
// two leave each one's chunk alone.
TEST(ChunkedCsvDataset, AnotherReaderReadsTheSameSamplesThroughItsOwnChunk) {
  TempDir dir;
  const auto path = dir.write("n.csv", numbered_csv(103));
  ChunkedCsvDataset streamed(path, {.label_column = "label"}, 10);
  const std::unique_ptr<Dataset> other = streamed.another_reader();
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->size(), 103);
  EXPECT_EQ(other->sample_shape(), streamed.sample_shape());
  for (int64_t i = 0; i < 50; ++i) {
    const Example near = streamed.get(i);
    const Example far = other->get(102 - i);
    EXPECT_EQ(near.features.to_vector<float>(),
              (std::vector<float>{0.5F * static_cast<float>(i), static_cast<float>(i + 1)}))
        << i;
    EXPECT_EQ(far.features.to_vector<float>(),
              (std::vector<float>{0.5F * static_cast<float>(102 - i), static_cast<float>(103 - i)}))
        << 102 - i;
  }
  // Each parsed its own chunks once: the interleaving cost nothing.
  EXPECT_EQ(streamed.chunks_loaded(), 5);
}

TEST(ChunkedCsvDataset, MalformedRowSurfacesWhenItsChunkIsReadWithFileAndLine) {
  TempDir dir;
  std::string text = "x,y\n";
  for (int i = 0; i < 25; ++i) text += (i == 17 ? "1,oops" : "1,2") + std::string("\n");
  const auto path = dir.write("bad.csv", text);
  ChunkedCsvDataset data(path, {.label_index = 0}, 10);
  EXPECT_EQ(data.size(), 25);
  EXPECT_EQ(data.get(3).label, 1);
  // Record 17 is on line 19 (header on line 1).
  EXPECT_THROW_WITH(data.get(12), FormatError, path.string() + ":19:3:", "'oops'");
  EXPECT_EQ(data.get(24).label, 1);
}

TEST(ChunkedCsvDataset, EmptyFileAndBadChunkSizeAreErrors) {
  TempDir dir;
  const auto header = dir.write("h.csv", "a,b\n\n");
  EXPECT_THROW_WITH(ChunkedCsvDataset(header, {}, 4), FormatError, header.string(), "no records");
  const auto empty = dir.write("e.csv", "");
  EXPECT_THROW_WITH(ChunkedCsvDataset(empty, {}, 4), FormatError, empty.string(), "empty file");
  const auto ok = dir.write("ok.csv", "a\n1\n");
  EXPECT_THROW_WITH(ChunkedCsvDataset(ok, {}, 0), ValueError, "chunk_rows is 0");
}

}  // namespace
}  // namespace tessera::data
