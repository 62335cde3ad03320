#include <cstdio>
#include <string>

#include "commands.h"
#include "tessera/train/checkpoint.h"
#include "tessera/train/predictions.h"

namespace tessera::cli {

void add_predict_command(CLI::App& app) {
  struct Args {
    std::string checkpoint;
    std::string data;
    std::string out;
    int64_t batch_size = 256;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "predict",
      "Write a saved model's prediction for each sample of a data set to a CSV file: the class\n"
      "(as the training file labelled it) and each class's probability, the predicted value,\n"
      "the cluster (k-means) or the coordinates (PCA).\n"
      "The data needs no labels: a CSV file without the label column is read as features.\n"
      "Example: tessera predict runs/logistic_regression/model.ckpt --data fashion-mnist:test "
      "--out predictions.csv");
  cmd->add_option("checkpoint", args->checkpoint,
                  "A network's checkpoint (.ckpt) or an estimator's model.ckpt")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--data", args->data,
                  "Data set: fashion-mnist:test, idx:IMAGES,LABELS, csv:PATH, libsvm:PATH")
      ->required();
  cmd->add_option("--out", args->out, "CSV file to write (replaced whole, or left as it was)")
      ->required();
  cmd->add_option("--batch-size", args->batch_size, "A network's batch size")
      ->check(CLI::PositiveNumber);
  cmd->callback([args] {
    const int64_t rows = train::write_predictions(train::read_checkpoint(args->checkpoint),
                                                  args->data, args->out, args->batch_size);
    std::printf("%lld predictions written to %s\n", static_cast<long long>(rows),
                args->out.c_str());
  });
}

}  // namespace tessera::cli
