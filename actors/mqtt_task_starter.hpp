#pragma once

// mqtt_task_starter starts a Qlik Sense task for every message on
// Butler.mqttConfig.taskStartTopic whose payload is a task id, through the
// same qrs_client path as the REST API (startTaskFilter included). Anything
// else is logged and counted, and nothing is started.

#include "messages/actors.hpp"

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <cstdint>
#include <string>

namespace butler {

struct mqtt_task_starter_state {
  static constexpr const char* name = "mqtt-task-starter";

  std::string topic;
  mqtt_link_actor mqtt;
  qrs_client_actor qrs;
  std::uint64_t received = 0;
  std::uint64_t invalid = 0;
  std::uint64_t started = 0;
  std::uint64_t unknown = 0;
  std::uint64_t denied = 0;
  std::uint64_t failed = 0;
};

/// Starts tasks named on `topic`.
mqtt_task_starter_actor::behavior_type
mqtt_task_starter(
  mqtt_task_starter_actor::stateful_pointer<mqtt_task_starter_state> self,
  std::string topic);

} // namespace butler
