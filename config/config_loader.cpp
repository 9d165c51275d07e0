#include "config/config_loader.hpp"

#include "net/log_event_parser.hpp"
#include "net/mqtt_topic.hpp"

#include <yaml-cpp/yaml.h>

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <initializer_list>
#include <limits>
#include <set>
#include <string>
#include <system_error>
#include <vector>

// POSIX declares it, but no header has to.
extern char** environ;

namespace butler {

namespace {

// -- diagnostics --------------------------------------------------------------

/// Upper bound that means "no upper bound" in range checks and messages.
constexpr long long no_limit = std::numeric_limits<long long>::max();

/// Collects errors and warnings, each "<key path>: <problem>".
struct report {
  std::vector<std::string>& errors;
  std::vector<std::string>& warnings;

  void error(const std::string& path, const std::string& what) {
    errors.push_back(path + ": " + what);
  }

  void warn(const std::string& path, const std::string& what) {
    warnings.push_back(path + ": " + what);
  }
};

std::string quote(const std::string& text) {
  return "\"" + text + "\"";
}

/// Returns what a node holds, for "expected X, got Y" messages.
std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Scalar:
      return quote(node.Scalar());
    default:
      return "nothing";
  }
}

std::string range_text(long long lo, long long hi) {
  if (hi == no_limit)
    return "an integer >= " + std::to_string(lo);
  return "an integer " + std::to_string(lo) + "-" + std::to_string(hi);
}

std::string errno_text(int err) {
  return std::generic_category().message(err);
}

/// Reads the whole file at `path` into `out`; returns 0 or an errno value.
int read_whole_file(const std::string& path, std::string& out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno;
  char buf[8192];
  for (;;) {
    auto n = ::read(fd, buf, sizeof(buf));
    if (n == 0)
      break;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      int err = errno;
      ::close(fd);
      return err;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return 0;
}

/// Returns 0 if one byte (or EOF) can be read from `path`, else errno. Reading
/// catches directories, which open() alone accepts.
int check_readable(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno;
  char c;
  int err = 0;
  if (::read(fd, &c, 1) < 0)
    err = errno;
  ::close(fd);
  return err;
}

// -- the walker ---------------------------------------------------------------

/// One mapping of the config tree under its key path. Every read marks its
/// key as consumed, so finish() can warn about the keys nobody asked for.
class section {
public:
  /// Wraps `node` (a mapping; anything else reads as empty) found at `path`.
  section(report& rep, const YAML::Node& node, std::string path)
    : rep_(&rep), path_(std::move(path)) {
    if (!node.IsDefined() || !node.IsMap())
      return;
    node_.reset(node);
    std::set<std::string> seen;
    for (auto it = node_.begin(); it != node_.end(); ++it) {
      if (!it->first.IsScalar()) {
        rep_->error(path_, "a key must be a plain name, got "
                             + describe(it->first));
        continue;
      }
      if (!seen.insert(it->first.Scalar()).second)
        rep_->error(path_of(it->first.Scalar()), "duplicate key");
    }
  }

  std::string path_of(const std::string& key) const {
    return path_ + "." + key;
  }

  /// Returns whether `key` is present, even with a null value.
  bool present(const std::string& key) const {
    return find(key).IsDefined();
  }

  /// Marks `key` consumed and stores its value in `out`; returns false if the
  /// key is absent or null ("not set").
  bool take(const std::string& key, YAML::Node& out) {
    consumed_.insert(key);
    auto found = find(key);
    if (!found.IsDefined() || found.IsNull())
      return false;
    out.reset(found);
    return true;
  }

  /// Returns the mapping at `key` (an empty section when not set).
  section sub(const std::string& key) {
    YAML::Node node;
    if (take(key, node) && !node.IsMap()) {
      if (node.IsScalar())
        rep_->error(path_of(key), "expected a mapping, got a scalar "
                                    + quote(node.Scalar()));
      else
        rep_->error(path_of(key), "expected a mapping, got " + describe(node));
      node.reset(YAML::Node{});
    }
    return section{*rep_, node, path_of(key)};
  }

  /// Adds a warning about `key`.
  void warn(const std::string& key, const std::string& what) {
    rep_->warn(path_of(key), what);
  }

  /// Adds an error about `key`.
  void error(const std::string& key, const std::string& what) {
    rep_->error(path_of(key), what);
  }

  /// Consumes `key` with a warning that this Butler does not use it.
  void ignore(const std::string& key) {
    if (!present(key))
      return;
    consumed_.insert(key);
    rep_->warn(path_of(key), "not used by this Butler, ignored");
  }

  void read(const std::string& key, bool& out) {
    std::string text;
    if (!scalar(key, "true or false", text))
      return;
    if (text == "true" || text == "True" || text == "TRUE")
      out = true;
    else if (text == "false" || text == "False" || text == "FALSE")
      out = false;
    else
      rep_->error(path_of(key), "expected true or false, got " + quote(text));
  }

  void read(const std::string& key, std::string& out) {
    scalar(key, "a string", out);
  }

  /// Reads one of `choices`.
  void read(const std::string& key, const std::vector<std::string>& choices,
            std::string& out) {
    std::string list;
    for (auto& choice : choices)
      list += (list.empty() ? "" : ", ") + choice;
    std::string text;
    if (!scalar(key, "one of " + list, text))
      return;
    for (auto& choice : choices) {
      if (choice == text) {
        out = text;
        return;
      }
    }
    rep_->error(path_of(key), "expected one of " + list + ", got " + quote(text));
  }

  /// Reads a list of strings.
  void read(const std::string& key, std::vector<std::string>& out) {
    YAML::Node node;
    if (!take(key, node))
      return;
    if (!node.IsSequence()) {
      rep_->error(path_of(key), "expected a list of strings, got "
                                  + describe(node));
      return;
    }
    std::vector<std::string> items;
    bool ok = true;
    for (std::size_t i = 0; i < node.size(); ++i) {
      auto item = node[i];
      if (!item.IsScalar()) {
        rep_->error(path_of(key) + "[" + std::to_string(i) + "]",
                    "expected a string, got " + describe(item));
        ok = false;
        continue;
      }
      items.push_back(item.Scalar());
    }
    if (ok)
      out = std::move(items);
  }

  /// Reads a list of mappings with two string keys (`first`, `second`), such
  /// as [{name: X-Qlik-User, value: ...}]; replaces `out` when set.
  void read(const std::string& key, const char* first, const char* second,
            std::vector<std::pair<std::string, std::string>>& out) {
    YAML::Node node;
    if (!take(key, node))
      return;
    if (!node.IsSequence()) {
      rep_->error(path_of(key), std::string{"expected a list of {"} + first
                                  + ", " + second + "} entries, got "
                                  + describe(node));
      return;
    }
    std::vector<std::pair<std::string, std::string>> items;
    bool ok = true;
    for (std::size_t i = 0; i < node.size(); ++i) {
      section entry{*rep_, node[i], path_of(key) + "[" + std::to_string(i) + "]"};
      if (!node[i].IsMap()) {
        rep_->error(entry.path(), std::string{"expected a mapping with "} + first
                                    + " and " + second + ", got "
                                    + describe(node[i]));
        ok = false;
        continue;
      }
      std::string a;
      std::string b;
      bool has_a = entry.scalar(first, "a string", a);
      bool has_b = entry.scalar(second, "a string", b);
      if (!has_a || a.empty()) {
        rep_->error(entry.path_of(first), "missing");
        ok = false;
      }
      if (!has_b) {
        rep_->error(entry.path_of(second), "missing");
        ok = false;
      }
      entry.finish();
      items.emplace_back(std::move(a), std::move(b));
    }
    if (ok)
      out = std::move(items);
  }

  const std::string& path() const {
    return path_;
  }

  /// Reads an integer in [lo, hi]; returns false if not set or bad.
  bool read_integer(const std::string& key, long long lo, long long hi,
                    long long& out) {
    auto expected = range_text(lo, hi);
    std::string text;
    if (!scalar(key, expected, text))
      return false;
    auto first = text.data();
    auto last = text.data() + text.size();
    if (first != last && *first == '+')
      ++first;
    long long value = 0;
    auto [end, ec] = std::from_chars(first, last, value);
    if (first == last || ec != std::errc{} || end != last || value < lo
        || value > hi) {
      rep_->error(path_of(key), "expected " + expected + ", got " + quote(text));
      return false;
    }
    out = value;
    return true;
  }

  void read(const std::string& key, long long lo, long long hi, int& out) {
    long long value;
    if (!read_integer(key, lo, hi, value))
      return;
    if (value > std::numeric_limits<int>::max()) {
      rep_->error(path_of(key), "expected at most "
                                  + std::to_string(std::numeric_limits<int>::max())
                                  + ", got " + quote(std::to_string(value)));
      return;
    }
    out = static_cast<int>(value);
  }

  void read(const std::string& key, long long lo, long long hi,
            uint16_t& out) {
    long long value;
    if (read_integer(key, lo, hi, value))
      out = static_cast<uint16_t>(value);
  }

  void read(const std::string& key, long long lo, long long hi,
            std::size_t& out) {
    long long value;
    if (read_integer(key, lo, hi, value))
      out = static_cast<std::size_t>(value);
  }

  /// Reads a count of `unit`s (>= 1) into milliseconds.
  void read(const std::string& key, std::chrono::milliseconds unit,
            std::chrono::milliseconds& out) {
    long long value;
    if (!read_integer(key, 1, no_limit, value))
      return;
    auto max = std::chrono::milliseconds::max().count() / unit.count();
    if (value > max) {
      rep_->error(path_of(key), "expected at most " + std::to_string(max)
                                  + ", got " + quote(std::to_string(value)));
      return;
    }
    out = unit * value;
  }

  /// Warns about every key that no read consumed, without descending.
  void finish() {
    if (!node_.IsDefined() || !node_.IsMap())
      return;
    std::set<std::string> warned;
    for (auto it = node_.begin(); it != node_.end(); ++it) {
      if (!it->first.IsScalar())
        continue;
      auto& key = it->first.Scalar();
      if (consumed_.count(key) == 0 && warned.insert(key).second)
        rep_->warn(path_of(key), "unknown key, ignored");
    }
  }

  /// Reads the scalar text of `key`; `expected` names the wanted type.
  bool scalar(const std::string& key, const std::string& expected,
              std::string& out) {
    YAML::Node node;
    if (!take(key, node))
      return false;
    if (!node.IsScalar()) {
      rep_->error(path_of(key), "expected " + expected + ", got "
                                  + describe(node));
      return false;
    }
    out = node.Scalar();
    return true;
  }

private:
  /// Returns the first value under `key`, or an undefined node.
  YAML::Node find(const std::string& key) const {
    if (node_.IsDefined() && node_.IsMap())
      for (auto it = node_.begin(); it != node_.end(); ++it)
        if (it->first.IsScalar() && it->first.Scalar() == key)
          return it->second;
    return YAML::Node{YAML::NodeType::Undefined};
  }

  report* rep_;
  YAML::Node node_{YAML::NodeType::Undefined};
  std::string path_;
  std::set<std::string> consumed_;
};

// -- sections -----------------------------------------------------------------

constexpr std::chrono::milliseconds one_ms{1};
constexpr std::chrono::milliseconds one_second{1000};

void read_tls(section& parent, tls_files& cfg) {
  auto s = parent.sub("tls");
  s.read("enable", cfg.enable);
  s.read("cert", cfg.cert);
  s.read("key", cfg.key);
  s.read("ca", cfg.ca);
  s.finish();
}

void read_rest(section& root, rest_server_config& cfg) {
  auto s = root.sub("restServerConfig");
  s.read("enable", cfg.enable);
  s.read("serverHost", cfg.host);
  s.read("serverPort", 1, 65535, cfg.port);
  read_tls(s, cfg.tls);
  s.read("bodyLimitBytes", 1024, no_limit, cfg.body_limit);
  s.read("headerLimitBytes", 1024, no_limit, cfg.header_limit);
  s.read("readTimeoutSeconds", one_second, cfg.read_timeout);
  s.read("writeTimeoutSeconds", one_second, cfg.write_timeout);
  s.read("requestTimeoutSeconds", one_second, cfg.request_timeout);
  s.read("maxConnections", 1, no_limit, cfg.max_connections);
  s.read("ioThreads", 1, 64, cfg.io_threads);
  // Butler 16 runs a second, internal HTTP server; this one does not.
  s.ignore("backgroundServerPort");
  s.finish();
}

bool in_list(const std::string& name, std::initializer_list<const char*> xs) {
  for (auto x : xs)
    if (name == x)
      return true;
  return false;
}

bool is_new_relic_flag(const std::string& name) {
  return in_list(name, {"postNewRelicMetric", "postNewRelicEvent"});
}

bool is_scheduler_flag(const std::string& name) {
  return in_list(name, {"createNewSchedule", "getSchedule",
                        "getScheduleStatusAll", "updateSchedule",
                        "deleteSchedule", "startSchedule", "stopSchedule"});
}

void read_endpoints(section& root, endpoints_config& cfg) {
  auto s = root.sub("restServerEndpointsEnable");
  auto new_relic = s.sub("newRelic");
  auto scheduler = s.sub("scheduler");
  // Older Butler templates spelt this flag without the "a".
  const std::string misspelt = "apiListEnbledEndpoints";
  const std::string right = "apiListEnabledEndpoints";
  for (auto& [name, on] : cfg.flags) {
    if (name == right && s.present(misspelt)) {
      if (s.present(right)) {
        YAML::Node unused;
        s.take(misspelt, unused);
        s.warn(misspelt, "misspelt, ignored because " + s.path_of(right)
                                    + " is set");
      } else {
        s.read(misspelt, on);
        s.warn(misspelt, "misspelt, read as " + s.path_of(right));
      }
    }
    // Both the nested spelling (Butler's template) and a flat one work.
    s.read(name, on);
    if (is_new_relic_flag(name))
      new_relic.read(name, on);
    if (is_scheduler_flag(name))
      scheduler.read(name, on);
  }
  new_relic.finish();
  scheduler.finish();
  s.finish();
}

/// A topic key under Butler.mqttConfig and its field.
struct topic_key {
  const char* key;
  std::string mqtt_config::*field;
};

constexpr topic_key topic_keys[] = {
  {"subscriptionRootTopic", &mqtt_config::subscription_root_topic},
  {"statusTopic", &mqtt_config::status_topic},
  {"taskStartTopic", &mqtt_config::task_start_topic},
  {"taskFailureTopic", &mqtt_config::task_failure_topic},
  {"taskFailureFullTopic", &mqtt_config::task_failure_full_topic},
  {"taskFailureServerStatusTopic",
   &mqtt_config::task_failure_server_status_topic},
  {"taskAbortedTopic", &mqtt_config::task_aborted_topic},
  {"taskAbortedFullTopic", &mqtt_config::task_aborted_full_topic},
  {"sessionStartTopic", &mqtt_config::session_start_topic},
  {"sessionStopTopic", &mqtt_config::session_stop_topic},
  {"connectionOpenTopic", &mqtt_config::connection_open_topic},
  {"connectionCloseTopic", &mqtt_config::connection_close_topic},
  {"sessionServerStatusTopic", &mqtt_config::session_server_status_topic},
  {"activeUserCountTopic", &mqtt_config::active_user_count_topic},
  {"activeUsersTopic", &mqtt_config::active_users_topic},
};

void read_mqtt(section& root, mqtt_config& cfg) {
  auto s = root.sub("mqttConfig");
  s.read("enable", cfg.enable);
  s.read("brokerHost", cfg.broker_host);
  s.read("brokerPort", 1, 65535, cfg.broker_port);
  s.read("username", cfg.username);
  s.read("password", cfg.password);
  read_tls(s, cfg.tls);
  s.read("clientId", cfg.client_id);
  s.read("qos", 0, 2, cfg.qos);
  s.read("backlogSize", 1, no_limit, cfg.backlog_size);
  s.read("reconnectMinMs", one_ms, cfg.reconnect_min);
  s.read("reconnectMaxMs", one_ms, cfg.reconnect_max);
  for (auto& topic : topic_keys)
    s.read(topic.key, cfg.*topic.field);
  s.read("taskFailureSendFull", cfg.task_failure_send_full);
  s.read("taskAbortedSendFull", cfg.task_aborted_send_full);
  // Butler 16 features this Butler does not have (Windows services, licence
  // monitoring, Azure Event Grid, Qlik Cloud).
  for (auto key : {"azureEventGrid", "serviceRunningTopic",
                   "serviceStoppedTopic", "serviceStatusTopic",
                   "qlikSenseServerLicenseTopic",
                   "qlikSenseServerLicenseExpireTopic", "qlikSenseCloud"})
    s.ignore(key);
  s.finish();
}

void read_udp(section& root, udp_config& cfg) {
  auto s = root.sub("udpServerConfig");
  s.read("enable", cfg.enable);
  s.read("serverHost", cfg.host);
  s.read("portTaskFailure", 1, 65535, cfg.port_task_failure);
  s.read("portSessionConnectionEvents", 1, 65535, cfg.port_session_events);
  s.read("maxMessageSize", 1, 65507, cfg.max_message_size);
  s.read("enableSourceValidation", cfg.source_validation);
  s.read("allowedSources", cfg.allowed_sources);
  auto dedup = s.sub("deduplication");
  dedup.read("enable", cfg.dedup_enable);
  long long minutes;
  if (dedup.read_integer("ttlMinutes", 1, no_limit, minutes))
    cfg.dedup_ttl = std::chrono::minutes{minutes};
  dedup.read("maxEntries", 1, no_limit, cfg.dedup_max_entries);
  dedup.finish();
  auto queue = s.sub("messageQueue");
  queue.read("maxConcurrent", 1, no_limit, cfg.queue_max_concurrent);
  queue.read("maxSize", 1, no_limit, cfg.queue_max_size);
  queue.read("backpressureThreshold", 1, 100, cfg.backpressure_threshold);
  queue.finish();
  auto rate = s.sub("rateLimit");
  rate.read("enable", cfg.rate_limit_enable);
  rate.read("maxMessagesPerMinute", 1, no_limit, cfg.rate_limit_per_minute);
  rate.finish();
  s.read("receiveBufferBytes", 4096, 1LL << 30, cfg.receive_buffer);
  s.finish();
}

void read_slack_channel(section& parent, const std::string& key,
                        slack_channel_config& cfg) {
  auto s = parent.sub(key);
  s.read("enable", cfg.enable);
  s.read("webhookURL", cfg.webhook_url);
  s.read("channel", cfg.channel);
  s.read("messageType", {"basic", "formatted"}, cfg.message_type);
  s.read("basicMsgTemplate", cfg.basic_msg_template);
  s.read("templateFile", cfg.template_file);
  s.read("fromUser", cfg.from_user);
  s.read("iconEmoji", cfg.icon_emoji);
  s.read("rateLimit", one_second, cfg.rate_limit);
  // The script log comes from QRS (the Sense integration); not read here yet.
  s.ignore("headScriptLogLines");
  s.ignore("tailScriptLogLines");
  s.finish();
}

void read_slack(section& root, slack_config& cfg) {
  auto s = root.sub("slackNotification");
  s.read("enable", cfg.enable);
  auto rest = s.sub("restMessage");
  rest.read("webhookURL", cfg.rest_webhook_url);
  rest.finish();
  read_slack_channel(s, "reloadTaskFailure", cfg.reload_task_failure);
  read_slack_channel(s, "reloadTaskAborted", cfg.reload_task_aborted);
  s.read("backlogSize", 1, no_limit, cfg.backlog_size);
  s.read("maxAttempts", 1, 100, cfg.max_attempts);
  s.read("retryMinMs", one_ms, cfg.retry_min);
  s.read("retryMaxMs", one_ms, cfg.retry_max);
  s.read("requestTimeoutSeconds", one_second, cfg.request_timeout);
  // Windows service monitoring is a Butler 16 feature this Butler lacks.
  s.ignore("serviceStopped");
  s.ignore("serviceStarted");
  s.finish();
  auto seed = root.sub("slackConfig");
  seed.read("webhookURL", cfg.seed_webhook_url);
  seed.read("loginNotificationChannel", cfg.login_notification_channel);
  seed.read("taskFailureChannel", cfg.task_failure_channel);
  seed.finish();
}

void read_sense(section& root, butler_config& cfg) {
  auto cert = root.sub("cert");
  cert.read("clientCert", cfg.cert.client_cert);
  cert.read("clientCertKey", cfg.cert.client_cert_key);
  cert.read("clientCertCA", cfg.cert.client_cert_ca);
  cert.finish();
  auto qrs = root.sub("configQRS");
  std::string authentication = "certificates";
  qrs.read("authentication", {"certificates"}, authentication);
  qrs.read("host", cfg.qrs.host);
  qrs.read("port", 1, 65535, cfg.qrs.port);
  qrs.read("useSSL", cfg.qrs.use_ssl);
  auto qrs_headers = qrs.sub("headers");
  qrs_headers.read("static", "name", "value", cfg.qrs.headers);
  qrs_headers.finish();
  qrs.read("rejectUnauthorized", cfg.qrs.reject_unauthorized);
  qrs.read("requestTimeoutSeconds", one_second, cfg.qrs.timeout);
  qrs.finish();
  auto engine = root.sub("configEngine");
  engine.ignore("engineVersion");
  engine.read("host", cfg.engine.host);
  engine.read("port", 1, 65535, cfg.engine.port);
  engine.read("useSSL", cfg.engine.use_ssl);
  auto engine_headers = engine.sub("headers");
  engine_headers.read("static", "name", "value", cfg.engine.headers);
  engine_headers.finish();
  engine.read("rejectUnauthorized", cfg.engine.reject_unauthorized);
  engine.read("requestTimeoutSeconds", one_second, cfg.engine.timeout);
  engine.finish();
  auto filter = root.sub("startTaskFilter");
  filter.read("enable", cfg.start_task_filter.enable);
  auto allow = filter.sub("allowTask");
  allow.read("taskId", cfg.start_task_filter.task_ids);
  allow.read("tag", cfg.start_task_filter.tags);
  allow.read("customProperty", "name", "value",
             cfg.start_task_filter.custom_properties);
  allow.finish();
  filter.finish();
}

const std::vector<std::string>& log_levels() {
  static const std::vector<std::string> levels{"silly", "debug", "verbose",
                                               "info",  "warn",  "error"};
  return levels;
}

/// What parse_every() found.
enum class every_parse { ok, bad_text, out_of_range };

/// Longest schedule interval accepted.
constexpr std::chrono::seconds max_every{std::chrono::hours{24 * 365}};

/// Parses a schedule written "every N seconds", "every N minutes" or "every N
/// hours" (Butler's later.js text form, case-insensitive, singular units
/// too) into `out`.
every_parse parse_every(const std::string& text, std::chrono::seconds& out) {
  std::vector<std::string> words;
  std::string word;
  for (char c : text + " ") {
    if (c == ' ' || c == '\t') {
      if (!word.empty())
        words.push_back(std::move(word));
      word.clear();
    } else {
      word += static_cast<char>(
        std::tolower(static_cast<unsigned char>(c)));
    }
  }
  if (words.size() != 3 || words[0] != "every")
    return every_parse::bad_text;
  long long unit = 0;
  auto& name = words[2];
  if (name == "second" || name == "seconds")
    unit = 1;
  else if (name == "minute" || name == "minutes")
    unit = 60;
  else if (name == "hour" || name == "hours")
    unit = 3600;
  else
    return every_parse::bad_text;
  auto& number = words[1];
  unsigned long long count = 0;
  auto [end, ec] = std::from_chars(number.data(),
                                   number.data() + number.size(), count);
  if (end != number.data() + number.size())
    return every_parse::bad_text;
  if (ec != std::errc{} || count == 0
      || count > static_cast<unsigned long long>(max_every.count() / unit))
    return every_parse::out_of_range;
  out = std::chrono::seconds{static_cast<long long>(count) * unit};
  return every_parse::ok;
}

/// Reads a schedule ("every 30 seconds") at `key` into `out`.
void read_every(section& s, const std::string& key,
                std::chrono::seconds& out) {
  const std::string expected
    = "\"every N seconds\", \"every N minutes\" or \"every N hours\"";
  std::string text;
  if (!s.scalar(key, expected, text))
    return;
  switch (parse_every(text, out)) {
    case every_parse::ok:
      return;
    case every_parse::bad_text:
      s.error(key, "expected " + expected + ", got " + quote(text));
      return;
    case every_parse::out_of_range:
      s.error(key, "expected an interval from 1 second to 365 days, got "
                     + quote(text));
      return;
  }
}

void read_heartbeat(section& root, heartbeat_config& cfg) {
  auto s = root.sub("heartbeat");
  s.read("enable", cfg.enable);
  s.read("remoteURL", cfg.remote_url);
  read_every(s, "frequency", cfg.frequency);
  s.finish();
}

void read_uptime_monitor(section& root, uptime_monitor_config& cfg) {
  auto s = root.sub("uptimeMonitor");
  s.read("enable", cfg.enable);
  read_every(s, "frequency", cfg.frequency);
  s.read("logLevel", log_levels(), cfg.log_level);
  // Butler 16 can also store the figures in InfluxDB or New Relic; this
  // Butler only logs them.
  s.ignore("storeInInfluxdb");
  s.ignore("storeNewRelic");
  s.finish();
}

void read_butler(section& root, butler_config& cfg) {
  root.read("logLevel", log_levels(), cfg.logging.level);
  root.read("fileLogging", cfg.logging.file_logging);
  root.read("logDirectory", cfg.logging.directory);
  root.read("logFileMaxSizeMB", 1, 1024, cfg.logging.file_max_size_mb);
  root.read("logFileMaxFiles", 1, 100, cfg.logging.file_max_files);
  root.read("logFormat", {"text", "json"}, cfg.logging.format);
  read_rest(root, cfg.rest);
  read_endpoints(root, cfg.endpoints);
  read_mqtt(root, cfg.mqtt);
  read_udp(root, cfg.udp);
  read_slack(root, cfg.slack);
  read_sense(root, cfg);
  auto dirs = root.sub("configDirectories");
  dirs.read("qvdPath", cfg.directories.qvd_path);
  dirs.finish();
  auto runtime = root.sub("runtime");
  runtime.read("workerThreads", 1, 64, cfg.runtime.worker_threads);
  runtime.read("schedulerPolicy", {"sharing", "stealing"},
               cfg.runtime.scheduler_policy);
  runtime.finish();
  auto docker = root.sub("dockerHealthCheck");
  docker.read("enable", cfg.docker_health.enable);
  docker.read("port", 1, 65535, cfg.docker_health.port);
  docker.finish();
  auto prom = root.sub("prometheus");
  prom.read("enable", cfg.prometheus.enable);
  prom.read("port", 0, 65535, cfg.prometheus.port);
  // Butler 16 binds its metrics listener to a host of its own; this one
  // uses restServerConfig.serverHost.
  prom.ignore("host");
  prom.finish();
  auto sup = root.sub("supervisor");
  sup.read("restartBackoffMinMs", one_ms, cfg.supervisor.restart_min);
  sup.read("restartBackoffMaxMs", one_ms, cfg.supervisor.restart_max);
  sup.read("stableAfterSeconds", one_second, cfg.supervisor.stable_after);
  sup.read("shutdownGraceSeconds", one_second, cfg.supervisor.shutdown_grace);
  sup.read("maxRestarts", 0, 1000, cfg.supervisor.max_restarts);
  sup.read("restartWindowSeconds", one_second, cfg.supervisor.restart_window);
  sup.read("heartbeatIntervalMs", one_ms, cfg.supervisor.heartbeat_interval);
  sup.read("heartbeatTimeoutMs", one_ms, cfg.supervisor.heartbeat_timeout);
  sup.finish();
  read_heartbeat(root, cfg.heartbeat);
  read_uptime_monitor(root, cfg.uptime_monitor);
  root.finish();
}


// -- cross-key rules ----------------------------------------------------------

void require(report& rep, bool condition, const std::string& key,
             const std::string& value, const std::string& because) {
  if (condition && value.empty())
    rep.error(key, "missing (required when " + because + ")");
}

void check_tls(report& rep, const tls_files& tls, const std::string& path,
               bool cert_required) {
  if (!tls.enable)
    return;
  auto enabled = path + ".enable is true";
  if (cert_required) {
    require(rep, true, path + ".cert", tls.cert, enabled);
    require(rep, true, path + ".key", tls.key, enabled);
  } else {
    // A client certificate is optional, but comes with its key.
    require(rep, !tls.cert.empty(), path + ".key", tls.key,
            path + ".cert is set");
    require(rep, !tls.key.empty(), path + ".cert", tls.cert,
            path + ".key is set");
  }
  auto check = [&](const char* key, const std::string& file) {
    if (file.empty())
      return;
    if (int err = check_readable(file))
      rep.error(path + "." + key, "cannot read " + file + ": " + errno_text(err));
  };
  check("cert", tls.cert);
  check("key", tls.key);
  check("ca", tls.ca);
}

void check_min_max(report& rep, std::chrono::milliseconds min,
                   std::chrono::milliseconds max, const std::string& min_key,
                   const std::string& max_key) {
  if (min > max)
    rep.error(min_key, "must not be greater than " + max_key + " ("
                         + std::to_string(min.count()) + " > "
                         + std::to_string(max.count()) + ")");
}

/// Checks that a set `url` is an http(s) URL.
void check_url(report& rep, const std::string& key, const std::string& url) {
  if (!url.empty() && url.rfind("http://", 0) != 0
      && url.rfind("https://", 0) != 0)
    rep.error(key, "expected an http:// or https:// URL, got " + quote(url));
}

void validate_slack(const butler_config& cfg, report& rep) {
  auto& slack = cfg.slack;
  const std::string path = "Butler.slackNotification.";
  check_url(rep, path + "restMessage.webhookURL", slack.rest_webhook_url);
  check_url(rep, "Butler.slackConfig.webhookURL", slack.seed_webhook_url);
  auto channel = [&](const char* key, const slack_channel_config& ch) {
    auto prefix = path + key + ".";
    check_url(rep, prefix + "webhookURL", ch.webhook_url);
    if (!slack.enable || !ch.enable)
      return;
    auto because = prefix + "enable is true";
    require(rep, true, prefix + "webhookURL", ch.webhook_url, because);
    if (ch.message_type == "formatted") {
      require(rep, true, prefix + "templateFile", ch.template_file,
              prefix + "messageType is formatted");
      if (!ch.template_file.empty())
        if (int err = check_readable(ch.template_file))
          rep.error(prefix + "templateFile", "cannot read " + ch.template_file
                                               + ": " + errno_text(err));
    }
  };
  channel("reloadTaskFailure", slack.reload_task_failure);
  channel("reloadTaskAborted", slack.reload_task_aborted);
  bool seed_channels = !slack.login_notification_channel.empty()
                       || !slack.task_failure_channel.empty();
  require(rep, seed_channels, "Butler.slackConfig.webhookURL",
          slack.seed_webhook_url,
          "Butler.slackConfig has a notification channel");
  if (cfg.endpoints.enabled("slackPostMessage") && slack.rest_webhook_url.empty()
      && slack.seed_webhook_url.empty())
    rep.error(path + "restMessage.webhookURL",
              "missing (required when "
              "Butler.restServerEndpointsEnable.slackPostMessage is true; "
              "Butler.slackConfig.webhookURL also works)");
  check_min_max(rep, slack.retry_min, slack.retry_max, path + "retryMinMs",
                path + "retryMaxMs");
}

/// Reports each certificate file that is set but cannot be read.
void check_cert_files(report& rep, const sense_cert_config& cert) {
  for (auto [key, file] :
       {std::pair{"clientCert", &cert.client_cert},
        std::pair{"clientCertKey", &cert.client_cert_key},
        std::pair{"clientCertCA", &cert.client_cert_ca}})
    if (!file->empty())
      if (int err = check_readable(*file))
        rep.error(std::string{"Butler.cert."} + key,
                  "cannot read " + *file + ": " + errno_text(err));
}

void validate_sense(const butler_config& cfg, report& rep) {
  auto& flags = cfg.endpoints;
  bool needs_qrs = flags.enabled("senseStartTask") || flags.enabled("senseQRSPing")
                   || flags.enabled("senseAppReload");
  bool needs_engine = flags.enabled("senseListApps")
                      || flags.enabled("senseAppDump")
                      || flags.enabled("senseAppReload");
  if (needs_qrs)
    require(rep, true, "Butler.configQRS.host", cfg.qrs.host,
            "a QRS endpoint (senseStartTask, senseQRSPing, senseAppReload) "
            "is enabled");
  if (needs_engine)
    require(rep, true, "Butler.configEngine.host", cfg.engine.host,
            "an Engine endpoint (senseListApps, senseAppDump, "
            "senseAppReload) is enabled");
  bool uses_tls = (!cfg.qrs.host.empty() && cfg.qrs.use_ssl)
                  || (!cfg.engine.host.empty() && cfg.engine.use_ssl);
  if (uses_tls) {
    auto because = "Qlik Sense is reached over TLS (configQRS/configEngine "
                   "useSSL)";
    require(rep, true, "Butler.cert.clientCert", cfg.cert.client_cert, because);
    require(rep, true, "Butler.cert.clientCertKey", cfg.cert.client_cert_key,
            because);
    check_cert_files(rep, cfg.cert);
  }
  for (auto& id : cfg.start_task_filter.task_ids)
    if (!events::is_guid(id))
      rep.error("Butler.startTaskFilter.allowTask.taskId",
                "expected task ids (GUIDs), got " + quote(id));
}

/// Checks Butler.heartbeat.remoteURL: an http(s) URL with a host that
/// libcurl takes as it is, required when the heartbeat is on.
void validate_heartbeat(const butler_config& cfg, report& rep) {
  auto& hb = cfg.heartbeat;
  const std::string key = "Butler.heartbeat.remoteURL";
  require(rep, hb.enable, key, hb.remote_url,
          "Butler.heartbeat.enable is true");
  auto& url = hb.remote_url;
  if (url.empty())
    return;
  for (unsigned char c : url) {
    if (c <= ' ' || c == 0x7f) {
      rep.error(key, "must not contain spaces or control characters, got "
                       + quote(url));
      return;
    }
  }
  // Schemes are case-insensitive.
  std::string start;
  for (char c : url.substr(0, 8))
    start += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::size_t scheme = 0;
  if (start.rfind("http://", 0) == 0)
    scheme = 7;
  else if (start.rfind("https://", 0) == 0)
    scheme = 8;
  auto host_end = url.find_first_of("/?#", scheme);
  auto host = url.substr(scheme, host_end == std::string::npos
                                   ? std::string::npos
                                   : host_end - scheme);
  // Past "user:password@", if any.
  if (auto at = host.rfind('@'); at != std::string::npos)
    host.erase(0, at + 1);
  if (scheme == 0 || host.empty() || host[0] == ':')
    rep.error(key, "expected an http:// or https:// URL with a host name, got "
                     + quote(url));
}

void validate(const butler_config& cfg, report& rep) {
  auto& log = cfg.logging;
  require(rep, log.file_logging, "Butler.logDirectory", log.directory,
          "Butler.fileLogging is true");
  // REST
  auto& rest = cfg.rest;
  require(rep, rest.enable, "Butler.restServerConfig.serverHost", rest.host,
          "Butler.restServerConfig.enable is true");
  check_tls(rep, rest.tls, "Butler.restServerConfig.tls", true);
  require(rep, cfg.endpoints.enabled("createDirQVD"),
          "Butler.configDirectories.qvdPath", cfg.directories.qvd_path,
          "Butler.restServerEndpointsEnable.createDirQVD is true");
  // MQTT
  auto& mqtt = cfg.mqtt;
  const std::string mqtt_path = "Butler.mqttConfig.";
  require(rep, mqtt.enable, mqtt_path + "brokerHost", mqtt.broker_host,
          "Butler.mqttConfig.enable is true");
  check_tls(rep, mqtt.tls, mqtt_path + "tls", false);
  check_min_max(rep, mqtt.reconnect_min, mqtt.reconnect_max,
                mqtt_path + "reconnectMinMs", mqtt_path + "reconnectMaxMs");
  for (auto& topic : topic_keys) {
    auto& value = mqtt.*topic.field;
    auto key = mqtt_path + topic.key;
    if (topic.field == &mqtt_config::subscription_root_topic) {
      if (auto problem = mqtt::filter_problem(value); !problem.empty())
        rep.error(key, value.empty() ? problem
                                     : problem + ", got " + quote(value));
    } else if (value.empty()) {
      rep.error(key, "must not be empty");
    } else if (value.find_first_of("+#") != std::string::npos) {
      rep.error(key, "must not contain the wildcards + or # (only "
                     "subscriptionRootTopic may), got "
                       + quote(value));
    }
  }
  auto& root = mqtt.subscription_root_topic;
  auto& start = mqtt.task_start_topic;
  if (mqtt::valid_filter(root) && !start.empty()
      && start.find_first_of("+#") == std::string::npos
      && !mqtt::topic_matches(root, start))
    rep.error(mqtt_path + "taskStartTopic",
              "must lie under Butler.mqttConfig.subscriptionRootTopic (" + root
                + "), got " + quote(start));
  // UDP
  auto& udp = cfg.udp;
  require(rep, udp.enable, "Butler.udpServerConfig.serverHost", udp.host,
          "Butler.udpServerConfig.enable is true");
  if (udp.enable && udp.port_task_failure == udp.port_session_events)
    rep.error("Butler.udpServerConfig.portSessionConnectionEvents",
              "must differ from Butler.udpServerConfig.portTaskFailure ("
                + std::to_string(udp.port_task_failure) + ")");
  if (udp.source_validation && udp.allowed_sources.empty())
    rep.error("Butler.udpServerConfig.allowedSources",
              "missing (required when "
              "Butler.udpServerConfig.enableSourceValidation is true)");
  // Slack
  validate_slack(cfg, rep);
  // Qlik Sense
  validate_sense(cfg, rep);
  if (cfg.docker_health.enable && cfg.rest.enable
      && cfg.docker_health.port == cfg.rest.port)
    rep.error("Butler.dockerHealthCheck.port",
              "must differ from Butler.restServerConfig.serverPort ("
                + std::to_string(cfg.rest.port) + ")");
  if (cfg.prometheus.enable && cfg.prometheus.port != 0) {
    if (cfg.rest.enable && cfg.prometheus.port == cfg.rest.port)
      rep.error("Butler.prometheus.port",
                "must differ from Butler.restServerConfig.serverPort ("
                  + std::to_string(cfg.rest.port)
                  + "); 0 serves /metrics on the REST port");
    else if (cfg.docker_health.enable
             && cfg.prometheus.port == cfg.docker_health.port)
      rep.error("Butler.prometheus.port",
                "must differ from Butler.dockerHealthCheck.port ("
                  + std::to_string(cfg.docker_health.port) + ")");
  }
  validate_heartbeat(cfg, rep);
  // Supervisor
  check_min_max(rep, cfg.supervisor.restart_min, cfg.supervisor.restart_max,
                "Butler.supervisor.restartBackoffMinMs",
                "Butler.supervisor.restartBackoffMaxMs");
}

// -- environment overrides ----------------------------------------------------

std::string_view trim(std::string_view text) {
  constexpr std::string_view blanks = " \t\r\n";
  auto first = text.find_first_not_of(blanks);
  if (first == std::string_view::npos)
    return {};
  auto last = text.find_last_not_of(blanks);
  return text.substr(first, last - first + 1);
}

/// Reads an environment value as a YAML scalar. Text that YAML would change
/// beyond removing quotes (a " #" comment, a "!" tag, ...) is taken verbatim,
/// because such values are mostly passwords and paths.
YAML::Node env_value(const std::string& raw) {
  auto text = trim(raw);
  if (text.empty() || text == "~" || text == "null" || text == "Null"
      || text == "NULL")
    return YAML::Node{YAML::NodeType::Null};
  bool quoted = text.size() >= 2 && (text[0] == '\'' || text[0] == '"')
                && text.back() == text[0];
  try {
    auto node = YAML::Load(std::string{text});
    if (node.IsScalar() && (quoted || node.Scalar() == text))
      return node;
    if (node.IsSequence() && text[0] == '[')
      return node;
  } catch (const YAML::Exception&) {
    // nop: fall back to the raw text
  }
  return YAML::Node{raw};
}

/// Sets every `Butler__a__b=value` entry of `env` in `doc`.
void apply_overrides(YAML::Node& doc, const environment& env, report& rep) {
  constexpr std::string_view prefix = "Butler__";
  constexpr std::string_view sep = "__";
  for (auto& [name, raw] : env) {
    if (name.compare(0, prefix.size(), prefix) != 0)
      continue;
    std::vector<std::string> parts;
    std::string_view rest = name;
    for (;;) {
      auto pos = rest.find(sep);
      parts.emplace_back(rest.substr(0, pos));
      if (pos == std::string_view::npos)
        break;
      rest.remove_prefix(pos + sep.size());
    }
    bool empty_part = false;
    for (auto& part : parts)
      empty_part = empty_part || part.empty();
    if (empty_part) {
      rep.warn(name, "environment override with an empty key name, ignored");
      continue;
    }
    if (!doc.IsDefined() || doc.IsNull())
      doc.reset(YAML::Node{YAML::NodeType::Map});
    if (!doc.IsMap())
      continue; // reported as a missing Butler root
    // Walk down, turning absent or null keys into mappings. A scalar or
    // sequence in the way stays, and validation reports it.
    YAML::Node cur;
    cur.reset(doc);
    bool blocked = false;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      YAML::Node child = cur[parts[i]];
      if (!child.IsDefined() || child.IsNull())
        child = YAML::Node{YAML::NodeType::Map};
      else if (!child.IsMap()) {
        blocked = true;
        break;
      }
      cur.reset(child);
    }
    if (!blocked)
      cur[parts.back()] = env_value(raw);
  }
}

std::string to_path(const std::string& source, const YAML::Mark& mark) {
  if (mark.is_null())
    return source;
  return source + ":" + std::to_string(mark.line + 1) + ":"
         + std::to_string(mark.column + 1);
}

void read_document(YAML::Node& doc, report& rep, butler_config& cfg) {
  const std::string missing
    = "missing (the config file must have a Butler: root)";
  if (!doc.IsDefined() || !doc.IsMap()) {
    rep.error("Butler", missing);
    return;
  }
  YAML::Node butler{YAML::NodeType::Undefined};
  bool seen = false;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    auto key = it->first.IsScalar() ? it->first.Scalar() : describe(it->first);
    if (key != "Butler") {
      rep.warn(key, "unknown key, ignored");
    } else if (seen) {
      rep.error("Butler", "duplicate key");
    } else {
      seen = true;
      butler.reset(it->second);
    }
  }
  if (!butler.IsDefined() || !butler.IsMap()) {
    rep.error("Butler", missing);
    return;
  }
  section root{rep, butler, "Butler"};
  read_butler(root, cfg);
}

} // namespace

environment process_environment() {
  environment result;
  for (auto entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view text = *entry;
    auto eq = text.find('=');
    if (eq == std::string_view::npos)
      result.emplace_back(std::string{text}, std::string{});
    else
      result.emplace_back(std::string{text.substr(0, eq)},
                          std::string{text.substr(eq + 1)});
  }
  return result;
}

load_result load_config_string(std::string_view yaml, const std::string& source,
                               const environment& env) {
  load_result result;
  result.config.source_file = source;
  for (auto& name : known_endpoint_flags())
    result.config.endpoints.flags.emplace_back(name, false);
  report rep{result.errors, result.warnings};
  try {
    YAML::Node doc;
    try {
      doc.reset(YAML::Load(std::string{yaml}));
    } catch (const YAML::Exception& e) {
      result.errors.push_back(to_path(source, e.mark) + ": " + e.msg);
      return result;
    }
    apply_overrides(doc, env, rep);
    read_document(doc, rep, result.config);
    validate(result.config, rep);
  } catch (const std::exception& e) {
    // Not expected; the API promises not to throw.
    result.errors.push_back(source + ": cannot load: " + e.what());
  }
  return result;
}

load_result load_config_file(const std::string& path,
                             const environment& env) {
  std::string text;
  if (int err = read_whole_file(path, text)) {
    load_result result;
    result.config.source_file = path;
    for (auto& name : known_endpoint_flags())
      result.config.endpoints.flags.emplace_back(name, false);
    result.errors.push_back(path + ": cannot read: " + errno_text(err));
    return result;
  }
  return load_config_string(text, path, env);
}

const std::vector<std::string>& known_endpoint_flags() {
  static const std::vector<std::string> flags{
    "activeUserCount",      "activeUsers",        "apiListEnabledEndpoints",
    "base62ToBase16",       "base16ToBase62",     "butlerping",
    "createDir",            "createDirQVD",       "fileDelete",
    "fileMove",             "fileCopy",           "getDiskSpace",
    "keyValueStore",        "mqttPublishMessage", "postNewRelicMetric",
    "postNewRelicEvent",    "createNewSchedule",  "getSchedule",
    "getScheduleStatusAll", "updateSchedule",     "deleteSchedule",
    "startSchedule",        "stopSchedule",       "senseAppReload",
    "senseAppDump",         "senseListApps",      "senseQRSPing",
    "senseStartTask",       "slackPostMessage"};
  return flags;
}

} // namespace butler
