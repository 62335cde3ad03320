#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tessera/comm/process_group.h"
#include "tessera/core/serialize.h"
#include "tessera/estimators/row_source.h"

namespace tessera::estimators {

// Alternating least squares (Spark MLlib's ALS): ratings are rows of two features, a user id and
// an item id (integers from 0), and the target, the rating.
struct AlsOptions {
  int64_t factors = 10;  // Spark's rank
  double l2 = 0.1;       // Spark's regParam, times each user's (item's) number of ratings
  int64_t iterations = 10;
  // Implicit feedback (Hu, Koren and Volinsky): a rating r > 0 says the user prefers the item,
  // with confidence 1 + alpha |r|; every pair not rated is a preference of 0 with confidence 1.
  bool implicit = false;
  double alpha = 1.0;
  uint64_t seed = 0;
  // Called after each iteration (a user step and an item step) with its number (from 1) and the
  // objective of the factors it ended with, per rating.
  std::function<void(int64_t iteration, double objective)> on_iteration;
};

// User and item factors; a rating is predicted as their dot product. The items each user rated
// in training are kept, so that recommendations (and precision at k) skip them.
struct AlsModel {
  int64_t users = 0;  // ids [0, users)
  int64_t items = 0;
  int64_t factors = 0;
  bool implicit = false;
  std::vector<float> user_factors;    // [users, factors]
  std::vector<float> item_factors;    // [items, factors]
  std::vector<int64_t> rated_from;    // [users + 1]: user u rated rated[rated_from[u] ...]
  std::vector<int32_t> rated;         // item ids, ascending within a user
  std::vector<int32_t> item_ratings;  // [items]: how many ratings each item had

  // Whether the user (the item) has a rating in training: else its factors say nothing.
  [[nodiscard]] bool knows_user(int64_t user) const;
  [[nodiscard]] bool knows_item(int64_t item) const;
  [[nodiscard]] bool rated_by(int64_t user, int32_t item) const;  // in training
  // x_u . y_i, NaN for a user or item training never saw (Spark's cold-start strategy "nan").
  [[nodiscard]] double predict(int64_t user, int64_t item) const;
  // The `k` items the user did not rate in training with the highest predictions, best first.
  [[nodiscard]] std::vector<int32_t> recommend(int64_t user, int64_t k) const;

  // The model's bytes, and back (als_model.cc); read() throws FormatError naming the reader's
  // source for counts that disagree or bytes that run out.
  void write(BinaryWriter& out) const;
  [[nodiscard]] static AlsModel read(BinaryReader& in);
};

struct AlsFit {
  AlsModel model;
  int64_t ratings = 0;  // over all processes
  int64_t iterations = 0;
  double objective = 0.0;  // per rating, after the last iteration
};

// Fits ALS on every process at once. The ratings go to the processes that own their users (user
// u: process u mod P) and to those that own their items; each iteration every process solves its
// users' least-squares problems against all item factors, the processes exchange the user
// factors by allgather, then the same for the items. Each user's (item's) system sums its ratings
// in item (user) order and the first factors are drawn by keyed draws: P processes fit one
// process's factors bit for bit. Throws ValueError for bad options, FormatError naming the row
// for an id that is not an integer in [0, 2^24) or a rating that is not a number.
[[nodiscard]] AlsFit fit_als(RowSource& rows, comm::ProcessGroup* group, const AlsOptions& options);

struct AlsScore {
  int64_t rows = 0;    // ratings scored: their user and item both seen in training
  int64_t unseen = 0;  // ratings of a user or an item training never saw
  double rmse = 0.0;   // explicit feedback
  // Implicit: the users with a positive rating among the rows of an item they did not rate in
  // training, and the mean over them of the share of their k recommendations that are such items.
  int64_t users = 0;
  double precision = 0.0;
};

// The model's RMSE on the rows (explicit feedback) or its precision at k (implicit: of each
// user's k recommendations, the share the user rated positively in the rows), summed over
// `group`, every process getting the same.
[[nodiscard]] AlsScore score_als(const AlsModel& model, RowSource& rows, comm::ProcessGroup* group,
                                 int64_t k);

}  // namespace tessera::estimators
