#pragma once

// A stand-in for mqtt_link that speaks its typed interface, answers
// publishes the way a test asks (accept, fail with an error, or never
// answer) and records fire-and-forget publishes.

#include "messages/actors.hpp"
#include "messages/error.hpp"

#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include <atomic>
#include <memory>
#include <vector>

namespace butler::test {

/// How the fake answers publishes; shared with the test thread.
struct fake_link_script {
  enum mode_t { accept, fail, stall };
  std::atomic<int> mode{accept};
  /// The error used in fail mode.
  ec code = ec::backlog_full;
  std::atomic<int> publishes{0};
  /// Fire-and-forget publishes, in arrival order (read them from the test
  /// thread only while the actor system is idle, e.g. under the test
  /// scheduler).
  std::vector<mqtt_publish_request> notes;
  /// Topic filters handlers registered for.
  std::vector<std::string> subscriptions;
};

struct fake_mqtt_link_state {
  static constexpr const char* name = "fake-mqtt-link";
  /// Promises of stalled publishes, kept unanswered.
  std::vector<caf::typed_response_promise<caf::ok_atom>> stalled;
};

inline mqtt_link_actor::behavior_type
fake_mqtt_link(mqtt_link_actor::stateful_pointer<fake_mqtt_link_state> self,
               std::shared_ptr<fake_link_script> script) {
  return {
    [=](mqtt_publish_request&) -> caf::result<caf::ok_atom> {
      ++script->publishes;
      switch (script->mode.load()) {
        case fake_link_script::fail:
          return caf::make_error(script->code, "scripted failure");
        case fake_link_script::stall: {
          auto promise = self->make_response_promise<caf::ok_atom>();
          self->state.stalled.push_back(promise);
          return promise;
        }
        default:
          return caf::ok_atom::value;
      }
    },
    [=](std::vector<mqtt_publish_request>& reqs) {
      for (auto& r : reqs)
        script->notes.push_back(std::move(r));
    },
    [=](const event_batch&) {},
    [=](atom::subscribe, std::string& filter, mqtt_inbound_handler_actor&) {
      script->subscriptions.push_back(filter);
    },
    [=](mqtt_inbound&) {},
    [=](mqtt_connection_changed&) {},
    [=](atom::status) { return mqtt_link_status{}; },
    [=](atom::metrics) { return metric_set{}; },
    [=](atom::ready) { return std::string{}; },
    [=](atom::drain, caf::timespan) { return true; },
    [=](atom::tick) {},
    [=](peer_up&) {},
  };
}

} // namespace butler::test
