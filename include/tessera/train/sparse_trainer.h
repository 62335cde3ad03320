#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "tessera/comm/process_group.h"
#include "tessera/train/config.h"

// The sparse models ([model] type "logistic" or "fm") trained on parameter servers: the workers
// stream their share of a LIBSVM file record by record and hold only the rows of the batch in
// hand; the feature table, hashed into [model] hash_rows rows, lives on the servers alone
// (serve_parameters in parameter_server.h). Labels are binary: 0/1 or -1/+1.
namespace tessera::train {

struct SparseResult {
  int64_t steps = 0;
  double wall_seconds = 0.0;
  double samples_per_s = 0.0;  // this worker's records per second
  // On the test set (data.test), by worker 0 alone at each epoch's end; test_count 0 without one.
  int64_t test_count = 0;
  double test_auc = 0.0;
  double test_logloss = 0.0;
  double train_loss = 0.0;     // mean log loss of this worker's records in the last epoch
  int64_t peak_rss_bytes = 0;  // this process's peak resident memory
};

struct SparseTrainOptions {
  comm::ProcessGroup* group = nullptr;  // the job: workers first, then the servers
  std::FILE* progress = stderr;         // worker 0's progress and epoch lines; null: none
  std::string job_token = {};           // as ServeOptions::job_token
};

// Trains as one worker of the job. Each global batch of data.batch_size consecutive records is
// split evenly over the workers (batch_size must be a multiple of their number), so that under
// bsp the updates equal one worker's on the same global batches. Worker 0 writes
// <run_dir>/metrics.jsonl. Throws ConfigError for settings a sparse model does not have and
// FormatError naming file:line for a bad record or label.
SparseResult train_sparse(const Config& config, const SparseTrainOptions& options);

}  // namespace tessera::train
