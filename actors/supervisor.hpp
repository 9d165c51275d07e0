#pragma once

// The supervisor: spawns the actors in order, monitors them, restarts one that
// fails with exponential back-off (logged and counted) while the others keep
// serving, tells every child its peers' current handles, and stops them in
// reverse order on shutdown (drain, then exit).

#include "config/butler_config.hpp"
#include "messages/actors.hpp"

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>
#include <caf/actor_clock.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace butler {

/// How to (re)start one child. Resources that must outlive a restart (the
/// MQTT client with its backlog) are captured by `spawn`.
struct child_spec {
  /// Actor name, e.g. "mqtt-link"; peers look each other up by it.
  std::string name;
  /// Spawns the child; called for the first start and for every restart.
  std::function<caf::actor(caf::actor_system&)> spawn;
};

struct supervisor_state {
  static constexpr const char* name = "supervisor";

  struct child {
    child_spec spec;
    caf::actor handle;
    std::uint64_t restarts = 0;
    /// Failures since the child last stayed up for stable_after.
    int consecutive_failures = 0;
    caf::actor_clock::time_point started;
    std::string last_failure;
  };

  supervisor_config cfg;
  /// In start order; shutdown walks it backwards.
  std::vector<child> children;
  /// Set once shutdown begins: from then on nothing is restarted.
  bool shutting_down = false;
  /// Set once every child was asked to exit.
  bool exiting = false;
  /// Answered when the last child is gone.
  caf::typed_response_promise<caf::ok_atom> shutdown_promise;
};

/// Spawns every child in `specs` order and supervises them.
/// @param cfg back-off and shutdown timing.
/// @param specs the children, in start order.
supervisor_actor::behavior_type
supervisor(supervisor_actor::stateful_pointer<supervisor_state> self,
           supervisor_config cfg, std::vector<child_spec> specs);

} // namespace butler
