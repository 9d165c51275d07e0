#pragma once

// Events that flow between actors. Every struct is default- and
// copy-constructible and has a CAF 0.17 inspect overload.

#include "messages/log_event.hpp"

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/meta/type_name.hpp>

#include <memory>
#include <string>
#include <vector>

namespace butler {

/// A message the broker delivered on a subscribed topic.
struct mqtt_inbound {
  std::string topic;
  std::string payload;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, mqtt_inbound& x) {
  return f(caf::meta::type_name("mqtt_inbound"), x.topic, x.payload);
}

/// The MQTT connection came up or went down.
struct mqtt_connection_changed {
  bool connected = false;
  std::string detail;
};

template <class Inspector>
typename Inspector::result_type
inspect(Inspector& f, mqtt_connection_changed& x) {
  return f(caf::meta::type_name("mqtt_connection_changed"), x.connected,
           x.detail);
}

/// The supervisor (re)started the actor `name`; sent to every other child so
/// that each holds the current handle of the peers it talks to.
struct peer_up {
  std::string name;
  caf::actor handle;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, peer_up& x) {
  return f(caf::meta::type_name("peer_up"), x.name, x.handle);
}

/// Events udp_ingest accepted together, on their way to every sink that
/// wants them. One copy is shared by all sinks (local only).
struct event_batch {
  std::shared_ptr<const std::vector<log_event>> events;
  /// Held until the last sink lets go of the batch; releasing it returns the
  /// events' places in udp_ingest's bounded in-flight count.
  std::shared_ptr<const void> permit;
};

/// The outcome of one outbound HTTP post (from the HTTP client's thread).
struct post_outcome {
  std::uint64_t job = 0;
  /// HTTP status, 0 when no response came.
  long status = 0;
  /// Retry-After in seconds from a 429/503, -1 if none.
  long retry_after = -1;
  /// Whether the request reached the peer even if no response came.
  bool request_sent = false;
  std::string error;
  std::string body;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, post_outcome& x) {
  return f(caf::meta::type_name("post_outcome"), x.job, x.status,
           x.retry_after, x.request_sent, x.error, x.body);
}

} // namespace butler

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(butler::event_batch)
