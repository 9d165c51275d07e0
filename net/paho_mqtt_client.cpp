#include "net/mqtt_client.hpp"

#include "net/mqtt_topic.hpp"

#include <MQTTClient.h>
#include <MQTTProperties.h>
#include <MQTTReasonCodes.h>
#include <MQTTSubscribeOpts.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <iterator>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace butler::mqtt {

client::~client() = default;

namespace {

// -- constants ----------------------------------------------------------------

/// QoS >= 1 messages sent but not yet acknowledged. Paho blocks inside
/// MQTTClient_publishMessage at its own limit, so the client thread waits for
/// acks before it gets there. An MQTT 5 broker may ask for fewer (Receive
/// Maximum; mosquitto says 20), and Paho then lowers its limit to that.
constexpr int max_inflight = 1000;

/// Paho's protocol levels.
constexpr int version_311 = MQTTVERSION_3_1_1;
constexpr int version_5 = MQTTVERSION_5;

/// How long stop() lets in-flight QoS >= 1 flows finish before closing.
constexpr int disconnect_timeout_ms = 1000;

/// MQTT's largest packet (the remaining-length field) minus header room.
constexpr std::size_t max_packet_payload = 268'435'455 - 8;

/// Keeps a few OpenSSL error lines for the connect-failure reason.
constexpr std::size_t max_tls_error_size = 512;

// -- validation -----------------------------------------------------------------

/// Returns why `msg` can never be published, or "" if it can.
std::string publish_problem(const message& msg) {
  if (auto problem = check_publish_topic(msg.topic); !problem.empty())
    return "the topic " + problem;
  if (msg.qos < 0 || msg.qos > 2)
    return "the QoS is not 0, 1 or 2";
  if (msg.payload.size() > max_packet_payload - msg.topic.size())
    return "the message is larger than MQTT allows";
  return {};
}

/// Returns whether a publish failed because of the message itself, so that
/// re-sending it after a reconnect can never succeed.
bool is_input_error(int rc) {
  return rc == MQTTCLIENT_BAD_UTF8_STRING || rc == MQTTCLIENT_NULL_PARAMETER
         || rc == MQTTCLIENT_TOPICNAME_TRUNCATED
         || rc == MQTTCLIENT_BAD_STRUCTURE || rc == MQTTCLIENT_BAD_QOS;
}

// -- formatting -----------------------------------------------------------------

/// Returns Paho's text for `rc` plus the code itself. Positive codes are the
/// broker's CONNACK refusals, which Paho 1.3.12 has no text for.
std::string paho_error(int rc) {
  switch (rc) {
    case 1:
      return "connection refused: unacceptable protocol version (rc 1)";
    case 2:
      return "connection refused: client identifier rejected (rc 2)";
    case 3:
      return "connection refused: server unavailable (rc 3)";
    case 4:
      return "connection refused: bad user name or password (rc 4)";
    case 5:
      return "connection refused: not authorized (rc 5)";
    default:
      break;
  }
  const char* text = MQTTClient_strerror(rc);
  if (text == nullptr)
    return fmt::format("error {}", rc);
  return fmt::format("{} (rc {})", text, rc);
}

/// Returns why a connect with protocol `version` failed with Paho's `rc`.
/// An MQTT 5 broker refuses with a reason code (0x80 and up); a 3.1.1
/// broker answers an MQTT 5 CONNECT with its own return code 1.
std::string connect_error(int rc, int version) {
  if (version == version_5 && rc >= 0x80) {
    auto code = static_cast<MQTTReasonCodes>(rc);
    return fmt::format("connection refused: {} (reason code 0x{:02X})",
                       MQTTReasonCode_toString(code), rc);
  }
  if (version == version_5 && rc == 1)
    return paho_error(rc) + ": the broker does not speak MQTT 5";
  return paho_error(rc);
}

/// Returns whether an MQTT 5 connect failed because the broker does not
/// speak MQTT 5: a 3.1.1 broker's CONNACK return code 1, or an MQTT 5
/// broker's Unsupported Protocol Version.
bool refuses_version_5(int rc) {
  return rc == 1 || rc == MQTTREASONCODE_UNSUPPORTED_PROTOCOL_VERSION;
}

/// Returns "2s" or "250ms".
std::string format_duration(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0)
    return fmt::format("{}s", d.count() / 1000);
  return fmt::format("{}ms", d.count());
}

/// Returns whole seconds for Paho, rounding up so that 1-999 ms is 1 s.
int to_seconds(std::chrono::milliseconds d) {
  if (d.count() <= 0)
    return 0;
  return static_cast<int>((d.count() + 999) / 1000);
}

// -- Paho global state ------------------------------------------------------------

/// Initializes Paho once per process. Paho keeps process-wide state (one
/// receive thread for all clients, the OpenSSL set-up), so this static is
/// forced on us by the C library. OpenSSL 3 initializes itself and other parts
/// of Butler use it too, so Paho must not install its legacy OpenSSL hooks.
void init_paho_once() {
  static const bool initialized = [] {
    MQTTClient_init_options init = MQTTClient_init_options_initializer;
    init.do_openssl_init = 0;
    MQTTClient_global_init(&init);
    return true;
  }();
  static_cast<void>(initialized);
}

// -- the client -----------------------------------------------------------------

class paho_client final : public client {
public:
  explicit paho_client(client_options opts);

  ~paho_client() override;

  paho_client(const paho_client&) = delete;
  paho_client& operator=(const paho_client&) = delete;

  void start() override;

  void bind(callbacks cbs) override;

  publish_result publish(message msg) override;

  bool flush(std::chrono::milliseconds deadline) override;

  void stop() override;

  client_stats stats() const override;

private:
  /// A QoS >= 1 message handed to Paho and waiting for its ack.
  struct in_flight {
    int token;
    /// False for the on_connect status message, which the next connect
    /// publishes again anyway and which publish() never counted.
    bool counted;
    message msg;
  };

  enum class reported { nothing, up, down };

  // -- Paho callbacks (Paho's threads) --------------------------------------------

  static void on_connection_lost(void* ctx, char* cause);

  static int on_message_arrived(void* ctx, char* topic, int topic_len,
                                MQTTClient_message* msg);

  static void on_delivery_complete(void* ctx, MQTTClient_deliveryToken token);

  /// Called for a DISCONNECT from an MQTT 5 broker (not for a closed socket),
  /// on a thread Paho starts for it.
  static void on_disconnected(void* ctx, MQTTProperties* props,
                              MQTTReasonCodes reason);

  static int on_tls_error(const char* str, size_t len, void* ctx);

  // -- client thread ----------------------------------------------------------------

  /// Runs the connect / publish loop until stop().
  void run();

  /// Returns a new Paho client for protocol `version` with our callbacks.
  /// Throws std::invalid_argument if Paho refuses the URI or client ID and
  /// std::runtime_error if it refuses the callbacks.
  MQTTClient create_handle(int version);

  /// Connects once (falling back to 3.1.1 where the options allow it);
  /// fills `reason` on failure.
  bool connect(std::string& reason);

  /// Sends one CONNECT with protocol `version` through `handle`; returns
  /// Paho's code (for MQTT 5 the reason code) and fills `reason` on failure.
  int connect_with(MQTTClient handle, int version, std::string& reason);

  /// Counts a connect of handle_ that worked; returns true.
  bool on_connected();

  /// Makes `v311` (connected or not) the client's handle from now on and
  /// says so in the log.
  void adopt_v311(MQTTClient v311);

  /// Subscribes to every filter in opts_.subscriptions; returns Paho's code.
  int subscribe();

  /// Sends DISCONNECT (waiting up to `timeout_ms` for in-flight flows) and
  /// closes the connection.
  void disconnect(int timeout_ms);

  /// Subscribes and publishes the on_connect message; fills `cause` and
  /// returns false if the connection broke meanwhile.
  bool after_connect(std::string& cause);

  /// Publishes `batch` in order. On a lost connection or stop, puts the rest
  /// back at the front of the backlog, fills `cause` (empty when stopping)
  /// and returns false. Leaves `batch` empty.
  bool publish_batch(std::deque<message>& batch, std::string& cause);

  /// Hands one message to Paho; returns Paho's code and the token.
  int send(const message& msg, MQTTClient_deliveryToken& token);

  /// Waits until another QoS >= 1 message may be sent; false on stop/loss.
  bool wait_for_window();

  /// Records a sent QoS >= 1 message (or its ack, if that came first).
  void track(int token, bool counted, message msg);

  /// Puts unacked messages back, reports and logs a lost connection.
  void handle_loss(const std::string& cause);

  /// Reports a failed connect attempt unless it repeats the last report.
  void report_failure(const std::string& reason,
                      std::chrono::milliseconds retry_in);

  /// Calls on_connection under the callback lock.
  void report(bool up, const std::string& detail);

  /// Wakes flush() callers if nothing is held anymore.
  void notify_if_flushed();

  // -- member variables -------------------------------------------------------------

  client_options opts_;
  std::string endpoint_; // host:port, for logs
  std::string client_id_;
  std::string uri_;
  /// The client thread replaces it once when falling back to 3.1.1; stop()
  /// uses it only after joining that thread.
  MQTTClient handle_ = nullptr;
  std::thread thread_;

  /// Serializes start() and stop().
  std::mutex lifecycle_mutex_;
  bool started_ = false;
  bool stopped_ = false;

  /// Guards the backlog, in-flight list and flags below; the client thread
  /// never holds it while calling into Paho (Paho calls on_delivery_complete
  /// with its own lock held, and that callback takes this one).
  mutable std::mutex mutex_;
  std::condition_variable cv_;         // wakes the client thread
  std::condition_variable flushed_cv_; // wakes flush()
  std::deque<message> backlog_;
  std::deque<in_flight> inflight_;
  std::vector<int> early_acks_; // acks that beat track() (see there)
  std::string tls_error_;
  std::string loss_cause_; // the broker's DISCONNECT reason, if it sent one
  std::atomic<bool> stopping_{false};
  std::atomic<bool> lost_{false};

  /// Guards the callbacks; held while calling them so that after bind()
  /// returns no old callback runs anymore.
  std::mutex cb_mutex_;
  callbacks cbs_;

  // Client thread only (and the constructor and stop(), which run before it
  // starts and after it ends).
  reported last_reported_ = reported::nothing;
  std::string last_reason_;
  int version_ = version_5; // the protocol of handle_
  /// How many QoS >= 1 messages may wait for their ack at once.
  std::size_t window_ = max_inflight;

  // Counters; held_ is everything publish() took and not yet delivered:
  // backlog + the batch in progress + unacked.
  std::atomic<std::size_t> held_{0};
  std::atomic<bool> connected_{false};
  std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> rejected_full_{0};
  std::atomic<std::uint64_t> rejected_invalid_{0};
  std::atomic<std::uint64_t> connects_{0};
  std::atomic<std::uint64_t> connect_failures_{0};
  std::atomic<std::uint64_t> received_{0};
  std::atomic<int> protocol_version_{0};
};

paho_client::paho_client(client_options opts) : opts_(std::move(opts)) {
  if (opts_.host.empty())
    throw std::invalid_argument("mqtt client: the host is empty");
  if (opts_.port == 0)
    throw std::invalid_argument("mqtt client: the port is 0");
  if (opts_.subscription_qos < 0 || opts_.subscription_qos > 2)
    throw std::invalid_argument("mqtt client: subscription_qos must be 0-2");
  if (opts_.reconnect_min.count() <= 0)
    throw std::invalid_argument("mqtt client: reconnect_min must be positive");
  if (opts_.reconnect_max < opts_.reconnect_min)
    throw std::invalid_argument(
      "mqtt client: reconnect_max is smaller than reconnect_min");
  if (opts_.connect_timeout.count() <= 0)
    throw std::invalid_argument(
      "mqtt client: connect_timeout must be positive");
  if (opts_.keep_alive.count() < 0)
    throw std::invalid_argument("mqtt client: keep_alive is negative");
  switch (opts_.protocol) {
    case mqtt_protocol::automatic:
    case mqtt_protocol::v5:
      version_ = version_5;
      break;
    case mqtt_protocol::v311:
      version_ = version_311;
      break;
    default:
      throw std::invalid_argument("mqtt client: unknown protocol "
                                  + std::to_string(static_cast<int>(
                                    opts_.protocol)));
  }
  for (const auto& filter : opts_.subscriptions)
    if (!valid_filter(filter))
      throw std::invalid_argument("mqtt client: invalid subscription '"
                                  + filter + "'");
  if (!opts_.on_connect.topic.empty()) {
    if (auto problem = publish_problem(opts_.on_connect); !problem.empty())
      throw std::invalid_argument(
        "mqtt client: invalid on_connect message: " + problem);
  }
  if (opts_.client_id.empty()) {
    // A per-process, per-object id; Butler's config normally sets one.
    opts_.client_id = fmt::format(
      "butler-{}-{:x}", ::getpid(),
      reinterpret_cast<std::uintptr_t>(this) & 0xFFFFFF);
  }
  client_id_ = opts_.client_id;
  auto host = opts_.host.find(':') != std::string::npos
                ? "[" + opts_.host + "]" // an IPv6 literal
                : opts_.host;
  endpoint_ = fmt::format("{}:{}", opts_.host, opts_.port);
  uri_ = fmt::format("{}://{}:{}", opts_.tls ? "ssl" : "tcp", host,
                     opts_.port);
  init_paho_once();
  handle_ = create_handle(version_);
}

MQTTClient paho_client::create_handle(int version) {
  // Paho fixes the protocol family when it creates a client: an MQTT 5
  // client cannot send a 3.1.1 CONNECT and vice versa.
  MQTTClient_createOptions create = MQTTClient_createOptions_initializer;
  create.MQTTVersion = version;
  MQTTClient handle = nullptr;
  auto rc = MQTTClient_createWithOptions(&handle, uri_.c_str(),
                                         client_id_.c_str(),
                                         MQTTCLIENT_PERSISTENCE_NONE, nullptr,
                                         &create);
  if (rc != MQTTCLIENT_SUCCESS)
    throw std::invalid_argument("mqtt client: cannot create a client for "
                                + uri_ + ": " + paho_error(rc));
  // Setting callbacks puts Paho in its multi-threaded mode: its own thread
  // reads the socket, answers pings and delivers inbound messages and acks.
  rc = MQTTClient_setCallbacks(handle, this, on_connection_lost,
                               on_message_arrived, on_delivery_complete);
  // Without this callback an MQTT 5 broker's DISCONNECT still ends in
  // on_connection_lost once the broker closes the socket, but without the
  // reason code, and Paho leaks the packet.
  if (rc == MQTTCLIENT_SUCCESS && version == version_5)
    rc = MQTTClient_setDisconnected(handle, this, on_disconnected);
  if (rc != MQTTCLIENT_SUCCESS) {
    MQTTClient_destroy(&handle);
    throw std::runtime_error("mqtt client: cannot set the Paho callbacks: "
                             + paho_error(rc));
  }
  return handle;
}

paho_client::~paho_client() {
  // Paho must be gone before any member it calls back into.
  stop();
}

void paho_client::start() {
  std::lock_guard<std::mutex> guard{lifecycle_mutex_};
  if (started_ || stopped_)
    return;
  started_ = true;
  thread_ = std::thread{[this] {
    try {
      run();
    } catch (const std::exception& ex) {
      spdlog::critical("mqtt-client thread for {} ended: {}", endpoint_,
                       ex.what());
    }
  }};
}

void paho_client::bind(callbacks cbs) {
  std::lock_guard<std::mutex> guard{cb_mutex_};
  cbs_ = std::move(cbs);
}

publish_result paho_client::publish(message msg) {
  if (auto problem = publish_problem(msg); !problem.empty()) {
    // Debug level: a caller looping on bad input must not flood the log.
    spdlog::debug("mqtt-client refused a message for '{}': {}", msg.topic,
                  problem);
    rejected_invalid_.fetch_add(1, std::memory_order_relaxed);
    return publish_result::invalid;
  }
  std::unique_lock<std::mutex> guard{mutex_};
  if (stopping_.load(std::memory_order_relaxed))
    return publish_result::stopped;
  if (held_.load(std::memory_order_relaxed) >= opts_.backlog_limit) {
    rejected_full_.fetch_add(1, std::memory_order_relaxed);
    return publish_result::backlog_full;
  }
  held_.fetch_add(1, std::memory_order_relaxed);
  bool was_empty = backlog_.empty();
  backlog_.push_back(std::move(msg));
  guard.unlock();
  // The client thread only sleeps on new work while the backlog is empty.
  if (was_empty)
    cv_.notify_one();
  return publish_result::accepted;
}

bool paho_client::flush(std::chrono::milliseconds deadline) {
  std::unique_lock<std::mutex> guard{mutex_};
  return flushed_cv_.wait_for(guard, deadline, [this] {
    return held_.load(std::memory_order_relaxed) == 0;
  });
}

void paho_client::stop() {
  std::lock_guard<std::mutex> guard{lifecycle_mutex_};
  if (stopped_)
    return;
  stopped_ = true;
  {
    std::lock_guard<std::mutex> lock{mutex_};
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
  if (MQTTClient_isConnected(handle_))
    disconnect(disconnect_timeout_ms);
  connected_ = false;
  {
    // Waits for an on_message still running on Paho's thread (another client
    // may keep that thread alive) and silences any later one.
    std::lock_guard<std::mutex> lock{cb_mutex_};
    cbs_ = callbacks{};
  }
  MQTTClient_destroy(&handle_);
  handle_ = nullptr;
  auto held = held_.load();
  if (held > 0)
    spdlog::warn("mqtt-client for {} stopped; {} held messages are lost",
                 endpoint_, held);
  else if (started_)
    spdlog::info("mqtt-client for {} stopped", endpoint_);
  flushed_cv_.notify_all();
}

client_stats paho_client::stats() const {
  client_stats result;
  result.connected = connected_.load();
  result.published = published_.load();
  result.rejected_full = rejected_full_.load();
  result.rejected_invalid = rejected_invalid_.load();
  result.connects = connects_.load();
  result.connect_failures = connect_failures_.load();
  result.received = received_.load();
  result.backlog = held_.load();
  result.protocol_version = protocol_version_.load();
  return result;
}

// -- Paho callbacks ---------------------------------------------------------------

void paho_client::on_connection_lost(void* ctx, char*) {
  // Paho runs this on a thread of its own while holding its lock: only flag
  // the event for the client thread. (Paho's `cause` is always NULL.)
  auto* self = static_cast<paho_client*>(ctx);
  {
    std::lock_guard<std::mutex> guard{self->mutex_};
    self->lost_ = true;
  }
  self->cv_.notify_all();
}

int paho_client::on_message_arrived(void* ctx, char* topic, int topic_len,
                                    MQTTClient_message* msg) {
  auto* self = static_cast<paho_client*>(ctx);
  // topic_len is 0 when the topic is NUL-terminated.
  std::string topic_str = topic_len > 0 ? std::string(topic, topic_len)
                                        : std::string(topic);
  std::string payload;
  if (msg->payloadlen > 0)
    payload.assign(static_cast<const char*>(msg->payload), msg->payloadlen);
  MQTTClient_freeMessage(&msg);
  MQTTClient_free(topic);
  self->received_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> guard{self->cb_mutex_};
  if (self->cbs_.on_message) {
    try {
      self->cbs_.on_message(std::move(topic_str), std::move(payload));
    } catch (const std::exception& ex) {
      // Nothing may unwind into C.
      spdlog::error("mqtt-client on_message threw: {}", ex.what());
    } catch (...) {
      spdlog::error("mqtt-client on_message threw");
    }
  }
  return 1; // consumed: Paho must not deliver it again
}

void paho_client::on_delivery_complete(void* ctx,
                                       MQTTClient_deliveryToken token) {
  auto* self = static_cast<paho_client*>(ctx);
  std::lock_guard<std::mutex> guard{self->mutex_};
  auto& inflight = self->inflight_;
  // Acks usually come in order, so the search ends at the front.
  auto i = std::find_if(inflight.begin(), inflight.end(),
                        [token](const in_flight& x) { return x.token == token; });
  if (i == inflight.end()) {
    self->early_acks_.push_back(token);
    return;
  }
  if (i->counted) {
    self->published_.fetch_add(1, std::memory_order_relaxed);
    self->held_.fetch_sub(1, std::memory_order_relaxed);
  }
  inflight.erase(i);
  // The client thread may wait for room in the window, flush() for zero.
  self->cv_.notify_all();
  if (self->held_.load(std::memory_order_relaxed) == 0)
    self->flushed_cv_.notify_all();
}

void paho_client::on_disconnected(void* ctx, MQTTProperties* props,
                                  MQTTReasonCodes reason) {
  // Paho has already closed the connection and calls on_connection_lost
  // only for a broken socket, so this is the client thread's only news of
  // it. (Paho does not wait for this thread; a DISCONNECT that arrives while
  // stop() destroys the client races with Paho's own use of its handle too.)
  auto* self = static_cast<paho_client*>(ctx);
  auto cause = fmt::format(
    "the broker sent DISCONNECT: {} (reason code 0x{:02X})",
    MQTTReasonCode_toString(reason), static_cast<int>(reason));
  if (props != nullptr) {
    auto* text = MQTTProperties_getProperty(props,
                                            MQTTPROPERTY_CODE_REASON_STRING);
    if (text != nullptr && text->value.data.len > 0) {
      auto len = static_cast<std::size_t>(text->value.data.len);
      cause += fmt::format(": {}",
                           std::string_view{text->value.data.data, len});
    }
  }
  {
    std::lock_guard<std::mutex> guard{self->mutex_};
    self->loss_cause_ = std::move(cause);
    self->lost_ = true;
  }
  self->cv_.notify_all();
}

int paho_client::on_tls_error(const char* str, size_t len, void* ctx) {
  auto* self = static_cast<paho_client*>(ctx);
  std::string_view line{str, len};
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
    line.remove_suffix(1);
  // OpenSSL 3 prints "<thread>:error:<code>:<library>:<function>:<reason>:
  // <file>:<line>:<data>"; the reason (and data) is what a reader needs.
  std::vector<std::string_view> fields;
  for (std::size_t start = 0; start <= line.size();) {
    auto end = std::min(line.find(':', start), line.size());
    fields.push_back(line.substr(start, end - start));
    start = end + 1;
  }
  std::string text;
  if (fields.size() >= 6 && fields[1] == "error") {
    text = std::string{fields[5]};
    if (fields.size() >= 9 && !fields[8].empty())
      text += fmt::format(" ({})", fields[8]);
  } else {
    text = std::string{line};
  }
  std::lock_guard<std::mutex> guard{self->mutex_};
  if (self->tls_error_.size() < max_tls_error_size) {
    if (!self->tls_error_.empty())
      self->tls_error_ += "; ";
    self->tls_error_.append(text, 0, max_tls_error_size);
  }
  return 1; // keep printing the OpenSSL error queue
}

// -- client thread ----------------------------------------------------------------

void paho_client::run() {
  auto backoff = opts_.reconnect_min;
  std::deque<message> batch;
  std::string cause;
  while (!stopping_) {
    if (!connected_) {
      std::string reason;
      if (!connect(reason)) {
        connect_failures_.fetch_add(1, std::memory_order_relaxed);
        report_failure(reason, backoff);
        std::unique_lock<std::mutex> guard{mutex_};
        cv_.wait_for(guard, backoff, [this] { return stopping_.load(); });
        backoff = std::min(backoff * 2, opts_.reconnect_max);
        continue;
      }
      backoff = opts_.reconnect_min;
      if (!after_connect(cause))
        handle_loss(cause);
      continue;
    }
    {
      std::unique_lock<std::mutex> guard{mutex_};
      cv_.wait(guard, [this] {
        return stopping_ || lost_ || !backlog_.empty();
      });
      if (stopping_)
        break;
      if (backlog_.empty()) { // lost_ is set
        guard.unlock();
        handle_loss("the broker closed the connection");
        continue;
      }
      batch.swap(backlog_);
    }
    cause.clear();
    if (!publish_batch(batch, cause) && !stopping_)
      handle_loss(cause);
  }
}

bool paho_client::connect(std::string& reason) {
  auto started = std::chrono::steady_clock::now();
  auto rc = connect_with(handle_, version_, reason);
  if (rc == MQTTCLIENT_SUCCESS)
    return on_connected();
  if (opts_.protocol != mqtt_protocol::automatic || version_ != version_5
      || stopping_)
    return false;
  // A 3.1.1-only broker answers an MQTT 5 CONNECT with return code 1, or
  // just closes the connection, which Paho reports like a refused TCP
  // connect. Hence a quick failure is retried at once with 3.1.1: if that
  // fails too, the broker is down or refuses us for another reason, and
  // MQTT 5 stays. A v5 attempt that ran into the connect timeout says
  // nothing about the version.
  bool refused = refuses_version_5(rc);
  bool dropped = rc == MQTTCLIENT_FAILURE
                 && std::chrono::steady_clock::now() - started
                      < opts_.connect_timeout / 2;
  if (!refused && !dropped)
    return false;
  MQTTClient v311 = nullptr;
  try {
    v311 = create_handle(version_311);
  } catch (const std::exception& ex) {
    spdlog::error("mqtt-client cannot try MQTT 3.1.1 with {}: {}", endpoint_,
                  ex.what());
    return false;
  }
  std::string v311_reason;
  rc = connect_with(v311, version_311, v311_reason);
  if (rc == MQTTCLIENT_SUCCESS && !refused) {
    // A broker that came up between the two attempts takes 3.1.1 too:
    // only one that drops MQTT 5 again does not speak it.
    MQTTClient_disconnect(v311, 0);
    std::string again;
    if (!stopping_
        && connect_with(handle_, version_5, again) == MQTTCLIENT_SUCCESS) {
      MQTTClient_destroy(&v311);
      return on_connected();
    }
    rc = connect_with(v311, version_311, v311_reason);
  } else if (rc != MQTTCLIENT_SUCCESS && !refused) {
    MQTTClient_destroy(&v311);
    return false; // `reason` still tells why MQTT 5 failed
  }
  adopt_v311(v311);
  if (rc == MQTTCLIENT_SUCCESS)
    return on_connected();
  reason = std::move(v311_reason);
  return false;
}

namespace {

/// Returns whether two socket addresses are the same IP and port.
bool same_endpoint(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family)
    return false;
  if (a.ss_family == AF_INET) {
    auto& x = reinterpret_cast<const sockaddr_in&>(a);
    auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port
           && std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof(in6_addr)) == 0;
  }
  return false;
}

/// Turns off Nagle's algorithm on the TCP sockets connected to host:port.
/// Paho neither sets TCP_NODELAY nor exposes its socket, and with Nagle on,
/// a stream of small publishes waits for the broker's delayed ACKs: up to
/// 40 ms per message on Linux. Returns how many sockets it changed.
int disable_nagle(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found)
      != 0)
    return 0;
  std::vector<sockaddr_storage> peers;
  for (auto* ai = found; ai != nullptr; ai = ai->ai_next) {
    sockaddr_storage addr{};
    std::memcpy(&addr, ai->ai_addr,
                std::min<std::size_t>(ai->ai_addrlen, sizeof(addr)));
    peers.push_back(addr);
  }
  ::freeaddrinfo(found);
  int changed = 0;
  auto* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr)
    return 0;
  while (auto* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.')
      continue;
    int fd = std::atoi(entry->d_name);
    int type = 0;
    socklen_t len = sizeof(type);
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0
        || type != SOCK_STREAM)
      continue;
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof(peer);
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0)
      continue;
    for (auto& want : peers)
      if (same_endpoint(peer, want)) {
        int on = 1;
        if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == 0)
          ++changed;
        break;
      }
  }
  ::closedir(dir);
  return changed;
}

} // namespace

bool paho_client::on_connected() {
  if (disable_nagle(opts_.host, opts_.port) == 0)
    spdlog::debug("mqtt-client could not find its socket to {}:{} to turn "
                  "off Nagle's algorithm",
                  opts_.host, opts_.port);
  connected_ = true;
  protocol_version_ = version_;
  connects_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

int paho_client::connect_with(MQTTClient handle, int version,
                              std::string& reason) {
  MQTTClient_connectOptions conn = MQTTClient_connectOptions_initializer;
  if (version == version_5) {
    MQTTClient_connectOptions v5 = MQTTClient_connectOptions_initializer5;
    conn = v5;
    // Clean start without a session expiry: the session ends with the
    // connection, as with 3.1.1's clean session.
    conn.cleanstart = 1;
    conn.cleansession = 0;
  } else {
    conn.cleansession = 1;
    conn.MQTTVersion = MQTTVERSION_3_1_1;
  }
  conn.keepAliveInterval = to_seconds(opts_.keep_alive);
  conn.reliable = 0;
  conn.connectTimeout = to_seconds(opts_.connect_timeout);
  conn.maxInflightMessages = max_inflight;
  if (!opts_.username.empty())
    conn.username = opts_.username.c_str();
  if (!opts_.password.empty())
    conn.password = opts_.password.c_str();
  MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
  if (opts_.tls) {
    if (!opts_.ca_file.empty())
      ssl.trustStore = opts_.ca_file.c_str();
    if (!opts_.cert_file.empty())
      ssl.keyStore = opts_.cert_file.c_str();
    if (!opts_.key_file.empty())
      ssl.privateKey = opts_.key_file.c_str();
    ssl.enableServerCertAuth = 1;
    ssl.verify = 1;
    ssl.sslVersion = MQTT_SSL_VERSION_TLS_1_2;
    ssl.ssl_error_cb = on_tls_error;
    ssl.ssl_error_context = this;
    conn.ssl = &ssl;
  }
  {
    std::lock_guard<std::mutex> guard{mutex_};
    // Paho reported the previous connection's loss before returning to us;
    // a flag left from it must not end the new connection.
    lost_ = false;
    loss_cause_.clear();
    tls_error_.clear();
  }
  int rc = MQTTCLIENT_SUCCESS;
  std::size_t window = max_inflight;
  if (version == version_5) {
    auto response = MQTTClient_connect5(handle, &conn, nullptr, nullptr);
    rc = response.reasonCode;
    if (rc == MQTTCLIENT_SUCCESS && response.properties != nullptr
        && MQTTProperties_hasProperty(response.properties,
                                      MQTTPROPERTY_CODE_RECEIVE_MAXIMUM)) {
      // Above this limit Paho blocks inside its publish call (sleeping
      // 100 ms at a time) until acks come, where stop() cannot reach us.
      auto receive_max = MQTTProperties_getNumericValue(
        response.properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
      if (receive_max > 0)
        window = std::min(window, static_cast<std::size_t>(receive_max));
    }
    MQTTResponse_free(response);
  } else {
    rc = MQTTClient_connect(handle, &conn);
  }
  if (rc == MQTTCLIENT_SUCCESS) {
    window_ = window;
    return rc;
  }
  reason = connect_error(rc, version);
  std::lock_guard<std::mutex> guard{mutex_};
  if (!tls_error_.empty())
    reason += ": " + tls_error_;
  return rc;
}

void paho_client::adopt_v311(MQTTClient v311) {
  // The old client is not connected, so none of its callbacks can come;
  // creating the new one first keeps Paho's background thread running.
  MQTTClient_destroy(&handle_);
  handle_ = v311;
  version_ = version_311;
  spdlog::warn("mqtt-client: broker {} does not speak MQTT 5; using 3.1.1, so "
               "the broker echoes Butler's own publishes back to it",
               endpoint_);
}

int paho_client::subscribe() {
  auto count = opts_.subscriptions.size();
  std::vector<char*> filters;
  filters.reserve(count);
  for (auto& filter : opts_.subscriptions)
    filters.push_back(const_cast<char*>(filter.c_str()));
  std::vector<int> qos(count, opts_.subscription_qos);
  if (version_ != version_5) {
    auto rc = MQTTClient_subscribeMany(handle_, static_cast<int>(count),
                                       filters.data(), qos.data());
    if (rc == MQTTCLIENT_SUCCESS)
      for (std::size_t i = 0; i < count; ++i)
        if (qos[i] == MQTT_BAD_SUBSCRIBE)
          spdlog::error("mqtt-client: {} refused the subscription to {}",
                        endpoint_, opts_.subscriptions[i]);
    return rc;
  }
  // Paho reads one options entry per filter.
  MQTTSubscribe_options sub_opts = MQTTSubscribe_options_initializer;
  sub_opts.noLocal = opts_.no_local ? 1 : 0;
  std::vector<MQTTSubscribe_options> all_opts(count, sub_opts);
  auto response = MQTTClient_subscribeMany5(handle_, static_cast<int>(count),
                                            filters.data(), qos.data(),
                                            all_opts.data(), nullptr);
  int rc = response.reasonCode;
  if (rc >= 0) {
    // One reason code per filter: the granted QoS, or 0x80 and up for a
    // refusal. Paho fills reasonCodes only for two filters or more.
    auto codes = static_cast<std::size_t>(response.reasonCodeCount);
    for (std::size_t i = 0; i < count && i < std::max<std::size_t>(codes, 1);
         ++i) {
      auto code = response.reasonCodes != nullptr ? response.reasonCodes[i]
                                                  : response.reasonCode;
      if (code >= MQTTREASONCODE_UNSPECIFIED_ERROR)
        spdlog::error("mqtt-client: {} refused the subscription to {}: {} "
                      "(reason code 0x{:02X})",
                      endpoint_, opts_.subscriptions[i],
                      MQTTReasonCode_toString(code), static_cast<int>(code));
    }
    rc = MQTTCLIENT_SUCCESS;
  }
  MQTTResponse_free(response);
  return rc;
}

void paho_client::disconnect(int timeout_ms) {
  if (version_ == version_5)
    MQTTClient_disconnect5(handle_, timeout_ms,
                           MQTTREASONCODE_NORMAL_DISCONNECTION, nullptr);
  else
    MQTTClient_disconnect(handle_, timeout_ms);
}

bool paho_client::after_connect(std::string& cause) {
  if (!opts_.subscriptions.empty()) {
    auto rc = subscribe();
    if (rc != MQTTCLIENT_SUCCESS) {
      if (!MQTTClient_isConnected(handle_)) {
        cause = "subscribing failed: " + paho_error(rc);
        return false;
      }
      spdlog::error("mqtt-client cannot subscribe at {}: {}", endpoint_,
                    paho_error(rc));
    }
  }
  if (!opts_.on_connect.topic.empty()) {
    MQTTClient_deliveryToken token = 0;
    auto rc = send(opts_.on_connect, token);
    if (rc != MQTTCLIENT_SUCCESS) {
      if (!MQTTClient_isConnected(handle_)) {
        cause = "publishing the status message failed: " + paho_error(rc);
        return false;
      }
      spdlog::error("mqtt-client cannot publish the status message to {}: {}",
                    opts_.on_connect.topic, paho_error(rc));
    } else if (opts_.on_connect.qos > 0) {
      track(token, false, opts_.on_connect);
    }
  }
  auto detail = fmt::format("connected to {} as {}", endpoint_, client_id_);
  spdlog::info("mqtt-client {} (MQTT {})", detail,
               version_ == version_5 ? "5" : "3.1.1");
  report(true, detail);
  last_reported_ = reported::up;
  last_reason_.clear();
  return true;
}

int paho_client::send(const message& msg, MQTTClient_deliveryToken& token) {
  MQTTClient_message out = MQTTClient_message_initializer;
  // Paho copies the payload before it returns; it never writes through it.
  out.payload = const_cast<char*>(msg.payload.data());
  out.payloadlen = static_cast<int>(msg.payload.size());
  out.qos = msg.qos;
  out.retained = msg.retain ? 1 : 0;
  if (version_ != version_5)
    return MQTTClient_publishMessage(handle_, msg.topic.c_str(), &out, &token);
  // No properties: Paho allocates nothing for the response of a publish.
  auto response = MQTTClient_publishMessage5(handle_, msg.topic.c_str(), &out,
                                             &token);
  if (response.properties != nullptr || response.reasonCodes != nullptr)
    MQTTResponse_free(response);
  return response.reasonCode;
}

bool paho_client::publish_batch(std::deque<message>& batch,
                                std::string& cause) {
  std::size_t i = 0;
  bool ok = true;
  for (; i < batch.size(); ++i) {
    if (stopping_.load(std::memory_order_relaxed)) {
      ok = false;
      break;
    }
    if (lost_.load(std::memory_order_relaxed)) {
      cause = "the broker closed the connection";
      ok = false;
      break;
    }
    auto& msg = batch[i];
    if (msg.qos > 0 && !wait_for_window()) {
      cause = "the broker closed the connection";
      ok = false;
      break;
    }
    MQTTClient_deliveryToken token = 0;
    auto rc = send(msg, token);
    if (rc == MQTTCLIENT_SUCCESS) {
      if (msg.qos == 0) {
        published_.fetch_add(1, std::memory_order_relaxed);
        held_.fetch_sub(1, std::memory_order_relaxed);
      } else {
        track(token, true, std::move(msg));
      }
      continue;
    }
    if (is_input_error(rc)) {
      // Re-sending can never work; keeping it would block everything behind.
      spdlog::error("mqtt-client dropped a message for '{}': {}", msg.topic,
                    paho_error(rc));
      rejected_invalid_.fetch_add(1, std::memory_order_relaxed);
      held_.fetch_sub(1, std::memory_order_relaxed);
      continue;
    }
    cause = paho_error(rc);
    ok = false;
    break;
  }
  if (i < batch.size()) {
    std::lock_guard<std::mutex> guard{mutex_};
    backlog_.insert(backlog_.begin(),
                    std::make_move_iterator(batch.begin() + i),
                    std::make_move_iterator(batch.end()));
  }
  batch.clear();
  notify_if_flushed();
  return ok;
}

bool paho_client::wait_for_window() {
  std::unique_lock<std::mutex> guard{mutex_};
  cv_.wait(guard, [this] {
    return stopping_ || lost_ || inflight_.size() < window_;
  });
  return !stopping_ && !lost_;
}

void paho_client::track(int token, bool counted, message msg) {
  std::lock_guard<std::mutex> guard{mutex_};
  // Paho may deliver the ack on its thread between handing out the token and
  // this call; such an ack waits in early_acks_ for its message.
  auto early = std::find(early_acks_.begin(), early_acks_.end(), token);
  if (early != early_acks_.end()) {
    early_acks_.erase(early);
    if (counted) {
      published_.fetch_add(1, std::memory_order_relaxed);
      held_.fetch_sub(1, std::memory_order_relaxed);
      if (held_.load(std::memory_order_relaxed) == 0)
        flushed_cv_.notify_all();
    }
    return;
  }
  inflight_.push_back(in_flight{token, counted, std::move(msg)});
}

void paho_client::handle_loss(const std::string& cause) {
  // Paho still connected means our view and its differ (e.g. an unexpected
  // publish error): start over with a fresh connection.
  if (MQTTClient_isConnected(handle_))
    disconnect(0);
  connected_ = false;
  std::size_t held = 0;
  auto why = cause.empty() ? std::string{"the connection broke"} : cause;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    // Unacked messages go first, in the order they were sent: at-least-once.
    for (auto i = inflight_.rbegin(); i != inflight_.rend(); ++i)
      if (i->counted)
        backlog_.push_front(std::move(i->msg));
    inflight_.clear();
    early_acks_.clear();
    lost_ = false;
    // The broker's own word beats what a failed publish made of it.
    if (!loss_cause_.empty())
      why = std::move(loss_cause_);
    loss_cause_.clear();
    held = held_.load();
  }
  spdlog::warn("mqtt-client lost the connection to {}: {}; holding {} messages",
               endpoint_, why, held);
  report(false, fmt::format("lost the connection to {}: {}", endpoint_, why));
  last_reported_ = reported::down;
  last_reason_ = why;
}

void paho_client::report_failure(const std::string& reason,
                                 std::chrono::milliseconds retry_in) {
  // Only a change is worth a log line and a callback: a broker that stays
  // down would otherwise log every few seconds forever.
  if (last_reported_ == reported::down && last_reason_ == reason) {
    spdlog::debug("mqtt-client cannot connect to {}: {}; retrying in {}",
                  endpoint_, reason, format_duration(retry_in));
    return;
  }
  spdlog::warn("mqtt-client cannot connect to {}: {}; retrying in {}",
               endpoint_, reason, format_duration(retry_in));
  report(false, fmt::format("cannot connect to {}: {}", endpoint_, reason));
  last_reported_ = reported::down;
  last_reason_ = reason;
}

void paho_client::report(bool up, const std::string& detail) {
  std::lock_guard<std::mutex> guard{cb_mutex_};
  if (!cbs_.on_connection)
    return;
  try {
    cbs_.on_connection(up, detail);
  } catch (const std::exception& ex) {
    spdlog::error("mqtt-client on_connection threw: {}", ex.what());
  } catch (...) {
    spdlog::error("mqtt-client on_connection threw");
  }
}

void paho_client::notify_if_flushed() {
  if (held_.load() != 0)
    return;
  // Taking the lock orders this wake-up after flush() checked held_.
  { std::lock_guard<std::mutex> guard{mutex_}; }
  flushed_cv_.notify_all();
}

} // namespace

std::unique_ptr<client> make_paho_client(client_options opts) {
  return std::make_unique<paho_client>(std::move(opts));
}

} // namespace butler::mqtt
