#pragma once

// Default values for every config key, one namespace per subsystem. The unit
// is in the type (std::chrono) or in the comment. deploy/butler.example.yaml
// documents the same values.

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace butler::defaults {

namespace logging {
/// Butler's level names: silly, debug, verbose, info, warn, error.
constexpr const char* level = "info";
constexpr bool file_logging = false;
constexpr const char* directory = "log";
/// Size at which a log file is rotated, in MiB (1-1024).
constexpr std::size_t file_max_size_mb = 10;
/// Log files kept, the one being written included (1-100); rotating past it
/// deletes the oldest.
constexpr std::size_t file_max_files = 5;
/// "text" (one human-readable line per entry) or "json" (one JSON object
/// per line, for log shippers).
constexpr const char* format = "text";
} // namespace logging

/// Butler.heartbeat: a GET to a monitor's URL on a schedule.
namespace heartbeat {
constexpr bool enable = false;
constexpr auto frequency = std::chrono::seconds{30};
/// Longest time one GET may take (shorter when the schedule is shorter).
constexpr auto request_timeout = std::chrono::seconds{10};
/// A run of failed pings is logged at its first failure and then at every
/// failure_log_every-th; the others are only counted.
constexpr int failure_log_every = 10;
} // namespace heartbeat

/// Butler.uptimeMonitor: a log line with uptime, memory and event counts.
namespace uptime_monitor {
constexpr bool enable = false;
constexpr auto frequency = std::chrono::minutes{15};
/// Butler's level name for the line (verbose is debug).
constexpr const char* log_level = "verbose";
} // namespace uptime_monitor

namespace rest {
constexpr bool enable = true;
constexpr const char* host = "127.0.0.1";
constexpr uint16_t port = 8080;
/// Largest request body accepted, in bytes; larger bodies get 413.
constexpr std::size_t body_limit = 1024 * 1024;
/// Largest request header block accepted, in bytes.
constexpr std::size_t header_limit = 16 * 1024;
/// Time a client has to send one complete request (also the keep-alive idle
/// time between requests).
constexpr auto read_timeout = std::chrono::seconds{30};
/// Time a client has to take one response.
constexpr auto write_timeout = std::chrono::seconds{30};
/// Time an actor has to answer a request before the caller gets 504.
constexpr auto request_timeout = std::chrono::seconds{10};
/// Concurrent connections; more are answered 503 and closed.
constexpr std::size_t max_connections = 1024;
/// Threads running the HTTP I/O context.
constexpr int io_threads = 1;
} // namespace rest

/// Butler.dockerHealthCheck: GET /health on a port of its own.
namespace docker_health {
constexpr bool enable = false;
constexpr uint16_t port = 12398;
} // namespace docker_health

/// Butler.prometheus: GET /metrics.
namespace prometheus {
constexpr bool enable = true;
/// 0: on the REST port.
constexpr uint16_t port = 0;
} // namespace prometheus

namespace mqtt {
constexpr bool enable = false;
constexpr const char* host = "127.0.0.1";
constexpr uint16_t port = 1883;
/// QoS of every publish (0, 1 or 2).
constexpr int qos = 0;
/// Publishes held while the broker is away or the socket is busy; past it a
/// publish fails (REST answers 503) and butler counts it.
constexpr std::size_t backlog_size = 100'000;
/// First and longest wait between reconnect attempts (doubling in between).
constexpr auto reconnect_min = std::chrono::milliseconds{250};
constexpr auto reconnect_max = std::chrono::seconds{30};
/// MQTT keep-alive interval.
constexpr auto keep_alive = std::chrono::seconds{30};
/// Time one connect attempt may take.
constexpr auto connect_timeout = std::chrono::seconds{5};
constexpr const char* subscription_root_topic = "qliksense/#";
constexpr const char* status_topic = "qliksense/butler/mqtt/status";
constexpr const char* task_start_topic = "qliksense/start_task";
constexpr const char* task_failure_topic = "qliksense/task_failure";
constexpr const char* task_failure_full_topic = "qliksense/task_failure_full";
constexpr const char* task_failure_server_status_topic
  = "qliksense/butler/task_failure_server";
constexpr const char* task_aborted_topic = "qliksense/task_aborted";
constexpr const char* task_aborted_full_topic = "qliksense/task_aborted_full";
constexpr bool task_failure_send_full = true;
constexpr bool task_aborted_send_full = true;
constexpr const char* session_start_topic = "qliksense/session/start";
constexpr const char* session_stop_topic = "qliksense/session/stop";
constexpr const char* connection_open_topic = "qliksense/connection/open";
constexpr const char* connection_close_topic = "qliksense/connection/close";
constexpr const char* session_server_status_topic
  = "qliksense/butler/session_server";
constexpr const char* active_user_count_topic = "qliksense/users/active/count";
constexpr const char* active_users_topic = "qliksense/users/active/usernames";
} // namespace mqtt

namespace udp {
constexpr bool enable = false;
constexpr const char* host = "127.0.0.1";
constexpr uint16_t port_task_failure = 9998;
constexpr uint16_t port_session_events = 9997;
/// Largest datagram accepted, in bytes.
constexpr std::size_t max_message_size = 65507;
constexpr bool source_validation = false;
constexpr bool dedup_enable = true;
constexpr auto dedup_ttl = std::chrono::minutes{10};
/// Events in flight between ingest and the sinks (about 0.4 s at 50,000
/// events/s); past it new events are shed and counted.
constexpr std::size_t queue_max_size = 20'000;
constexpr std::size_t queue_max_concurrent = 10;
/// Percent of queue_max_size at which ingest logs back-pressure.
constexpr int backpressure_threshold = 80;
constexpr bool rate_limit_enable = false;
constexpr int rate_limit_per_minute = 600;
/// Requested socket receive buffer, bytes (the kernel may clamp it).
constexpr std::size_t receive_buffer = 8 * 1024 * 1024;
/// Execution ids remembered for dedup (about 12 MiB); past it the oldest
/// are forgotten.
constexpr std::size_t dedup_max_entries = 50'000;
} // namespace udp

namespace slack {
constexpr bool enable = false;
constexpr const char* message_type = "basic";
constexpr const char* failure_template = "Qlik Sense reload failed: \"{{taskName}}\"";
constexpr const char* aborted_template = "Qlik Sense reload aborted: \"{{taskName}}\"";
constexpr const char* from_user = "Qlik Sense";
constexpr const char* icon_emoji = ":ghost:";
/// Least time between two notifications about one task.
constexpr auto rate_limit = std::chrono::seconds{300};
/// Notifications waiting to be posted; past it new ones are shed and counted.
constexpr std::size_t backlog_size = 1000;
/// Attempts per notification, the first included.
constexpr int max_attempts = 6;
/// First and longest wait between attempts (doubling in between; a
/// Retry-After from Slack wins when longer).
constexpr auto retry_min = std::chrono::seconds{1};
constexpr auto retry_max = std::chrono::minutes{5};
/// Time one post may take.
constexpr auto request_timeout = std::chrono::seconds{10};
} // namespace slack

namespace sense {
constexpr uint16_t qrs_port = 4242;
constexpr uint16_t engine_port = 4747;
constexpr bool use_ssl = true;
/// Butler 16's default: Sense's own root CA is often not in the system store.
constexpr bool reject_unauthorized = false;
constexpr const char* user_header = "X-Qlik-User";
constexpr const char* user_value = "UserDirectory=Internal;UserId=sa_repository";
/// Time one QRS call may take.
constexpr auto qrs_timeout = std::chrono::seconds{30};
/// Time one Engine operation (a whole app dump or reload) may take.
constexpr auto engine_timeout = std::chrono::minutes{10};
/// Task starts from MQTT sent to QRS at once; more wait in a backlog of
/// this many, in arrival order, and the ones beyond it are dropped (logged
/// and counted).
constexpr std::size_t mqtt_starts_in_flight = 16;
constexpr std::size_t mqtt_starts_backlog = 10000;
} // namespace sense

namespace runtime {
/// CAF scheduler worker threads. CAF's own default (4) is too many on small
/// hosts.
constexpr int worker_threads = 2;
/// "sharing": idle workers sleep on one queue and wake at once for new work;
/// "stealing" (CAF's default) polls and can leave a message waiting up to
/// 10 ms when all workers nap, and burns CPU while polling.
constexpr const char* scheduler_policy = "sharing";
} // namespace runtime

namespace supervisor {
/// First and longest wait before a failed actor is restarted (doubling in
/// between).
constexpr auto restart_min = std::chrono::milliseconds{100};
constexpr auto restart_max = std::chrono::seconds{30};
/// An actor that stayed up this long has its back-off reset.
constexpr auto stable_after = std::chrono::seconds{60};
/// Time each stage of an orderly shutdown may take.
constexpr auto shutdown_grace = std::chrono::seconds{5};
/// Restart intensity: an actor that fails more than max_restarts times
/// within restart_window is no longer restarted (the service turns not
/// ready and stops feeding the systemd watchdog).
constexpr int max_restarts = 5;
constexpr auto restart_window = std::chrono::seconds{60};
/// How often every actor is asked for a heartbeat, and how long one may
/// take before the actor counts as stuck (failed).
constexpr auto heartbeat_interval = std::chrono::seconds{5};
constexpr auto heartbeat_timeout = std::chrono::seconds{10};
} // namespace supervisor

} // namespace butler::defaults
