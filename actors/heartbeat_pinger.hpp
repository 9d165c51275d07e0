#pragma once

// heartbeat_pinger tells an outside monitor that Butler is alive: it GETs
// Butler.heartbeat.remoteURL at start and then on the configured schedule,
// through the asynchronous curl client (never blocking an actor thread).
// A failed ping (no response, or a status other than 2xx) is counted and
// logged at warn, throttled to the first of a run and every tenth after it;
// it is never fatal. The first ping that works after failures is logged
// once at info. At most one GET is out at a time.

#include "config/butler_config.hpp"
#include "messages/actors.hpp"
#include "net/curl_client.hpp"

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <cstdint>
#include <memory>
#include <string>

namespace butler {

struct heartbeat_pinger_state {
  static constexpr const char* name = "heartbeat-pinger";

  heartbeat_config cfg;
  std::shared_ptr<http::client> http;
  /// remoteURL without credentials, path and query, for log lines: a
  /// monitor's ping URL often carries its token.
  std::string target;
  std::uint64_t next_job = 0;
  /// The id of the GET in flight; 0 when none is.
  std::uint64_t in_flight = 0;
  // Counters.
  std::uint64_t ok = 0;
  std::uint64_t failed = 0;
  /// Failed pings since the last one that worked.
  std::uint64_t failing = 0;
  /// Pings not sent because the one before had not finished.
  std::uint64_t skipped = 0;
};

/// Returns the scheme, host and port of `url` ("https://monitor:8443"),
/// without user name, password, path, query or fragment.
std::string url_origin(const std::string& url);

/// Pings the monitor on a schedule.
/// @param cfg Butler.heartbeat (enabled, with a valid remoteURL).
/// @param http the outbound HTTP client (started by the caller).
heartbeat_pinger_actor::behavior_type
heartbeat_pinger(
  heartbeat_pinger_actor::stateful_pointer<heartbeat_pinger_state> self,
  heartbeat_config cfg, std::shared_ptr<http::client> http);

} // namespace butler
