#include "tessera/data/libsvm_stream.h"

#include <gtest/gtest.h>

#include <vector>

#include "data_test_util.h"
#include "tessera/core/error.h"

namespace tessera::data {
namespace {

using testing::TempDir;

std::vector<int64_t> indices(const LibsvmStream& s) {
  return {s.indices().begin(), s.indices().end()};
}
std::vector<float> values(const LibsvmStream& s) { return {s.values().begin(), s.values().end()}; }

TEST(LibsvmStream, ReadsRecordsOneAtATimeWithIdsBeyond32Bits) {
  TempDir dir;
  const auto path = dir.write(
      "a.svm",
      "# header\n1 4294967297:0.5 1099511627776:2\n\n-1 3:1 # note\n0 9223372036854775807:1\n");
  LibsvmStream s(path);
  ASSERT_TRUE(s.next());
  EXPECT_EQ(s.label(), 1);
  EXPECT_EQ(s.line(), 2);
  EXPECT_EQ(indices(s), (std::vector<int64_t>{4294967296, 1099511627775}));
  EXPECT_EQ(values(s), (std::vector<float>{0.5f, 2.0f}));
  ASSERT_TRUE(s.next());
  EXPECT_EQ(s.label(), -1);
  EXPECT_EQ(s.line(), 4);
  EXPECT_EQ(indices(s), (std::vector<int64_t>{2}));
  ASSERT_TRUE(s.next());
  EXPECT_EQ(indices(s), (std::vector<int64_t>{9223372036854775806}));
  EXPECT_FALSE(s.next());
  EXPECT_EQ(s.records(), 3);
}

TEST(LibsvmStream, SkipPassesRecordsWithoutParsingAndRewindStartsOver) {
  TempDir dir;
  // The skipped record is malformed: skipping must not parse it.
  const auto path = dir.write("b.svm", "1 1:1\n0 oops\n\n1 2:1 5:3\n");
  LibsvmStream s(path);
  ASSERT_TRUE(s.skip());
  ASSERT_TRUE(s.skip());
  ASSERT_TRUE(s.next());
  EXPECT_EQ(s.line(), 4);
  EXPECT_EQ(indices(s), (std::vector<int64_t>{1, 4}));
  EXPECT_FALSE(s.skip());
  EXPECT_EQ(s.records(), 3);
  s.rewind();
  EXPECT_EQ(s.records(), 0);
  ASSERT_TRUE(s.next());
  EXPECT_EQ(s.line(), 1);
  EXPECT_THROW_WITH(s.next(), FormatError, path.string() + ":2:3: pair 1 'oops'");
}

TEST(LibsvmStream, MalformedRecordsNameFileLineAndPair) {
  TempDir dir;
  const auto unordered = dir.write("c.svm", "1 1:1\n1 7:1 7:2\n");
  LibsvmStream a(unordered);
  ASSERT_TRUE(a.next());
  EXPECT_THROW_WITH(a.next(), FormatError,
                    unordered.string() + ":2:7: pair 2 '7:2': feature index 7 after 7");
  const auto too_big = dir.write("d.svm", "1 9223372036854775808:1\n");
  LibsvmStream b(too_big);
  EXPECT_THROW_WITH(b.next(), FormatError, too_big.string() + ":1:3: pair 1");
  EXPECT_THROW_WITH(LibsvmStream(dir / "missing.svm"), ValueError, "cannot open");
}

}  // namespace
}  // namespace tessera::data
