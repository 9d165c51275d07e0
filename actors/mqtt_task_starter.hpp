#pragma once

// mqtt_task_starter starts a Qlik Sense task for every message on
// Butler.mqttConfig.taskStartTopic whose payload is a task id, through the
// same qrs_client path as the REST API (startTaskFilter included). Anything
// else is logged and counted, and nothing is started.
//
// A burst of messages does not flood QRS: a few starts are in flight at a
// time and the rest wait in a bounded backlog, in arrival order. At
// shutdown the drain waits for the backlog to be started.

#include "actors/drain_gate.hpp"
#include "config/defaults.hpp"
#include "messages/actors.hpp"

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

namespace butler {

struct task_starter_options {
  /// Butler.mqttConfig.taskStartTopic.
  std::string topic = defaults::mqtt::task_start_topic;
  /// Starts sent to qrs_client at once.
  std::size_t max_in_flight = defaults::sense::mqtt_starts_in_flight;
  /// Starts waiting for one of those; more are dropped.
  std::size_t max_waiting = defaults::sense::mqtt_starts_backlog;
  /// How long to wait for qrs_client's answer to one start. qrs_client
  /// answers within its own QRS timeouts; this bound only frees the slot
  /// when an answer is lost (qrs-client restarted with the start in hand).
  std::chrono::milliseconds reply_timeout
    = defaults::sense::qrs_timeout * 4 + std::chrono::seconds{5};
};

struct mqtt_task_starter_state {
  static constexpr const char* name = "mqtt-task-starter";

  /// A task id waiting to be started, with the message id for the logs.
  struct start {
    std::string id;
    std::string task_id;
  };

  task_starter_options opts;
  mqtt_link_actor mqtt;
  qrs_client_actor qrs;
  std::deque<start> waiting;
  std::size_t in_flight = 0;
  std::uint64_t received = 0;
  std::uint64_t invalid = 0;
  std::uint64_t started = 0;
  std::uint64_t unknown = 0;
  std::uint64_t denied = 0;
  std::uint64_t failed = 0;
  std::uint64_t dropped = 0;
  drain_gate drain;
};

/// Starts tasks named on `opts.topic`.
mqtt_task_starter_actor::behavior_type
mqtt_task_starter(
  mqtt_task_starter_actor::stateful_pointer<mqtt_task_starter_state> self,
  task_starter_options opts);

} // namespace butler
