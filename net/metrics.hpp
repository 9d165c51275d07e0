#pragma once

// Butler's metrics in the Prometheus text format: the samples actors report
// (metric_set, built here from their counters), the HTTP ingress's requests
// by route and status with a latency histogram, and the process's own
// figures, rendered with prometheus-cpp. Names follow Prometheus conventions:
// the butler_ prefix, _total for counters, base units (bytes, seconds).

#include "messages/replies.hpp"

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace butler::metrics {

using label_list = std::vector<std::pair<std::string, std::string>>;

/// Returns a counter sample.
metric_sample counter(std::string name, std::string help, double value,
                      label_list labels = {});

/// Returns a gauge sample.
metric_sample gauge(std::string name, std::string help, double value,
                    label_list labels = {});

/// How one entry of an actor's counters_status becomes a sample.
struct counter_map {
  /// The counter's name in counters_status, e.g. "posted".
  std::string key;
  /// The sample's name, e.g. "butler_slack_posts_total".
  std::string name;
  std::string help;
  bool gauge = false;
  label_list labels;
};

/// Maps the counters of `status` that `table` names to samples.
metric_set from_counters(const counters_status& status,
                         const std::vector<counter_map>& table);

/// HTTP requests by route and status, and their latency; recorded by the
/// HTTP I/O threads (thread-safe), read when /metrics is rendered.
class request_metrics {
public:
  request_metrics();
  ~request_metrics();
  request_metrics(const request_metrics&) = delete;
  request_metrics& operator=(const request_metrics&) = delete;

  /// Counts one answered request on `route` (an endpoint name, or
  /// "unmatched") with its status and the seconds it took.
  void record(const std::string& route, unsigned status, double seconds);

  struct impl;
  impl& state() const {
    return *impl_;
  }

private:
  std::unique_ptr<impl> impl_;
};

/// The process's figures from /proc/self: resident memory, CPU seconds,
/// open file descriptors, threads, start time and uptime; and build info.
metric_set process_samples();

/// Renders `samples` and, if given, the request metrics as Prometheus text
/// (exposition format 0.0.4). Samples with one name form one family; a
/// sample whose name was first seen with the other type is left out.
std::string render(const metric_set& samples, const request_metrics* http);

/// The Content-Type of render()'s output.
constexpr const char* content_type = "text/plain; version=0.0.4; charset=utf-8";

} // namespace butler::metrics
