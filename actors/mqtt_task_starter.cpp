#include "actors/mqtt_task_starter.hpp"

#include "actors/actor_common.hpp"
#include "net/metrics.hpp"
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


/// Sends `job` to qrs_client and counts its outcome when it comes back.
void send_start(self_ptr self, mqtt_task_starter_state::start job);

/// Sends waiting starts while fewer than opts.max_in_flight are out.
void pump(self_ptr self) {
  auto& st = self->state;
  while (st.in_flight < st.opts.max_in_flight && !st.waiting.empty()) {
    auto job = std::move(st.waiting.front());
    st.waiting.pop_front();
    send_start(self, std::move(job));
  }
}

void check_drain(self_ptr self, bool poll = false) {
  auto& st = self->state;
  auto left = st.in_flight + st.waiting.size();
  auto outcome = st.drain.settle(self, left, poll);
  if (outcome == drain_gate::expired)
    spdlog::warn("{} stops with {} task starts not done ({} not sent to "
                 "QRS)",
                 self->name(), left, st.waiting.size());
}

void send_start(self_ptr self, mqtt_task_starter_state::start job) {
  auto& st = self->state;
  if (!st.qrs) {
    ++st.failed;
    spdlog::error("{} cannot start task {} for {}: qrs-client is not "
                  "running (is Butler.configQRS set?)",
                  self->name(), job.task_id, job.id);
    return;
  }
  task_start_request req;
  req.task_ids = {job.task_id};
  req.event_id = job.id;
  ++st.in_flight;
  self->request(st.qrs, st.opts.reply_timeout, std::move(req))
    .then(
      [self, job](task_start_result& result) {
        auto& st = self->state;
        --st.in_flight;
        if (!result.started.empty()) {
          ++st.started;
          spdlog::info("{} started task {} for {}", self->name(),
                       job.task_id, job.id);
        } else if (!result.denied.empty()) {
          ++st.denied;
          spdlog::warn("{} did not start task {} for {}: not allowed by "
                       "Butler.startTaskFilter",
                       self->name(), job.task_id, job.id);
        } else {
          ++st.unknown;
          spdlog::warn("{} did not start task {} for {}: Qlik Sense does "
                       "not know it",
                       self->name(), job.task_id, job.id);
        }
        pump(self);
        check_drain(self);
      },
      [self, job](caf::error& err) {
        auto& st = self->state;
        --st.in_flight;
        ++st.failed;
        spdlog::error("{} could not start task {} for {}: {}", self->name(),
                      job.task_id, job.id, error_text(err));
        pump(self);
        check_drain(self);
      });
}

/// Returns the counters as the status reply carries them.
counters_status status_of(const mqtt_task_starter_state& st) {
  return counters_status{{{"received", st.received},
                          {"invalid", st.invalid},
                          {"started", st.started},
                          {"unknown", st.unknown},
                          {"denied", st.denied},
                          {"failed", st.failed},
                          {"dropped", st.dropped},
                          {"in_flight", st.in_flight},
                          {"waiting", st.waiting.size()}}};
}

/// How the counters appear in /metrics.
const std::vector<metrics::counter_map> metric_table{
  {"received", "butler_mqtt_task_start_messages_total",
   "Messages received on the task start topic",
   false, {}},
  {"started", "butler_mqtt_task_starts_total",
   "MQTT task start messages by outcome",
   false, {{"outcome", "started"}}},
  {"invalid", "butler_mqtt_task_starts_total",
   "MQTT task start messages by outcome",
   false, {{"outcome", "invalid"}}},
  {"unknown", "butler_mqtt_task_starts_total",
   "MQTT task start messages by outcome",
   false, {{"outcome", "unknown"}}},
  {"denied", "butler_mqtt_task_starts_total",
   "MQTT task start messages by outcome",
   false, {{"outcome", "denied"}}},
  {"failed", "butler_mqtt_task_starts_total",
   "MQTT task start messages by outcome",
   false, {{"outcome", "failed"}}},
  {"dropped", "butler_mqtt_task_starts_total",
   "MQTT task start messages by outcome",
   false, {{"outcome", "dropped"}}},
  {"in_flight", "butler_mqtt_task_starts_in_flight",
   "Task starts waiting for QRS",
   true, {}},
  {"waiting", "butler_mqtt_task_starts_waiting",
   "Task starts queued behind those in flight",
   true, {}},
};

} // namespace

mqtt_task_starter_actor::behavior_type
mqtt_task_starter(
  mqtt_task_starter_actor::stateful_pointer<mqtt_task_starter_state> self,
  task_starter_options opts) {
  install_common_handlers(self);
  self->state.opts = std::move(opts);
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
      if (st.in_flight < st.opts.max_in_flight) {
        send_start(self, {std::move(id), std::move(task_id)});
      } else if (st.waiting.size() < st.opts.max_waiting) {
        st.waiting.push_back({std::move(id), std::move(task_id)});
      } else {
        // One line for the first drop and then one per 1000, so a flood
        // does not flood the log too.
        if (st.dropped++ % 1000 == 0)
          spdlog::error("{} drops {} (task {}): {} starts already wait for "
                        "QRS ({} dropped so far)",
                        self->name(), id, task_id, st.waiting.size(),
                        st.dropped);
      }
    },
    [=](atom::status) { return status_of(self->state); },
    [=](atom::metrics) {
      return metrics::from_counters(status_of(self->state), metric_table);
    },
    [=](atom::drain, caf::timespan grace) -> caf::result<bool> {
      auto promise = self->state.drain.open(self, grace);
      check_drain(self, true);
      return promise;
    },
    [=](atom::tick) { check_drain(self, true); },
    [=](peer_up& peer) {
      auto& st = self->state;
      if (peer.name == "qrs-client") {
        st.qrs = caf::actor_cast<qrs_client_actor>(peer.handle);
      } else if (peer.name == "mqtt-link") {
        st.mqtt = caf::actor_cast<mqtt_link_actor>(peer.handle);
        self->send(st.mqtt, atom::subscribe_v, st.opts.topic,
                   caf::actor_cast<mqtt_inbound_handler_actor>(self));
      }
    },
  };
}

} // namespace butler
