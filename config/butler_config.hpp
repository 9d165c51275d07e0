#pragma once

// The YAML config (Butler's key tree, "Butler:" root) read once into typed
// structs. Field comments name the YAML key. No actor reads YAML; each gets
// the struct it needs.

#include "config/defaults.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace butler {

/// Butler.logLevel, Butler.fileLogging, Butler.logDirectory,
/// Butler.logFileMaxSizeMB, Butler.logFileMaxFiles, Butler.logFormat
struct logging_config {
  std::string level = defaults::logging::level; // logLevel: silly|debug|verbose|info|warn|error
  bool file_logging = defaults::logging::file_logging; // fileLogging
  std::string directory = defaults::logging::directory; // logDirectory
  std::size_t file_max_size_mb = defaults::logging::file_max_size_mb; // logFileMaxSizeMB
  std::size_t file_max_files = defaults::logging::file_max_files; // logFileMaxFiles
  std::string format = defaults::logging::format; // logFormat: text|json
};

/// Butler.heartbeat: a GET to remoteURL on a schedule, so that a monitor
/// notices when Butler stops.
struct heartbeat_config {
  bool enable = defaults::heartbeat::enable; // enable
  std::string remote_url;                    // remoteURL
  /// frequency: "every N seconds|minutes|hours"
  std::chrono::seconds frequency = defaults::heartbeat::frequency;
};

/// Butler.uptimeMonitor: a log line with uptime, memory and event counts on
/// a schedule.
struct uptime_monitor_config {
  bool enable = defaults::uptime_monitor::enable; // enable
  /// frequency: "every N seconds|minutes|hours"
  std::chrono::seconds frequency = defaults::uptime_monitor::frequency;
  std::string log_level = defaults::uptime_monitor::log_level; // logLevel: silly|debug|verbose|info|warn|error
};

/// A PEM certificate, key and optional CA (restServerConfig.tls, mqttConfig.tls).
struct tls_files {
  bool enable = false;
  std::string cert;
  std::string key;
  std::string ca;
};

/// Butler.restServerConfig
struct rest_server_config {
  bool enable = defaults::rest::enable;
  std::string host = defaults::rest::host;      // serverHost
  uint16_t port = defaults::rest::port;         // serverPort
  tls_files tls;                                // tls.enable, tls.cert, tls.key, tls.ca
  std::size_t body_limit = defaults::rest::body_limit;     // bodyLimitBytes
  std::size_t header_limit = defaults::rest::header_limit; // headerLimitBytes
  std::chrono::milliseconds read_timeout = defaults::rest::read_timeout;   // readTimeoutSeconds
  std::chrono::milliseconds write_timeout = defaults::rest::write_timeout; // writeTimeoutSeconds
  std::chrono::milliseconds request_timeout = defaults::rest::request_timeout; // requestTimeoutSeconds
  std::size_t max_connections = defaults::rest::max_connections; // maxConnections
  int io_threads = defaults::rest::io_threads;  // ioThreads
};

/// Butler.dockerHealthCheck: liveness on GET /health at its own port (on
/// restServerConfig.serverHost), for Docker's HEALTHCHECK.
struct docker_health_config {
  bool enable = defaults::docker_health::enable;
  uint16_t port = defaults::docker_health::port;
};

/// Butler.prometheus: GET /metrics in Prometheus text format, on the REST
/// port or, when `port` is set, on a plain-HTTP port of its own (on
/// restServerConfig.serverHost).
struct prometheus_config {
  bool enable = defaults::prometheus::enable;
  uint16_t port = defaults::prometheus::port;
};

/// Butler.restServerEndpointsEnable: one boolean per endpoint flag. Nested
/// groups (newRelic.*, scheduler.*) are flattened to their leaf names, which
/// is also how GET /v4/configfile/endpointsenabled lists them.
struct endpoints_config {
  /// (flag name, enabled) in the order of rest_api's flag list.
  std::vector<std::pair<std::string, bool>> flags;

  /// Returns whether `flag` is enabled; unknown flags are disabled.
  bool enabled(const std::string& flag) const {
    for (auto& [name, on] : flags)
      if (name == flag)
        return on;
    return false;
  }
};

/// Butler.mqttConfig
struct mqtt_config {
  bool enable = defaults::mqtt::enable;
  std::string broker_host = defaults::mqtt::host;   // brokerHost
  uint16_t broker_port = defaults::mqtt::port;      // brokerPort
  std::string username;                             // username
  std::string password;                             // password
  tls_files tls;                                    // tls.enable, tls.ca, tls.cert, tls.key
  /// clientId; empty means "butler-<hostname>-<pid>", unique per instance.
  std::string client_id;
  int qos = defaults::mqtt::qos;                    // qos
  std::size_t backlog_size = defaults::mqtt::backlog_size; // backlogSize
  std::chrono::milliseconds reconnect_min = defaults::mqtt::reconnect_min; // reconnectMinMs
  std::chrono::milliseconds reconnect_max = defaults::mqtt::reconnect_max; // reconnectMaxMs
  std::string subscription_root_topic = defaults::mqtt::subscription_root_topic; // subscriptionRootTopic
  std::string status_topic = defaults::mqtt::status_topic;                 // statusTopic
  std::string task_start_topic = defaults::mqtt::task_start_topic;         // taskStartTopic
  std::string task_failure_topic = defaults::mqtt::task_failure_topic;     // taskFailureTopic
  std::string task_failure_full_topic = defaults::mqtt::task_failure_full_topic; // taskFailureFullTopic
  std::string task_failure_server_status_topic
    = defaults::mqtt::task_failure_server_status_topic; // taskFailureServerStatusTopic
  std::string task_aborted_topic = defaults::mqtt::task_aborted_topic;     // taskAbortedTopic
  std::string task_aborted_full_topic = defaults::mqtt::task_aborted_full_topic; // taskAbortedFullTopic
  bool task_failure_send_full = defaults::mqtt::task_failure_send_full;    // taskFailureSendFull
  bool task_aborted_send_full = defaults::mqtt::task_aborted_send_full;    // taskAbortedSendFull
  std::string session_start_topic = defaults::mqtt::session_start_topic;   // sessionStartTopic
  std::string session_stop_topic = defaults::mqtt::session_stop_topic;     // sessionStopTopic
  std::string connection_open_topic = defaults::mqtt::connection_open_topic; // connectionOpenTopic
  std::string connection_close_topic = defaults::mqtt::connection_close_topic; // connectionCloseTopic
  std::string session_server_status_topic
    = defaults::mqtt::session_server_status_topic; // sessionServerStatusTopic
  std::string active_user_count_topic = defaults::mqtt::active_user_count_topic; // activeUserCountTopic
  std::string active_users_topic = defaults::mqtt::active_users_topic;     // activeUsersTopic
};

/// Butler.udpServerConfig
struct udp_config {
  bool enable = defaults::udp::enable;
  std::string host = defaults::udp::host;                         // serverHost
  uint16_t port_task_failure = defaults::udp::port_task_failure;  // portTaskFailure
  uint16_t port_session_events = defaults::udp::port_session_events; // portSessionConnectionEvents
  std::size_t max_message_size = defaults::udp::max_message_size; // maxMessageSize
  bool source_validation = defaults::udp::source_validation;      // enableSourceValidation
  std::vector<std::string> allowed_sources;                       // allowedSources
  bool dedup_enable = defaults::udp::dedup_enable;                // deduplication.enable
  std::chrono::minutes dedup_ttl = defaults::udp::dedup_ttl;      // deduplication.ttlMinutes
  std::size_t queue_max_size = defaults::udp::queue_max_size;     // messageQueue.maxSize
  std::size_t queue_max_concurrent = defaults::udp::queue_max_concurrent; // messageQueue.maxConcurrent
  int backpressure_threshold = defaults::udp::backpressure_threshold;     // messageQueue.backpressureThreshold
  bool rate_limit_enable = defaults::udp::rate_limit_enable;      // rateLimit.enable
  int rate_limit_per_minute = defaults::udp::rate_limit_per_minute; // rateLimit.maxMessagesPerMinute
  std::size_t receive_buffer = defaults::udp::receive_buffer;     // receiveBufferBytes
  std::size_t dedup_max_entries = defaults::udp::dedup_max_entries; // deduplication.maxEntries
};

/// One Slack notification channel: Butler.slackNotification.reloadTaskFailure
/// and .reloadTaskAborted.
struct slack_channel_config {
  bool enable = false;               // enable
  std::string webhook_url;           // webhookURL
  std::string channel;               // channel
  std::string message_type = defaults::slack::message_type; // messageType: basic|formatted
  std::string basic_msg_template;    // basicMsgTemplate ({{field}} from the event)
  std::string template_file;         // templateFile (formatted: a Slack JSON template)
  std::string from_user = defaults::slack::from_user;   // fromUser
  std::string icon_emoji = defaults::slack::icon_emoji; // iconEmoji
  std::chrono::milliseconds rate_limit = defaults::slack::rate_limit; // rateLimit, seconds per task

  explicit slack_channel_config(std::string basic_template = {})
    : basic_msg_template(std::move(basic_template)) {
    // nop
  }
};

/// Butler.slackNotification (today's keys) and Butler.slackConfig (the seed's).
struct slack_config {
  bool enable = defaults::slack::enable;   // slackNotification.enable
  std::string rest_webhook_url;            // slackNotification.restMessage.webhookURL
  slack_channel_config reload_task_failure{defaults::slack::failure_template}; // .reloadTaskFailure
  slack_channel_config reload_task_aborted{defaults::slack::aborted_template}; // .reloadTaskAborted
  // The seed's slackConfig: user audit events and Butler 2 task failures.
  std::string seed_webhook_url;            // slackConfig.webhookURL
  std::string login_notification_channel;  // slackConfig.loginNotificationChannel
  std::string task_failure_channel;        // slackConfig.taskFailureChannel
  // This Butler's own keys, under slackNotification.
  std::size_t backlog_size = defaults::slack::backlog_size;  // backlogSize
  int max_attempts = defaults::slack::max_attempts;          // maxAttempts
  std::chrono::milliseconds retry_min = defaults::slack::retry_min; // retryMinMs
  std::chrono::milliseconds retry_max = defaults::slack::retry_max; // retryMaxMs
  std::chrono::milliseconds request_timeout = defaults::slack::request_timeout; // requestTimeoutSeconds
};

/// HTTP header name and value pairs (configQRS.headers.static, ...).
using header_list = std::vector<std::pair<std::string, std::string>>;

/// Butler.cert: the client certificate exported from the QMC.
struct sense_cert_config {
  std::string client_cert;     // clientCert (PEM)
  std::string client_cert_key; // clientCertKey (PEM)
  std::string client_cert_ca;  // clientCertCA (PEM): Sense's root
};

/// Butler.configQRS
struct qrs_config {
  std::string host;                              // host (empty: no QRS)
  uint16_t port = defaults::sense::qrs_port;     // port
  bool use_ssl = defaults::sense::use_ssl;       // useSSL
  /// headers.static; X-Qlik-User by default.
  header_list headers{{defaults::sense::user_header, defaults::sense::user_value}};
  bool reject_unauthorized = defaults::sense::reject_unauthorized; // rejectUnauthorized
  std::chrono::milliseconds timeout = defaults::sense::qrs_timeout; // requestTimeoutSeconds
};

/// Butler.configEngine
struct engine_config {
  std::string host;                              // host (empty: no Engine)
  uint16_t port = defaults::sense::engine_port;  // port
  bool use_ssl = defaults::sense::use_ssl;       // useSSL
  header_list headers{{defaults::sense::user_header, defaults::sense::user_value}};
  bool reject_unauthorized = defaults::sense::reject_unauthorized; // rejectUnauthorized
  std::chrono::milliseconds timeout = defaults::sense::engine_timeout; // requestTimeoutSeconds
};

/// Butler.startTaskFilter: which tasks the REST API and MQTT may start.
struct start_task_filter_config {
  bool enable = false;                       // enable
  std::vector<std::string> task_ids;         // allowTask.taskId
  std::vector<std::string> tags;             // allowTask.tag
  header_list custom_properties;             // allowTask.customProperty [{name, value}]
};

/// Butler.configDirectories
struct directories_config {
  std::string qvd_path; // qvdPath
};

/// Butler.runtime (this Butler's own keys)
struct runtime_config {
  int worker_threads = defaults::runtime::worker_threads; // workerThreads
  std::string scheduler_policy = defaults::runtime::scheduler_policy; // schedulerPolicy: sharing|stealing
};

/// Butler.supervisor (this Butler's own keys)
struct supervisor_config {
  std::chrono::milliseconds restart_min = defaults::supervisor::restart_min; // restartBackoffMinMs
  std::chrono::milliseconds restart_max = defaults::supervisor::restart_max; // restartBackoffMaxMs
  std::chrono::milliseconds stable_after = defaults::supervisor::stable_after; // stableAfterSeconds
  std::chrono::milliseconds shutdown_grace = defaults::supervisor::shutdown_grace; // shutdownGraceSeconds
  int max_restarts = defaults::supervisor::max_restarts; // maxRestarts
  std::chrono::milliseconds restart_window = defaults::supervisor::restart_window; // restartWindowSeconds
  std::chrono::milliseconds heartbeat_interval = defaults::supervisor::heartbeat_interval; // heartbeatIntervalMs
  std::chrono::milliseconds heartbeat_timeout = defaults::supervisor::heartbeat_timeout; // heartbeatTimeoutMs
};

/// Everything read from one config file.
struct butler_config {
  std::string source_file;
  logging_config logging;
  rest_server_config rest;
  endpoints_config endpoints;
  mqtt_config mqtt;
  udp_config udp;
  slack_config slack;
  sense_cert_config cert;
  qrs_config qrs;
  engine_config engine;
  start_task_filter_config start_task_filter;
  directories_config directories;
  runtime_config runtime;
  supervisor_config supervisor;
  docker_health_config docker_health;
  prometheus_config prometheus;
  heartbeat_config heartbeat;
  uptime_monitor_config uptime_monitor;
};

} // namespace butler
