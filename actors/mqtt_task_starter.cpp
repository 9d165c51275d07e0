#include "actors/mqtt_task_starter.hpp"

#include "actors/actor_common.hpp"
#include "net/log_event_parser.hpp"

#include <caf/event_based_actor.hpp>

namespace butler {

namespace {

using self_ptr
  = mqtt_task_starter_actor::stateful_pointer<mqtt_task_starter_state>;

/// Returns `text` without surrounding white space.
std::string trim(const std::string& text) {
  auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos)
    return {};
  auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

/// Escapes control characters and cuts long payloads for a log line.
std::string printable(const std::string& text) {
  std::string out;
  for (auto c : text.substr(0, 80))
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return text.size() > 80 ? out + "..." : out;
}

} // namespace

mqtt_task_starter_actor::behavior_type
mqtt_task_starter(
  mqtt_task_starter_actor::stateful_pointer<mqtt_task_starter_state> self,
  std::string topic) {
  install_exception_handler(self);
  self->state.topic = std::move(topic);
  return {
    [=](mqtt_inbound& msg) {
      auto& st = self->state;
      auto id = "m" + std::to_string(++st.received);
      auto task_id = trim(msg.payload);
      if (!events::is_guid(task_id)) {
        ++st.invalid;
        spdlog::warn("{} ignores {} on {}: the payload is not a task id "
                     "(\"{}\")",
                     self->name(), id, msg.topic, printable(msg.payload));
        return;
      }
      if (!st.qrs) {
        ++st.failed;
        spdlog::error("{} cannot start task {} for {}: qrs-client is not "
                      "running (is Butler.configQRS set?)",
                      self->name(), task_id, id);
        return;
      }
      task_start_request req;
      req.task_ids = {task_id};
      req.event_id = id;
      self->request(st.qrs, caf::infinite, std::move(req))
        .then(
          [self, id, task_id](task_start_result& result) {
            auto& st = self->state;
            if (!result.started.empty()) {
              ++st.started;
              spdlog::info("{} started task {} for {}", self->name(), task_id,
                           id);
            } else if (!result.denied.empty()) {
              ++st.denied;
              spdlog::warn("{} did not start task {} for {}: not allowed by "
                           "Butler.startTaskFilter",
                           self->name(), task_id, id);
            } else {
              ++st.unknown;
              spdlog::warn("{} did not start task {} for {}: Qlik Sense does "
                           "not know it",
                           self->name(), task_id, id);
            }
          },
          [self, id, task_id](caf::error& err) {
            ++self->state.failed;
            spdlog::error("{} could not start task {} for {}: {}",
                          self->name(), task_id, id, error_text(err));
          });
    },
    [=](atom::status) {
      auto& st = self->state;
      return counters_status{{{"received", st.received},
                              {"invalid", st.invalid},
                              {"started", st.started},
                              {"unknown", st.unknown},
                              {"denied", st.denied},
                              {"failed", st.failed}}};
    },
    [=](atom::drain, caf::timespan) { return true; },
    [=](peer_up& peer) {
      auto& st = self->state;
      if (peer.name == "qrs-client") {
        st.qrs = caf::actor_cast<qrs_client_actor>(peer.handle);
      } else if (peer.name == "mqtt-link") {
        st.mqtt = caf::actor_cast<mqtt_link_actor>(peer.handle);
        self->send(st.mqtt, atom::subscribe_v, st.topic,
                   caf::actor_cast<mqtt_inbound_handler_actor>(self));
      }
    },
  };
}

} // namespace butler
