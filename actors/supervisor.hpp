#pragma once

// The supervisor: spawns the actors in order, monitors them, restarts one that
// fails with exponential back-off (logged and counted) while the others keep
// serving, tells every child its peers' current handles, and stops them in
// reverse order on shutdown (drain, then exit).
//
// Every heartbeat interval it asks each child whether it is ready
// (atom::ready); a child that does not answer within the heartbeat timeout
// is stuck and counts as failed. A child that fails more than maxRestarts
// times within restartWindowSeconds is left stopped: the service is then
// not ready, and the supervisor stops feeding the systemd watchdog so that
// the platform restarts the whole process. READY=1, WATCHDOG=1 and
// STOPPING=1 go to systemd through `notify`.

#include "config/butler_config.hpp"
#include "messages/actors.hpp"

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>
#include <caf/actor_clock.hpp>

#include <chrono>

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

namespace butler {

/// How to (re)start one child. Resources that must outlive a restart (the
/// MQTT client with its backlog) are captured by `spawn`.
struct child_spec {
  /// Actor name, e.g. "mqtt-link"; peers look each other up by it.
  std::string name;
  /// Spawns the child with the current config (the latest reloaded one);
  /// called for the first start and for every restart.
  std::function<caf::actor(caf::actor_system&, const butler_config&)> spawn;
  /// The child takes a reloaded config (it handles config_ptr).
  bool reloads = false;
};

/// How the supervisor talks to systemd; empty when not run by it.
struct service_notifier {
  /// Sends one state line ("READY=1") to systemd.
  std::function<void(const std::string&)> send;
  /// The watchdog period systemd expects (WATCHDOG_USEC); 0: no watchdog.
  std::chrono::microseconds watchdog{0};
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
    /// Failures within the restart window, oldest first.
    std::deque<caf::actor_clock::time_point> recent_failures;
    /// Past the restart limit: left stopped.
    bool gave_up = false;
    /// A readiness query is out.
    bool query_pending = false;
    /// The latest readiness answer: "" when ready, else why not.
    std::string not_ready = "starting";
    /// When the child's readiness last changed (ms since the Unix epoch).
    std::int64_t since_ms = 0;
  };

  supervisor_config cfg;
  /// The config children are spawned with: the one Butler started with, or
  /// the latest reloaded one.
  config_ptr config;
  service_notifier notify;
  /// READY=1 went out.
  bool announced_ready = false;
  /// When the supervisor started (ms since the Unix epoch).
  std::int64_t started_ms = 0;
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
/// @param config the config; its supervisor section sets back-off, restart
///               limits, heartbeats and shutdown timing.
/// @param specs the children, in start order.
/// @param notify where READY=1, WATCHDOG=1 and STOPPING=1 go.
supervisor_actor::behavior_type
supervisor(supervisor_actor::stateful_pointer<supervisor_state> self,
           config_ptr config, std::vector<child_spec> specs,
           service_notifier notify);

} // namespace butler
