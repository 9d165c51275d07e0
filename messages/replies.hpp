#pragma once

// Replies and status snapshots. Every struct is default- and
// copy-constructible and has a CAF 0.17 inspect overload.

#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace butler {

/// mqtt_link's state and counters.
struct mqtt_link_status {
  bool connected = false;
  /// Why the link is down, or whom it is connected to.
  std::string detail;
  std::uint64_t published = 0;
  std::uint64_t rejected_full = 0;
  std::uint64_t connects = 0;
  std::uint64_t received = 0;
  std::uint64_t inbound_dispatched = 0;
  std::uint64_t inbound_ignored = 0;
  std::uint64_t backlog = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, mqtt_link_status& x) {
  return f(caf::meta::type_name("mqtt_link_status"), x.connected, x.detail,
           x.published, x.rejected_full, x.connects, x.received,
           x.inbound_dispatched, x.inbound_ignored, x.backlog);
}

/// One supervised actor.
struct child_status {
  std::string name;
  bool running = false;
  std::uint64_t restarts = 0;
  /// The reason of the latest failure, empty if none.
  std::string last_failure;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, child_status& x) {
  return f(caf::meta::type_name("child_status"), x.name, x.running, x.restarts,
           x.last_failure);
}

/// The supervisor's view of its children.
struct supervisor_status {
  std::vector<child_status> children;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, supervisor_status& x) {
  return f(caf::meta::type_name("supervisor_status"), x.children);
}

} // namespace butler
