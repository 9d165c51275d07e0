#pragma once

// Requests that actors send each other. Every struct is default- and
// copy-constructible and has a CAF 0.17 inspect overload.

#include <caf/meta/type_name.hpp>

#include <string>

namespace butler {

/// Asks mqtt_link to publish a message. Replied to with caf::ok_atom once the
/// message is held for the broker, or with ec::backlog_full / ec::unavailable.
struct mqtt_publish_request {
  std::string topic;
  std::string payload;
  /// QoS 0-2, or -1 for Butler.mqttConfig.qos.
  int qos = -1;
  bool retain = false;
  /// The id of the request or event this publish belongs to (for tracing).
  std::string event_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, mqtt_publish_request& x) {
  return f(caf::meta::type_name("mqtt_publish_request"), x.topic, x.payload,
           x.qos, x.retain, x.event_id);
}

} // namespace butler
