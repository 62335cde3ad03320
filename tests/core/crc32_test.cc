#include "tessera/core/crc32.h"

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tessera {
namespace {

uint32_t crc_of(const std::string& s, uint32_t crc = 0) {
  return crc32(std::as_bytes(std::span(s.data(), s.size())), crc);
}

TEST(Crc32, MatchesTheStandardCheckValue) { EXPECT_EQ(crc_of("123456789"), 0xCBF43926u); }

TEST(Crc32, MatchesKnownVectors) {
  EXPECT_EQ(crc_of(""), 0x00000000u);
  EXPECT_EQ(crc_of("a"), 0xE8B7BE43u);
  EXPECT_EQ(crc_of("The quick brown fox jumps over the lazy dog"), 0x414FA339u);
  std::vector<std::byte> zeros(32, std::byte{0});
  EXPECT_EQ(crc32(zeros), 0x190A55ADu);
}

TEST(Crc32, ChecksumsDataThatArrivesInPieces) {
  const std::string text = "The quick brown fox jumps over the lazy dog";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    uint32_t first = crc_of(text.substr(0, cut));
    EXPECT_EQ(crc_of(text.substr(cut), first), 0x414FA339u) << "cut at " << cut;
  }
}

// The bit-at-a-time definition, against which the table-driven one is checked on long input.
uint32_t reference_crc(const std::string& s) {
  uint32_t c = ~0u;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return ~c;
}

TEST(Crc32, MatchesTheBitwiseDefinitionOnLongInputAtEveryOffset) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text.push_back(static_cast<char>((i * 131 + 7) % 256));
  for (size_t start : {0, 1, 3, 7}) {
    const std::string part = text.substr(start);
    EXPECT_EQ(crc_of(part), reference_crc(part)) << "from byte " << start;
  }
}

TEST(Crc32, ChangesWhenOneBitFlips) {
  std::string text = "123456789";
  text[4] ^= 0x01;
  EXPECT_NE(crc_of(text), 0xCBF43926u);
}

}  // namespace
}  // namespace tessera
