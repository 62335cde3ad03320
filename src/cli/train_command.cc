#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent_channel.h"
#include "commands.h"
#include "elastic_reporter.h"
#include "fault_injection.h"
#include "hung_workers.h"
#include "launcher_flags.h"
#include "tessera/comm/errors.h"
#include "tessera/comm/init.h"
#include "tessera/core/env.h"
#include "tessera/core/error.h"
#include "tessera/tensor/threads.h"
#include "tessera/train/config.h"
#include "tessera/train/estimator_run.h"
#include "tessera/train/parameter_server.h"
#include "tessera/train/sparse_trainer.h"
#include "tessera/train/trainer.h"

namespace tessera::cli {
namespace {

// How long a worker whose group broke waits for its agent's next round: the agent answers within
// its rendezvous timeout, and a worker dies with its agent.
constexpr std::chrono::minutes kStandbyDeadline{30};

struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
  bool resume = false;
  bool quiet = false;
  LauncherFlags launcher;
  std::vector<std::string> argv;
};

void print_result(const train::TrainResult& r) {
  std::printf("trained %lld steps in %.1f s (%.0f samples/s)", static_cast<long long>(r.steps),
              r.wall_seconds, r.samples_per_s);
  if (r.test.count > 0) {
    std::printf("; test accuracy %.2f%%, test loss %.4f", 100.0 * r.test.accuracy, r.test.loss);
  }
  std::printf("\n");
  if (!r.last_checkpoint.empty()) std::printf("checkpoint: %s\n", r.last_checkpoint.c_str());
}

// Every worker reports its memory: that a worker holds a small part of the model is the point.
void print_sparse_result(const train::SparseResult& r, int rank) {
  std::printf(
      "worker %d: trained %lld steps in %.1f s (%.0f records/s), train log loss %.4f, "
      "peak resident memory %.1f MiB",
      rank, static_cast<long long>(r.steps), r.wall_seconds, r.samples_per_s, r.train_loss,
      static_cast<double>(r.peak_rss_bytes) / (1 << 20));
  if (r.test_count > 0) {
    std::printf("; test AUC %.4f, test log loss %.4f", r.test_auc, r.test_logloss);
  }
  std::printf("\n");
}

void print_estimator_result(const train::EstimatorResult& r) {
  if (r.iterations == 0) {  // no iterations: one pass, or equations solved
    std::printf("%s: %lld rows, %s in %.1f s", r.model.c_str(), static_cast<long long>(r.rows),
                r.stop.c_str(), r.wall_seconds);
    if (r.objective != 0) std::printf(", objective %.8g", r.objective);
  } else {
    std::printf("%s: %lld rows, %lld iterations in %.1f s (%s), objective %.8g", r.model.c_str(),
                static_cast<long long>(r.rows), static_cast<long long>(r.iterations),
                r.wall_seconds, r.stop.c_str(), r.objective);
  }
  if (!r.train.empty()) std::printf("; %s", train::describe_scores("train", r.train).c_str());
  if (!r.test.empty()) std::printf("; %s", train::describe_scores("test", r.test).c_str());
  std::printf("\nmodel saved to %s\n", r.saved_to.c_str());
}

comm::InitOptions init_options(const train::Config& config) {
  comm::InitOptions init;
  init.backend = config.parallel.backend;
  init.group.timeout =
      std::chrono::milliseconds(static_cast<int64_t>(config.parallel.timeout_s * 1000.0));
  return init;
}

void take_place(comm::JobEnv& job, const WorkerPlace& place) {
  job.rank = place.rank;
  job.world_size = place.world_size;
  job.local_rank = place.local_rank;
  job.local_world_size = place.local_world_size;
  job.nnodes = place.nnodes;
  job.attempt = static_cast<int>(place.attempt);
}

// Leaves the broken group and waits for the agent's next place for this worker (its job
// environment updated to it); false when the agent says stop.
bool stand_by(AgentChannel& agent, comm::JobEnv& job, std::unique_ptr<comm::ProcessGroup>& group,
              const std::string& reason) {
  group.reset();  // never throws; the others see it leave
  std::fprintf(stderr, "rank %d: the group broke (%s); standing by with the state in memory\n",
               job.rank, reason.c_str());
  const std::optional<WorkerPlace> place = agent.stand_by(reason, kStandbyDeadline);
  if (!place) return false;
  take_place(job, *place);
  return true;
}

// Trains a model of layers in `group`. Under an elastic agent with memory copies
// (train.memory_copy_every), a worker whose group breaks keeps its process and its copy of the
// state, and the agent places it in the next round, where it joins a new group and goes on.
void train_layers(const train::Config& config, comm::JobEnv job, const TrainArgs& args,
                  std::unique_ptr<comm::ProcessGroup> group) {
  std::optional<AgentChannel> agent;
  if (config.train.memory_copy_every > 0) agent = AgentChannel::from_environment();
  train::MemoryCopy memory;
  const comm::InitOptions init = init_options(config);
  const std::vector<Fault> faults = parse_faults(env_string("TESSERA_FAULTS").value_or(""));
  const std::string checkpoints = (std::filesystem::path(config.train.run_dir) / "checkpoints");
  if (agent && env_string("TESSERA_SPARE")) {
    // A spare: ready to take a place at once, its data already loaded.
    train::open_data_sets(config, memory);
    const std::optional<WorkerPlace> place = agent->stand_by("a spare, ready", kStandbyDeadline);
    if (!place) return;
    take_place(job, *place);
  }
  for (;;) {
    try {
      if (!group) group = comm::init_process_group(job, init);
      memory.ranks_per_host = job.local_world_size.value_or(1);
      // A round of an elastic job after the first, and a Slurm job requeued, go on from the
      // newest checkpoint (or memory copy).
      ElasticReporter elastic(job);
      std::function<void(int64_t)> report = elastic.on_step();
      std::function<void(int64_t)> fault = fault_hook(faults, job.rank, job.attempt, checkpoints);
      std::function<void(int64_t)> on_step = [&](int64_t step) {
        if (report) report(step);
        if (fault) fault(step);
        if (agent && agent->pause_requested()) throw PauseRequested();
      };
      train::Trainer trainer(config, {.group = group.get(),
                                      .resume = args.resume || job.attempt > 0 || job.requeued,
                                      .progress = args.quiet ? nullptr : stderr,
                                      .on_step = on_step,
                                      .job_token = job.token,
                                      .memory = agent ? &memory : nullptr});
      train::TrainResult r = trainer.run();
      if (group->rank() == 0) print_result(r);
      group->shutdown();
      return;
    } catch (const comm::CommError& e) {
      if (!agent) throw;
      if (!stand_by(*agent, job, group, e.what())) return;
    } catch (const comm::TimeoutError& e) {
      if (!agent) throw;
      if (!stand_by(*agent, job, group, e.what())) return;
    } catch (const PauseRequested& e) {
      if (!stand_by(*agent, job, group, e.what())) return;
    }
  }
}

// A parameter-server job's worker started again after it died: goes on from its servers' step,
// unless the servers finished the job meanwhile (they are gone: there is nothing to train).
void rejoin_ps_job(const train::Config& config, const comm::JobEnv& job, const TrainArgs& args) {
  auto finished = [&] {
    if (!train::parameter_servers_finished(config)) return false;
    if (!args.quiet) {
      std::fprintf(stderr,
                   "ps worker %d: started again, but the servers finished the job: "
                   "nothing left to train\n",
                   job.rank);
    }
    return true;
  };
  if (finished()) return;
  try {
    train::Trainer trainer(config, {.progress = args.quiet ? nullptr : stderr,
                                    .job_token = job.token,
                                    .rejoin_rank = job.rank,
                                    .rejoin_world_size = job.world_size});
    if (!args.quiet) {
      std::fprintf(stderr, "ps worker %d: started again; going on from step %lld\n", job.rank,
                   static_cast<long long>(trainer.first_step()));
    }
    const train::TrainResult r = trainer.run();
    if (job.rank == 0) print_result(r);
  } catch (const std::exception&) {
    if (!finished()) throw;  // they finished while it was connecting
  }
}

// One rank of a job that a launcher (ours, mpirun, srun) started: joins the others and trains its
// shard; rank 0 alone reports.
void run_worker(const train::Config& config, const comm::JobEnv& job, const TrainArgs& args) {
  // Cores are shared by the ranks of a host. Under the tessera launcher the core reads
  // TESSERA_LOCAL_WORLD_SIZE itself; mpirun and srun say it in their own words.
  if (config.train.threads == 0 && !env_string("TESSERA_NUM_THREADS") && job.local_world_size) {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    set_num_threads(std::max(1, cores / *job.local_world_size));
  }
  const train::ServeOptions serve{
      .host = comm::service_host(job),
      .job_token = job.token,
      .log = args.quiet ? nullptr : stderr,
      .resume = args.resume,
      .workers_restarted = env_string("TESSERA_MAX_RESTARTS").has_value(),
      .on_hung = report_hung_to(job)};
  if (env_string("TESSERA_RESTART")) {
    // The others joined the group long ago: a restarted server or worker comes back on its own.
    if (train::is_parameter_server(config, job.rank, job.world_size)) {
      train::restart_parameter_server(config, job.rank, job.world_size, serve);
      return;
    }
    rejoin_ps_job(config, job, args);
    return;
  }
  if (env_string("TESSERA_SPARE")) {  // joins a group once placed
    train_layers(config, job, args, nullptr);
    return;
  }
  std::unique_ptr<comm::ProcessGroup> group = comm::init_process_group(job, init_options(config));
  if (train::is_estimator(config.model.type)) {
    const train::EstimatorResult r = train::run_estimator(
        config, {.group = group.get(), .progress = args.quiet ? nullptr : stderr});
    if (group->rank() == 0) print_estimator_result(r);
  } else if (train::is_parameter_server(config, group->rank(), group->size())) {
    train::serve_parameters(config, *group, serve);
  } else if (config.model.type != "layers") {
    if (args.resume) {
      throw ConfigError("command line", 0, "--resume",
                        "a sparse model cannot resume yet (its workers keep no checkpoint of "
                        "their place in the data): start the run afresh");
    }
    const train::SparseResult r = train::train_sparse(
        config,
        {.group = group.get(), .progress = args.quiet ? nullptr : stderr, .job_token = job.token});
    print_sparse_result(r, group->rank());
  } else {
    train_layers(config, job, args, std::move(group));
    return;
  }
  group->shutdown();
}

void run_launcher_for(const train::Config& config, const TrainArgs& args, LaunchOptions o) {
  const int world = o.nproc * o.nnodes;
  if (config.parallel.strategy == "none" && world > 1) {
    throw ConfigError(
        config.source, 0, "parallel.strategy",
        detail::concat("is \"none\" but ", world, " processes would train: set it to \"ddp\""));
  }
  o.worker_args = strip_launcher_options(args.argv);
  o.expendable_ranks = train::expendable_ranks(config, world);
  o.restartable_ranks = train::restartable_ranks(config, world);
  // A parameter-server job is not elastic: under asp and ssp --max-restarts starts a failed server
  // or worker alone again (a server comes back from its own checkpoint, and the workers
  // reconnect); under bsp a failure ends the job.
  if (config.parallel.strategy == "ps") {
    if (o.min_nproc != o.nproc || o.min_nnodes != o.nnodes) {
      throw ConfigError("command line", 0, o.min_nproc != o.nproc ? "--nproc" : "--nnodes",
                        "a parameter-server job has a fixed size: give one number, not MIN:MAX");
    }
    o.elastic = false;
  }
  if (o.spares > 0 &&
      (config.model.type != "layers" || config.train.memory_copy_every == 0 || !o.elastic)) {
    throw ConfigError("command line", 0, "--spares",
                      "needs an elastic job of a model of layers with memory copies "
                      "(train.memory_copy_every > 0): a spare takes its state from a survivor");
  }
  const int code = o.elastic ? run_elastic_agent(o) : run_launcher(o);
  if (code != 0) throw ExitCode(code);
}

}  // namespace

void add_train_command(CLI::App& app, std::vector<std::string> argv) {
  auto args = std::make_shared<TrainArgs>();
  args->argv = std::move(argv);
  CLI::App* cmd = app.add_subcommand(
      "train",
      "Train a model from a TOML config.\n\n"
      "Metrics go to <run_dir>/metrics.jsonl (one JSON object per line), checkpoints to\n"
      "<run_dir>/checkpoints. Examples:\n"
      "  tessera train examples/fashion_mnist_mlp.toml\n"
      "  tessera train cfg.toml --set optimizer.lr=0.05 --set train.epochs=3\n"
      "  tessera train cfg.toml --resume     # continue from the newest valid checkpoint\n"
      "  tessera train cfg.toml --nproc 4    # 4 workers on this host ([parallel] strategy "
      "\"ddp\")\n"
      "  tessera train cfg.toml --nproc 4 --nnodes 2 --node-rank 0 --rdzv 10.0.0.1:29500 \\\n"
      "      --token-file ~/.tessera-token   # on host 10.0.0.1; --node-rank 1 on the other\n"
      "  mpirun -np 8 tessera train cfg.toml # or srun: see docs/distributed.md");
  cmd->add_option("config", args->config, "TOML config file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--set", args->overrides,
                  "Override a setting: table.key=value (TOML value; bare words are strings)");
  cmd->add_flag("--resume", args->resume, "Continue from the newest valid checkpoint in run_dir");
  cmd->add_flag("-q,--quiet", args->quiet, "No progress output (metrics are still written)");
  add_launcher_flags(*cmd, args->launcher,
                     "Workers to start on this host (default: [parallel] nproc); each line they "
                     "print is prefixed with [rank R]",
                     "Collectives backend (default: [parallel] backend)");
  cmd->callback([args, cmd] {
    train::Config config = train::load_config(args->config, args->overrides);
    std::optional<comm::JobEnv> job = comm::job_env_from_environment();
    if (job) {
      for (const char* option : {"--nproc", "--nnodes", "--node-rank", "--rdzv"}) {
        if (cmd->count(option) > 0) {
          throw ConfigError(
              "command line", 0, option,
              detail::concat("this process is already rank ", job->rank, " of ", job->world_size,
                             ", started by ", comm::launcher_name(job->launcher),
                             ": leave the launcher's options out"));
        }
      }
      run_worker(config, *job, *args);
      return;
    }
    LaunchOptions launch = launch_options(
        args->launcher, *cmd, static_cast<int>(config.parallel.nproc), config.parallel.backend);
    if (launch.nproc > 1 || launch.nnodes > 1 || launch.elastic) {
      run_launcher_for(config, *args, std::move(launch));
      return;
    }
    if (train::is_estimator(config.model.type)) {
      print_estimator_result(
          train::run_estimator(config, {.progress = args->quiet ? nullptr : stderr}));
      return;
    }
    if (config.model.type != "layers") {
      (void)train::train_sparse(config, {});  // says that it needs servers and workers
    }
    train::Trainer trainer(config,
                           {.resume = args->resume, .progress = args->quiet ? nullptr : stderr});
    print_result(trainer.run());
  });
}

}  // namespace tessera::cli
