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

TEST(Crc32, ChangesWhenOneBitFlips) {
  std::string text = "123456789";
  text[4] ^= 0x01;
  EXPECT_NE(crc_of(text), 0xCBF43926u);
}

}  // namespace
}  // namespace tessera
