#include "config/config_loader.hpp"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace butler;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// -- helpers ------------------------------------------------------------------

/// Returns the test data root ($BUTLER_TEST_DATA, else test/ next to this
/// file, for running the binary outside ctest).
fs::path test_data() {
  if (auto dir = std::getenv("BUTLER_TEST_DATA"); dir != nullptr && *dir != 0)
    return dir;
  return fs::path{__FILE__}.parent_path().parent_path();
}

fs::path config_data(const std::string& name) {
  return test_data() / "unit" / "config" / name;
}

fs::path example_config() {
  return test_data() / ".." / "deploy" / "butler.example.yaml";
}

std::string read_text(const fs::path& path) {
  std::ifstream in{path};
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out{path};
  out << text;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

/// A fresh directory under the system temp dir, removed at scope exit.
class temp_dir {
public:
  temp_dir() {
    auto pattern = (fs::temp_directory_path() / "butler-config-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      ADD_FAILURE() << "mkdtemp failed";
    path_ = pattern;
  }

  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  /// Writes a small file called `name` and returns its path.
  std::string file(const std::string& name, const std::string& text = "x\n") {
    auto path = path_ / name;
    write_text(path, text);
    return path.string();
  }

  const fs::path& path() const {
    return path_;
  }

private:
  fs::path path_;
};

load_result load(const std::string& yaml, const environment& env = {}) {
  return load_config_string(yaml, "test.yaml", env);
}

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (auto& line : lines)
    out += "\n  " + line;
  return out.empty() ? " (none)" : out;
}

::testing::AssertionResult contains(const std::vector<std::string>& lines,
                                    const std::string& line) {
  if (std::find(lines.begin(), lines.end(), line) != lines.end())
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "missing \"" << line << "\" in:" << join(lines);
}

/// Expects exactly one error, `error`, and no warnings.
void expect_one_error(const load_result& r, const std::string& error) {
  EXPECT_EQ(r.errors, std::vector<std::string>{error}) << join(r.errors);
  EXPECT_TRUE(r.warnings.empty()) << join(r.warnings);
}

void expect_clean(const load_result& r) {
  EXPECT_TRUE(r.errors.empty()) << "errors:" << join(r.errors);
  EXPECT_TRUE(r.warnings.empty()) << "warnings:" << join(r.warnings);
}

std::vector<std::pair<std::string, bool>> all_flags_off() {
  std::vector<std::pair<std::string, bool>> flags;
  for (auto& name : known_endpoint_flags())
    flags.emplace_back(name, false);
  return flags;
}

/// Compares every field except source_file.
void expect_same_config(const butler_config& a, const butler_config& b) {
  EXPECT_EQ(a.logging.level, b.logging.level);
  EXPECT_EQ(a.logging.file_logging, b.logging.file_logging);
  EXPECT_EQ(a.logging.directory, b.logging.directory);
  auto tls_eq = [](const tls_files& x, const tls_files& y, const char* what) {
    EXPECT_EQ(x.enable, y.enable) << what;
    EXPECT_EQ(x.cert, y.cert) << what;
    EXPECT_EQ(x.key, y.key) << what;
    EXPECT_EQ(x.ca, y.ca) << what;
  };
  EXPECT_EQ(a.rest.enable, b.rest.enable);
  EXPECT_EQ(a.rest.host, b.rest.host);
  EXPECT_EQ(a.rest.port, b.rest.port);
  tls_eq(a.rest.tls, b.rest.tls, "rest.tls");
  EXPECT_EQ(a.rest.body_limit, b.rest.body_limit);
  EXPECT_EQ(a.rest.header_limit, b.rest.header_limit);
  EXPECT_EQ(a.rest.read_timeout, b.rest.read_timeout);
  EXPECT_EQ(a.rest.write_timeout, b.rest.write_timeout);
  EXPECT_EQ(a.rest.request_timeout, b.rest.request_timeout);
  EXPECT_EQ(a.rest.max_connections, b.rest.max_connections);
  EXPECT_EQ(a.rest.io_threads, b.rest.io_threads);
  EXPECT_EQ(a.endpoints.flags, b.endpoints.flags);
  auto& m = a.mqtt;
  auto& n = b.mqtt;
  EXPECT_EQ(m.enable, n.enable);
  EXPECT_EQ(m.broker_host, n.broker_host);
  EXPECT_EQ(m.broker_port, n.broker_port);
  EXPECT_EQ(m.username, n.username);
  EXPECT_EQ(m.password, n.password);
  tls_eq(m.tls, n.tls, "mqtt.tls");
  EXPECT_EQ(m.client_id, n.client_id);
  EXPECT_EQ(m.qos, n.qos);
  EXPECT_EQ(m.backlog_size, n.backlog_size);
  EXPECT_EQ(m.reconnect_min, n.reconnect_min);
  EXPECT_EQ(m.reconnect_max, n.reconnect_max);
  EXPECT_EQ(m.subscription_root_topic, n.subscription_root_topic);
  EXPECT_EQ(m.status_topic, n.status_topic);
  EXPECT_EQ(m.task_start_topic, n.task_start_topic);
  EXPECT_EQ(m.task_failure_topic, n.task_failure_topic);
  EXPECT_EQ(m.task_failure_full_topic, n.task_failure_full_topic);
  EXPECT_EQ(m.task_failure_server_status_topic,
            n.task_failure_server_status_topic);
  EXPECT_EQ(m.task_aborted_topic, n.task_aborted_topic);
  EXPECT_EQ(m.task_aborted_full_topic, n.task_aborted_full_topic);
  EXPECT_EQ(m.task_failure_send_full, n.task_failure_send_full);
  EXPECT_EQ(m.task_aborted_send_full, n.task_aborted_send_full);
  EXPECT_EQ(m.session_start_topic, n.session_start_topic);
  EXPECT_EQ(m.session_stop_topic, n.session_stop_topic);
  EXPECT_EQ(m.connection_open_topic, n.connection_open_topic);
  EXPECT_EQ(m.connection_close_topic, n.connection_close_topic);
  EXPECT_EQ(m.session_server_status_topic, n.session_server_status_topic);
  EXPECT_EQ(m.active_user_count_topic, n.active_user_count_topic);
  EXPECT_EQ(m.active_users_topic, n.active_users_topic);
  auto& u = a.udp;
  auto& v = b.udp;
  EXPECT_EQ(u.enable, v.enable);
  EXPECT_EQ(u.host, v.host);
  EXPECT_EQ(u.port_task_failure, v.port_task_failure);
  EXPECT_EQ(u.port_session_events, v.port_session_events);
  EXPECT_EQ(u.max_message_size, v.max_message_size);
  EXPECT_EQ(u.source_validation, v.source_validation);
  EXPECT_EQ(u.allowed_sources, v.allowed_sources);
  EXPECT_EQ(u.dedup_enable, v.dedup_enable);
  EXPECT_EQ(u.dedup_ttl, v.dedup_ttl);
  EXPECT_EQ(u.queue_max_size, v.queue_max_size);
  EXPECT_EQ(u.queue_max_concurrent, v.queue_max_concurrent);
  EXPECT_EQ(u.backpressure_threshold, v.backpressure_threshold);
  EXPECT_EQ(u.rate_limit_enable, v.rate_limit_enable);
  EXPECT_EQ(u.rate_limit_per_minute, v.rate_limit_per_minute);
  EXPECT_EQ(u.receive_buffer, v.receive_buffer);
  EXPECT_EQ(u.dedup_max_entries, v.dedup_max_entries);
  auto channel_eq = [](const slack_channel_config& x,
                       const slack_channel_config& y, const char* what) {
    EXPECT_EQ(x.enable, y.enable) << what;
    EXPECT_EQ(x.webhook_url, y.webhook_url) << what;
    EXPECT_EQ(x.channel, y.channel) << what;
    EXPECT_EQ(x.message_type, y.message_type) << what;
    EXPECT_EQ(x.basic_msg_template, y.basic_msg_template) << what;
    EXPECT_EQ(x.template_file, y.template_file) << what;
    EXPECT_EQ(x.from_user, y.from_user) << what;
    EXPECT_EQ(x.icon_emoji, y.icon_emoji) << what;
    EXPECT_EQ(x.rate_limit, y.rate_limit) << what;
  };
  EXPECT_EQ(a.slack.enable, b.slack.enable);
  EXPECT_EQ(a.slack.rest_webhook_url, b.slack.rest_webhook_url);
  channel_eq(a.slack.reload_task_failure, b.slack.reload_task_failure,
             "reloadTaskFailure");
  channel_eq(a.slack.reload_task_aborted, b.slack.reload_task_aborted,
             "reloadTaskAborted");
  EXPECT_EQ(a.slack.backlog_size, b.slack.backlog_size);
  EXPECT_EQ(a.slack.max_attempts, b.slack.max_attempts);
  EXPECT_EQ(a.slack.retry_min, b.slack.retry_min);
  EXPECT_EQ(a.slack.retry_max, b.slack.retry_max);
  EXPECT_EQ(a.slack.request_timeout, b.slack.request_timeout);
  EXPECT_EQ(a.slack.seed_webhook_url, b.slack.seed_webhook_url);
  EXPECT_EQ(a.slack.login_notification_channel,
            b.slack.login_notification_channel);
  EXPECT_EQ(a.slack.task_failure_channel, b.slack.task_failure_channel);
  EXPECT_EQ(a.cert.client_cert, b.cert.client_cert);
  EXPECT_EQ(a.cert.client_cert_key, b.cert.client_cert_key);
  EXPECT_EQ(a.cert.client_cert_ca, b.cert.client_cert_ca);
  for (auto [x, y] : {std::pair{&a.qrs.host, &b.qrs.host},
                      std::pair{&a.engine.host, &b.engine.host}})
    EXPECT_EQ(*x, *y);
  EXPECT_EQ(a.qrs.port, b.qrs.port);
  EXPECT_EQ(a.qrs.use_ssl, b.qrs.use_ssl);
  EXPECT_EQ(a.qrs.headers, b.qrs.headers);
  EXPECT_EQ(a.qrs.reject_unauthorized, b.qrs.reject_unauthorized);
  EXPECT_EQ(a.qrs.timeout, b.qrs.timeout);
  EXPECT_EQ(a.engine.port, b.engine.port);
  EXPECT_EQ(a.engine.use_ssl, b.engine.use_ssl);
  EXPECT_EQ(a.engine.headers, b.engine.headers);
  EXPECT_EQ(a.engine.reject_unauthorized, b.engine.reject_unauthorized);
  EXPECT_EQ(a.engine.timeout, b.engine.timeout);
  EXPECT_EQ(a.start_task_filter.enable, b.start_task_filter.enable);
  EXPECT_EQ(a.start_task_filter.task_ids, b.start_task_filter.task_ids);
  EXPECT_EQ(a.start_task_filter.tags, b.start_task_filter.tags);
  EXPECT_EQ(a.start_task_filter.custom_properties,
            b.start_task_filter.custom_properties);
  EXPECT_EQ(a.directories.qvd_path, b.directories.qvd_path);
  EXPECT_EQ(a.runtime.worker_threads, b.runtime.worker_threads);
  EXPECT_EQ(a.runtime.scheduler_policy, b.runtime.scheduler_policy);
  EXPECT_EQ(a.supervisor.restart_min, b.supervisor.restart_min);
  EXPECT_EQ(a.supervisor.restart_max, b.supervisor.restart_max);
  EXPECT_EQ(a.supervisor.stable_after, b.supervisor.stable_after);
  EXPECT_EQ(a.supervisor.shutdown_grace, b.supervisor.shutdown_grace);
  EXPECT_EQ(a.logging.file_max_size_mb, b.logging.file_max_size_mb);
  EXPECT_EQ(a.logging.file_max_files, b.logging.file_max_files);
  EXPECT_EQ(a.logging.format, b.logging.format);
  EXPECT_EQ(a.heartbeat.enable, b.heartbeat.enable);
  EXPECT_EQ(a.heartbeat.remote_url, b.heartbeat.remote_url);
  EXPECT_EQ(a.heartbeat.frequency, b.heartbeat.frequency);
  EXPECT_EQ(a.uptime_monitor.enable, b.uptime_monitor.enable);
  EXPECT_EQ(a.uptime_monitor.frequency, b.uptime_monitor.frequency);
  EXPECT_EQ(a.uptime_monitor.log_level, b.uptime_monitor.log_level);
}

/// Collects the key path of every leaf (and of every empty mapping).
void key_paths(const YAML::Node& node, const std::string& path,
               std::set<std::string>& out) {
  if (!node.IsMap() || node.size() == 0) {
    out.insert(path);
    return;
  }
  for (auto it = node.begin(); it != node.end(); ++it)
    key_paths(it->second, path + "." + it->first.Scalar(), out);
}

/// Turns every commented-out key ("  # key: value") into a real one.
std::string uncomment_defaults(const std::string& text) {
  static const std::regex commented{R"(^(\s*)# (\s*[A-Za-z][A-Za-z0-9]*:(\s.*)?)$)"};
  std::istringstream in{text};
  std::string out;
  std::string line;
  while (std::getline(in, line))
    out += std::regex_replace(line, commented, "$1$2") + "\n";
  return out;
}

// -- defaults and a full file -------------------------------------------------

TEST(config, minimal_file_gives_all_defaults) {
  auto path = config_data("minimal.yaml").string();
  auto r = load_config_file(path);
  expect_clean(r);
  EXPECT_EQ(r.config.source_file, path);
  butler_config expected;
  expected.endpoints.flags = all_flags_off();
  expect_same_config(r.config, expected);
  // Spot checks against the constants, in case a struct default drifts.
  EXPECT_EQ(r.config.logging.level, "info");
  EXPECT_EQ(r.config.rest.port, 8080);
  EXPECT_EQ(r.config.rest.read_timeout, 30s);
  EXPECT_EQ(r.config.mqtt.broker_port, 1883);
  EXPECT_EQ(r.config.mqtt.subscription_root_topic, "qliksense/#");
  EXPECT_TRUE(r.config.mqtt.client_id.empty());
  EXPECT_EQ(r.config.udp.queue_max_size, 20'000u);
  EXPECT_EQ(r.config.runtime.worker_threads, 2);
  EXPECT_EQ(r.config.runtime.scheduler_policy, "sharing");
}

TEST(config, null_values_count_as_not_set) {
  auto r = load("Butler:\n  logLevel:\n  mqttConfig:\n    brokerPort:\n"
                "  udpServerConfig:\n    allowedSources:\n  runtime:\n");
  expect_clean(r);
  EXPECT_EQ(r.config.logging.level, "info");
  EXPECT_EQ(r.config.mqtt.broker_port, 1883);
  EXPECT_TRUE(r.config.udp.allowed_sources.empty());
}

TEST(config, full_file_sets_every_key) {
  temp_dir tls;
  for (auto name : {"rest.crt", "rest.key", "rest-ca.crt", "mqtt.crt",
                    "mqtt.key", "mqtt-ca.crt", "failed.json", "client.pem",
                    "client_key.pem", "root.pem"})
    tls.file(name, "-----BEGIN DUMMY-----\n");
  auto text = std::regex_replace(read_text(config_data("full.yaml")),
                                 std::regex{"@TLS_DIR@"}, tls.path().string());
  auto r = load_config_string(text, "full.yaml");
  expect_clean(r);
  auto& c = r.config;
  auto dir = tls.path().string();
  EXPECT_EQ(c.source_file, "full.yaml");
  EXPECT_EQ(c.logging.level, "debug");
  EXPECT_TRUE(c.logging.file_logging);
  EXPECT_EQ(c.logging.directory, "/var/log/butler");

  EXPECT_FALSE(c.rest.enable);
  EXPECT_EQ(c.rest.host, "0.0.0.0");
  EXPECT_EQ(c.rest.port, 9443);
  EXPECT_TRUE(c.rest.tls.enable);
  EXPECT_EQ(c.rest.tls.cert, dir + "/rest.crt");
  EXPECT_EQ(c.rest.tls.key, dir + "/rest.key");
  EXPECT_EQ(c.rest.tls.ca, dir + "/rest-ca.crt");
  EXPECT_EQ(c.rest.body_limit, 2048u);
  EXPECT_EQ(c.rest.header_limit, 4096u);
  EXPECT_EQ(c.rest.read_timeout, 11s);
  EXPECT_EQ(c.rest.write_timeout, 12s);
  EXPECT_EQ(c.rest.request_timeout, 13s);
  EXPECT_EQ(c.rest.max_connections, 77u);
  EXPECT_EQ(c.rest.io_threads, 3);

  auto flags = all_flags_off();
  for (auto& [name, on] : flags)
    on = name != "fileDelete" && name != "postNewRelicEvent"
         && name != "startSchedule" && name != "senseQRSPing";
  EXPECT_EQ(c.endpoints.flags, flags);

  auto& m = c.mqtt;
  EXPECT_TRUE(m.enable);
  EXPECT_EQ(m.broker_host, "broker.example.net");
  EXPECT_EQ(m.broker_port, 8883);
  EXPECT_EQ(m.username, "anna");
  EXPECT_EQ(m.password, "s3cret #1");
  EXPECT_TRUE(m.tls.enable);
  EXPECT_EQ(m.tls.ca, dir + "/mqtt-ca.crt");
  EXPECT_EQ(m.tls.cert, dir + "/mqtt.crt");
  EXPECT_EQ(m.tls.key, dir + "/mqtt.key");
  EXPECT_EQ(m.client_id, "butler-test-1");
  EXPECT_EQ(m.qos, 2);
  EXPECT_EQ(m.backlog_size, 500u);
  EXPECT_EQ(m.reconnect_min, 100ms);
  EXPECT_EQ(m.reconnect_max, 9000ms);
  EXPECT_EQ(m.subscription_root_topic, "site1/#");
  EXPECT_EQ(m.status_topic, "site1/butler/status");
  EXPECT_EQ(m.task_start_topic, "site1/tasks/start");
  EXPECT_EQ(m.task_failure_topic, "site1/tasks/failed");
  EXPECT_EQ(m.task_failure_full_topic, "site1/tasks/failed_full");
  EXPECT_FALSE(m.task_failure_send_full);
  EXPECT_EQ(m.task_failure_server_status_topic, "site1/butler/task_server");
  EXPECT_EQ(m.task_aborted_topic, "site1/tasks/aborted");
  EXPECT_EQ(m.task_aborted_full_topic, "site1/tasks/aborted_full");
  EXPECT_FALSE(m.task_aborted_send_full);
  EXPECT_EQ(m.session_start_topic, "site1/session/begin");
  EXPECT_EQ(m.session_stop_topic, "site1/session/end");
  EXPECT_EQ(m.connection_open_topic, "site1/conn/open");
  EXPECT_EQ(m.connection_close_topic, "site1/conn/close");
  EXPECT_EQ(m.session_server_status_topic, "site1/butler/session_server");
  EXPECT_EQ(m.active_user_count_topic, "site1/users/count");
  EXPECT_EQ(m.active_users_topic, "site1/users/names");

  auto& u = c.udp;
  EXPECT_TRUE(u.enable);
  EXPECT_EQ(u.host, "0.0.0.0");
  EXPECT_EQ(u.port_task_failure, 19998);
  EXPECT_EQ(u.port_session_events, 19997);
  EXPECT_EQ(u.max_message_size, 8192u);
  EXPECT_TRUE(u.source_validation);
  EXPECT_EQ(u.allowed_sources,
            (std::vector<std::string>{"10.0.0.5", "sense-node-1"}));
  EXPECT_FALSE(u.dedup_enable);
  EXPECT_EQ(u.dedup_ttl, 3min);
  EXPECT_EQ(u.queue_max_concurrent, 4u);
  EXPECT_EQ(u.queue_max_size, 5000u);
  EXPECT_EQ(u.backpressure_threshold, 90);
  EXPECT_TRUE(u.rate_limit_enable);
  EXPECT_EQ(u.rate_limit_per_minute, 1200);
  EXPECT_EQ(u.receive_buffer, 1048576u);
  EXPECT_EQ(u.dedup_max_entries, 4242u);

  auto& s = c.slack;
  EXPECT_TRUE(s.enable);
  EXPECT_EQ(s.rest_webhook_url, "https://hooks.slack.com/services/T1/B1/rest");
  auto& f = s.reload_task_failure;
  EXPECT_TRUE(f.enable);
  EXPECT_EQ(f.webhook_url, "https://hooks.slack.com/services/T1/B1/fail");
  EXPECT_EQ(f.channel, "#sense-failures");
  EXPECT_EQ(f.message_type, "formatted");
  EXPECT_EQ(f.basic_msg_template, "Failed: {{taskName}}");
  EXPECT_EQ(f.template_file, dir + "/failed.json");
  EXPECT_EQ(f.from_user, "Butler");
  EXPECT_EQ(f.icon_emoji, ":x:");
  EXPECT_EQ(f.rate_limit, 60s);
  auto& a = s.reload_task_aborted;
  EXPECT_TRUE(a.enable);
  EXPECT_EQ(a.channel, "#sense-aborts");
  EXPECT_EQ(a.message_type, "basic");
  EXPECT_EQ(a.basic_msg_template, "Aborted: {{taskName}}");
  EXPECT_EQ(a.from_user, "Butler bot");
  EXPECT_EQ(a.icon_emoji, ":warning:");
  EXPECT_EQ(a.rate_limit, 120s);
  EXPECT_EQ(s.backlog_size, 50u);
  EXPECT_EQ(s.max_attempts, 3);
  EXPECT_EQ(s.retry_min, 500ms);
  EXPECT_EQ(s.retry_max, 20s);
  EXPECT_EQ(s.request_timeout, 4s);
  EXPECT_EQ(s.seed_webhook_url, "https://hooks.slack.com/services/T1/B1/seed");
  EXPECT_EQ(s.login_notification_channel, "#logins");
  EXPECT_EQ(s.task_failure_channel, "#old-failures");

  EXPECT_EQ(c.cert.client_cert, dir + "/client.pem");
  EXPECT_EQ(c.cert.client_cert_key, dir + "/client_key.pem");
  EXPECT_EQ(c.cert.client_cert_ca, dir + "/root.pem");
  EXPECT_EQ(c.qrs.host, "sense1.example.org");
  EXPECT_EQ(c.qrs.port, 14242);
  EXPECT_FALSE(c.qrs.use_ssl);
  EXPECT_EQ(c.qrs.headers,
            (header_list{{"X-Qlik-User", "UserDirectory=CORP;UserId=svc_butler"},
                         {"X-Site", "1"}}));
  EXPECT_TRUE(c.qrs.reject_unauthorized);
  EXPECT_EQ(c.qrs.timeout, 20s);
  EXPECT_EQ(c.engine.host, "sense2.example.org");
  EXPECT_EQ(c.engine.port, 14747);
  EXPECT_FALSE(c.engine.use_ssl);
  EXPECT_EQ(c.engine.headers,
            (header_list{{"X-Qlik-User", "UserDirectory=CORP;UserId=svc_engine"}}));
  EXPECT_TRUE(c.engine.reject_unauthorized);
  EXPECT_EQ(c.engine.timeout, 300s);
  EXPECT_TRUE(c.start_task_filter.enable);
  EXPECT_EQ(c.start_task_filter.task_ids,
            (std::vector<std::string>{"e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"}));
  EXPECT_EQ(c.start_task_filter.tags,
            (std::vector<std::string>{"startTask1", "startTask2"}));
  EXPECT_EQ(c.start_task_filter.custom_properties,
            (header_list{{"taskGroup", "tasks1"}}));

  EXPECT_EQ(c.directories.qvd_path, "/data/qvd");
  EXPECT_EQ(c.runtime.worker_threads, 4);
  EXPECT_EQ(c.runtime.scheduler_policy, "stealing");
  EXPECT_EQ(c.supervisor.restart_min, 200ms);
  EXPECT_EQ(c.supervisor.restart_max, 60s);
  EXPECT_EQ(c.supervisor.stable_after, 120s);
  EXPECT_EQ(c.supervisor.shutdown_grace, 7s);

  EXPECT_EQ(c.logging.file_max_size_mb, 20u);
  EXPECT_EQ(c.logging.file_max_files, 7u);
  EXPECT_EQ(c.logging.format, "json");
  EXPECT_TRUE(c.heartbeat.enable);
  EXPECT_EQ(c.heartbeat.remote_url, "https://monitor.example.org/ping/butler");
  EXPECT_EQ(c.heartbeat.frequency, 2min);
  EXPECT_TRUE(c.uptime_monitor.enable);
  EXPECT_EQ(c.uptime_monitor.frequency, 1h);
  EXPECT_EQ(c.uptime_monitor.log_level, "info");
}

// -- type errors --------------------------------------------------------------

struct bad_value {
  const char* yaml;
  const char* error;
};

TEST(config, every_bad_value_is_reported_with_its_key_path) {
  const bad_value cases[] = {
    {"mqttConfig: {brokerPort: abc}",
     R"(Butler.mqttConfig.brokerPort: expected an integer 1-65535, got "abc")"},
    {"mqttConfig: {brokerPort: 0}",
     R"(Butler.mqttConfig.brokerPort: expected an integer 1-65535, got "0")"},
    {"mqttConfig: {brokerPort: 70000}",
     R"(Butler.mqttConfig.brokerPort: expected an integer 1-65535, got "70000")"},
    {"mqttConfig: {brokerPort: -1}",
     R"(Butler.mqttConfig.brokerPort: expected an integer 1-65535, got "-1")"},
    {"mqttConfig: {brokerPort: 1883.5}",
     R"(Butler.mqttConfig.brokerPort: expected an integer 1-65535, got "1883.5")"},
    {"mqttConfig: {brokerPort: 99999999999999999999999}",
     R"(Butler.mqttConfig.brokerPort: expected an integer 1-65535, got "99999999999999999999999")"},
    {"mqttConfig: {brokerPort: ''}",
     R"(Butler.mqttConfig.brokerPort: expected an integer 1-65535, got "")"},
    {"restServerConfig: {enable: yes please}",
     R"(Butler.restServerConfig.enable: expected true or false, got "yes please")"},
    {"restServerConfig: {enable: 1}",
     R"(Butler.restServerConfig.enable: expected true or false, got "1")"},
    {"restServerConfig: {serverPort: 0}",
     R"(Butler.restServerConfig.serverPort: expected an integer 1-65535, got "0")"},
    {"logLevel: loud",
     R"(Butler.logLevel: expected one of silly, debug, verbose, info, warn, error, got "loud")"},
    {"logLevel: INFO",
     R"(Butler.logLevel: expected one of silly, debug, verbose, info, warn, error, got "INFO")"},
    {"fileLogging: maybe",
     R"(Butler.fileLogging: expected true or false, got "maybe")"},
    {"mqttConfig: {qos: 3}",
     R"(Butler.mqttConfig.qos: expected an integer 0-2, got "3")"},
    {"mqttConfig: {qos: -1}",
     R"(Butler.mqttConfig.qos: expected an integer 0-2, got "-1")"},
    {"mqttConfig: {backlogSize: 0}",
     R"(Butler.mqttConfig.backlogSize: expected an integer >= 1, got "0")"},
    {"mqttConfig: {reconnectMinMs: 0}",
     R"(Butler.mqttConfig.reconnectMinMs: expected an integer >= 1, got "0")"},
    {"mqttConfig: {reconnectMaxMs: -100}",
     R"(Butler.mqttConfig.reconnectMaxMs: expected an integer >= 1, got "-100")"},
    {"mqttConfig: {taskFailureSendFull: nope}",
     R"(Butler.mqttConfig.taskFailureSendFull: expected true or false, got "nope")"},
    {"mqttConfig: {tls: {enable: sure}}",
     R"(Butler.mqttConfig.tls.enable: expected true or false, got "sure")"},
    {"restServerConfig: {bodyLimitBytes: 1023}",
     R"(Butler.restServerConfig.bodyLimitBytes: expected an integer >= 1024, got "1023")"},
    {"restServerConfig: {headerLimitBytes: 0}",
     R"(Butler.restServerConfig.headerLimitBytes: expected an integer >= 1024, got "0")"},
    {"restServerConfig: {readTimeoutSeconds: 0}",
     R"(Butler.restServerConfig.readTimeoutSeconds: expected an integer >= 1, got "0")"},
    {"restServerConfig: {writeTimeoutSeconds: -5}",
     R"(Butler.restServerConfig.writeTimeoutSeconds: expected an integer >= 1, got "-5")"},
    {"restServerConfig: {requestTimeoutSeconds: 1.5}",
     R"(Butler.restServerConfig.requestTimeoutSeconds: expected an integer >= 1, got "1.5")"},
    {"restServerConfig: {requestTimeoutSeconds: 9223372036854776}",
     R"(Butler.restServerConfig.requestTimeoutSeconds: expected at most 9223372036854775, got "9223372036854776")"},
    {"udpServerConfig: {rateLimit: {maxMessagesPerMinute: 2147483648}}",
     R"(Butler.udpServerConfig.rateLimit.maxMessagesPerMinute: expected at most 2147483647, got "2147483648")"},
    {"restServerConfig: {maxConnections: 0}",
     R"(Butler.restServerConfig.maxConnections: expected an integer >= 1, got "0")"},
    {"restServerConfig: {ioThreads: 0}",
     R"(Butler.restServerConfig.ioThreads: expected an integer 1-64, got "0")"},
    {"restServerConfig: {ioThreads: 65}",
     R"(Butler.restServerConfig.ioThreads: expected an integer 1-64, got "65")"},
    {"restServerEndpointsEnable: {butlerping: on}",
     R"(Butler.restServerEndpointsEnable.butlerping: expected true or false, got "on")"},
    {"restServerEndpointsEnable: {scheduler: {getSchedule: x}}",
     R"(Butler.restServerEndpointsEnable.scheduler.getSchedule: expected true or false, got "x")"},
    {"udpServerConfig: {portTaskFailure: 70000}",
     R"(Butler.udpServerConfig.portTaskFailure: expected an integer 1-65535, got "70000")"},
    {"udpServerConfig: {portSessionConnectionEvents: 0}",
     R"(Butler.udpServerConfig.portSessionConnectionEvents: expected an integer 1-65535, got "0")"},
    {"udpServerConfig: {maxMessageSize: 0}",
     R"(Butler.udpServerConfig.maxMessageSize: expected an integer 1-65507, got "0")"},
    {"udpServerConfig: {maxMessageSize: 65508}",
     R"(Butler.udpServerConfig.maxMessageSize: expected an integer 1-65507, got "65508")"},
    {"udpServerConfig: {enableSourceValidation: 2}",
     R"(Butler.udpServerConfig.enableSourceValidation: expected true or false, got "2")"},
    {"udpServerConfig: {deduplication: {ttlMinutes: 0}}",
     R"(Butler.udpServerConfig.deduplication.ttlMinutes: expected an integer >= 1, got "0")"},
    {"udpServerConfig: {messageQueue: {maxConcurrent: 0}}",
     R"(Butler.udpServerConfig.messageQueue.maxConcurrent: expected an integer >= 1, got "0")"},
    {"udpServerConfig: {messageQueue: {maxSize: -3}}",
     R"(Butler.udpServerConfig.messageQueue.maxSize: expected an integer >= 1, got "-3")"},
    {"udpServerConfig: {messageQueue: {backpressureThreshold: 0}}",
     R"(Butler.udpServerConfig.messageQueue.backpressureThreshold: expected an integer 1-100, got "0")"},
    {"udpServerConfig: {messageQueue: {backpressureThreshold: 101}}",
     R"(Butler.udpServerConfig.messageQueue.backpressureThreshold: expected an integer 1-100, got "101")"},
    {"udpServerConfig: {rateLimit: {maxMessagesPerMinute: 0}}",
     R"(Butler.udpServerConfig.rateLimit.maxMessagesPerMinute: expected an integer >= 1, got "0")"},
    {"udpServerConfig: {allowedSources: 10.0.0.1}",
     R"(Butler.udpServerConfig.allowedSources: expected a list of strings, got "10.0.0.1")"},
    {"udpServerConfig: {allowedSources: [a, [b]]}",
     R"(Butler.udpServerConfig.allowedSources[1]: expected a string, got a sequence)"},
    {"runtime: {workerThreads: 0}",
     R"(Butler.runtime.workerThreads: expected an integer 1-64, got "0")"},
    {"runtime: {workerThreads: 65}",
     R"(Butler.runtime.workerThreads: expected an integer 1-64, got "65")"},
    {"supervisor: {restartBackoffMinMs: 0}",
     R"(Butler.supervisor.restartBackoffMinMs: expected an integer >= 1, got "0")"},
    {"supervisor: {restartBackoffMaxMs: 0}",
     R"(Butler.supervisor.restartBackoffMaxMs: expected an integer >= 1, got "0")"},
    {"supervisor: {stableAfterSeconds: 0}",
     R"(Butler.supervisor.stableAfterSeconds: expected an integer >= 1, got "0")"},
    {"supervisor: {shutdownGraceSeconds: -1}",
     R"(Butler.supervisor.shutdownGraceSeconds: expected an integer >= 1, got "-1")"},
    {"supervisor: {maxRestarts: -1}",
     R"(Butler.supervisor.maxRestarts: expected an integer 0-1000, got "-1")"},
    {"supervisor: {restartWindowSeconds: 0}",
     R"(Butler.supervisor.restartWindowSeconds: expected an integer >= 1, got "0")"},
    {"supervisor: {heartbeatIntervalMs: x}",
     R"(Butler.supervisor.heartbeatIntervalMs: expected an integer >= 1, got "x")"},
    {"supervisor: {heartbeatTimeoutMs: 0}",
     R"(Butler.supervisor.heartbeatTimeoutMs: expected an integer >= 1, got "0")"},
    {"dockerHealthCheck: {port: 70000}",
     R"(Butler.dockerHealthCheck.port: expected an integer 1-65535, got "70000")"},
    {"prometheus: {port: -1}",
     R"(Butler.prometheus.port: expected an integer 0-65535, got "-1")"},
    {"prometheus: {enable: 1.5}",
     R"(Butler.prometheus.enable: expected true or false, got "1.5")"},
    {"logFileMaxSizeMB: 0",
     R"(Butler.logFileMaxSizeMB: expected an integer 1-1024, got "0")"},
    {"logFileMaxSizeMB: 1025",
     R"(Butler.logFileMaxSizeMB: expected an integer 1-1024, got "1025")"},
    {"logFileMaxSizeMB: 10MB",
     R"(Butler.logFileMaxSizeMB: expected an integer 1-1024, got "10MB")"},
    {"logFileMaxFiles: 0",
     R"(Butler.logFileMaxFiles: expected an integer 1-100, got "0")"},
    {"logFileMaxFiles: 101",
     R"(Butler.logFileMaxFiles: expected an integer 1-100, got "101")"},
    {"logFileMaxFiles: [5]",
     R"(Butler.logFileMaxFiles: expected an integer 1-100, got a sequence)"},
    {"logFormat: xml",
     R"(Butler.logFormat: expected one of text, json, got "xml")"},
    {"logFormat: JSON",
     R"(Butler.logFormat: expected one of text, json, got "JSON")"},
    {"heartbeat: true",
     R"(Butler.heartbeat: expected a mapping, got a scalar "true")"},
    {"heartbeat: {enable: often}",
     R"(Butler.heartbeat.enable: expected true or false, got "often")"},
    {"heartbeat: {remoteURL: [http://a]}",
     R"(Butler.heartbeat.remoteURL: expected a string, got a sequence)"},
    {"heartbeat: {frequency: every day}",
     R"(Butler.heartbeat.frequency: expected "every N seconds", "every N minutes" or "every N hours", got "every day")"},
    {"heartbeat: {frequency: at 10:15 am}",
     R"(Butler.heartbeat.frequency: expected "every N seconds", "every N minutes" or "every N hours", got "at 10:15 am")"},
    {"heartbeat: {frequency: every 5 mins}",
     R"(Butler.heartbeat.frequency: expected "every N seconds", "every N minutes" or "every N hours", got "every 5 mins")"},
    {"heartbeat: {frequency: every -5 seconds}",
     R"(Butler.heartbeat.frequency: expected "every N seconds", "every N minutes" or "every N hours", got "every -5 seconds")"},
    {"heartbeat: {frequency: every 1.5 hours}",
     R"(Butler.heartbeat.frequency: expected "every N seconds", "every N minutes" or "every N hours", got "every 1.5 hours")"},
    {"heartbeat: {frequency: 30}",
     R"(Butler.heartbeat.frequency: expected "every N seconds", "every N minutes" or "every N hours", got "30")"},
    {"heartbeat: {frequency: ''}",
     R"(Butler.heartbeat.frequency: expected "every N seconds", "every N minutes" or "every N hours", got "")"},
    {"heartbeat: {frequency: every 30 seconds please}",
     R"(Butler.heartbeat.frequency: expected "every N seconds", "every N minutes" or "every N hours", got "every 30 seconds please")"},
    {"heartbeat: {frequency: {every: 30}}",
     R"(Butler.heartbeat.frequency: expected "every N seconds", "every N minutes" or "every N hours", got a mapping)"},
    {"heartbeat: {frequency: every 0 seconds}",
     R"(Butler.heartbeat.frequency: expected an interval from 1 second to 365 days, got "every 0 seconds")"},
    {"heartbeat: {frequency: every 8761 hours}",
     R"(Butler.heartbeat.frequency: expected an interval from 1 second to 365 days, got "every 8761 hours")"},
    {"heartbeat: {frequency: every 99999999999999999999999 seconds}",
     R"(Butler.heartbeat.frequency: expected an interval from 1 second to 365 days, got "every 99999999999999999999999 seconds")"},
    {"heartbeat: {remoteURL: monitor.example.org/ping}",
     R"(Butler.heartbeat.remoteURL: expected an http:// or https:// URL with a host name, got "monitor.example.org/ping")"},
    {"heartbeat: {remoteURL: 'ftp://monitor.example.org/ping'}",
     R"(Butler.heartbeat.remoteURL: expected an http:// or https:// URL with a host name, got "ftp://monitor.example.org/ping")"},
    {"heartbeat: {remoteURL: 'http://'}",
     R"(Butler.heartbeat.remoteURL: expected an http:// or https:// URL with a host name, got "http://")"},
    {"heartbeat: {remoteURL: 'https:///ping'}",
     R"(Butler.heartbeat.remoteURL: expected an http:// or https:// URL with a host name, got "https:///ping")"},
    {"heartbeat: {remoteURL: 'http://:8080/ping'}",
     R"(Butler.heartbeat.remoteURL: expected an http:// or https:// URL with a host name, got "http://:8080/ping")"},
    {"heartbeat: {remoteURL: 'https://user:pw@/ping'}",
     R"(Butler.heartbeat.remoteURL: expected an http:// or https:// URL with a host name, got "https://user:pw@/ping")"},
    {"heartbeat: {remoteURL: \"http://monitor\\tx/ping\"}",
     "Butler.heartbeat.remoteURL: must not contain spaces or control characters, got \"http://monitor\tx/ping\""},
    {"heartbeat: {remoteURL: 'http://monitor.example.org/a b'}",
     R"(Butler.heartbeat.remoteURL: must not contain spaces or control characters, got "http://monitor.example.org/a b")"},
    {"heartbeat: {enable: true}",
     R"(Butler.heartbeat.remoteURL: missing (required when Butler.heartbeat.enable is true))"},
    {"heartbeat: {enable: true, remoteURL: ''}",
     R"(Butler.heartbeat.remoteURL: missing (required when Butler.heartbeat.enable is true))"},
    {"uptimeMonitor: [on]",
     R"(Butler.uptimeMonitor: expected a mapping, got a sequence)"},
    {"uptimeMonitor: {enable: 1}",
     R"(Butler.uptimeMonitor.enable: expected true or false, got "1")"},
    {"uptimeMonitor: {frequency: every 15 minutes past the hour}",
     R"(Butler.uptimeMonitor.frequency: expected "every N seconds", "every N minutes" or "every N hours", got "every 15 minutes past the hour")"},
    {"uptimeMonitor: {frequency: every 0 minutes}",
     R"(Butler.uptimeMonitor.frequency: expected an interval from 1 second to 365 days, got "every 0 minutes")"},
    {"uptimeMonitor: {logLevel: chatty}",
     R"(Butler.uptimeMonitor.logLevel: expected one of silly, debug, verbose, info, warn, error, got "chatty")"},
    {"dockerHealthCheck: {enable: sometimes}",
     R"(Butler.dockerHealthCheck.enable: expected true or false, got "sometimes")"},
    // A mapping or sequence where a scalar belongs, and the reverse.
    {"mqttConfig: {brokerPort: {value: 1883}}",
     R"(Butler.mqttConfig.brokerPort: expected an integer 1-65535, got a mapping)"},
    {"mqttConfig: {brokerHost: [a, b]}",
     R"(Butler.mqttConfig.brokerHost: expected a string, got a sequence)"},
    {"logLevel: {level: info}",
     R"(Butler.logLevel: expected one of silly, debug, verbose, info, warn, error, got a mapping)"},
    {"mqttConfig: 5",
     R"(Butler.mqttConfig: expected a mapping, got a scalar "5")"},
    {"mqttConfig: {tls: true}",
     R"(Butler.mqttConfig.tls: expected a mapping, got a scalar "true")"},
    {"restServerEndpointsEnable: [butlerping]",
     R"(Butler.restServerEndpointsEnable: expected a mapping, got a sequence)"},
    {"restServerEndpointsEnable: {newRelic: false}",
     R"(Butler.restServerEndpointsEnable.newRelic: expected a mapping, got a scalar "false")"},
    {"udpServerConfig: {deduplication: on}",
     R"(Butler.udpServerConfig.deduplication: expected a mapping, got a scalar "on")"},
    // YAML allows duplicate keys to parse; which one wins would be a guess.
    {"mqttConfig: {brokerPort: 1, brokerPort: 2}",
     R"(Butler.mqttConfig.brokerPort: duplicate key)"},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.yaml);
    auto r = load(std::string{"Butler:\n  "} + c.yaml + "\n");
    expect_one_error(r, c.error);
  }
}

TEST(config, bad_values_leave_the_default_in_place) {
  auto r = load("Butler:\n  mqttConfig: {brokerPort: abc, qos: 3}\n");
  EXPECT_EQ(r.errors.size(), 2u) << join(r.errors);
  EXPECT_EQ(r.config.mqtt.broker_port, 1883);
  EXPECT_EQ(r.config.mqtt.qos, 0);
}

TEST(config, accepts_spelling_variants_yaml_users_write) {
  auto r = load("Butler:\n  fileLogging: True\n"
                "  mqttConfig: {enable: FALSE, brokerPort: +1884, "
                "brokerHost: \"10.0.0.1\"}\n");
  expect_clean(r);
  EXPECT_TRUE(r.config.logging.file_logging);
  EXPECT_FALSE(r.config.mqtt.enable);
  EXPECT_EQ(r.config.mqtt.broker_port, 1884);
  EXPECT_EQ(r.config.mqtt.broker_host, "10.0.0.1");
}

TEST(config, reconnect_and_restart_minimum_must_not_exceed_maximum) {
  expect_one_error(
    load("Butler:\n  mqttConfig: {reconnectMinMs: 5000, reconnectMaxMs: 1000}\n"),
    "Butler.mqttConfig.reconnectMinMs: must not be greater than "
    "Butler.mqttConfig.reconnectMaxMs (5000 > 1000)");
  // Against the default maximum (30 s) too.
  expect_one_error(load("Butler:\n  mqttConfig: {reconnectMinMs: 30001}\n"),
                   "Butler.mqttConfig.reconnectMinMs: must not be greater than "
                   "Butler.mqttConfig.reconnectMaxMs (30001 > 30000)");
  expect_one_error(
    load("Butler:\n  supervisor: {restartBackoffMinMs: 10, "
         "restartBackoffMaxMs: 5}\n"),
    "Butler.supervisor.restartBackoffMinMs: must not be greater than "
    "Butler.supervisor.restartBackoffMaxMs (10 > 5)");
  expect_clean(
    load("Butler:\n  mqttConfig: {reconnectMinMs: 700, reconnectMaxMs: 700}\n"));
  expect_one_error(
    load("Butler:\n  restServerConfig: {serverPort: 12398}\n"
         "  dockerHealthCheck: {enable: true}\n"),
    "Butler.dockerHealthCheck.port: must differ from "
    "Butler.restServerConfig.serverPort (12398)");
  expect_clean(load("Butler:\n  dockerHealthCheck: {enable: true}\n"));
  expect_one_error(
    load("Butler:\n  prometheus: {port: 8080}\n"),
    "Butler.prometheus.port: must differ from "
    "Butler.restServerConfig.serverPort (8080); 0 serves /metrics on the "
    "REST port");
  expect_one_error(
    load("Butler:\n  prometheus: {port: 12398}\n"
         "  dockerHealthCheck: {enable: true}\n"),
    "Butler.prometheus.port: must differ from Butler.dockerHealthCheck.port "
    "(12398)");
  expect_clean(load("Butler:\n  prometheus: {enable: false, port: 8080}\n"));
  auto butler16 = load("Butler:\n  prometheus: {port: 9842, host: 0.0.0.0}\n");
  EXPECT_TRUE(butler16.errors.empty());
  EXPECT_EQ(butler16.warnings, (std::vector<std::string>{
                                 "Butler.prometheus.host: not used by this "
                                 "Butler, ignored"}));
  EXPECT_EQ(butler16.config.prometheus.port, 9842);
}

TEST(config, reads_supervision_and_docker_health_keys) {
  auto r = load("Butler:\n"
                "  supervisor: {maxRestarts: 0, restartWindowSeconds: 30,\n"
                "               heartbeatIntervalMs: 250, heartbeatTimeoutMs: 900}\n"
                "  dockerHealthCheck: {enable: true, port: 12399}\n");
  expect_clean(r);
  EXPECT_EQ(r.config.supervisor.max_restarts, 0);
  EXPECT_EQ(r.config.supervisor.restart_window, std::chrono::seconds{30});
  EXPECT_EQ(r.config.supervisor.heartbeat_interval,
            std::chrono::milliseconds{250});
  EXPECT_EQ(r.config.supervisor.heartbeat_timeout,
            std::chrono::milliseconds{900});
  EXPECT_TRUE(r.config.docker_health.enable);
  EXPECT_EQ(r.config.docker_health.port, 12399);
  auto d = load("Butler: {}\n");
  EXPECT_EQ(d.config.supervisor.max_restarts, 5);
  EXPECT_EQ(d.config.supervisor.restart_window, std::chrono::seconds{60});
  EXPECT_FALSE(d.config.docker_health.enable);
  EXPECT_EQ(d.config.docker_health.port, 12398);
  EXPECT_TRUE(d.config.prometheus.enable);
  EXPECT_EQ(d.config.prometheus.port, 0);
}

TEST(config, reports_all_errors_together) {
  auto r = load("Butler:\n"
                "  logLevel: loud\n"
                "  restServerConfig: {enable: yes please, serverPort: 0}\n"
                "  mqttConfig: {brokerPort: abc, qos: 3}\n"
                "  runtime: {workerThreads: 0}\n");
  EXPECT_EQ(r.errors.size(), 6u) << join(r.errors);
  EXPECT_TRUE(contains(r.errors, R"(Butler.logLevel: expected one of silly, debug, verbose, info, warn, error, got "loud")"));
  EXPECT_TRUE(contains(r.errors, R"(Butler.restServerConfig.enable: expected true or false, got "yes please")"));
  EXPECT_TRUE(contains(r.errors, R"(Butler.restServerConfig.serverPort: expected an integer 1-65535, got "0")"));
  EXPECT_TRUE(contains(r.errors, R"(Butler.mqttConfig.brokerPort: expected an integer 1-65535, got "abc")"));
  EXPECT_TRUE(contains(r.errors, R"(Butler.mqttConfig.qos: expected an integer 0-2, got "3")"));
  EXPECT_TRUE(contains(r.errors, R"(Butler.runtime.workerThreads: expected an integer 1-64, got "0")"));
  EXPECT_FALSE(r.ok());
}

// -- logging, heartbeat and uptime monitor -------------------------------------

TEST(config, logging_keys_have_defaults_and_are_read) {
  auto d = load("Butler: {}\n");
  expect_clean(d);
  EXPECT_EQ(d.config.logging.file_max_size_mb, 10u);
  EXPECT_EQ(d.config.logging.file_max_files, 5u);
  EXPECT_EQ(d.config.logging.format, "text");
  auto r = load("Butler:\n  logFileMaxSizeMB: 1\n  logFileMaxFiles: 1\n"
                "  logFormat: json\n");
  expect_clean(r);
  EXPECT_EQ(r.config.logging.file_max_size_mb, 1u);
  EXPECT_EQ(r.config.logging.file_max_files, 1u);
  EXPECT_EQ(r.config.logging.format, "json");
  auto top = load("Butler:\n  logFileMaxSizeMB: 1024\n  logFileMaxFiles: 100\n"
                  "  logFormat: text\n");
  expect_clean(top);
  EXPECT_EQ(top.config.logging.file_max_size_mb, 1024u);
  EXPECT_EQ(top.config.logging.file_max_files, 100u);
}

TEST(config, heartbeat_and_uptime_monitor_have_butlers_defaults) {
  auto r = load("Butler: {}\n");
  expect_clean(r);
  EXPECT_FALSE(r.config.heartbeat.enable);
  EXPECT_EQ(r.config.heartbeat.remote_url, "");
  EXPECT_EQ(r.config.heartbeat.frequency, 30s);
  EXPECT_FALSE(r.config.uptime_monitor.enable);
  EXPECT_EQ(r.config.uptime_monitor.frequency, 15min);
  EXPECT_EQ(r.config.uptime_monitor.log_level, "verbose");
  // A disabled heartbeat needs no URL.
  expect_clean(load("Butler:\n  heartbeat: {enable: false}\n"));
}

TEST(config, schedules_read_every_n_seconds_minutes_or_hours) {
  const std::pair<const char*, std::chrono::seconds> cases[] = {
    {"every 30 seconds", 30s},
    {"every 1 second", 1s},
    {"every 1 seconds", 1s},
    {"every 15 minutes", 15min},
    {"every 1 minute", 1min},
    {"every 2 hours", 2h},
    {"every 1 hour", 1h},
    {"Every 5 Minutes", 5min},
    {"EVERY 10 SECONDS", 10s},
    {"  every   3\t hours ", 3h},
    {"every 8760 hours", 8760h},
    {"every 31536000 seconds", 31536000s},
  };
  for (auto& [text, expected] : cases) {
    SCOPED_TRACE(text);
    auto yaml = std::string{"Butler:\n  heartbeat: {frequency: \""} + text
                + "\"}\n  uptimeMonitor: {frequency: \"" + text + "\"}\n";
    auto r = load(yaml);
    expect_clean(r);
    EXPECT_EQ(r.config.heartbeat.frequency, expected);
    EXPECT_EQ(r.config.uptime_monitor.frequency, expected);
  }
}

TEST(config, heartbeat_urls_butler_users_write_are_accepted) {
  for (auto url : {"http://monitor.example.org/ping/",
                   "https://hc-ping.com/0f4a1c2e-58d1-4d4e-b7a4-5cf1f8f0a111",
                   "http://127.0.0.1:8000", "https://user:pw@monitor:8443/p?x=1",
                   "HTTP://monitor.example.org/p"}) {
    SCOPED_TRACE(url);
    auto r = load(std::string{"Butler:\n  heartbeat: {enable: true, remoteURL: '"}
                  + url + "'}\n");
    expect_clean(r);
    EXPECT_EQ(r.config.heartbeat.remote_url, url);
  }
}

TEST(config, uptime_monitor_keys_butler_stores_elsewhere_are_ignored) {
  auto r = load("Butler:\n"
                "  uptimeMonitor:\n"
                "    enable: true\n"
                "    frequency: every 5 minutes\n"
                "    logLevel: info\n"
                "    storeInInfluxdb: {enable: false}\n"
                "    storeNewRelic: {enable: false, destinationAccount: [a]}\n"
                "    colour: blue\n");
  EXPECT_TRUE(r.errors.empty()) << join(r.errors);
  EXPECT_EQ(r.warnings,
            (std::vector<std::string>{
              "Butler.uptimeMonitor.storeInInfluxdb: not used by this Butler, "
              "ignored",
              "Butler.uptimeMonitor.storeNewRelic: not used by this Butler, "
              "ignored",
              "Butler.uptimeMonitor.colour: unknown key, ignored"}));
  EXPECT_TRUE(r.config.uptime_monitor.enable);
  EXPECT_EQ(r.config.uptime_monitor.frequency, 5min);
  EXPECT_EQ(r.config.uptime_monitor.log_level, "info");
}

TEST(config, heartbeat_and_logging_keys_take_environment_overrides) {
  auto r = load("Butler:\n  heartbeat: {remoteURL: 'http://m/ping'}\n",
                {{"Butler__heartbeat__enable", "true"},
                 {"Butler__heartbeat__frequency", "every 2 minutes"},
                 {"Butler__uptimeMonitor__logLevel", "warn"},
                 {"Butler__logFormat", "json"},
                 {"Butler__logFileMaxFiles", "3"}});
  expect_clean(r);
  EXPECT_TRUE(r.config.heartbeat.enable);
  EXPECT_EQ(r.config.heartbeat.frequency, 2min);
  EXPECT_EQ(r.config.uptime_monitor.log_level, "warn");
  EXPECT_EQ(r.config.logging.format, "json");
  EXPECT_EQ(r.config.logging.file_max_files, 3u);
  auto bad = load("Butler: {}\n", {{"Butler__heartbeat__frequency", "hourly"}});
  EXPECT_EQ(bad.errors, (std::vector<std::string>{
                          R"(Butler.heartbeat.frequency: expected "every N seconds", "every N minutes" or "every N hours", got "hourly")"}));
}

// -- files and the root -------------------------------------------------------

TEST(config, yaml_syntax_error_names_line_and_column) {
  auto path = config_data("syntax_error.yaml").string();
  auto r = load_config_file(path);
  expect_one_error(r, path + ":5:4: end of map not found");
  expect_one_error(load("Butler:\n  a: [1, 2\n"),
                   "test.yaml:3:1: end of sequence flow not found");
  expect_one_error(load("Butler:\n\tlogLevel: info\n"),
                   "test.yaml:2:10: illegal map value");
}

TEST(config, missing_butler_root_is_an_error) {
  const std::string missing
    = "Butler: missing (the config file must have a Butler: root)";
  auto path = config_data("no_root.yaml").string();
  auto r = load_config_file(path);
  EXPECT_EQ(r.errors, std::vector<std::string>{missing});
  EXPECT_EQ(r.warnings,
            std::vector<std::string>{"mqttConfig: unknown key, ignored"});
  for (auto yaml : {"Butler:\n", "Butler: 5\n", "Butler: [a]\n", "- Butler\n",
                    "just text\n", "butler: {}\n"}) {
    SCOPED_TRACE(yaml);
    EXPECT_EQ(load(yaml).errors, std::vector<std::string>{missing});
  }
  auto dup = load("Butler: {}\nButler: {}\n");
  EXPECT_EQ(dup.errors, std::vector<std::string>{"Butler: duplicate key"});
}

TEST(config, empty_file_is_an_error) {
  const std::vector<std::string> missing{
    "Butler: missing (the config file must have a Butler: root)"};
  EXPECT_EQ(load_config_file(config_data("empty.yaml").string()).errors, missing);
  EXPECT_EQ(load("# only a comment\n").errors, missing);
}

TEST(config, unreadable_file_is_one_error) {
  temp_dir dir;
  auto missing = (dir.path() / "nope.yaml").string();
  auto r = load_config_file(missing);
  expect_one_error(r, missing + ": cannot read: No such file or directory");
  EXPECT_EQ(r.config.endpoints.flags, all_flags_off());
  auto as_dir = dir.path().string();
  expect_one_error(load_config_file(as_dir),
                   as_dir + ": cannot read: Is a directory");
}

// -- unknown and ignored keys -------------------------------------------------

TEST(config, unknown_keys_warn_once_at_the_highest_unknown_node) {
  auto r = load("Extra: {a: 1}\n"
                "Butler:\n"
                "  influxDb:\n"
                "    enable: false\n"
                "    auth: {username: x, password: y}\n"
                "  systemInfo: {enable: true}\n"
                "  mqttConfig:\n"
                "    brokerPort: 1884\n"
                "    fooBar: {x: {y: 1}}\n"
                "  udpServerConfig:\n"
                "    deduplication: {enable: true, extra: 1}\n"
                "  restServerEndpointsEnable:\n"
                "    scheduler: {startSchedule: true, pauseSchedule: true}\n");
  EXPECT_TRUE(r.errors.empty()) << join(r.errors);
  std::vector<std::string> expected{
    "Extra: unknown key, ignored",
    "Butler.influxDb: unknown key, ignored",
    "Butler.systemInfo: unknown key, ignored",
    "Butler.mqttConfig.fooBar: unknown key, ignored",
    "Butler.udpServerConfig.deduplication.extra: unknown key, ignored",
    "Butler.restServerEndpointsEnable.scheduler.pauseSchedule: unknown key, "
    "ignored",
  };
  auto got = r.warnings;
  std::sort(got.begin(), got.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(got, expected);
  EXPECT_EQ(r.config.mqtt.broker_port, 1884);
  EXPECT_TRUE(r.config.endpoints.enabled("startSchedule"));
}

TEST(config, butler16_mqtt_and_rest_keys_are_ignored_with_a_warning) {
  auto r = load("Butler:\n"
                "  restServerConfig: {serverPort: 8090, backgroundServerPort: 8081}\n"
                "  mqttConfig:\n"
                "    azureEventGrid: {enable: false, clientId: x}\n"
                "    serviceRunningTopic: qliksense/service_running\n"
                "    serviceStoppedTopic: qliksense/service_stopped\n"
                "    serviceStatusTopic: qliksense/service_status\n"
                "    qlikSenseServerLicenseTopic: qliksense/license\n"
                "    qlikSenseServerLicenseExpireTopic: qliksense/license_expire\n"
                "    qlikSenseCloud: {event: {mqttForward: {enable: false}}}\n");
  EXPECT_TRUE(r.errors.empty()) << join(r.errors);
  std::vector<std::string> expected;
  expected.push_back("Butler.restServerConfig.backgroundServerPort: not used by "
                     "this Butler, ignored");
  for (auto key : {"azureEventGrid", "serviceRunningTopic", "serviceStoppedTopic",
                   "serviceStatusTopic", "qlikSenseServerLicenseTopic",
                   "qlikSenseServerLicenseExpireTopic", "qlikSenseCloud"})
    expected.push_back(std::string{"Butler.mqttConfig."} + key
                       + ": not used by this Butler, ignored");
  auto got = r.warnings;
  std::sort(got.begin(), got.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(got, expected);
  EXPECT_EQ(r.config.rest.port, 8090);
}

TEST(config, butler16_style_file_loads_with_warnings_only) {
  temp_dir certs;
  for (auto name : {"client.pem", "client_key.pem", "root.pem"})
    certs.file(name, "-----BEGIN DUMMY-----\n");
  auto text = std::regex_replace(read_text(config_data("butler16_style.yaml")),
                                 std::regex{"@CERT_DIR@"},
                                 certs.path().string());
  auto r = load_config_string(text, "butler16_style.yaml");
  EXPECT_TRUE(r.errors.empty()) << join(r.errors);
  for (auto section :
       {"anonTelemetry", "systemInfo", "configVisualisation",
        "thirdPartyToolsCredentials",
        "influxDb", "scriptLog", "qlikSenseUrls", "genericUrls",
        "teamsNotification", "emailNotification",
        "webhookNotification", "scheduler", "keyValueStore",
        "fileCopyApprovedDirectories", "fileMoveApprovedDirectories",
        "fileDeleteApprovedDirectories", "restServerApiDocGenerate",
        "restServerEndpointsConfig", "serviceMonitor", "qlikSenseCloud"})
    EXPECT_TRUE(contains(r.warnings, std::string{"Butler."} + section
                                       + ": unknown key, ignored"));
  // Butler 16's dockerHealthCheck section is read as it is.
  EXPECT_FALSE(contains(r.warnings, "Butler.dockerHealthCheck: unknown key, "
                                    "ignored"));
  EXPECT_FALSE(r.config.docker_health.enable);
  EXPECT_EQ(r.config.docker_health.port, 12398);
  // So are heartbeat and uptimeMonitor; the uptime figures Butler 16 can
  // store elsewhere are not.
  for (auto section : {"heartbeat", "uptimeMonitor"})
    EXPECT_FALSE(contains(r.warnings, std::string{"Butler."} + section
                                        + ": unknown key, ignored"));
  EXPECT_FALSE(r.config.heartbeat.enable);
  EXPECT_EQ(r.config.heartbeat.remote_url, "http://monitor.example.org/ping");
  EXPECT_EQ(r.config.heartbeat.frequency, 30s);
  EXPECT_FALSE(r.config.uptime_monitor.enable);
  EXPECT_EQ(r.config.uptime_monitor.frequency, 15min);
  EXPECT_EQ(r.config.uptime_monitor.log_level, "verbose");
  EXPECT_TRUE(contains(r.warnings, "Butler.uptimeMonitor.storeInInfluxdb: not "
                                   "used by this Butler, ignored"));
  for (auto& w : r.warnings)
    EXPECT_EQ(w.find("Butler.heartbeat"), std::string::npos) << w;
  EXPECT_TRUE(contains(r.warnings, "Butler.mqttConfig.azureEventGrid: not used "
                                   "by this Butler, ignored"));
  EXPECT_TRUE(contains(r.warnings, "Butler.restServerEndpointsEnable."
                                   "apiListEnbledEndpoints: misspelt, read as "
                                   "Butler.restServerEndpointsEnable."
                                   "apiListEnabledEndpoints"));
  // Nothing below an unknown section is looked at.
  for (auto& w : r.warnings) {
    EXPECT_EQ(w.find("Butler.influxDb."), std::string::npos) << w;
    EXPECT_EQ(w.find("Butler.cert."), std::string::npos) << w;
  }
  // The keys this Butler knows were read.
  EXPECT_EQ(r.config.logging.level, "verbose");
  EXPECT_EQ(r.config.rest.host, "10.11.12.13");
  EXPECT_EQ(r.config.mqtt.broker_host, "mqtt.example.org");
  EXPECT_TRUE(r.config.endpoints.enabled("butlerping"));
  EXPECT_FALSE(r.config.endpoints.enabled("createDir"));
  EXPECT_EQ(r.config.directories.qvd_path, "/data/qvd");
}

// -- endpoint flags -----------------------------------------------------------

TEST(config, known_endpoint_flags_have_a_fixed_order) {
  const std::vector<std::string> expected{
    "activeUserCount",   "activeUsers",          "apiListEnabledEndpoints",
    "base62ToBase16",    "base16ToBase62",       "butlerping",
    "createDir",         "createDirQVD",         "fileDelete",
    "fileMove",          "fileCopy",             "getDiskSpace",
    "keyValueStore",     "mqttPublishMessage",   "postNewRelicMetric",
    "postNewRelicEvent", "createNewSchedule",    "getSchedule",
    "getScheduleStatusAll", "updateSchedule",    "deleteSchedule",
    "startSchedule",     "stopSchedule",         "senseAppReload",
    "senseAppDump",      "senseListApps",        "senseQRSPing",
    "senseStartTask",    "slackPostMessage"};
  EXPECT_EQ(known_endpoint_flags(), expected);
  auto r = load("Butler:\n  restServerEndpointsEnable: {butlerping: true}\n");
  expect_clean(r);
  auto flags = all_flags_off();
  flags[5].second = true;
  ASSERT_EQ(flags[5].first, "butlerping");
  EXPECT_EQ(r.config.endpoints.flags, flags);
  EXPECT_TRUE(r.config.endpoints.enabled("butlerping"));
  EXPECT_FALSE(r.config.endpoints.enabled("createDir"));
  EXPECT_FALSE(r.config.endpoints.enabled("noSuchFlag"));
}

TEST(config, nested_and_flat_group_flags_both_work) {
  auto r = load("Butler:\n"
                "  restServerEndpointsEnable:\n"
                "    newRelic: {postNewRelicMetric: true}\n"
                "    scheduler: {startSchedule: true, stopSchedule: false}\n"
                "    postNewRelicEvent: true\n"
                "    getSchedule: true\n");
  expect_clean(r);
  auto& e = r.config.endpoints;
  EXPECT_TRUE(e.enabled("postNewRelicMetric"));
  EXPECT_TRUE(e.enabled("postNewRelicEvent"));
  EXPECT_TRUE(e.enabled("startSchedule"));
  EXPECT_TRUE(e.enabled("getSchedule"));
  EXPECT_FALSE(e.enabled("stopSchedule"));
  EXPECT_FALSE(e.enabled("createNewSchedule"));
  // A flag under the wrong group is unknown there.
  auto wrong = load("Butler:\n  restServerEndpointsEnable:\n"
                    "    newRelic: {startSchedule: true}\n");
  EXPECT_EQ(wrong.warnings,
            std::vector<std::string>{"Butler.restServerEndpointsEnable.newRelic."
                                     "startSchedule: unknown key, ignored"});
  EXPECT_FALSE(wrong.config.endpoints.enabled("startSchedule"));
}

TEST(config, old_misspelt_api_list_flag_is_accepted_with_a_warning) {
  auto r = load("Butler:\n  restServerEndpointsEnable: "
                "{apiListEnbledEndpoints: true}\n");
  EXPECT_TRUE(r.errors.empty()) << join(r.errors);
  EXPECT_EQ(r.warnings, std::vector<std::string>{
                          "Butler.restServerEndpointsEnable.apiListEnbledEndpoints: "
                          "misspelt, read as Butler.restServerEndpointsEnable."
                          "apiListEnabledEndpoints"});
  EXPECT_TRUE(r.config.endpoints.enabled("apiListEnabledEndpoints"));
  // With both spellings, the right one wins.
  auto both = load("Butler:\n  restServerEndpointsEnable: "
                   "{apiListEnbledEndpoints: true, apiListEnabledEndpoints: false}\n");
  EXPECT_TRUE(both.errors.empty()) << join(both.errors);
  EXPECT_FALSE(both.config.endpoints.enabled("apiListEnabledEndpoints"));
  EXPECT_EQ(both.warnings.size(), 1u) << join(both.warnings);
  EXPECT_EQ(both.warnings.at(0).find("Butler.restServerEndpointsEnable."
                                     "apiListEnbledEndpoints: misspelt, ignored"),
            0u);
  // A bad value is reported under the spelling that was written.
  auto bad = load("Butler:\n  restServerEndpointsEnable: "
                  "{apiListEnbledEndpoints: si}\n");
  EXPECT_EQ(bad.errors, std::vector<std::string>{
                          "Butler.restServerEndpointsEnable.apiListEnbledEndpoints: "
                          "expected true or false, got \"si\""});
}

// -- cross-key rules ----------------------------------------------------------

TEST(config, mqtt_enabled_requires_a_broker_host) {
  expect_one_error(load("Butler:\n  mqttConfig: {enable: true, brokerHost: ''}\n"),
                   "Butler.mqttConfig.brokerHost: missing (required when "
                   "Butler.mqttConfig.enable is true)");
  expect_clean(load("Butler:\n  mqttConfig: {enable: false, brokerHost: ''}\n"));
  expect_clean(load("Butler:\n  mqttConfig: {enable: true}\n"));
}

TEST(config, enabled_servers_need_a_host) {
  expect_one_error(load("Butler:\n  restServerConfig: {serverHost: ''}\n"),
                   "Butler.restServerConfig.serverHost: missing (required when "
                   "Butler.restServerConfig.enable is true)");
  expect_clean(load("Butler:\n  restServerConfig: {enable: false, serverHost: ''}\n"));
  expect_one_error(load("Butler:\n  udpServerConfig: {enable: true, serverHost: ''}\n"),
                   "Butler.udpServerConfig.serverHost: missing (required when "
                   "Butler.udpServerConfig.enable is true)");
}

TEST(config, udp_rules) {
  expect_one_error(
    load("Butler:\n  udpServerConfig: {enable: true, portTaskFailure: 9000, "
         "portSessionConnectionEvents: 9000}\n"),
    "Butler.udpServerConfig.portSessionConnectionEvents: must differ from "
    "Butler.udpServerConfig.portTaskFailure (9000)");
  expect_one_error(
    load("Butler:\n  udpServerConfig: {enableSourceValidation: true}\n"),
    "Butler.udpServerConfig.allowedSources: missing (required when "
    "Butler.udpServerConfig.enableSourceValidation is true)");
  expect_clean(load("Butler:\n  udpServerConfig: {enableSourceValidation: true, "
                    "allowedSources: [10.1.2.3]}\n"));
}

TEST(config, file_logging_needs_a_directory) {
  expect_one_error(load("Butler:\n  fileLogging: true\n  logDirectory: ''\n"),
                   "Butler.logDirectory: missing (required when "
                   "Butler.fileLogging is true)");
}

TEST(config, rest_tls_needs_cert_and_key) {
  auto r = load("Butler:\n  restServerConfig: {tls: {enable: true}}\n");
  EXPECT_EQ(r.errors,
            (std::vector<std::string>{
              "Butler.restServerConfig.tls.cert: missing (required when "
              "Butler.restServerConfig.tls.enable is true)",
              "Butler.restServerConfig.tls.key: missing (required when "
              "Butler.restServerConfig.tls.enable is true)"}));
}

TEST(config, tls_files_must_be_readable) {
  temp_dir dir;
  auto cert = dir.file("cert.pem");
  auto key = dir.file("key.pem");
  auto ca = dir.file("ca.pem");
  auto missing = (dir.path() / "missing.pem").string();
  auto rest = [&](const std::string& c, const std::string& k,
                  const std::string& a) {
    return load("Butler:\n  restServerConfig:\n    tls: {enable: true, cert: '"
                + c + "', key: '" + k + "', ca: '" + a + "'}\n");
  };
  auto good = rest(cert, key, ca);
  expect_clean(good);
  EXPECT_EQ(good.config.rest.tls.cert, cert);
  expect_one_error(rest(missing, key, ca),
                   "Butler.restServerConfig.tls.cert: cannot read " + missing
                     + ": No such file or directory");
  expect_one_error(rest(cert, missing, ""),
                   "Butler.restServerConfig.tls.key: cannot read " + missing
                     + ": No such file or directory");
  expect_one_error(rest(cert, key, missing),
                   "Butler.restServerConfig.tls.ca: cannot read " + missing
                     + ": No such file or directory");
  auto as_dir = dir.path().string();
  expect_one_error(rest(as_dir, key, ""),
                   "Butler.restServerConfig.tls.cert: cannot read " + as_dir
                     + ": Is a directory");
  // Files are only checked when TLS is on.
  expect_clean(load("Butler:\n  restServerConfig:\n    tls: {enable: false, "
                    "cert: '" + missing + "', key: '" + missing + "'}\n"));
}

TEST(config, mqtt_tls_files_must_be_readable_and_paired) {
  temp_dir dir;
  auto cert = dir.file("client.pem");
  auto key = dir.file("client.key");
  auto ca = dir.file("ca.pem");
  auto missing = (dir.path() / "missing.pem").string();
  // Only a CA (server verification): fine.
  expect_clean(load("Butler:\n  mqttConfig:\n    tls: {enable: true, ca: '" + ca
                    + "'}\n"));
  // No files at all: the system CA store is used.
  expect_clean(load("Butler:\n  mqttConfig:\n    tls: {enable: true}\n"));
  auto full = load("Butler:\n  mqttConfig:\n    tls: {enable: true, ca: '" + ca
                   + "', cert: '" + cert + "', key: '" + key + "'}\n");
  expect_clean(full);
  EXPECT_EQ(full.config.mqtt.tls.key, key);
  expect_one_error(load("Butler:\n  mqttConfig:\n    tls: {enable: true, cert: '"
                        + cert + "'}\n"),
                   "Butler.mqttConfig.tls.key: missing (required when "
                   "Butler.mqttConfig.tls.cert is set)");
  expect_one_error(load("Butler:\n  mqttConfig:\n    tls: {enable: true, key: '"
                        + key + "'}\n"),
                   "Butler.mqttConfig.tls.cert: missing (required when "
                   "Butler.mqttConfig.tls.key is set)");
  expect_one_error(load("Butler:\n  mqttConfig:\n    tls: {enable: true, ca: '"
                        + missing + "'}\n"),
                   "Butler.mqttConfig.tls.ca: cannot read " + missing
                     + ": No such file or directory");
}

TEST(config, publish_topics_must_be_concrete) {
  expect_one_error(load("Butler:\n  mqttConfig: {taskFailureTopic: 'a/#'}\n"),
                   "Butler.mqttConfig.taskFailureTopic: must not contain the "
                   "wildcards + or # (only subscriptionRootTopic may), got "
                   "\"a/#\"");
  expect_one_error(load("Butler:\n  mqttConfig: {statusTopic: a/+/b}\n"),
                   "Butler.mqttConfig.statusTopic: must not contain the "
                   "wildcards + or # (only subscriptionRootTopic may), got "
                   "\"a/+/b\"");
  expect_one_error(load("Butler:\n  mqttConfig: {activeUsersTopic: ''}\n"),
                   "Butler.mqttConfig.activeUsersTopic: must not be empty");
  expect_one_error(load("Butler:\n  mqttConfig: {taskStartTopic: qliksense/+}\n"),
                   "Butler.mqttConfig.taskStartTopic: must not contain the "
                   "wildcards + or # (only subscriptionRootTopic may), got "
                   "\"qliksense/+\"");
}

TEST(config, subscription_root_must_be_a_valid_filter) {
  for (auto filter : {"a/#/b", "a/b#", "a+/b", "#/a"}) {
    SCOPED_TRACE(filter);
    auto r = load(std::string{"Butler:\n  mqttConfig: {subscriptionRootTopic: '"}
                  + filter + "', taskStartTopic: a/b}\n");
    ASSERT_EQ(r.errors.size(), 1u) << join(r.errors);
    EXPECT_EQ(r.errors[0].find("Butler.mqttConfig.subscriptionRootTopic: "), 0u)
      << r.errors[0];
    EXPECT_NE(r.errors[0].find(std::string{"got \""} + filter + "\""),
              std::string::npos)
      << r.errors[0];
  }
  expect_one_error(load("Butler:\n  mqttConfig: {subscriptionRootTopic: ''}\n"),
                   "Butler.mqttConfig.subscriptionRootTopic: must not be empty");
  expect_one_error(
    load("Butler:\n  mqttConfig: {subscriptionRootTopic: '$share//x/#'}\n"),
    "Butler.mqttConfig.subscriptionRootTopic: expected $share/<group>/<filter> "
    "with a group name without + or #, got \"$share//x/#\"");
  for (auto filter : {"#", "+/start_task", "qliksense/+", "qliksense/#",
                      "$share/butlers/qliksense/#"}) {
    SCOPED_TRACE(filter);
    expect_clean(load(std::string{"Butler:\n  mqttConfig: {subscriptionRootTopic: '"}
                      + filter + "', taskStartTopic: qliksense/start_task}\n"));
  }
}

TEST(config, task_start_topic_must_lie_under_the_subscription_root) {
  expect_one_error(load("Butler:\n  mqttConfig: {taskStartTopic: other/start}\n"),
                   "Butler.mqttConfig.taskStartTopic: must lie under "
                   "Butler.mqttConfig.subscriptionRootTopic (qliksense/#), got "
                   "\"other/start\"");
  expect_one_error(
    load("Butler:\n  mqttConfig: {subscriptionRootTopic: qliksense/+, "
         "taskStartTopic: qliksense/a/b}\n"),
    "Butler.mqttConfig.taskStartTopic: must lie under "
    "Butler.mqttConfig.subscriptionRootTopic (qliksense/+), got "
    "\"qliksense/a/b\"");
  // "a/#" also matches "a" itself.
  expect_clean(load("Butler:\n  mqttConfig: {subscriptionRootTopic: 'a/#', "
                    "taskStartTopic: a}\n"));
  // A wildcard first level does not match "$" topics.
  EXPECT_EQ(load("Butler:\n  mqttConfig: {subscriptionRootTopic: '#', "
                 "taskStartTopic: $SYS/x}\n")
              .errors.size(),
            1u);
}

TEST(config, create_dir_qvd_requires_qvd_path) {
  expect_one_error(
    load("Butler:\n  restServerEndpointsEnable: {createDirQVD: true}\n"),
    "Butler.configDirectories.qvdPath: missing (required when "
    "Butler.restServerEndpointsEnable.createDirQVD is true)");
  auto r = load("Butler:\n  restServerEndpointsEnable: {createDirQVD: true}\n"
                "  configDirectories: {qvdPath: /data/qvd}\n");
  expect_clean(r);
  EXPECT_TRUE(r.config.endpoints.enabled("createDirQVD"));
}

TEST(config, enabled_slack_channels_need_a_webhook) {
  expect_one_error(
    load("Butler:\n  slackNotification:\n    enable: true\n"
         "    reloadTaskFailure: {enable: true, channel: '#x'}\n"),
    "Butler.slackNotification.reloadTaskFailure.webhookURL: missing (required "
    "when Butler.slackNotification.reloadTaskFailure.enable is true)");
  // The master switch off: nothing is required.
  expect_clean(load("Butler:\n  slackNotification:\n    enable: false\n"
                    "    reloadTaskAborted: {enable: true}\n"));
  expect_one_error(
    load("Butler:\n  slackNotification:\n    reloadTaskAborted:\n"
         "      webhookURL: hooks.slack.com/x\n"),
    "Butler.slackNotification.reloadTaskAborted.webhookURL: expected an "
    "http:// or https:// URL, got \"hooks.slack.com/x\"");
}

TEST(config, formatted_slack_messages_need_a_readable_template) {
  const std::string base = "Butler:\n  slackNotification:\n    enable: true\n"
                           "    reloadTaskFailure:\n      enable: true\n"
                           "      webhookURL: https://hooks.slack.com/x\n"
                           "      messageType: formatted\n";
  expect_one_error(load(base),
                   "Butler.slackNotification.reloadTaskFailure.templateFile: "
                   "missing (required when Butler.slackNotification."
                   "reloadTaskFailure.messageType is formatted)");
  auto r = load(base + "      templateFile: /nonexistent/failed.json\n");
  ASSERT_EQ(r.errors.size(), 1u) << join(r.errors);
  EXPECT_EQ(r.errors[0].rfind("Butler.slackNotification.reloadTaskFailure."
                              "templateFile: cannot read /nonexistent/",
                              0),
            0u)
    << r.errors[0];
  expect_one_error(load("Butler:\n  slackNotification:\n    "
                        "reloadTaskFailure: {messageType: fancy}\n"),
                   "Butler.slackNotification.reloadTaskFailure.messageType: "
                   "expected one of basic, formatted, got \"fancy\"");
}

TEST(config, seed_slack_channels_need_the_seed_webhook) {
  expect_one_error(
    load("Butler:\n  slackConfig: {loginNotificationChannel: '#logins'}\n"),
    "Butler.slackConfig.webhookURL: missing (required when "
    "Butler.slackConfig has a notification channel)");
  expect_clean(load("Butler:\n  slackConfig: {loginNotificationChannel: "
                    "'#l', webhookURL: 'http://127.0.0.1:9/x'}\n"));
}

TEST(config, slack_post_message_needs_a_webhook) {
  expect_one_error(
    load("Butler:\n  restServerEndpointsEnable: {slackPostMessage: true}\n"),
    "Butler.slackNotification.restMessage.webhookURL: missing (required when "
    "Butler.restServerEndpointsEnable.slackPostMessage is true; "
    "Butler.slackConfig.webhookURL also works)");
  expect_clean(load("Butler:\n  restServerEndpointsEnable: {slackPostMessage: "
                    "true}\n  slackConfig: {webhookURL: 'https://h/x'}\n"));
}

TEST(config, slack_retry_bounds_are_checked) {
  expect_one_error(
    load("Butler:\n  slackNotification: {retryMinMs: 5000, retryMaxMs: 10}\n"),
    "Butler.slackNotification.retryMinMs: must not be greater than "
    "Butler.slackNotification.retryMaxMs (5000 > 10)");
  expect_one_error(load("Butler:\n  slackNotification: {maxAttempts: 0}\n"),
                   "Butler.slackNotification.maxAttempts: expected an integer "
                   "1-100, got \"0\"");
}

TEST(config, slack_keys_without_a_feature_here_are_ignored_with_a_warning) {
  auto r = load("Butler:\n  slackNotification:\n    serviceStopped: {}\n"
                "    reloadTaskFailure: {headScriptLogLines: 10}\n");
  EXPECT_TRUE(r.errors.empty()) << join(r.errors);
  EXPECT_TRUE(contains(r.warnings, "Butler.slackNotification.serviceStopped: "
                                   "not used by this Butler, ignored"));
  EXPECT_TRUE(contains(r.warnings,
                       "Butler.slackNotification.reloadTaskFailure."
                       "headScriptLogLines: not used by this Butler, ignored"));
}

TEST(config, sense_endpoints_need_their_host_and_certificates) {
  auto r = load("Butler:\n  restServerEndpointsEnable: {senseStartTask: true, "
                "senseListApps: true}\n");
  EXPECT_TRUE(contains(r.errors,
                       "Butler.configQRS.host: missing (required when a QRS "
                       "endpoint (senseStartTask, senseQRSPing, "
                       "senseAppReload) is enabled)"))
    << join(r.errors);
  EXPECT_TRUE(contains(r.errors,
                       "Butler.configEngine.host: missing (required when an "
                       "Engine endpoint (senseListApps, senseAppDump, "
                       "senseAppReload) is enabled)"))
    << join(r.errors);
  auto tls = load("Butler:\n  configQRS: {host: sense1}\n");
  EXPECT_TRUE(contains(tls.errors, "Butler.cert.clientCert: missing (required "
                                   "when Qlik Sense is reached over TLS "
                                   "(configQRS/configEngine useSSL))"))
    << join(tls.errors);
  auto unreadable = load("Butler:\n  configQRS: {host: sense1}\n"
                         "  cert: {clientCert: /nonexistent/c.pem, "
                         "clientCertKey: /nonexistent/k.pem}\n");
  ASSERT_EQ(unreadable.errors.size(), 2u) << join(unreadable.errors);
  EXPECT_EQ(unreadable.errors[0].rfind("Butler.cert.clientCert: cannot read "
                                       "/nonexistent/c.pem",
                                       0),
            0u);
  // Plain HTTP to QRS needs no certificate.
  expect_clean(load("Butler:\n  configQRS: {host: sense1, useSSL: false}\n"));
}

TEST(config, static_headers_are_lists_of_name_and_value) {
  expect_one_error(
    load("Butler:\n  configQRS:\n    useSSL: false\n    headers: {static: "
         "x}\n"),
    "Butler.configQRS.headers.static: expected a list of {name, value} "
    "entries, got \"x\"");
  expect_one_error(
    load("Butler:\n  configQRS:\n    useSSL: false\n    headers:\n"
         "      static:\n        - name: X-Qlik-User\n"),
    "Butler.configQRS.headers.static[0].value: missing");
  auto r = load("Butler:\n  configEngine:\n    useSSL: false\n    headers:\n"
                "      static:\n        - {name: X-Qlik-User, value: u, "
                "extra: 1}\n");
  EXPECT_TRUE(r.errors.empty()) << join(r.errors);
  EXPECT_TRUE(contains(r.warnings, "Butler.configEngine.headers.static[0]."
                                   "extra: unknown key, ignored"));
}

TEST(config, start_task_filter_ids_must_be_guids) {
  expect_one_error(
    load("Butler:\n  startTaskFilter:\n    allowTask: {taskId: [abc]}\n"),
    "Butler.startTaskFilter.allowTask.taskId: expected task ids (GUIDs), got "
    "\"abc\"");
  auto r = load("Butler:\n  startTaskFilter:\n    enable: true\n"
                "    allowTask:\n      customProperty:\n"
                "        - {name: taskGroup, value: tasks1}\n");
  expect_clean(r);
  EXPECT_EQ(r.config.start_task_filter.custom_properties,
            (header_list{{"taskGroup", "tasks1"}}));
}

// -- environment overrides ----------------------------------------------------

TEST(config, env_override_sets_a_value) {
  auto r = load("Butler:\n  mqttConfig: {brokerPort: 1883, enable: false}\n",
                {{"Butler__mqttConfig__brokerPort", "1884"},
                 {"Butler__mqttConfig__enable", "true"},
                 {"Butler__restServerEndpointsEnable__scheduler__getSchedule",
                  "true"},
                 {"PATH", "/usr/bin"},
                 {"butler__mqttConfig__qos", "2"}});
  expect_clean(r);
  EXPECT_EQ(r.config.mqtt.broker_port, 1884);
  EXPECT_TRUE(r.config.mqtt.enable);
  EXPECT_TRUE(r.config.endpoints.enabled("getSchedule"));
  EXPECT_EQ(r.config.mqtt.qos, 0); // names are case-sensitive
}

TEST(config, env_override_creates_missing_sections) {
  auto r = load("Butler: {}\n", {{"Butler__runtime__workerThreads", "4"},
                                 {"Butler__udpServerConfig__rateLimit__enable",
                                  "true"}});
  expect_clean(r);
  EXPECT_EQ(r.config.runtime.worker_threads, 4);
  EXPECT_TRUE(r.config.udp.rate_limit_enable);
  // A section present but empty (null) is filled in the same way.
  auto null_section = load("Butler:\n  mqttConfig:\n",
                           {{"Butler__mqttConfig__qos", "1"}});
  expect_clean(null_section);
  EXPECT_EQ(null_section.config.mqtt.qos, 1);
  // Even the root: an empty file configured entirely from the environment.
  auto from_env = load("", {{"Butler__logLevel", "warn"}});
  expect_clean(from_env);
  EXPECT_EQ(from_env.config.logging.level, "warn");
}

TEST(config, env_override_bad_value_names_the_key) {
  expect_one_error(load("Butler: {}\n", {{"Butler__mqttConfig__brokerPort", "abc"}}),
                   R"(Butler.mqttConfig.brokerPort: expected an integer 1-65535, got "abc")");
  expect_one_error(load("Butler: {}\n", {{"Butler__restServerConfig__enable",
                                          "yes please"}}),
                   R"(Butler.restServerConfig.enable: expected true or false, got "yes please")");
  // Replacing a section with a scalar is a type error too.
  expect_one_error(load("Butler: {}\n", {{"Butler__mqttConfig", "off"}}),
                   R"(Butler.mqttConfig: expected a mapping, got a scalar "off")");
}

TEST(config, env_override_of_unknown_key_warns) {
  auto r = load("Butler: {}\n", {{"Butler__influxDb__enable", "true"},
                                 {"Butler__mqttConfig__brokerPortt", "1"}});
  EXPECT_TRUE(r.errors.empty()) << join(r.errors);
  auto got = r.warnings;
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{
                   "Butler.influxDb: unknown key, ignored",
                   "Butler.mqttConfig.brokerPortt: unknown key, ignored"}));
  auto bad_name = load("Butler: {}\n", {{"Butler__mqttConfig____qos", "1"}});
  EXPECT_EQ(bad_name.warnings,
            std::vector<std::string>{"Butler__mqttConfig____qos: environment "
                                     "override with an empty key name, ignored"});
}

TEST(config, env_override_values_are_yaml_scalars) {
  auto r = load("Butler:\n  mqttConfig: {password: old, brokerHost: h}\n",
                {{"Butler__mqttConfig__password", "p@ss #1 !x"},
                 {"Butler__mqttConfig__username", "'quoted'"},
                 {"Butler__mqttConfig__brokerHost", ""},
                 {"Butler__mqttConfig__subscriptionRootTopic", "site/#"},
                 {"Butler__mqttConfig__taskStartTopic", "site/start"},
                 {"Butler__udpServerConfig__allowedSources", "[10.0.0.1, sense]"}});
  expect_clean(r);
  // Verbatim: YAML would cut the " #" comment off a password.
  EXPECT_EQ(r.config.mqtt.password, "p@ss #1 !x");
  EXPECT_EQ(r.config.mqtt.username, "quoted");
  // Empty means "not set": the default, not the file's value.
  EXPECT_EQ(r.config.mqtt.broker_host, "127.0.0.1");
  EXPECT_EQ(r.config.mqtt.subscription_root_topic, "site/#");
  EXPECT_EQ(r.config.udp.allowed_sources,
            (std::vector<std::string>{"10.0.0.1", "sense"}));
}

TEST(config, env_override_applies_to_files_too) {
  auto r = load_config_file(config_data("minimal.yaml").string(),
                            {{"Butler__logLevel", "error"}});
  expect_clean(r);
  EXPECT_EQ(r.config.logging.level, "error");
}

TEST(config, process_environment_lists_this_process) {
  ::setenv("Butler__configTestProbe", "a=b", 1);
  auto env = process_environment();
  ::unsetenv("Butler__configTestProbe");
  auto it = std::find_if(env.begin(), env.end(), [](auto& kv) {
    return kv.first == "Butler__configTestProbe";
  });
  ASSERT_NE(it, env.end());
  EXPECT_EQ(it->second, "a=b");
}

// -- deploy/butler.example.yaml -----------------------------------------------

TEST(config, example_config_loads_cleanly_for_a_local_run) {
  auto r = load_config_file(example_config().string());
  expect_clean(r);
  auto& c = r.config;
  EXPECT_TRUE(c.rest.enable);
  EXPECT_EQ(c.rest.host, "127.0.0.1");
  EXPECT_EQ(c.rest.port, 8080);
  EXPECT_FALSE(c.rest.tls.enable);
  EXPECT_TRUE(c.mqtt.enable);
  EXPECT_EQ(c.mqtt.broker_host, "127.0.0.1");
  EXPECT_EQ(c.mqtt.broker_port, 1883);
  EXPECT_TRUE(c.udp.enable);
  EXPECT_EQ(c.udp.host, "127.0.0.1");
  EXPECT_FALSE(c.slack.enable);
  auto flags = all_flags_off();
  for (auto& [name, on] : flags)
    on = name == "apiListEnabledEndpoints" || name == "butlerping"
         || name == "mqttPublishMessage" || name == "activeUserCount"
         || name == "activeUsers";
  EXPECT_EQ(c.endpoints.flags, flags);
  // Every flag is listed explicitly, not left to the default.
  auto text = read_text(example_config());
  for (auto& name : known_endpoint_flags())
    EXPECT_TRUE(std::regex_search(text, std::regex{"\n\\s+" + name + ": (true|false)"}))
      << name;
}

TEST(config, example_config_shows_every_key_with_its_default) {
  auto text = read_text(example_config());
  auto uncommented = uncomment_defaults(text);
  ASSERT_NE(uncommented, text);
  // Uncommenting the defaults changes nothing...
  auto original = load_config_string(text, "example");
  auto expanded = load_config_string(uncommented, "example-uncommented");
  expect_clean(expanded);
  expect_same_config(expanded.config, original.config);
  // ... and then every key the loader knows is present (full.yaml has them).
  YAML::Node full = YAML::LoadFile(config_data("full.yaml").string());
  YAML::Node example = YAML::Load(uncommented);
  std::set<std::string> want;
  std::set<std::string> have;
  key_paths(full, "", want);
  key_paths(example, "", have);
  for (auto& key : want)
    EXPECT_EQ(have.count(key), 1u) << "example lacks " << key;
  // Every key with a value says what it does.
  std::istringstream in{uncommented};
  std::string line;
  static const std::regex key_line{R"(^\s*[A-Za-z][A-Za-z0-9]*:(\s.*)?$)"};
  while (std::getline(in, line)) {
    bool is_key = std::regex_match(line, key_line);
    bool is_section = is_key && line.back() == ':';
    if (is_key && !is_section) {
      EXPECT_NE(line.find(" # "), std::string::npos) << "no comment: " << line;
    }
  }
}

} // namespace
