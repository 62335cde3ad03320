#include "tessera/data/csv_reader.h"

#include <gtest/gtest.h>

#include <vector>

#include "data_test_util.h"
#include "tessera/core/error.h"

namespace tessera::data {
namespace {

using testing::TempDir;

TEST(CsvReader, ReadsHeaderAndLabelColumnByName) {
  TempDir dir;
  const auto path = dir.write("a.csv", "x1,label,x2\n1.5,3,-2\n0.25,0,1e3\n");
  const InMemoryDataset data = read_csv(path, {.label_column = "label"});
  ASSERT_EQ(data.size(), 2);
  EXPECT_EQ(data.sample_shape(), (Shape{2}));
  EXPECT_EQ(data.features().to_vector<float>(), (std::vector<float>{1.5f, -2.0f, 0.25f, 1000.0f}));
  EXPECT_EQ(data.labels().to_vector<int64_t>(), (std::vector<int64_t>{3, 0}));
}

TEST(CsvReader, SamplesKnowTheirLines) {
  TempDir dir;
  const auto path = dir.write("lines.csv", "label,x\n1,2\n\n\n3,4\n");
  const InMemoryDataset data = read_csv(path, {.label_column = "label"});
  EXPECT_EQ(data.origin(0), path.string() + ":2");
  EXPECT_EQ(data.origin(1), path.string() + ":5");
}

TEST(CsvReader, TooManyColumnsIsAnErrorNamingTheLine) {
  TempDir dir;
  std::string header;
  for (int64_t i = 0; i <= kMaxCsvColumns; ++i) header += i ? ",c" : "c";
  const auto path = dir.write("wide.csv", "\n" + header + "\n1\n");
  EXPECT_THROW_WITH(read_csv(path), FormatError,
                    path.string() + ":2:", "more than 1048576 columns");
}

TEST(CsvReader, LabelByIndexCountsFromEitherEnd) {
  TempDir dir;
  const auto path = dir.write("b.csv", "7,1,2\n8,3,4\n");
  const InMemoryDataset first = read_csv(path, {.has_header = false, .label_index = 0});
  EXPECT_EQ(first.labels().to_vector<int64_t>(), (std::vector<int64_t>{7, 8}));
  EXPECT_EQ(first.features().to_vector<float>(), (std::vector<float>{1, 2, 3, 4}));
  const InMemoryDataset last = read_csv(path, {.has_header = false, .label_index = -1});
  EXPECT_EQ(last.labels().to_vector<int64_t>(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(last.features().to_vector<float>(), (std::vector<float>{7, 1, 8, 3}));
}

TEST(CsvReader, NoLabelColumnMakesEveryColumnAFeature) {
  TempDir dir;
  const auto path = dir.write("c.csv", "a,b\n1,2\n");
  const InMemoryDataset data = read_csv(path);
  EXPECT_EQ(data.sample_shape(), (Shape{2}));
  EXPECT_EQ(data.labels().to_vector<int64_t>(), (std::vector<int64_t>{0}));
}

TEST(CsvReader, AcceptsDelimiterCrlfBlankLinesPaddingAndQuotedHeader) {
  TempDir dir;
  const auto path =
      dir.write("d.csv", "\"f\" ; \"y\"\r\n\r\n +1.0 ; 2.0 \r\n\n-3;4\r\n\n\n5;6");  // no final \n
  CsvReader reader(path, {.delimiter = ';', .label_column = "y"});
  EXPECT_EQ(reader.column_names(), (std::vector<std::string>{"f", "y"}));
  std::vector<float> x;
  std::vector<int64_t> y;
  EXPECT_EQ(reader.read_rows(100, x, y), 3);
  EXPECT_EQ(x, (std::vector<float>{1, -3, 5}));
  EXPECT_EQ(y, (std::vector<int64_t>{2, 4, 6}));
  EXPECT_EQ(reader.read_rows(100, x, y), 0);
}

TEST(CsvReader, ReadsInChunksAndSeeksBack) {
  TempDir dir;
  std::string text = "v,label\n";
  for (int i = 0; i < 10; ++i) text += std::to_string(i) + "," + std::to_string(i % 3) + "\n";
  const auto path = dir.write("e.csv", text);
  CsvReader reader(path, {.label_column = "label"});
  std::vector<float> x;
  std::vector<int64_t> y;
  EXPECT_EQ(reader.read_rows(4, x, y), 4);
  const CsvReader::Position mark = reader.position();
  EXPECT_EQ(mark.line, 6);
  EXPECT_EQ(reader.read_rows(4, x, y), 4);
  EXPECT_EQ(reader.read_rows(4, x, y), 2);
  EXPECT_EQ(x, (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  reader.seek(mark);
  std::vector<float> again;
  y.clear();
  EXPECT_EQ(reader.read_rows(2, again, y), 2);
  EXPECT_EQ(again, (std::vector<float>{4, 5}));
  EXPECT_EQ(y, (std::vector<int64_t>{1, 2}));
}

TEST(CsvReader, RaggedRowNamesFileLineAndColumn) {
  TempDir dir;
  const auto extra = dir.write("extra.csv", "a,b,c\n1,2,3\n4,5,6,7\n");
  EXPECT_THROW_WITH(read_csv(extra), FormatError, extra.string() + ":3:7:", "expected 3 fields",
                    "got 4");
  const auto missing = dir.write("missing.csv", "1,2,3\n\n4,5\n");
  EXPECT_THROW_WITH(read_csv(missing, {.has_header = false}), FormatError,
                    missing.string() + ":3:4:", "expected 3 fields", "first record", "got 2");
}

TEST(CsvReader, NonNumericFieldNamesFileLineColumnAndValue) {
  TempDir dir;
  const auto path = dir.write("text.csv", "a,b,label\n1,2,0\n3,abc,1\n");
  EXPECT_THROW_WITH(read_csv(path, {.label_column = "label"}), FormatError,
                    path.string() + ":3:3:", "field 2", "column 'b'", "expected a number", "'abc'");
  const auto empty_field = dir.write("hole.csv", "1,,2\n");
  EXPECT_THROW_WITH(read_csv(empty_field, {.has_header = false}), FormatError,
                    empty_field.string() + ":1:3:", "expected a number", "''");
}

TEST(CsvReader, NonIntegerLabelIsAFormatError) {
  TempDir dir;
  const auto path = dir.write("lab.csv", "x,y\n1,2.5\n");
  EXPECT_THROW_WITH(read_csv(path, {.label_column = "y"}), FormatError,
                    path.string() + ":2:3:", "integer class label", "'2.5'");
}

TEST(CsvReader, EmptyFileIsAClearFormatError) {
  TempDir dir;
  const auto empty = dir.write("empty.csv", "");
  EXPECT_THROW_WITH(read_csv(empty), FormatError, empty.string(), "empty file", "header line");
  const auto blank = dir.write("blank.csv", "\n  \n");
  EXPECT_THROW_WITH(read_csv(blank, {.has_header = false}), FormatError, blank.string(),
                    "empty file", "at least one record");
  const auto header_only = dir.write("header.csv", "a,b\n");
  EXPECT_THROW_WITH(read_csv(header_only), FormatError, header_only.string() + ":2:", "no records");
}

TEST(CsvReader, BadLabelOptionsAreValueErrors) {
  TempDir dir;
  const auto path = dir.write("f.csv", "a,b\n1,2\n");
  EXPECT_THROW_WITH(read_csv(path, {.label_column = "c"}), ValueError, path.string(),
                    "no column named 'c'", "'a', 'b'");
  EXPECT_THROW_WITH(read_csv(path, {.label_index = 2}), ValueError, "label_index 2", "2 columns");
  EXPECT_THROW_WITH(read_csv(path, {.label_column = "a", .label_index = 0}), ValueError, "both");
  EXPECT_THROW_WITH(read_csv(path, {.has_header = false, .label_column = "a"}), ValueError,
                    "has_header");
  const auto one = dir.write("one.csv", "y\n1\n");
  EXPECT_THROW_WITH(read_csv(one, {.label_column = "y"}), ValueError, "feature column");
  EXPECT_THROW_WITH(read_csv(dir / "absent.csv"), ValueError, "absent.csv", "cannot open");
}

TEST(CsvReader, LongLinesGrowTheBuffer) {
  TempDir dir;
  // One record of 600000 fields: longer than the reader's first 1 MiB buffer.
  std::string line;
  for (int i = 0; i < 600000; ++i) {
    if (i > 0) line += ',';
    line += std::to_string(i % 7);
  }
  line += '\n';
  const auto path = dir.write("wide.csv", line + line);
  const InMemoryDataset data = read_csv(path, {.has_header = false});
  ASSERT_EQ(data.size(), 2);
  EXPECT_EQ(data.sample_shape(), (Shape{600000}));
  EXPECT_EQ(data.features().at({1, 599999}), 599999 % 7);
}

}  // namespace
}  // namespace tessera::data
