#include "net/metrics.hpp"

#include "config/version.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <chrono>
#include <dirent.h>
#include <fstream>
#include <map>
#include <sstream>
#include <unistd.h>

namespace butler::metrics {

metric_sample counter(std::string name, std::string help, double value,
                      label_list labels) {
  return metric_sample{std::move(name), std::move(help), false,
                       std::move(labels), value};
}

metric_sample gauge(std::string name, std::string help, double value,
                    label_list labels) {
  return metric_sample{std::move(name), std::move(help), true,
                       std::move(labels), value};
}

metric_set from_counters(const counters_status& status,
                         const std::vector<counter_map>& table) {
  metric_set out;
  for (auto& entry : table)
    for (auto& [key, value] : status.counters)
      if (key == entry.key)
        out.samples.push_back(metric_sample{entry.name, entry.help,
                                            entry.gauge, entry.labels,
                                            static_cast<double>(value)});
  return out;
}

// -- HTTP requests ----------------------------------------------------------------

struct request_metrics::impl {
  prometheus::Registry registry;
  prometheus::Family<prometheus::Counter>& requests
    = prometheus::BuildCounter()
        .Name("butler_http_requests_total")
        .Help("REST requests answered, by route and status code")
        .Register(registry);
  prometheus::Family<prometheus::Histogram>& latency
    = prometheus::BuildHistogram()
        .Name("butler_http_request_duration_seconds")
        .Help("Time from a request's arrival to its answer, by route")
        .Register(registry);
};

request_metrics::request_metrics() : impl_(std::make_unique<impl>()) {
  // nop
}

request_metrics::~request_metrics() = default;

void request_metrics::record(const std::string& route, unsigned status,
                             double seconds) {
  static const prometheus::Histogram::BucketBoundaries buckets{
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1,    0.25,  0.5,    1,     2.5,  5,     10,   30};
  impl_->requests.Add({{"route", route}, {"status", std::to_string(status)}})
    .Increment();
  impl_->latency.Add({{"route", route}}, buckets).Observe(seconds);
}

// -- the process ------------------------------------------------------------------

namespace {

/// Returns the fields of /proc/self/stat after the command name.
std::vector<std::string> stat_fields() {
  std::ifstream in{"/proc/self/stat"};
  std::string line;
  std::getline(in, line);
  std::vector<std::string> fields;
  auto close = line.rfind(')');
  if (close == std::string::npos)
    return fields;
  std::istringstream rest{line.substr(close + 2)};
  for (std::string f; rest >> f;)
    fields.push_back(f);
  return fields;
}

/// Returns the system's boot time in seconds since the Unix epoch.
double boot_time() {
  std::ifstream in{"/proc/stat"};
  for (std::string key; in >> key;) {
    if (key == "btime") {
      double value = 0;
      in >> value;
      return value;
    }
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

double open_fds() {
  double count = 0;
  if (auto* dir = opendir("/proc/self/fd")) {
    while (auto* entry = readdir(dir))
      if (entry->d_name[0] != '.')
        ++count;
    closedir(dir);
  }
  return count > 0 ? count - 1 : 0; // not the directory handle itself
}

} // namespace

metric_set process_samples() {
  metric_set out;
  auto ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  auto page = static_cast<double>(sysconf(_SC_PAGESIZE));
  // Fields after the name, from state (field 3 of proc(5)) on.
  auto f = stat_fields();
  if (f.size() > 21) {
    auto cpu = (std::stod(f[11]) + std::stod(f[12])) / ticks;
    auto threads = std::stod(f[17]);
    auto start = boot_time() + std::stod(f[19]) / ticks;
    auto rss = std::stod(f[21]) * page;
    auto now = std::chrono::duration<double>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
    out.samples.push_back(counter("butler_process_cpu_seconds_total",
                                  "User and system CPU time used", cpu));
    out.samples.push_back(gauge("butler_process_resident_memory_bytes",
                                "Resident set size", rss));
    out.samples.push_back(
      gauge("butler_process_threads", "Threads of the process", threads));
    out.samples.push_back(gauge("butler_process_start_time_seconds",
                                "Start time since the Unix epoch", start));
    out.samples.push_back(gauge("butler_process_uptime_seconds",
                                "Seconds since the process started",
                                now - start));
  }
  out.samples.push_back(
    gauge("butler_process_open_fds", "Open file descriptors", open_fds()));
  out.samples.push_back(gauge("butler_build_info",
                              "Butler's version (the value is always 1)", 1,
                              {{"version", version()}}));
  return out;
}

// -- rendering --------------------------------------------------------------------

namespace {

using counter_families
  = std::map<std::string, prometheus::Family<prometheus::Counter>*>;
using gauge_families
  = std::map<std::string, prometheus::Family<prometheus::Gauge>*>;

/// Adds `s` to its family in `registry`, registering the family first; a
/// name first seen with the other type is left out.
void add_sample(prometheus::Registry& registry, counter_families& counters,
                gauge_families& gauges, const metric_sample& s) {
  prometheus::Labels labels{s.labels.begin(), s.labels.end()};
  if (s.gauge) {
    if (counters.count(s.name))
      return;
    auto& family = gauges[s.name];
    if (family == nullptr)
      family = &prometheus::BuildGauge().Name(s.name).Help(s.help).Register(
        registry);
    family->Add(labels).Set(s.value);
    return;
  }
  if (gauges.count(s.name))
    return;
  auto& family = counters[s.name];
  if (family == nullptr)
    family = &prometheus::BuildCounter().Name(s.name).Help(s.help).Register(
      registry);
  // Counters only go up: a negative value is left at 0.
  auto& c = family->Add(labels);
  if (s.value > 0)
    c.Increment(s.value);
}

} // namespace

std::string render(const metric_set& samples, const request_metrics* http) {
  prometheus::Registry registry;
  counter_families counters;
  gauge_families gauges;
  for (auto& s : samples.samples) {
    try {
      add_sample(registry, counters, gauges, s);
    } catch (const std::exception&) {
      // An invalid metric or label name: left out rather than failing the
      // whole scrape (the unit tests keep Butler's own names valid).
    }
  }
  auto families = registry.Collect();
  if (http != nullptr) {
    auto more = http->state().registry.Collect();
    families.insert(families.end(), more.begin(), more.end());
  }
  return prometheus::TextSerializer{}.Serialize(families);
}

} // namespace butler::metrics
