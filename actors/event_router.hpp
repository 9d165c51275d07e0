#pragma once

// event_router fans each accepted log event out to the sinks the config
// enables for its kind (mqtt-link, slack-egress, session-tracker). Sends are
// fire-and-forget, so a slow sink never slows the others or the ingest;
// batches for a sink that is restarting are held (bounded) and handed over
// when it is back.

#include "config/butler_config.hpp"
#include "messages/actors.hpp"

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace butler {

/// Number of log_event_kind values.
constexpr std::size_t log_event_kind_count = 10;

/// One sink in the routing table.
struct event_route {
  /// Actor name, as the supervisor announces it.
  std::string sink;
  /// Which kinds it wants, indexed by log_event_kind.
  std::array<bool, log_event_kind_count> kinds{};
  event_sink_actor handle;
  /// Batches waiting while the sink is down.
  std::deque<event_batch> held;
  std::uint64_t routed = 0; // events handed to the sink
  std::uint64_t dropped = 0; // events dropped because too much was held
};

/// Returns the routing table for `cfg`: which sink gets which kinds.
std::vector<event_route> make_routes(const butler_config& cfg);

struct event_router_state {
  static constexpr const char* name = "event-router";

  std::vector<event_route> routes;
  /// Every peer the supervisor announced, by name (for routes a reloaded
  /// config adds).
  std::map<std::string, caf::actor> peers;
  /// Events of kinds no sink wants, by kind.
  std::array<std::uint64_t, log_event_kind_count> unrouted{};
};

/// Routes event batches.
/// @param routes from make_routes().
event_router_actor::behavior_type
event_router(event_router_actor::stateful_pointer<event_router_state> self,
             std::vector<event_route> routes);

} // namespace butler
