#include "net/event_format.hpp"

#include <nlohmann/json.hpp>

namespace butler::events {

namespace {

/// Keys in the order Butler has always sent them.
using json = nlohmann::ordered_json;

void add(std::vector<mqtt::message>& out, const std::string& topic,
         std::string payload, int qos) {
  out.push_back(mqtt::message{topic, std::move(payload), qos, false});
}

} // namespace

std::string full_json(const log_event& ev) {
  json body{{"hostName", ev.host},
            {"user", ev.user},
            {"taskName", ev.task_name},
            {"taskId", ev.task_id},
            {"appName", ev.app_name},
            {"appId", ev.app_id},
            {"logTimeStamp", ev.log_timestamp},
            {"logLevel", ev.log_level},
            {"executionId", ev.execution_id},
            {"logMessage", ev.log_message},
            {"qs_appTags", json::array()},
            {"qs_appCustomProperties", json::object()},
            {"qs_taskTags", json::array()},
            {"qs_taskCustomProperties", json::object()},
            {"qs_taskMetadata", json::object()}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string user_name(const log_event& ev) {
  return ev.user_directory + "/" + ev.user_id;
}

void append_mqtt_messages(const log_event& ev, const mqtt_config& cfg, int qos,
                          std::vector<mqtt::message>& out) {
  switch (ev.kind) {
    case log_event_kind::task_failure_legacy:
      add(out, cfg.task_failure_topic, ev.task_name, qos);
      return;
    case log_event_kind::reload_failed:
      add(out, cfg.task_failure_topic, ev.task_name, qos);
      if (cfg.task_failure_send_full)
        add(out, cfg.task_failure_full_topic, full_json(ev), qos);
      return;
    case log_event_kind::reload_aborted:
      add(out, cfg.task_aborted_topic, ev.task_name, qos);
      if (cfg.task_aborted_send_full)
        add(out, cfg.task_aborted_full_topic, full_json(ev), qos);
      return;
    case log_event_kind::session_start:
      add(out, cfg.session_start_topic, ev.host + ": " + user_name(ev), qos);
      return;
    case log_event_kind::session_stop:
      add(out, cfg.session_stop_topic, ev.host + ": " + user_name(ev), qos);
      return;
    case log_event_kind::connection_open:
      add(out, cfg.connection_open_topic, ev.host + ": " + user_name(ev), qos);
      return;
    case log_event_kind::connection_close:
      add(out, cfg.connection_close_topic, ev.host + ": " + user_name(ev),
          qos);
      return;
    case log_event_kind::reload_success:
    case log_event_kind::distribute:
    case log_event_kind::engine_reload_failed:
      return;
  }
}

} // namespace butler::events
