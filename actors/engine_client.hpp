#pragma once

// engine_client owns Butler's sessions with the Qlik Engine: app lists,
// full app dumps and reloads (after which the tasks listed for success or
// failure are started through qrs_client). The sessions run on the engine
// client's own I/O thread; outcomes come back as messages.

#include "config/butler_config.hpp"
#include "actors/drain_gate.hpp"
#include "messages/actors.hpp"
#include "net/engine_client.hpp"

#include <caf/actor_clock.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace butler {

/// Returns the Engine options for `cfg` (configEngine plus cert).
engine::engine_options engine_options_of(const butler_config& cfg);

struct engine_client_state {
  static constexpr const char* name = "engine-client";

  engine::engine_options opts;
  std::shared_ptr<engine::client> engine;
  qrs_client_actor qrs;
  std::uint64_t next_op = 0;
  std::map<std::uint64_t, caf::typed_response_promise<app_list>> lists;
  std::map<std::uint64_t, caf::typed_response_promise<app_dump>> dumps;
  /// A reload in flight: its request (for the follow-up tasks) and promise.
  struct reload {
    app_reload_request req;
    caf::typed_response_promise<app_reload_result> promise;
  };
  std::map<std::uint64_t, reload> reloads;
  // Counters.
  std::uint64_t operations = 0;
  std::uint64_t failures = 0;
  drain_gate drain;

  std::size_t in_flight() const {
    return lists.size() + dumps.size() + reloads.size();
  }
};

/// Talks to the Engine.
/// @param opts host, certificates, headers and timeout.
/// @param engine the engine client with its I/O thread (started by the
///        caller, shared across restarts).
engine_client_actor::behavior_type
engine_client(engine_client_actor::stateful_pointer<engine_client_state> self,
              engine::engine_options opts,
              std::shared_ptr<engine::client> engine);

} // namespace butler
