#include "config/config_diff.hpp"

#include "config/config_loader.hpp"

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

// Every section below compares every field of its struct, in declaration
// order. Each starts with a structured binding of all the struct's fields:
// it stops compiling when the struct gains or loses a field, so a new
// setting cannot be left out of the diff (add it here and to
// test/unit/config_diff_test.cpp).

namespace butler {

namespace {

using std::chrono::milliseconds;

std::string text(const std::string& value) {
  return value.empty() ? std::string{"\"\""} : value;
}

std::string text(bool value) {
  return value ? "true" : "false";
}

template <class T, class = std::enable_if_t<std::is_integral_v<T>>>
std::string text(T value) {
  return std::to_string(value);
}

std::string text(const std::vector<std::string>& items) {
  std::string out = "[";
  for (auto& item : items)
    out += (out.size() > 1 ? ", " : "") + item;
  return out + "]";
}

std::string text(const header_list& items) {
  std::string out = "[";
  for (auto& [name, value] : items)
    out += (out.size() > 1 ? ", " : "") + name + "=" + value;
  return out + "]";
}

/// Collects the changes under one key path prefix ("Butler.mqttConfig.").
class differ {
public:
  differ(std::vector<config_change>& out, std::string prefix)
    : out_(&out), prefix_(std::move(prefix)) {
    // nop
  }

  /// A differ for the section `key` below this one.
  differ sub(const std::string& key) const {
    differ d{*out_, prefix_ + key + "."};
    d.kind_ = kind_;
    return d;
  }

  /// The same differ, for settings the running Butler applies on reload:
  /// field(), secret() and duration() report them as live.
  differ applied_live() const {
    auto d = *this;
    d.kind_ = change_kind::live;
    return d;
  }

  /// Compares one setting (needing a restart unless applied_live()).
  template <class T>
  void field(const char* key, const T& a, const T& b) {
    if (!(a == b))
      add(key, kind_, text(a), text(b), false);
  }

  /// Compares one setting that the running Butler applies on reload.
  template <class T>
  void live(const char* key, const T& a, const T& b) {
    if (!(a == b))
      add(key, change_kind::live, text(a), text(b), false);
  }

  /// Compares one secret setting; values are left out.
  template <class T>
  void secret(const char* key, const T& a, const T& b) {
    if (!(a == b))
      add(key, kind_, {}, {}, true);
  }

  /// Compares a duration whose key counts `unit`s (...Seconds, ...Ms).
  template <class Duration>
  void duration(const char* key, Duration a, Duration b, Duration unit) {
    if (a != b)
      add(key, kind_, in_unit(a, unit), in_unit(b, unit), false);
  }

private:
  template <class Duration>
  static std::string in_unit(Duration value, Duration unit) {
    if (value.count() % unit.count() == 0)
      return std::to_string(value.count() / unit.count());
    // Not a whole number of the key's unit (only a default could be).
    return std::to_string(
             std::chrono::duration_cast<milliseconds>(value).count())
           + " ms";
  }

  void add(const char* key, change_kind kind, std::string before,
           std::string after, bool secret) {
    out_->push_back(config_change{prefix_ + key, kind, std::move(before),
                                  std::move(after), secret});
  }

  std::vector<config_change>* out_;
  std::string prefix_;
  change_kind kind_ = change_kind::restart;
};

constexpr milliseconds ms{1};
constexpr milliseconds seconds{1000};

void diff_logging(differ d, const logging_config& a, const logging_config& b) {
  [[maybe_unused]] auto& [f1, f2, f3, f4, f5, f6] = a;
  d.live("logLevel", a.level, b.level);
  d.field("fileLogging", a.file_logging, b.file_logging);
  d.field("logDirectory", a.directory, b.directory);
  d.field("logFileMaxSizeMB", a.file_max_size_mb, b.file_max_size_mb);
  d.field("logFileMaxFiles", a.file_max_files, b.file_max_files);
  d.field("logFormat", a.format, b.format);
}

/// Returns a schedule as its key writes it: "every 30 seconds", "every 1
/// hour".
std::string every_text(std::chrono::seconds value) {
  auto n = value.count();
  auto say = [](long long count, const char* unit) {
    return "every " + std::to_string(count) + " " + unit
           + (count == 1 ? "" : "s");
  };
  if (n > 0 && n % 3600 == 0)
    return say(n / 3600, "hour");
  if (n > 0 && n % 60 == 0)
    return say(n / 60, "minute");
  return say(n, "second");
}

void diff_heartbeat(differ d, const heartbeat_config& a,
                    const heartbeat_config& b) {
  [[maybe_unused]] auto& [f1, f2, f3] = a;
  d.field("enable", a.enable, b.enable);
  // A monitor's ping URL often carries its token.
  d.secret("remoteURL", a.remote_url, b.remote_url);
  d.field("frequency", every_text(a.frequency), every_text(b.frequency));
}

void diff_uptime_monitor(differ d, const uptime_monitor_config& a,
                         const uptime_monitor_config& b) {
  [[maybe_unused]] auto& [f1, f2, f3] = a;
  d.field("enable", a.enable, b.enable);
  d.field("frequency", every_text(a.frequency), every_text(b.frequency));
  d.field("logLevel", a.log_level, b.log_level);
}

void diff_tls(differ d, const tls_files& a, const tls_files& b) {
  [[maybe_unused]] auto& [f1, f2, f3, f4] = a;
  d.field("enable", a.enable, b.enable);
  d.field("cert", a.cert, b.cert);
  d.field("key", a.key, b.key);
  d.field("ca", a.ca, b.ca);
}

void diff_rest(differ d, const rest_server_config& a,
               const rest_server_config& b) {
  [[maybe_unused]] auto& [f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11] = a;
  d.field("enable", a.enable, b.enable);
  d.field("serverHost", a.host, b.host);
  d.field("serverPort", a.port, b.port);
  diff_tls(d.sub("tls"), a.tls, b.tls);
  d.field("bodyLimitBytes", a.body_limit, b.body_limit);
  d.field("headerLimitBytes", a.header_limit, b.header_limit);
  d.duration("readTimeoutSeconds", a.read_timeout, b.read_timeout, seconds);
  d.duration("writeTimeoutSeconds", a.write_timeout, b.write_timeout, seconds);
  d.duration("requestTimeoutSeconds", a.request_timeout, b.request_timeout,
             seconds);
  d.field("maxConnections", a.max_connections, b.max_connections);
  d.field("ioThreads", a.io_threads, b.io_threads);
}

/// Returns the group a flag sits in in Butler's key tree ("newRelic.",
/// "scheduler."), or "" for a flag directly under restServerEndpointsEnable.
std::string flag_group(const std::string& name) {
  static const std::set<std::string> new_relic{"postNewRelicMetric",
                                               "postNewRelicEvent"};
  static const std::set<std::string> scheduler{
    "createNewSchedule", "getSchedule",   "getScheduleStatusAll",
    "updateSchedule",    "deleteSchedule", "startSchedule",
    "stopSchedule"};
  if (new_relic.count(name) != 0)
    return "newRelic.";
  if (scheduler.count(name) != 0)
    return "scheduler.";
  return "";
}

void diff_endpoints(differ d, const endpoints_config& a,
                    const endpoints_config& b) {
  [[maybe_unused]] auto& [f1] = a;
  // By name, in the known order, then any other flag either side lists; a
  // flag one side does not list is off there.
  std::vector<std::string> names = known_endpoint_flags();
  std::set<std::string> seen{names.begin(), names.end()};
  for (auto* side : {&a, &b})
    for (auto& [name, on] : side->flags)
      if (seen.insert(name).second)
        names.push_back(name);
  for (auto& name : names) {
    auto key = flag_group(name) + name;
    d.field(key.c_str(), a.enabled(name), b.enabled(name));
  }
}

void diff_mqtt(differ d, const mqtt_config& a, const mqtt_config& b) {
  [[maybe_unused]] auto& [f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12,
                          f13, f14, f15, f16, f17, f18, f19, f20, f21, f22,
                          f23, f24, f25, f26, f27, f28] = a;
  d.field("enable", a.enable, b.enable);
  d.field("brokerHost", a.broker_host, b.broker_host);
  d.field("brokerPort", a.broker_port, b.broker_port);
  d.field("username", a.username, b.username);
  d.secret("password", a.password, b.password);
  diff_tls(d.sub("tls"), a.tls, b.tls);
  d.field("clientId", a.client_id, b.client_id);
  d.field("qos", a.qos, b.qos);
  d.field("backlogSize", a.backlog_size, b.backlog_size);
  d.duration("reconnectMinMs", a.reconnect_min, b.reconnect_min, ms);
  d.duration("reconnectMaxMs", a.reconnect_max, b.reconnect_max, ms);
  d.field("subscriptionRootTopic", a.subscription_root_topic,
          b.subscription_root_topic);
  d.field("statusTopic", a.status_topic, b.status_topic);
  d.field("taskStartTopic", a.task_start_topic, b.task_start_topic);
  d.field("taskFailureTopic", a.task_failure_topic, b.task_failure_topic);
  d.field("taskFailureFullTopic", a.task_failure_full_topic,
          b.task_failure_full_topic);
  d.field("taskFailureServerStatusTopic", a.task_failure_server_status_topic,
          b.task_failure_server_status_topic);
  d.field("taskAbortedTopic", a.task_aborted_topic, b.task_aborted_topic);
  d.field("taskAbortedFullTopic", a.task_aborted_full_topic,
          b.task_aborted_full_topic);
  d.field("taskFailureSendFull", a.task_failure_send_full,
          b.task_failure_send_full);
  d.field("taskAbortedSendFull", a.task_aborted_send_full,
          b.task_aborted_send_full);
  d.field("sessionStartTopic", a.session_start_topic, b.session_start_topic);
  d.field("sessionStopTopic", a.session_stop_topic, b.session_stop_topic);
  d.field("connectionOpenTopic", a.connection_open_topic,
          b.connection_open_topic);
  d.field("connectionCloseTopic", a.connection_close_topic,
          b.connection_close_topic);
  d.field("sessionServerStatusTopic", a.session_server_status_topic,
          b.session_server_status_topic);
  d.field("activeUserCountTopic", a.active_user_count_topic,
          b.active_user_count_topic);
  d.field("activeUsersTopic", a.active_users_topic, b.active_users_topic);
}

void diff_udp(differ d, const udp_config& a, const udp_config& b) {
  [[maybe_unused]] auto& [f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12,
                          f13, f14, f15, f16] = a;
  d.field("enable", a.enable, b.enable);
  d.field("serverHost", a.host, b.host);
  d.field("portTaskFailure", a.port_task_failure, b.port_task_failure);
  d.field("portSessionConnectionEvents", a.port_session_events,
          b.port_session_events);
  d.field("maxMessageSize", a.max_message_size, b.max_message_size);
  // The allow-list and the rate limit change live.
  d.applied_live().field("enableSourceValidation", a.source_validation,
                         b.source_validation);
  d.applied_live().field("allowedSources", a.allowed_sources,
                         b.allowed_sources);
  auto dedup = d.sub("deduplication");
  dedup.field("enable", a.dedup_enable, b.dedup_enable);
  dedup.duration("ttlMinutes", a.dedup_ttl, b.dedup_ttl,
                 std::chrono::minutes{1});
  auto queue = d.sub("messageQueue");
  queue.field("maxSize", a.queue_max_size, b.queue_max_size);
  queue.field("maxConcurrent", a.queue_max_concurrent, b.queue_max_concurrent);
  queue.field("backpressureThreshold", a.backpressure_threshold,
              b.backpressure_threshold);
  auto rate = d.sub("rateLimit").applied_live();
  rate.field("enable", a.rate_limit_enable, b.rate_limit_enable);
  rate.field("maxMessagesPerMinute", a.rate_limit_per_minute,
             b.rate_limit_per_minute);
  d.field("receiveBufferBytes", a.receive_buffer, b.receive_buffer);
  dedup.field("maxEntries", a.dedup_max_entries, b.dedup_max_entries);
}

void diff_slack_channel(differ d, const slack_channel_config& a,
                        const slack_channel_config& b) {
  [[maybe_unused]] auto& [f1, f2, f3, f4, f5, f6, f7, f8, f9] = a;
  d.field("enable", a.enable, b.enable);
  d.secret("webhookURL", a.webhook_url, b.webhook_url);
  d.field("channel", a.channel, b.channel);
  d.field("messageType", a.message_type, b.message_type);
  d.field("basicMsgTemplate", a.basic_msg_template, b.basic_msg_template);
  d.field("templateFile", a.template_file, b.template_file);
  d.field("fromUser", a.from_user, b.from_user);
  d.field("iconEmoji", a.icon_emoji, b.icon_emoji);
  d.duration("rateLimit", a.rate_limit, b.rate_limit, seconds);
}

void diff_slack(differ root, const slack_config& a, const slack_config& b) {
  [[maybe_unused]] auto& [f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12]
    = a;
  // Notification settings change live; the backlog's size does not.
  auto butler = root.applied_live();
  auto d = butler.sub("slackNotification");
  d.field("enable", a.enable, b.enable);
  d.sub("restMessage").secret("webhookURL", a.rest_webhook_url,
                              b.rest_webhook_url);
  diff_slack_channel(d.sub("reloadTaskFailure"), a.reload_task_failure,
                     b.reload_task_failure);
  diff_slack_channel(d.sub("reloadTaskAborted"), a.reload_task_aborted,
                     b.reload_task_aborted);
  auto seed = butler.sub("slackConfig");
  seed.secret("webhookURL", a.seed_webhook_url, b.seed_webhook_url);
  seed.field("loginNotificationChannel", a.login_notification_channel,
             b.login_notification_channel);
  seed.field("taskFailureChannel", a.task_failure_channel,
             b.task_failure_channel);
  root.sub("slackNotification")
    .field("backlogSize", a.backlog_size, b.backlog_size);
  d.field("maxAttempts", a.max_attempts, b.max_attempts);
  d.duration("retryMinMs", a.retry_min, b.retry_min, ms);
  d.duration("retryMaxMs", a.retry_max, b.retry_max, ms);
  d.duration("requestTimeoutSeconds", a.request_timeout, b.request_timeout,
             seconds);
}

void diff_cert(differ d, const sense_cert_config& a,
               const sense_cert_config& b) {
  [[maybe_unused]] auto& [f1, f2, f3] = a;
  d.field("clientCert", a.client_cert, b.client_cert);
  d.field("clientCertKey", a.client_cert_key, b.client_cert_key);
  d.field("clientCertCA", a.client_cert_ca, b.client_cert_ca);
}

/// configQRS and configEngine share their keys.
template <class Sense>
void diff_sense_service(differ d, const Sense& a, const Sense& b) {
  [[maybe_unused]] auto& [f1, f2, f3, f4, f5, f6] = a;
  d.field("host", a.host, b.host);
  d.field("port", a.port, b.port);
  d.field("useSSL", a.use_ssl, b.use_ssl);
  // Header values may carry credentials.
  d.sub("headers").secret("static", a.headers, b.headers);
  d.field("rejectUnauthorized", a.reject_unauthorized, b.reject_unauthorized);
  d.duration("requestTimeoutSeconds", a.timeout, b.timeout, seconds);
}

/// The start filter changes live.
void diff_start_task_filter(differ section, const start_task_filter_config& a,
                            const start_task_filter_config& b) {
  [[maybe_unused]] auto& [f1, f2, f3, f4] = a;
  auto d = section.applied_live();
  d.field("enable", a.enable, b.enable);
  auto allow = d.sub("allowTask");
  allow.field("taskId", a.task_ids, b.task_ids);
  allow.field("tag", a.tags, b.tags);
  allow.field("customProperty", a.custom_properties, b.custom_properties);
}

void diff_directories(differ d, const directories_config& a,
                      const directories_config& b) {
  [[maybe_unused]] auto& [f1] = a;
  d.field("qvdPath", a.qvd_path, b.qvd_path);
}

void diff_runtime(differ d, const runtime_config& a, const runtime_config& b) {
  [[maybe_unused]] auto& [f1, f2] = a;
  d.field("workerThreads", a.worker_threads, b.worker_threads);
  d.field("schedulerPolicy", a.scheduler_policy, b.scheduler_policy);
}

void diff_supervisor(differ d, const supervisor_config& a,
                     const supervisor_config& b) {
  [[maybe_unused]] auto& [f1, f2, f3, f4, f5, f6, f7, f8] = a;
  d.duration("restartBackoffMinMs", a.restart_min, b.restart_min, ms);
  d.duration("restartBackoffMaxMs", a.restart_max, b.restart_max, ms);
  d.duration("stableAfterSeconds", a.stable_after, b.stable_after, seconds);
  d.duration("shutdownGraceSeconds", a.shutdown_grace, b.shutdown_grace,
             seconds);
  d.field("maxRestarts", a.max_restarts, b.max_restarts);
  d.duration("restartWindowSeconds", a.restart_window, b.restart_window,
             seconds);
  d.duration("heartbeatIntervalMs", a.heartbeat_interval,
             b.heartbeat_interval, ms);
  d.duration("heartbeatTimeoutMs", a.heartbeat_timeout, b.heartbeat_timeout,
             ms);
}

void diff_docker_health(differ d, const docker_health_config& a,
                        const docker_health_config& b) {
  [[maybe_unused]] auto& [f1, f2] = a;
  d.field("enable", a.enable, b.enable);
  d.field("port", a.port, b.port);
}

void diff_prometheus(differ d, const prometheus_config& a,
                     const prometheus_config& b) {
  [[maybe_unused]] auto& [f1, f2] = a;
  d.field("enable", a.enable, b.enable);
  d.field("port", a.port, b.port);
}

} // namespace

const char* to_string(change_kind kind) {
  return kind == change_kind::live ? "live" : "restart";
}

std::vector<config_change> diff(const butler_config& running,
                                const butler_config& loaded) {
  auto& a = running;
  auto& b = loaded;
  // source_file names the file, it is not a setting.
  [[maybe_unused]] auto& [source_file, f2, f3, f4, f5, f6, f7, f8, f9, f10,
                          f11, f12, f13, f14, f15, f16, f17, f18] = a;
  std::vector<config_change> out;
  differ root{out, "Butler."};
  diff_logging(root, a.logging, b.logging);
  diff_rest(root.sub("restServerConfig"), a.rest, b.rest);
  diff_endpoints(root.sub("restServerEndpointsEnable"), a.endpoints,
                 b.endpoints);
  diff_mqtt(root.sub("mqttConfig"), a.mqtt, b.mqtt);
  diff_udp(root.sub("udpServerConfig"), a.udp, b.udp);
  diff_slack(root, a.slack, b.slack);
  diff_cert(root.sub("cert"), a.cert, b.cert);
  diff_sense_service(root.sub("configQRS"), a.qrs, b.qrs);
  diff_sense_service(root.sub("configEngine"), a.engine, b.engine);
  diff_start_task_filter(root.sub("startTaskFilter"), a.start_task_filter,
                         b.start_task_filter);
  diff_directories(root.sub("configDirectories"), a.directories,
                   b.directories);
  diff_runtime(root.sub("runtime"), a.runtime, b.runtime);
  diff_supervisor(root.sub("supervisor"), a.supervisor, b.supervisor);
  diff_docker_health(root.sub("dockerHealthCheck"), a.docker_health,
                     b.docker_health);
  diff_prometheus(root.sub("prometheus"), a.prometheus, b.prometheus);
  diff_heartbeat(root.sub("heartbeat"), a.heartbeat, b.heartbeat);
  diff_uptime_monitor(root.sub("uptimeMonitor"), a.uptime_monitor,
                      b.uptime_monitor);
  return out;
}

} // namespace butler
