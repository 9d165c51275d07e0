#pragma once

// The ingest pipeline for log-event datagrams, run on the UDP receive
// thread: size and source checks, parsing, dedup, rate limit, event ids,
// counters by reason, and throttled log lines about rejections. No sockets,
// no actors: the caller feeds datagrams and forwards what it returns.

#include "net/expiring_set.hpp"
#include "net/log_event_parser.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace butler::events {

/// Which socket a datagram came in on.
enum class port_kind : uint8_t { task, session };

struct ingest_options {
  /// udpServerConfig.maxMessageSize.
  std::size_t max_message_size = 65507;
  /// udpServerConfig.enableSourceValidation and allowedSources, already
  /// resolved to numeric IP addresses ("10.0.0.5", "::1").
  bool source_validation = false;
  std::vector<std::string> allowed_addresses;
  /// udpServerConfig.deduplication: key = type + execution id.
  bool dedup_enable = true;
  std::chrono::milliseconds dedup_ttl{std::chrono::minutes{10}};
  /// udpServerConfig.rateLimit: over all accepted datagrams, per minute.
  bool rate_limit_enable = false;
  int rate_limit_per_minute = 600;
  /// At most one log line per rejection reason per interval (with the count
  /// of those not logged).
  std::chrono::milliseconds log_interval{std::chrono::seconds{10}};
};

/// Counters, readable from any thread.
struct ingest_stats {
  std::uint64_t received = 0;
  std::uint64_t accepted = 0;
  std::array<std::uint64_t, reject_reason_count> rejected{};
};

/// Keys the pipeline's own in-memory dedup set holds when dedup is on but
/// the constructor got no set.
constexpr std::size_t default_dedup_entries = 100000;

/// Returns "ip:port", or "[ip]:port" for an IPv6 address.
std::string format_source(std::string_view ip, uint16_t port);

class ingest_pipeline {
public:
  /// `dedup` may be null when dedup is off (with dedup on, a null `dedup`
  /// gets an in-memory set of default_dedup_entries keys).
  ingest_pipeline(ingest_options opts, std::unique_ptr<expiring_set> dedup);

  /// Checks and parses one datagram from `source_ip`:`source_port`; returns
  /// the accepted event with its id and source set, or nullopt (counted,
  /// logged at a throttled rate).
  std::optional<log_event> process(port_kind port, std::string_view data,
                                   std::string_view source_ip,
                                   uint16_t source_port,
                                   std::chrono::steady_clock::time_point now);

  /// Returns the counters; safe to call from any thread.
  ingest_stats stats() const;

  /// Replaces the source allow-list and the rate limit (a config reload);
  /// safe to call from any thread, taken by the next process() call.
  void set_filters(bool source_validation,
                   std::vector<std::string> allowed_addresses,
                   bool rate_limit_enable, int rate_limit_per_minute);

private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

} // namespace butler::events
