#pragma once

// The events Sense's log4net appenders send (reference/log-events.md), as
// udp_ingest accepts them and every sink receives them. Plain data: protocol
// code (net/log_event_parser) produces it without any actor machinery.

#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>

namespace butler {

enum class log_event_kind : uint8_t {
  /// Butler 2's task failure, 4 fields on the task port.
  task_failure_legacy,
  /// /scheduler-reload-failed/ and its aliases.
  reload_failed,
  /// /scheduler-reload-aborted/ and its aliases.
  reload_aborted,
  /// /scheduler-reloadtask-success/ and its aliases.
  reload_success,
  /// /scheduler-distribute/.
  distribute,
  /// /engine-reload-failed/.
  engine_reload_failed,
  /// User audit events on the session port.
  session_start,
  session_stop,
  connection_open,
  connection_close,
};

/// Returns the kind's name, e.g. "reload_failed".
inline const char* to_string(log_event_kind kind) {
  switch (kind) {
    case log_event_kind::task_failure_legacy: return "task_failure_legacy";
    case log_event_kind::reload_failed: return "reload_failed";
    case log_event_kind::reload_aborted: return "reload_aborted";
    case log_event_kind::reload_success: return "reload_success";
    case log_event_kind::distribute: return "distribute";
    case log_event_kind::engine_reload_failed: return "engine_reload_failed";
    case log_event_kind::session_start: return "session_start";
    case log_event_kind::session_stop: return "session_stop";
    case log_event_kind::connection_open: return "connection_open";
    case log_event_kind::connection_close: return "connection_close";
  }
  return "unknown";
}

/// Returns whether `kind` is a user audit event (session port).
inline bool is_user_event(log_event_kind kind) {
  return kind >= log_event_kind::session_start;
}

/// One accepted log event. Fields a format does not carry stay empty.
struct log_event {
  /// Unique per process, assigned at ingest; log lines name it as "e<id>".
  std::uint64_t id = 0;
  log_event_kind kind = log_event_kind::reload_failed;
  std::string host;
  std::string task_name;
  std::string app_name;
  /// The task's user as sent, "DIR\user" (a doubled backslash made single).
  std::string user;
  std::string task_id;
  std::string app_id;
  std::string log_timestamp;
  std::string log_level;
  std::string execution_id;
  std::string log_message;
  /// Audit events: the user's directory and id.
  std::string user_directory;
  std::string user_id;
  /// The sender, "ip:port".
  std::string source;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, log_event& x) {
  return f(caf::meta::type_name("log_event"), x.id, x.kind, x.host,
           x.task_name, x.app_name, x.user, x.task_id, x.app_id,
           x.log_timestamp, x.log_level, x.execution_id, x.log_message,
           x.user_directory, x.user_id, x.source);
}

} // namespace butler
