// An elastic job's memory copy in pieces: each rank keeps its piece and its partner's, and the
// survivors put the state back together unless both holders of a piece died.
#include "memory_pieces.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "comm/run_ranks.h"

namespace tessera::train {
namespace {

// 1003 bytes: no piece size divides it, so the last piece is shorter.
std::string encoding() {
  std::string s;
  for (int i = 0; i < 1003; ++i) s.push_back(static_cast<char>(i * 7 + 3));
  return s;
}

// Every rank's pieces, kept by keep_pieces over `ranks` threads with `ranks_per_host`.
std::vector<StatePieces> kept_by(int ranks, int ranks_per_host) {
  std::vector<StatePieces> kept(static_cast<size_t>(ranks));
  const std::string whole = encoding();
  comm::testing::run_ranks(ranks, [&](comm::ProcessGroup& group) {
    kept[static_cast<size_t>(group.rank())] =
        keep_pieces(group, group.rank() == 0 ? whole : std::string(), ranks_per_host);
  });
  return kept;
}

TEST(MemoryPieces, EachRankKeepsItsPieceAndItsPartnersAndTogetherTheyAreTheWhole) {
  const std::vector<StatePieces> kept = kept_by(4, 1);
  std::string joined;
  for (int r = 0; r < 4; ++r) {
    const StatePieces& p = kept[static_cast<size_t>(r)];
    EXPECT_EQ(p.count, 4);
    EXPECT_EQ(p.index[0], r);
    EXPECT_EQ(p.index[1], (r + 1) % 4);
    EXPECT_EQ(p.bytes[1], kept[static_cast<size_t>((r + 1) % 4)].bytes[0]) << "rank " << r;
    joined += p.bytes[0];
  }
  EXPECT_EQ(joined, encoding());
  EXPECT_LT(kept[3].bytes[0].size(), kept[0].bytes[0].size());
}

TEST(MemoryPieces, OnSeveralHostsAPiecesTwoHoldersAreOnDifferentHosts) {
  // Ranks 0-2 on one host, 3-5 on the other: the partner is the same place on the other host.
  const std::vector<StatePieces> kept = kept_by(6, 3);
  for (int r = 0; r < 6; ++r) {
    EXPECT_EQ(kept[static_cast<size_t>(r)].index[1], (r + 3) % 6);
    EXPECT_EQ(kept[static_cast<size_t>(r)].bytes[1],
              kept[static_cast<size_t>((r + 3) % 6)].bytes[0]);
  }
}

TEST(MemoryPieces, TheNewestCopyWhoseEveryPieceSurvivesIsChosen) {
  // Of 4 ranks that kept step 20's pieces, ranks 1 and 3 died: rank 0 holds 0 and 1, rank 2
  // holds 2 and 3. A new process holds nothing.
  const std::vector<PiecesHeld> survivors{{20, 4, {0, 1}}, {20, 4, {2, 3}}, {-1, 0, {-1, -1}}};
  WholeCopy copy = newest_whole_copy(survivors);
  EXPECT_EQ(copy.step, 20);
  EXPECT_EQ(copy.senders, (std::vector<int>{0, 0, 1, 1}));
  // Ranks 1 and 2 died: piece 2 (held by ranks 1 and 2) is gone. An older whole copy, kept
  // whole, is the newest whole one; else there is none.
  const std::vector<PiecesHeld> adjacent{{20, 4, {0, 1}}, {20, 4, {3, 0}}, {10, 1, {0, -1}}};
  copy = newest_whole_copy(adjacent);
  EXPECT_EQ(copy.step, 10);
  EXPECT_EQ(copy.senders, (std::vector<int>{2}));
  EXPECT_EQ(newest_whole_copy({{20, 4, {0, 1}}, {20, 4, {3, 0}}}).step, -1);
  // Pieces of the same step cut for another number of ranks do not mix.
  EXPECT_EQ(newest_whole_copy({{20, 4, {0, 1}}, {20, 2, {1, 0}}, {20, 4, {2, 3}}}).senders,
            (std::vector<int>{0, 0, 2, 2}));
}

TEST(MemoryPieces, TheSurvivorsPutTheWholeBackTogether) {
  const std::vector<StatePieces> kept = kept_by(4, 1);
  // Ranks 1 and 3 of the old round died; the new round has the other two and a new process.
  const std::vector<StatePieces> now{kept[0], kept[2], StatePieces{}};
  const WholeCopy copy =
      newest_whole_copy({{5, 4, kept[0].index}, {5, 4, kept[2].index}, {-1, 0, {-1, -1}}});
  ASSERT_EQ(copy.step, 5);
  std::vector<std::string> joined(3);
  comm::testing::run_ranks(3, [&](comm::ProcessGroup& group) {
    const size_t r = static_cast<size_t>(group.rank());
    joined[r] = join_pieces(&group, now[r], copy);
  });
  for (const std::string& w : joined) EXPECT_EQ(w, encoding());
  // One survivor of two holds both pieces: it needs no group.
  const std::vector<StatePieces> two = kept_by(2, 1);
  EXPECT_EQ(join_pieces(nullptr, two[1], newest_whole_copy({{5, 2, two[1].index}})), encoding());
}

}  // namespace
}  // namespace tessera::train
