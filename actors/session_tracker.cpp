#include "actors/session_tracker.hpp"

#include "actors/actor_common.hpp"
#include "net/metrics.hpp"
#include "net/event_format.hpp"

#include <caf/event_based_actor.hpp>

#include <nlohmann/json.hpp>

namespace butler {

namespace {

using self_ptr
  = session_tracker_actor::stateful_pointer<session_tracker_state>;

/// Returns the user ids of the active users, in table order.
std::vector<std::string> user_list(const session_tracker_state& st) {
  std::vector<std::string> users;
  users.reserve(st.sessions.size());
  for (auto& [key, count] : st.sessions)
    users.push_back(key.substr(key.find('/') + 1));
  return users;
}

/// Publishes the count and the names (no reply; the link counts refusals).
void publish(self_ptr self) {
  auto& st = self->state;
  if (!st.mqtt_cfg.enable || !st.mqtt)
    return;
  std::vector<mqtt_publish_request> reqs;
  reqs.push_back(mqtt_publish_request{st.mqtt_cfg.active_user_count_topic,
                                      std::to_string(st.sessions.size()), -1,
                                      false, "active-users"});
  reqs.push_back(mqtt_publish_request{st.mqtt_cfg.active_users_topic,
                                      nlohmann::json(user_list(st)).dump(),
                                      -1, false, "active-users"});
  self->send(st.mqtt, std::move(reqs));
  ++st.publishes;
}

/// Returns the counters as the status reply carries them.
counters_status status_of(const session_tracker_state& st) {
  return counters_status{{{"active_users", st.sessions.size()},
                          {"session_starts", st.starts},
                          {"session_stops", st.stops},
                          {"unmatched_stops", st.unmatched_stops},
                          {"publishes", st.publishes}}};
}

/// How the counters appear in /metrics.
const std::vector<metrics::counter_map> metric_table{
  {"active_users", "butler_active_users",
   "Users with an open Qlik Sense session",
   true, {}},
  {"session_starts", "butler_session_events_total",
   "Session events by kind",
   false, {{"kind", "start"}}},
  {"session_stops", "butler_session_events_total",
   "Session events by kind",
   false, {{"kind", "stop"}}},
  {"unmatched_stops", "butler_session_unmatched_stops_total",
   "Session stops for users without a known session",
   false, {}},
  {"publishes", "butler_active_users_publishes_total",
   "Active-user updates published to MQTT",
   false, {}},
};

} // namespace

session_tracker_actor::behavior_type
session_tracker(session_tracker_actor::stateful_pointer<session_tracker_state> self,
                mqtt_config mqtt_cfg) {
  install_common_handlers(self);
  self->state.mqtt_cfg = std::move(mqtt_cfg);
  return {
    [=](const event_batch& batch) {
      auto& st = self->state;
      for (auto& ev : *batch.events) {
        bool changed = false;
        if (ev.kind == log_event_kind::session_start) {
          ++st.starts;
          auto& count = st.sessions[events::user_name(ev)];
          changed = count == 0;
          ++count;
          spdlog::debug("{} e{}: {} started a session", self->name(), ev.id,
                        events::user_name(ev));
        } else if (ev.kind == log_event_kind::session_stop) {
          ++st.stops;
          auto i = st.sessions.find(events::user_name(ev));
          if (i == st.sessions.end()) {
            ++st.unmatched_stops;
            spdlog::debug("{} e{}: {} stopped a session it was not known to "
                          "have",
                          self->name(), ev.id, events::user_name(ev));
            continue;
          }
          if (--i->second == 0) {
            st.sessions.erase(i);
            changed = true;
          }
        }
        // Every change is published, so subscribers see each step.
        if (changed)
          publish(self);
      }
    },
    [=](atom::users) {
      return active_users{user_list(self->state)};
    },
    [=](atom::status) { return status_of(self->state); },
    [=](atom::metrics) {
      return metrics::from_counters(status_of(self->state), metric_table);
    },
    [=](atom::drain, caf::timespan) { return true; },
    [=](peer_up& peer) {
      if (peer.name == "mqtt-link")
        self->state.mqtt = caf::actor_cast<mqtt_link_actor>(peer.handle);
    },
  };
}

} // namespace butler
