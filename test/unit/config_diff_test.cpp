#include "config/config_diff.hpp"

#include "config/config_loader.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

using namespace butler;
using namespace std::chrono_literals;

namespace {

// -- helpers ------------------------------------------------------------------

/// The config a file with nothing but the Butler root gives: every default.
butler_config default_config() {
  auto r = load_config_string("Butler:\n  logLevel: info\n", "test.yaml");
  EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors.front());
  return r.config;
}

/// One setting: its key path, how to change its field in a config, and a
/// different value for it as YAML (what a file would say).
struct field_case {
  std::string key;
  std::function<void(butler_config&)> change;
  std::string yaml;
};

// A case for `key`, whose field `field` gets `value` (written `yaml` in a
// file). The field must differ from its default.
#define FIELD(key, field, value, yaml)                                         \
  field_case {                                                                 \
    key, [](butler_config& c) { c.field = value; }, yaml                       \
  }

std::string keys_of(const std::vector<config_change>& changes) {
  std::string out;
  for (auto& c : changes)
    out += "\n  " + c.key + " (" + c.before + " -> " + c.after + ")";
  return out.empty() ? " (none)" : out;
}

/// Returns a file that sets the key path `key` ("Butler.a.b") to `yaml`.
std::string file_setting(const std::string& key, const std::string& yaml) {
  std::istringstream parts{key};
  std::string part;
  std::string out;
  std::string indent;
  std::vector<std::string> names;
  while (std::getline(parts, part, '.'))
    names.push_back(part);
  for (std::size_t i = 0; i < names.size(); ++i) {
    out += indent + names[i] + ":";
    out += i + 1 < names.size() ? "\n" : " " + yaml + "\n";
    indent += "  ";
  }
  return out;
}

/// Returns whether a reload applies `key` to the running Butler: logLevel,
/// the Slack notification settings but backlogSize, the UDP allow-list and
/// rate limit, startTaskFilter.
bool live_key(const std::string& key) {
  auto under = [&](const char* prefix) { return key.rfind(prefix, 0) == 0; };
  if (key == "Butler.slackNotification.backlogSize")
    return false;
  return key == "Butler.logLevel" || under("Butler.slackNotification.")
         || under("Butler.slackConfig.")
         || key == "Butler.udpServerConfig.enableSourceValidation"
         || key == "Butler.udpServerConfig.allowedSources"
         || under("Butler.udpServerConfig.rateLimit.")
         || under("Butler.startTaskFilter.");
}

/// Changes one field at a time from the default config, both in the struct
/// and through a file, and expects exactly that key path to be reported,
/// with its values (none for a secret) and its kind: live for what the
/// running Butler applies (live_key()), restart for everything else.
void expect_each_reported(const std::vector<field_case>& cases) {
  auto base = default_config();
  ASSERT_TRUE(diff(base, base).empty());
  for (auto& fc : cases) {
    SCOPED_TRACE(fc.key);
    auto changed = base;
    fc.change(changed);
    auto changes = diff(base, changed);
    ASSERT_EQ(changes.size(), 1u) << keys_of(changes);
    auto& c = changes.front();
    EXPECT_EQ(c.key, fc.key);
    EXPECT_EQ(c.kind, live_key(fc.key) ? change_kind::live
                                       : change_kind::restart);
    if (c.secret) {
      EXPECT_TRUE(c.before.empty() && c.after.empty()) << keys_of(changes);
    } else {
      EXPECT_FALSE(c.before.empty());
      EXPECT_FALSE(c.after.empty());
      EXPECT_NE(c.before, c.after);
    }
    // Back the other way: the same key, the values swapped.
    auto back = diff(changed, base);
    ASSERT_EQ(back.size(), 1u) << keys_of(back);
    EXPECT_EQ(back.front().key, fc.key);
    EXPECT_EQ(back.front().before, c.after);
    EXPECT_EQ(back.front().after, c.before);

    // The key path is the one the loader reads into that field: a file that
    // sets it (to a value that may break a cross-key rule, which does not
    // matter here) differs from the defaults in that key alone.
    auto file = "Butler:\n  logLevel: info\n"
                + file_setting(fc.key, fc.yaml).substr(std::string{"Butler:\n"}.size());
    if (fc.key == "Butler.logLevel")
      file = "Butler:\n  logLevel: " + fc.yaml + "\n";
    auto loaded = load_config_string(file, "test.yaml");
    EXPECT_TRUE(loaded.warnings.empty())
      << file << "\nwarning: " << loaded.warnings.front();
    auto from_file = diff(base, loaded.config);
    ASSERT_EQ(from_file.size(), 1u) << file << keys_of(from_file);
    EXPECT_EQ(from_file.front().key, fc.key) << file;
    EXPECT_EQ(from_file.front().after, c.after) << file;
  }
}

// -- every field, group by group ----------------------------------------------

TEST(config_diff, logging_fields) {
  expect_each_reported({
    FIELD("Butler.logLevel", logging.level, "debug", "debug"),
    FIELD("Butler.fileLogging", logging.file_logging, true, "true"),
    FIELD("Butler.logDirectory", logging.directory, "/var/log/b", "/var/log/b"),
  });
}

TEST(config_diff, rest_server_fields) {
  const std::string p = "Butler.restServerConfig.";
  expect_each_reported({
    FIELD(p + "enable", rest.enable, false, "false"),
    FIELD(p + "serverHost", rest.host, "0.0.0.0", "0.0.0.0"),
    FIELD(p + "serverPort", rest.port, 8081, "8081"),
    FIELD(p + "tls.enable", rest.tls.enable, true, "true"),
    FIELD(p + "tls.cert", rest.tls.cert, "/c.pem", "/c.pem"),
    FIELD(p + "tls.key", rest.tls.key, "/k.pem", "/k.pem"),
    FIELD(p + "tls.ca", rest.tls.ca, "/ca.pem", "/ca.pem"),
    FIELD(p + "bodyLimitBytes", rest.body_limit, 2048, "2048"),
    FIELD(p + "headerLimitBytes", rest.header_limit, 4096, "4096"),
    FIELD(p + "readTimeoutSeconds", rest.read_timeout, 31s, "31"),
    FIELD(p + "writeTimeoutSeconds", rest.write_timeout, 32s, "32"),
    FIELD(p + "requestTimeoutSeconds", rest.request_timeout, 11s, "11"),
    FIELD(p + "maxConnections", rest.max_connections, 10, "10"),
    FIELD(p + "ioThreads", rest.io_threads, 2, "2"),
  });
}

TEST(config_diff, every_endpoint_flag) {
  std::vector<field_case> cases;
  for (auto& name : known_endpoint_flags()) {
    std::string group;
    if (name == "postNewRelicMetric" || name == "postNewRelicEvent")
      group = "newRelic.";
    else if (name.find("Schedule") != std::string::npos)
      group = "scheduler.";
    cases.push_back({"Butler.restServerEndpointsEnable." + group + name,
                     [name = name](butler_config& c) {
                       for (auto& [flag, on] : c.endpoints.flags)
                         if (flag == name)
                           on = !on;
                     },
                     "true"});
  }
  EXPECT_EQ(cases.size(), 29u);
  expect_each_reported(cases);
}

TEST(config_diff, endpoint_flags_are_compared_by_name) {
  auto a = default_config();
  auto b = a;
  std::reverse(b.endpoints.flags.begin(), b.endpoints.flags.end());
  EXPECT_TRUE(diff(a, b).empty()) << keys_of(diff(a, b));
  // A flag one side does not list is off there.
  b.endpoints.flags = {{"butlerping", true}};
  auto changes = diff(a, b);
  ASSERT_EQ(changes.size(), 1u) << keys_of(changes);
  EXPECT_EQ(changes[0].key, "Butler.restServerEndpointsEnable.butlerping");
  EXPECT_EQ(changes[0].before, "false");
  EXPECT_EQ(changes[0].after, "true");
  b.endpoints.flags = {};
  EXPECT_TRUE(diff(a, b).empty()) << keys_of(diff(a, b));
}

TEST(config_diff, mqtt_fields) {
  const std::string p = "Butler.mqttConfig.";
  expect_each_reported({
    FIELD(p + "enable", mqtt.enable, true, "true"),
    FIELD(p + "brokerHost", mqtt.broker_host, "broker", "broker"),
    FIELD(p + "brokerPort", mqtt.broker_port, 1884, "1884"),
    FIELD(p + "username", mqtt.username, "anna", "anna"),
    FIELD(p + "password", mqtt.password, "s3cret", "s3cret"),
    FIELD(p + "tls.enable", mqtt.tls.enable, true, "true"),
    FIELD(p + "tls.cert", mqtt.tls.cert, "/c.pem", "/c.pem"),
    FIELD(p + "tls.key", mqtt.tls.key, "/k.pem", "/k.pem"),
    FIELD(p + "tls.ca", mqtt.tls.ca, "/ca.pem", "/ca.pem"),
    FIELD(p + "clientId", mqtt.client_id, "butler-1", "butler-1"),
    FIELD(p + "qos", mqtt.qos, 1, "1"),
    FIELD(p + "backlogSize", mqtt.backlog_size, 10, "10"),
    FIELD(p + "reconnectMinMs", mqtt.reconnect_min, 100ms, "100"),
    FIELD(p + "reconnectMaxMs", mqtt.reconnect_max, 1000ms, "1000"),
    FIELD(p + "subscriptionRootTopic", mqtt.subscription_root_topic, "site/#",
          "site/#"),
    FIELD(p + "statusTopic", mqtt.status_topic, "t/status", "t/status"),
    FIELD(p + "taskStartTopic", mqtt.task_start_topic, "qliksense/go",
          "qliksense/go"),
    FIELD(p + "taskFailureTopic", mqtt.task_failure_topic, "t/f", "t/f"),
    FIELD(p + "taskFailureFullTopic", mqtt.task_failure_full_topic, "t/ff",
          "t/ff"),
    FIELD(p + "taskFailureServerStatusTopic",
          mqtt.task_failure_server_status_topic, "t/fs", "t/fs"),
    FIELD(p + "taskAbortedTopic", mqtt.task_aborted_topic, "t/a", "t/a"),
    FIELD(p + "taskAbortedFullTopic", mqtt.task_aborted_full_topic, "t/af",
          "t/af"),
    FIELD(p + "taskFailureSendFull", mqtt.task_failure_send_full, false,
          "false"),
    FIELD(p + "taskAbortedSendFull", mqtt.task_aborted_send_full, false,
          "false"),
    FIELD(p + "sessionStartTopic", mqtt.session_start_topic, "t/ss", "t/ss"),
    FIELD(p + "sessionStopTopic", mqtt.session_stop_topic, "t/sx", "t/sx"),
    FIELD(p + "connectionOpenTopic", mqtt.connection_open_topic, "t/co",
          "t/co"),
    FIELD(p + "connectionCloseTopic", mqtt.connection_close_topic, "t/cc",
          "t/cc"),
    FIELD(p + "sessionServerStatusTopic", mqtt.session_server_status_topic,
          "t/sss", "t/sss"),
    FIELD(p + "activeUserCountTopic", mqtt.active_user_count_topic, "t/uc",
          "t/uc"),
    FIELD(p + "activeUsersTopic", mqtt.active_users_topic, "t/u", "t/u"),
  });
}

TEST(config_diff, udp_fields) {
  const std::string p = "Butler.udpServerConfig.";
  expect_each_reported({
    FIELD(p + "enable", udp.enable, true, "true"),
    FIELD(p + "serverHost", udp.host, "0.0.0.0", "0.0.0.0"),
    FIELD(p + "portTaskFailure", udp.port_task_failure, 9000, "9000"),
    FIELD(p + "portSessionConnectionEvents", udp.port_session_events, 9001,
          "9001"),
    FIELD(p + "maxMessageSize", udp.max_message_size, 1000, "1000"),
    FIELD(p + "enableSourceValidation", udp.source_validation, true, "true"),
    FIELD(p + "allowedSources", udp.allowed_sources,
          (std::vector<std::string>{"10.0.0.1"}), "[10.0.0.1]"),
    FIELD(p + "deduplication.enable", udp.dedup_enable, false, "false"),
    FIELD(p + "deduplication.ttlMinutes", udp.dedup_ttl, 5min, "5"),
    FIELD(p + "messageQueue.maxSize", udp.queue_max_size, 100, "100"),
    FIELD(p + "messageQueue.maxConcurrent", udp.queue_max_concurrent, 2, "2"),
    FIELD(p + "messageQueue.backpressureThreshold", udp.backpressure_threshold,
          50, "50"),
    FIELD(p + "rateLimit.enable", udp.rate_limit_enable, true, "true"),
    FIELD(p + "rateLimit.maxMessagesPerMinute", udp.rate_limit_per_minute, 60,
          "60"),
    FIELD(p + "receiveBufferBytes", udp.receive_buffer, 65536, "65536"),
    FIELD(p + "deduplication.maxEntries", udp.dedup_max_entries, 100, "100"),
  });
}

TEST(config_diff, slack_fields) {
  const std::string p = "Butler.slackNotification.";
  const std::string url = "https://hooks.slack.com/services/T/B/x";
  std::vector<field_case> cases{
    FIELD(p + "enable", slack.enable, true, "true"),
    FIELD(p + "restMessage.webhookURL", slack.rest_webhook_url,
          "https://hooks.slack.com/services/T/B/x", url),
    FIELD("Butler.slackConfig.webhookURL", slack.seed_webhook_url,
          "https://hooks.slack.com/services/T/B/x", url),
    FIELD("Butler.slackConfig.loginNotificationChannel",
          slack.login_notification_channel, "#logins", "'#logins'"),
    FIELD("Butler.slackConfig.taskFailureChannel", slack.task_failure_channel,
          "#fail", "'#fail'"),
    FIELD(p + "backlogSize", slack.backlog_size, 10, "10"),
    FIELD(p + "maxAttempts", slack.max_attempts, 3, "3"),
    FIELD(p + "retryMinMs", slack.retry_min, 500ms, "500"),
    FIELD(p + "retryMaxMs", slack.retry_max, 10s, "10000"),
    FIELD(p + "requestTimeoutSeconds", slack.request_timeout, 5s, "5"),
  };
  // Both channels have the same keys.
  using channel_ptr = slack_channel_config slack_config::*;
  for (auto [name, channel] :
       {std::pair<const char*, channel_ptr>{"reloadTaskFailure",
                                            &slack_config::reload_task_failure},
        std::pair<const char*, channel_ptr>{"reloadTaskAborted",
                                            &slack_config::reload_task_aborted}}) {
    auto q = p + name + ".";
    auto ch = [channel = channel](auto set) {
      return [channel, set](butler_config& c) { set(c.slack.*channel); };
    };
    cases.push_back({q + "enable",
                     ch([](slack_channel_config& s) { s.enable = true; }),
                     "true"});
    cases.push_back({q + "webhookURL", ch([url](slack_channel_config& s) {
                       s.webhook_url = url;
                     }),
                     url});
    cases.push_back({q + "channel",
                     ch([](slack_channel_config& s) { s.channel = "#c"; }),
                     "'#c'"});
    cases.push_back({q + "messageType", ch([](slack_channel_config& s) {
                       s.message_type = "formatted";
                     }),
                     "formatted"});
    cases.push_back({q + "basicMsgTemplate", ch([](slack_channel_config& s) {
                       s.basic_msg_template = "{{taskName}} failed";
                     }),
                     "'{{taskName}} failed'"});
    cases.push_back({q + "templateFile", ch([](slack_channel_config& s) {
                       s.template_file = "/t.json";
                     }),
                     "/t.json"});
    cases.push_back({q + "fromUser",
                     ch([](slack_channel_config& s) { s.from_user = "me"; }),
                     "me"});
    cases.push_back({q + "iconEmoji",
                     ch([](slack_channel_config& s) { s.icon_emoji = ":x:"; }),
                     "':x:'"});
    cases.push_back({q + "rateLimit",
                     ch([](slack_channel_config& s) { s.rate_limit = 60s; }),
                     "60"});
  }
  expect_each_reported(cases);
}

TEST(config_diff, sense_fields) {
  const std::string headers = "[{name: X-Qlik-User, value: UserId=other}]";
  expect_each_reported({
    FIELD("Butler.cert.clientCert", cert.client_cert, "/c.pem", "/c.pem"),
    FIELD("Butler.cert.clientCertKey", cert.client_cert_key, "/k.pem",
          "/k.pem"),
    FIELD("Butler.cert.clientCertCA", cert.client_cert_ca, "/ca.pem",
          "/ca.pem"),
    FIELD("Butler.configQRS.host", qrs.host, "sense1", "sense1"),
    FIELD("Butler.configQRS.port", qrs.port, 4243, "4243"),
    FIELD("Butler.configQRS.useSSL", qrs.use_ssl, false, "false"),
    FIELD("Butler.configQRS.headers.static", qrs.headers,
          (header_list{{"X-Qlik-User", "UserId=other"}}), headers),
    FIELD("Butler.configQRS.rejectUnauthorized", qrs.reject_unauthorized, true,
          "true"),
    FIELD("Butler.configQRS.requestTimeoutSeconds", qrs.timeout, 5s, "5"),
    FIELD("Butler.configEngine.host", engine.host, "sense2", "sense2"),
    FIELD("Butler.configEngine.port", engine.port, 4748, "4748"),
    FIELD("Butler.configEngine.useSSL", engine.use_ssl, false, "false"),
    FIELD("Butler.configEngine.headers.static", engine.headers,
          (header_list{{"X-Qlik-User", "UserId=other"}}), headers),
    FIELD("Butler.configEngine.rejectUnauthorized", engine.reject_unauthorized,
          true, "true"),
    FIELD("Butler.configEngine.requestTimeoutSeconds", engine.timeout, 5s,
          "5"),
    FIELD("Butler.startTaskFilter.enable", start_task_filter.enable, true,
          "true"),
    FIELD("Butler.startTaskFilter.allowTask.taskId",
          start_task_filter.task_ids,
          (std::vector<std::string>{"e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"}),
          "[e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e]"),
    FIELD("Butler.startTaskFilter.allowTask.tag", start_task_filter.tags,
          (std::vector<std::string>{"nightly"}), "[nightly]"),
    FIELD("Butler.startTaskFilter.allowTask.customProperty",
          start_task_filter.custom_properties,
          (header_list{{"group", "g1"}}), "[{name: group, value: g1}]"),
  });
}

TEST(config_diff, directories_runtime_supervisor_health_and_metrics_fields) {
  const std::string s = "Butler.supervisor.";
  expect_each_reported({
    FIELD("Butler.configDirectories.qvdPath", directories.qvd_path, "/qvd",
          "/qvd"),
    FIELD("Butler.runtime.workerThreads", runtime.worker_threads, 4, "4"),
    FIELD("Butler.runtime.schedulerPolicy", runtime.scheduler_policy,
          "stealing", "stealing"),
    FIELD(s + "restartBackoffMinMs", supervisor.restart_min, 50ms, "50"),
    FIELD(s + "restartBackoffMaxMs", supervisor.restart_max, 1000ms, "1000"),
    FIELD(s + "stableAfterSeconds", supervisor.stable_after, 30s, "30"),
    FIELD(s + "shutdownGraceSeconds", supervisor.shutdown_grace, 2s, "2"),
    FIELD(s + "maxRestarts", supervisor.max_restarts, 3, "3"),
    FIELD(s + "restartWindowSeconds", supervisor.restart_window, 30s, "30"),
    FIELD(s + "heartbeatIntervalMs", supervisor.heartbeat_interval, 1000ms,
          "1000"),
    FIELD(s + "heartbeatTimeoutMs", supervisor.heartbeat_timeout, 2000ms,
          "2000"),
    FIELD("Butler.dockerHealthCheck.enable", docker_health.enable, true,
          "true"),
    FIELD("Butler.dockerHealthCheck.port", docker_health.port, 12399,
          "12399"),
    FIELD("Butler.prometheus.enable", prometheus.enable, false, "false"),
    FIELD("Butler.prometheus.port", prometheus.port, 9100, "9100"),
  });
}

TEST(config_diff, log_file_format_heartbeat_and_uptime_monitor_fields) {
  const std::string h = "Butler.heartbeat.";
  const std::string u = "Butler.uptimeMonitor.";
  expect_each_reported({
    FIELD("Butler.logFileMaxSizeMB", logging.file_max_size_mb, 20, "20"),
    FIELD("Butler.logFileMaxFiles", logging.file_max_files, 9, "9"),
    FIELD("Butler.logFormat", logging.format, "json", "json"),
    FIELD(h + "enable", heartbeat.enable, true, "true"),
    FIELD(h + "remoteURL", heartbeat.remote_url, "http://m.example/ping",
          "http://m.example/ping"),
    FIELD(h + "frequency", heartbeat.frequency, 60s, "every 1 minute"),
    FIELD(u + "enable", uptime_monitor.enable, true, "true"),
    FIELD(u + "frequency", uptime_monitor.frequency, 2h, "every 2 hours"),
    FIELD(u + "logLevel", uptime_monitor.log_level, "info", "info"),
  });
}

TEST(config_diff, schedules_are_given_as_their_key_writes_them) {
  auto a = default_config();
  auto b = a;
  b.heartbeat.frequency = 45s;
  b.uptime_monitor.frequency = 1h;
  b.heartbeat.remote_url = "https://hc-ping.com/secret-token";
  b.logging.file_max_files = 1;
  std::vector<std::tuple<std::string, std::string, std::string, bool>> got;
  for (auto& c : diff(a, b)) {
    got.emplace_back(c.key, c.before, c.after, c.secret);
    EXPECT_EQ(c.kind, change_kind::restart) << c.key;
  }
  std::vector<std::tuple<std::string, std::string, std::string, bool>>
    expected{
      {"Butler.logFileMaxFiles", "5", "1", false},
      // A monitor's ping URL often carries its token.
      {"Butler.heartbeat.remoteURL", "", "", true},
      {"Butler.heartbeat.frequency", "every 30 seconds", "every 45 seconds",
       false},
      {"Butler.uptimeMonitor.frequency", "every 15 minutes", "every 1 hour",
       false},
    };
  EXPECT_EQ(got, expected);
}

// -- values, kinds, secrets -------------------------------------------------

TEST(config_diff, same_config_and_other_file_name_are_no_change) {
  auto a = default_config();
  auto b = a;
  b.source_file = "other.yaml";
  EXPECT_TRUE(diff(a, b).empty()) << keys_of(diff(a, b));
}

TEST(config_diff, values_are_given_in_the_keys_units) {
  auto a = default_config();
  auto b = a;
  b.logging.level = "debug";
  b.rest.port = 8081;
  b.rest.read_timeout = 45s;
  b.mqtt.reconnect_min = 100ms;
  b.mqtt.client_id = "butler-1";
  b.udp.allowed_sources = {"10.0.0.1", "sense-node-1"};
  b.udp.dedup_ttl = 5min;
  b.start_task_filter.custom_properties = {{"group", "g1"}};
  auto changes = diff(a, b);
  std::vector<std::tuple<std::string, std::string, std::string>> got;
  for (auto& c : changes)
    got.emplace_back(c.key, c.before, c.after);
  std::vector<std::tuple<std::string, std::string, std::string>> expected{
    {"Butler.logLevel", "info", "debug"},
    {"Butler.restServerConfig.serverPort", "8080", "8081"},
    {"Butler.restServerConfig.readTimeoutSeconds", "30", "45"},
    {"Butler.mqttConfig.clientId", "\"\"", "butler-1"},
    {"Butler.mqttConfig.reconnectMinMs", "250", "100"},
    {"Butler.udpServerConfig.allowedSources", "[]",
     "[10.0.0.1, sense-node-1]"},
    {"Butler.udpServerConfig.deduplication.ttlMinutes", "10", "5"},
    {"Butler.startTaskFilter.allowTask.customProperty", "[]", "[group=g1]"},
  };
  EXPECT_EQ(got, expected) << keys_of(changes);
  ASSERT_FALSE(changes.empty());
  for (auto& c : changes)
    EXPECT_EQ(c.kind, live_key(c.key) ? change_kind::live
                                      : change_kind::restart)
      << c.key;
  EXPECT_EQ(changes[0].kind, change_kind::live);
  EXPECT_EQ(changes[5].kind, change_kind::live) << "allowedSources";
  EXPECT_EQ(changes[6].kind, change_kind::restart) << "ttlMinutes";
  EXPECT_STREQ(to_string(change_kind::live), "live");
  EXPECT_STREQ(to_string(change_kind::restart), "restart");
}

TEST(config_diff, secrets_are_reported_without_their_values) {
  auto a = default_config();
  a.qrs.headers = {{"Authorization", "Bearer old-token"}};
  auto b = a;
  b.mqtt.password = "new-password";
  b.slack.rest_webhook_url = "https://hooks.slack.com/services/T/B/secret";
  b.slack.reload_task_failure.webhook_url = b.slack.rest_webhook_url;
  b.slack.reload_task_aborted.webhook_url = b.slack.rest_webhook_url;
  b.slack.seed_webhook_url = b.slack.rest_webhook_url;
  b.qrs.headers = {{"Authorization", "Bearer new-token"}};
  b.engine.headers = b.qrs.headers;
  auto changes = diff(a, b);
  std::vector<std::string> keys;
  for (auto& c : changes) {
    keys.push_back(c.key);
    EXPECT_TRUE(c.secret) << c.key;
    EXPECT_EQ(c.before, "") << c.key;
    EXPECT_EQ(c.after, "") << c.key;
    EXPECT_EQ(c.kind, live_key(c.key) ? change_kind::live
                                      : change_kind::restart)
      << c.key;
  }
  EXPECT_EQ(keys, (std::vector<std::string>{
                    "Butler.mqttConfig.password",
                    "Butler.slackNotification.restMessage.webhookURL",
                    "Butler.slackNotification.reloadTaskFailure.webhookURL",
                    "Butler.slackNotification.reloadTaskAborted.webhookURL",
                    "Butler.slackConfig.webhookURL",
                    "Butler.configQRS.headers.static",
                    "Butler.configEngine.headers.static"}));
}

TEST(config_diff, changes_come_in_the_order_of_the_config) {
  auto a = default_config();
  auto b = a;
  b.docker_health.port = 1;
  b.logging.file_logging = true;
  b.supervisor.max_restarts = 1;
  b.mqtt.qos = 2;
  b.rest.enable = false;
  std::vector<std::string> keys;
  for (auto& c : diff(a, b))
    keys.push_back(c.key);
  EXPECT_EQ(keys, (std::vector<std::string>{
                    "Butler.fileLogging", "Butler.restServerConfig.enable",
                    "Butler.mqttConfig.qos", "Butler.supervisor.maxRestarts",
                    "Butler.dockerHealthCheck.port"}));
}

} // namespace
