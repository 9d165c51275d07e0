#pragma once

// What each log event looks like on MQTT (reference/mqtt.md and
// log-events.md): topics and payloads, as pure functions.

#include "config/butler_config.hpp"
#include "messages/log_event.hpp"
#include "net/mqtt_client.hpp"

#include <string>
#include <vector>

namespace butler::events {

/// Appends the MQTT messages for `ev` to `out` (QoS `qos`, no retain):
/// failed and aborted reloads publish the task name on taskFailureTopic /
/// taskAbortedTopic and, with taskFailureSendFull / taskAbortedSendFull, the
/// full JSON on the *FullTopic; a Butler 2 task failure publishes its task
/// name; session and connection events publish "<host>: <dir>/<user>" on
/// their topic. Other kinds publish nothing.
void append_mqtt_messages(const log_event& ev, const mqtt_config& cfg, int qos,
                          std::vector<mqtt::message>& out);

/// Returns the JSON object of a task event as Butler publishes it on the full
/// topics: hostName, user, taskName, taskId, appName, appId, logTimeStamp,
/// logLevel, executionId, logMessage and the (empty without QRS) qs_* fields.
std::string full_json(const log_event& ev);

/// Returns "<dir>/<user>" of an audit event.
std::string user_name(const log_event& ev);

} // namespace butler::events
