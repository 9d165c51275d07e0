#pragma once

// udp_ingest owns the UDP sockets for Sense's log events (task port and
// session port). Its receive thread checks, parses and deduplicates each
// datagram (net/log_ingest) and hands accepted events in batches to the
// event router, with a bounded number in flight: past it, events are shed
// and counted. It announces its state on MQTT (taskFailureServerStatusTopic,
// sessionServerStatusTopic: "start" or "error").

#include "config/butler_config.hpp"
#include "actors/drain_gate.hpp"
#include "messages/actors.hpp"
#include "net/log_ingest.hpp"
#include "net/udp_receiver.hpp"

#include <caf/actor_clock.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace butler {

/// What outlives a restart of udp_ingest: the pipeline (with its dedup
/// table and event ids) and the counters. Used by one receive thread at a
/// time; the counters are atomics because the actor reads them.
struct ingest_context {
  ingest_context(events::ingest_options opts,
                 std::unique_ptr<expiring_set> dedup, std::size_t limit)
    : pipeline(std::move(opts), std::move(dedup)), in_flight_limit(limit) {
    // nop
  }

  events::ingest_pipeline pipeline;
  /// Events handed on whose batch no sink has released yet.
  std::atomic<std::int64_t> in_flight{0};
  const std::size_t in_flight_limit;
  /// Accepted events shed because in_flight was at its limit.
  std::atomic<std::uint64_t> shed{0};
  /// When shedding was last logged (throttles the warning).
  std::chrono::steady_clock::time_point last_shed_log;
  std::uint64_t shed_at_last_log = 0;
  /// Accepted events not yet handed on, collected for up to a millisecond so
  /// that the actors and the MQTT thread wake once per batch rather than
  /// once per datagram. Touched only by the receive thread, or by the actor
  /// once that thread has stopped.
  std::vector<log_event> pending;
  std::chrono::steady_clock::time_point first_pending;
};

/// Creates the context for `cfg`: resolves allowedSources, sizes the dedup
/// table and the in-flight limit (messageQueue.maxSize).
std::shared_ptr<ingest_context> make_ingest_context(const udp_config& cfg);

struct udp_ingest_state {
  static constexpr const char* name = "udp-ingest";

  udp_config cfg;
  mqtt_config mqtt_cfg;
  std::shared_ptr<ingest_context> ctx;
  std::unique_ptr<net::udp_receiver> receiver;
  /// Why the sockets could not be opened (then the actor fails).
  std::string bind_error;
  event_router_actor router;
  mqtt_link_actor mqtt;
  /// Batches that arrived before the router's handle.
  std::deque<event_batch> waiting;
  drain_gate drain;
  /// The counters at the last summary line.
  udp_ingest_status last_report;

  ~udp_ingest_state();
};

/// Opens the sockets and forwards accepted events.
/// @param cfg ports, limits and checks (Butler.udpServerConfig).
/// @param mqtt_cfg where to announce "start"/"error".
/// @param ctx shared across restarts (make_ingest_context).
udp_ingest_actor::behavior_type
udp_ingest(udp_ingest_actor::stateful_pointer<udp_ingest_state> self,
           udp_config cfg, mqtt_config mqtt_cfg,
           std::shared_ptr<ingest_context> ctx);

} // namespace butler
