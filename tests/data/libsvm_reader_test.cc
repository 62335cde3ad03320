#include "tessera/data/libsvm_reader.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "data_test_util.h"
#include "tessera/core/error.h"
#include "tessera/data/chunked_libsvm_dataset.h"

namespace tessera::data {
namespace {

using testing::TempDir;

// A LIBSVM file of n records with labels -1/+1/3, comments and blank lines between them.
std::string numbered_svm(int n) {
  std::string text = "# a header comment\n";
  for (int i = 0; i < n; ++i) {
    const int label = i % 3 == 0 ? -1 : (i % 3 == 1 ? 1 : 3);
    text += std::to_string(label) + " " + std::to_string(1 + i % 4) + ":" + std::to_string(i) +
            " 6:" + std::to_string(0.5 * i) + (i % 5 == 0 ? " # note" : "") + "\n";
    if (i % 7 == 3) text += "\n";
  }
  return text;
}

TEST(ChunkedLibsvmDataset, StreamsWhatReadLibsvmReadsChunkByChunk) {
  TempDir dir;
  const auto path = dir.write("n.svm", numbered_svm(103));
  ChunkedLibsvmDataset streamed(path, {}, 10);
  InMemoryDataset whole = read_libsvm(path);
  EXPECT_EQ(streamed.size(), 103);
  EXPECT_EQ(streamed.num_chunks(), 11);
  EXPECT_EQ(streamed.sample_shape(), (Shape{6}));
  EXPECT_EQ(streamed.class_labels(), (std::vector<int64_t>{-1, 1, 3}));
  std::vector<int64_t> all(103);
  for (int64_t i = 0; i < 103; ++i) all[static_cast<size_t>(i)] = i;
  const Batch a = streamed.get_batch(all);
  const Batch b = whole.get_batch(all);
  EXPECT_EQ(a.x.to_vector<float>(), b.x.to_vector<float>());
  EXPECT_EQ(a.y.to_vector<int64_t>(), b.y.to_vector<int64_t>());
  EXPECT_EQ(streamed.chunks_loaded(), 11);
  // A second reader shares the index and keeps its own chunk.
  const std::unique_ptr<Dataset> other = streamed.another_reader();
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->get(102).features.to_vector<float>(),
            whole.get(102).features.to_vector<float>());
  EXPECT_EQ(streamed.get(101).label, whole.get(101).label);
  EXPECT_EQ(streamed.chunks_loaded(), 11);
}

TEST(ChunkedLibsvmDataset, ATestSetTakesTheTrainingSetsClassesAndBadRecordsNameTheirLine) {
  TempDir dir;
  const auto test = dir.write("t.svm", "1 1:1\n-1 2:1\n");
  ChunkedLibsvmDataset data(test, {.num_features = 4, .class_labels = {-1, 1, 3}}, 1);
  EXPECT_EQ(data.sample_shape(), (Shape{4}));
  EXPECT_EQ(data.get(0).label, 1);
  EXPECT_EQ(data.get(1).label, 0);
  const auto unknown = dir.write("u.svm", "1 1:1\n2 2:1\n");
  EXPECT_THROW_WITH(ChunkedLibsvmDataset(unknown, {.class_labels = {-1, 1}}, 1), FormatError,
                    unknown.string() + ":2", "label 2");
  // A bad record fails the indexing pass, not a later read.
  const auto bad = dir.write("b.svm", "1 1:1\n1 3:1 2:1\n");
  EXPECT_THROW_WITH(ChunkedLibsvmDataset(bad, {}, 1), FormatError, bad.string() + ":2");
  const auto none = dir.write("e.svm", "# nothing\n\n");
  EXPECT_THROW_WITH(ChunkedLibsvmDataset(none, {}, 4), FormatError, none.string(), "no records");
  EXPECT_THROW_WITH(ChunkedLibsvmDataset(test, {}, 0), ValueError, "chunk_rows is 0");
}

TEST(LibsvmReader, ReadsSparseRowsIntoDenseWithInferredWidth) {
  TempDir dir;
  const auto path =
      dir.write("a.svm", "+1 1:0.5 3:2\n-1 2:-1.25\n\n3 qid:7 4:1e-1 # comment 9:9\n");
  const InMemoryDataset data = read_libsvm(path);
  ASSERT_EQ(data.size(), 3);
  EXPECT_EQ(data.sample_shape(), (Shape{4}));
  EXPECT_EQ(data.class_labels(), (std::vector<int64_t>{-1, 1, 3}));
  EXPECT_EQ(data.labels().to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 2}));
  EXPECT_EQ(data.origin(2), path.string() + ":4");
  EXPECT_EQ(data.features().to_vector<float>(),
            (std::vector<float>{0.5f, 0, 2, 0, 0, -1.25f, 0, 0, 0, 0, 0, 0.1f}));
}

// A line of only vertical tabs or form feeds holds no field: not a record, and the records after
// it keep their own features (a fuzzer found them shifted by one).
TEST(LibsvmReader, ALineOfOtherWhitespaceIsBlank) {
  TempDir dir;
  const auto path = dir.write("v.svm", "1 1:1\n\v\f\n-1 2:3\n");
  InMemoryDataset whole = read_libsvm(path);
  ASSERT_EQ(whole.size(), 2);
  EXPECT_EQ(whole.features().to_vector<float>(), (std::vector<float>{1, 0, 0, 3}));
  EXPECT_EQ(whole.origin(1), path.string() + ":3");
  ChunkedLibsvmDataset streamed(path, {}, 1);
  ASSERT_EQ(streamed.size(), 2);
  EXPECT_EQ(streamed.get(1).features.to_vector<float>(), (std::vector<float>{0, 3}));
  EXPECT_EQ(streamed.get(1).label, 0);
}

TEST(LibsvmReader, DeclaredWidthPadsWithZeros) {
  TempDir dir;
  const auto path = dir.write("b.svm", "0 2:1\n1\n");  // a record with no features
  const InMemoryDataset data = read_libsvm(path, {.num_features = 5});
  EXPECT_EQ(data.sample_shape(), (Shape{5}));
  EXPECT_EQ(data.features().to_vector<float>(), (std::vector<float>{0, 1, 0, 0, 0, 0, 0, 0, 0, 0}));
}

TEST(LibsvmReader, IndexAboveDeclaredWidthNamesFileAndLine) {
  TempDir dir;
  const auto path = dir.write("c.svm", "1 1:1 4:1\n0 2:1 6:1\n");
  EXPECT_THROW_WITH(read_libsvm(path, {.num_features = 5}), FormatError,
                    path.string() + ":2:", "'6:1'", "index 6", "above num_features 5");
}

TEST(LibsvmReader, IndexZeroIsRejected) {
  TempDir dir;
  const auto path = dir.write("d.svm", "1 0:1 2:1\n");
  EXPECT_THROW_WITH(read_libsvm(path), FormatError, path.string() + ":1:3:", "'0:1'", "1-based");
}

TEST(LibsvmReader, IndicesMustIncrease) {
  TempDir dir;
  const auto path = dir.write("e.svm", "1 1:1\n1 3:1 2:1\n");
  EXPECT_THROW_WITH(read_libsvm(path), FormatError, path.string() + ":2:", "index 2 after 3",
                    "strictly increasing");
  const auto dup = dir.write("dup.svm", "1 3:1 3:2\n");
  EXPECT_THROW_WITH(read_libsvm(dup), FormatError, dup.string() + ":1:", "index 3 after 3");
}

TEST(LibsvmReader, MalformedPairsNameFileAndLine) {
  TempDir dir;
  const auto no_colon = dir.write("f.svm", "1 1:1\n\n1 17\n");
  EXPECT_THROW_WITH(read_libsvm(no_colon), FormatError, no_colon.string() + ":3:3:", "'17'",
                    "expected index:value");
  const auto bad_index = dir.write("g.svm", "1 x:1\n");
  EXPECT_THROW_WITH(read_libsvm(bad_index), FormatError, bad_index.string() + ":1:", "'x:1'",
                    "integer feature index");
  const auto bad_value = dir.write("h.svm", "1 2:abc\n");
  EXPECT_THROW_WITH(read_libsvm(bad_value), FormatError, bad_value.string() + ":1:5:", "'2:abc'",
                    "a number after ':'");
  const auto empty_value = dir.write("i.svm", "1 2:\n");
  EXPECT_THROW_WITH(read_libsvm(empty_value), FormatError,
                    empty_value.string() + ":1:", "expected index:value");
  const auto bad_label = dir.write("j.svm", "one 1:1\n");
  EXPECT_THROW_WITH(read_libsvm(bad_label), FormatError,
                    bad_label.string() + ":1:1:", "integer class label", "'one'");
}

TEST(LibsvmReader, EmptyFileIsAClearFormatError) {
  TempDir dir;
  const auto empty = dir.write("empty.svm", "");
  EXPECT_THROW_WITH(read_libsvm(empty), FormatError, empty.string(), "no records");
  const auto comments = dir.write("comments.svm", "# only a comment\n\n");
  EXPECT_THROW_WITH(read_libsvm(comments), FormatError, comments.string(), "no records");
  const auto no_features = dir.write("nofeat.svm", "1\n0\n");
  EXPECT_THROW_WITH(read_libsvm(no_features), FormatError, no_features.string(), "num_features");
}

TEST(LibsvmReader, MapsLabelsToClassesAsLibsvmDoes) {
  TempDir dir;
  const auto binary = dir.write("pm.svm", "-1 1:1\n+1 1:2\n-1 1:3\n");
  const InMemoryDataset pm = read_libsvm(binary);
  EXPECT_EQ(pm.class_labels(), (std::vector<int64_t>{-1, 1}));
  EXPECT_EQ(pm.labels().to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 0}));
  const auto one_based = dir.write("c.svm", "3 1:1\n1 1:1\n2 1:1\n");
  InMemoryDataset c = read_libsvm(one_based);
  EXPECT_EQ(c.class_labels(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(c.labels().to_vector<int64_t>(), (std::vector<int64_t>{2, 0, 1}));
  EXPECT_EQ(c.label(0), 2);
}

TEST(LibsvmReader, TestSetTakesTheTrainingSetsClasses) {
  TempDir dir;
  // Only +1 appears: with the training set's labels it is still class 1, not class 0.
  const auto path = dir.write("test.svm", "+1 1:1\n+1 2:1\n");
  const InMemoryDataset data = read_libsvm(path, {.class_labels = {-1, 1}});
  EXPECT_EQ(data.labels().to_vector<int64_t>(), (std::vector<int64_t>{1, 1}));
  const auto unknown = dir.write("unknown.svm", "1 1:1\n\n7 1:1\n");
  EXPECT_THROW_WITH(read_libsvm(unknown, {.class_labels = {-1, 1}}), FormatError,
                    unknown.string() + ":3:", "label 7", "not one of the training set's labels",
                    "-1, 1");
  EXPECT_THROW_WITH(read_libsvm(path, {.class_labels = {1, -1}}), ValueError,
                    "strictly increasing");
}

TEST(LibsvmReader, HugeIndexIsAnErrorNamingTheLineNotACrash) {
  TempDir dir;
  // The input that crashed `tessera train`: the element count overflowed size_t.
  const auto path = dir.write("huge.svm", "1 1:1\n0 4611686018427387904:1\n");
  EXPECT_THROW_WITH(read_libsvm(path), FormatError,
                    path.string() + ":2:3:", "feature index 4611686018427387904",
                    "set data.num_features");
  const auto above = dir.write("above.svm", "0 16777217:1\n");
  EXPECT_THROW_WITH(read_libsvm(above), FormatError, above.string() + ":1:", "16777216");
  // A declared width is honoured, but not beyond this machine's memory.
  const auto wide = dir.write("wide.svm", "0 1:1\n1 1099511627776:1\n");
  EXPECT_THROW_WITH(read_libsvm(wide, {.num_features = int64_t{1} << 40}), FormatError,
                    wide.string() + ": num_features 1099511627776", "dense 2 x 1099511627776",
                    "more than");
}

TEST(LibsvmReader, BadOptionsAndMissingFileAreValueErrors) {
  TempDir dir;
  const auto path = dir.write("k.svm", "1 1:1\n");
  EXPECT_THROW_WITH(read_libsvm(path, {.num_features = -1}), ValueError, "num_features is -1");
  EXPECT_THROW_WITH(read_libsvm(dir / "absent.svm"), ValueError, "absent.svm", "cannot open");
}

}  // namespace
}  // namespace tessera::data
