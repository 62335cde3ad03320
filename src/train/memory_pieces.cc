#include "memory_pieces.h"

#include <algorithm>

#include "tessera/core/error.h"
#include "tessera/parallel/model_sync.h"

namespace tessera::train {
namespace {

// Pieces are a whole number of int32 words: the collectives move words.
size_t piece_words(size_t length, int count) {
  const size_t bytes = (length + static_cast<size_t>(count) - 1) / static_cast<size_t>(count);
  return (bytes + 3) / 4;
}

// Bytes [begin, end) of piece `index` of an encoding of `length` cut in pieces of `words` words.
std::pair<size_t, size_t> piece_span(size_t length, size_t words, int index) {
  const size_t begin = std::min(length, static_cast<size_t>(index) * words * 4);
  return {begin, std::min(length, begin + words * 4)};
}

int partner_distance(int ranks_per_host, int ranks) {
  return ranks_per_host > 0 && ranks_per_host < ranks ? ranks_per_host : 1;
}

}  // namespace

StatePieces keep_pieces(comm::ProcessGroup& group, std::string whole, int ranks_per_host) {
  const int ranks = group.size();
  const int rank = group.rank();
  std::array<int64_t, 2> head{static_cast<int64_t>(whole.size()),
                              partner_distance(ranks_per_host, ranks)};
  group.broadcast(head.data(), head.size(), comm::DataType::kInt64, 0)->wait();
  TESSERA_CHECK(head[0] >= 0 && head[1] > 0 && head[1] < std::max(2, ranks),
                "keep_pieces: rank 0 sent length ", head[0], ", distance ", head[1]);
  const auto length = static_cast<size_t>(head[0]);
  const int distance = static_cast<int>(head[1]);
  const size_t words = piece_words(length, ranks);
  // Padded in place to whole pieces, which the scatter reads from it.
  if (rank == 0) whole.resize(words * 4 * static_cast<size_t>(ranks));
  StatePieces kept{.count = ranks, .index = {rank, (rank + distance) % ranks}, .bytes = {}};
  for (std::string& piece : kept.bytes) piece.resize(words * 4);
  group.scatter(whole.data(), kept.bytes[0].data(), words, comm::DataType::kInt32, 0)->wait();
  // The partner's piece comes from the partner, which sends its own to the rank `distance`
  // before it: rank 0 sends the state once, not twice.
  constexpr uint32_t kTag = 0x6d656d30;  // "mem0"
  auto sent = group.send(kept.bytes[0].data(), words, comm::DataType::kInt32,
                         (rank - distance + ranks) % ranks, kTag);
  auto got = group.recv(kept.bytes[1].data(), words, comm::DataType::kInt32, kept.index[1], kTag);
  sent->wait();
  got->wait();
  for (int k = 0; k < 2; ++k) {
    const auto [begin, end] = piece_span(length, words, kept.index[k]);
    kept.bytes[k].resize(end - begin);
  }
  return kept;
}

WholeCopy newest_whole_copy(const std::vector<PiecesHeld>& held) {
  WholeCopy best;
  for (const PiecesHeld& candidate : held) {
    if (candidate.step <= best.step || candidate.count < 1) continue;
    std::vector<int> senders(static_cast<size_t>(candidate.count), -1);
    for (size_t r = 0; r < held.size(); ++r) {
      if (held[r].step != candidate.step || held[r].count != candidate.count) continue;
      for (int i : held[r].index) {
        if (i >= 0 && i < candidate.count && senders[i] < 0) senders[i] = static_cast<int>(r);
      }
    }
    if (std::ranges::find(senders, -1) == senders.end()) best = {candidate.step, senders};
  }
  return best;
}

std::string join_pieces(comm::ProcessGroup* group, const StatePieces& mine, const WholeCopy& copy) {
  const int rank = group != nullptr ? group->rank() : 0;
  std::string whole;
  for (size_t i = 0; i < copy.senders.size(); ++i) {
    const bool sending = copy.senders[i] == rank;
    const std::string* piece = nullptr;
    for (int k = 0; k < 2; ++k) {
      if (mine.index[k] == static_cast<int>(i)) piece = &mine.bytes[k];
    }
    TESSERA_CHECK(!sending || piece != nullptr, "join_pieces: rank ", rank, " was to send piece ",
                  i, " but holds pieces ", mine.index[0], " and ", mine.index[1]);
    if (group == nullptr || group->size() == 1) {
      whole += *piece;
    } else {
      whole += parallel::broadcast_bytes(*group, sending ? *piece : std::string(), copy.senders[i]);
    }
  }
  return whole;
}

}  // namespace tessera::train
