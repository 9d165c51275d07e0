#pragma once

// mqtt_link owns the MQTT client: it publishes on behalf of other actors and
// dispatches inbound messages to the actor that registered a matching topic
// filter. The client (with its thread, connection and backlog) is created
// once and handed to each incarnation of the actor, so a restart of the actor
// neither drops the connection nor loses held messages.

#include "config/butler_config.hpp"
#include "actors/drain_gate.hpp"
#include "messages/actors.hpp"
#include "net/mqtt_client.hpp"

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/actor_clock.hpp>
#include <caf/typed_response_promise.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace butler {

struct mqtt_link_state {
  static constexpr const char* name = "mqtt-link";

  std::shared_ptr<mqtt::client> client;
  /// Topics and QoS (Butler.mqttConfig).
  mqtt_config cfg;
  /// Reused for rendering event batches.
  std::vector<mqtt::message> scratch;
  /// Messages from events and fire-and-forget publishes: taken, refused.
  std::uint64_t events_published = 0;
  std::uint64_t shed = 0;
  /// (topic filter, handler), one handler per filter.
  std::vector<std::pair<std::string, mqtt_inbound_handler_actor>> handlers;
  bool connected = false;
  std::string detail;
  std::uint64_t inbound_dispatched = 0;
  std::uint64_t inbound_ignored = 0;
  /// Pending drain: answered when the backlog is empty or at the deadline.
  drain_gate drain;

  ~mqtt_link_state();
};

/// Publishes through `client` and dispatches what it receives.
/// @param client started by the caller; shared across restarts.
/// @param cfg topics for log events, and the QoS of publishes that don't
///        name one.
mqtt_link_actor::behavior_type
mqtt_link(mqtt_link_actor::stateful_pointer<mqtt_link_state> self,
          std::shared_ptr<mqtt::client> client, mqtt_config cfg);

} // namespace butler
