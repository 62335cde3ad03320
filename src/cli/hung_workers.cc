#include "hung_workers.h"

#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "tessera/comm/tcp_store.h"

namespace tessera::cli {
namespace {

constexpr const char* kReports = "ps/hung";  // reports of every rank, read every poll
std::string hung_key(int rank) { return "ps/hung/" + std::to_string(rank); }

}  // namespace

std::function<void(int rank)> report_hung_to(const comm::JobEnv& job) {
  if (job.store_host.empty()) return nullptr;
  struct Reporter {
    std::mutex mutex;
    comm::TcpStoreOptions options;
    std::unique_ptr<comm::TcpStore> store;  // opened at the first report
  };
  auto reporter = std::make_shared<Reporter>();
  reporter->options = {.host = job.store_host, .port = job.store_port, .token = job.token};
  return [reporter](int rank) {
    std::lock_guard<std::mutex> lock(reporter->mutex);
    if (!reporter->store) reporter->store = std::make_unique<comm::TcpStore>(reporter->options);
    (void)reporter->store->add(hung_key(rank), 1);
    (void)reporter->store->add(kReports, 1);
  };
}

HungWorkers::HungWorkers(comm::Store& store, std::vector<int> ranks) : store_(store) {
  for (const int rank : ranks) seen_[rank] = 0;
}

std::vector<int> HungWorkers::newly_hung() {
  std::vector<int> hung;
  const std::int64_t reports = store_.add(kReports, 0);
  if (reports == reports_seen_) return hung;
  reports_seen_ = reports;
  for (auto& [rank, seen] : seen_) {
    const std::int64_t reports = store_.add(hung_key(rank), 0);
    if (reports > seen) hung.push_back(rank);
    seen = reports;
  }
  return hung;
}

}  // namespace tessera::cli
