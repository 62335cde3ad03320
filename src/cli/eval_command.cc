#include <cstdio>
#include <string>

#include "commands.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/data_source.h"
#include "tessera/train/labels.h"
#include "tessera/train/saved_estimator.h"
#include "tessera/train/saved_model.h"
#include "tessera/train/trainer.h"

namespace tessera::cli {
namespace {

void eval_estimator(const train::SavedEstimator& saved, const std::string& spec) {
  const train::Scores scores = train::evaluate_estimator(saved, spec);
  // Only implicit ALS scores nothing: its precision at k counts items a user did not rate in
  // training, and rows of the training set hold none.
  const std::string text = scores.empty() ? "nothing to score: no row rates an item its user did "
                                            "not rate in training"
                                          : train::describe_scores("", scores);
  std::printf("%s: %s\n", saved.config.model.type.c_str(), text.c_str());
}

}  // namespace

void add_eval_command(CLI::App& app) {
  struct Args {
    std::string checkpoint;
    std::string data;
    int64_t batch_size = 256;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Evaluate a checkpoint on a data set: loss, accuracy and confusion matrix (an estimator's\n"
      "model.ckpt: its scores).\n"
      "Example: tessera eval runs/fashion_mnist_mlp/checkpoints/step-0000009380.ckpt "
      "--data fashion-mnist:test");
  cmd->add_option("checkpoint", args->checkpoint, "Checkpoint file (.ckpt)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--data", args->data,
                  "Data set: fashion-mnist:test, idx:IMAGES,LABELS, csv:PATH, libsvm:PATH, "
                  "text:PATH[:FROM-TO]")
      ->required();
  cmd->add_option("--batch-size", args->batch_size, "Evaluation batch size")
      ->check(CLI::PositiveNumber);
  cmd->callback([args] {
    const train::Checkpoint checkpoint = train::read_checkpoint(args->checkpoint);
    if (train::holds_estimator(checkpoint)) {
      eval_estimator(train::load_saved_estimator(checkpoint), args->data);
      return;
    }
    train::SavedModel saved = train::load_saved_model(checkpoint);
    const train::DataLayout layout{saved.sample_shape, saved.class_labels};
    auto dataset = train::open_dataset(args->data, saved.config, "--data", &layout);
    train::check_labels(*dataset, saved.classes, "--data");
    train::EvalResult r =
        train::evaluate(*saved.model, *dataset, args->batch_size, saved.classes, saved.next_token);
    std::printf("%s %lld  loss %.4f  accuracy %.2f%%\n", saved.next_token ? "positions" : "samples",
                static_cast<long long>(r.count), r.loss, 100.0 * r.accuracy);
    if (saved.next_token) return;  // a confusion matrix of every token would be unreadable
    std::printf("confusion matrix (rows: true class, columns: predicted)\n      ");
    for (int64_t c = 0; c < r.classes; ++c) std::printf("%6lld", static_cast<long long>(c));
    std::printf("\n");
    for (int64_t t = 0; t < r.classes; ++t) {
      std::printf("%6lld", static_cast<long long>(t));
      for (int64_t p = 0; p < r.classes; ++p) {
        std::printf("%6lld",
                    static_cast<long long>(r.confusion[static_cast<size_t>(t * r.classes + p)]));
      }
      std::printf("\n");
    }
  });
}

}  // namespace tessera::cli
