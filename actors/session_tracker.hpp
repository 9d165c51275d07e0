#pragma once

// session_tracker owns the table of users with an open Sense session, fed by
// the audit events (Start session / Stop session). After every change the
// count and the user names go to MQTT
// (activeUserCountTopic, activeUsersTopic); the REST API reads them too.

#include "config/butler_config.hpp"
#include "messages/actors.hpp"

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <cstdint>
#include <map>
#include <string>

namespace butler {

struct session_tracker_state {
  static constexpr const char* name = "session-tracker";

  /// Topics, and whether MQTT is on.
  mqtt_config mqtt_cfg;
  mqtt_link_actor mqtt;
  /// "<dir>/<user>" -> open sessions of that user (a user may have several,
  /// e.g. on two proxies). Connections alone do not make a user active.
  std::map<std::string, int> sessions;
  std::uint64_t starts = 0;
  std::uint64_t stops = 0;
  /// Stops for a user without an open session (e.g. Butler started mid-way).
  std::uint64_t unmatched_stops = 0;
  std::uint64_t publishes = 0;
};

/// Tracks active users and publishes them on every change.
/// @param mqtt_cfg where to publish (nothing when mqtt_cfg.enable is false).
session_tracker_actor::behavior_type
session_tracker(session_tracker_actor::stateful_pointer<session_tracker_state> self,
                mqtt_config mqtt_cfg);

} // namespace butler
