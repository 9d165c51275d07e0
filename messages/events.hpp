#pragma once

// Events that flow between actors. Every struct is default- and
// copy-constructible and has a CAF 0.17 inspect overload.

#include <caf/actor.hpp>
#include <caf/meta/type_name.hpp>

#include <string>

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

} // namespace butler
