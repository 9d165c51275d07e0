#pragma once

// MQTT client interface, and a Paho MQTT C implementation. The Paho client is
// the synchronous MQTTClient on a dedicated thread behind a bounded backlog:
// publish() never blocks the caller. The thread connects, reconnects with
// back-off, subscribes, and publishes the backlog in order; messages held
// while the broker is away are published after reconnect. It speaks MQTT 5
// where the broker does, subscribing with No Local so that the broker does
// not echo the client's own publishes, and MQTT 3.1.1 otherwise.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace butler::mqtt {

struct message {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retain = false;
};

/// The MQTT protocol version a client speaks.
enum class mqtt_protocol {
  /// Tries MQTT 5 first; if the broker refuses that version, uses 3.1.1
  /// from then on (for this and every later reconnect) and logs a warning.
  automatic,
  /// MQTT 3.1.1 only. The broker sends the client its own publishes back
  /// wherever they match one of its subscriptions.
  v311,
  /// MQTT 5 only: never falls back, so a 3.1.1-only broker is never reached.
  v5,
};

struct client_options {
  std::string host = "127.0.0.1";
  uint16_t port = 1883;
  std::string client_id;
  std::string username; // empty: no credentials
  std::string password;
  bool tls = false;
  std::string ca_file;   // PEM; empty uses the system store
  std::string cert_file; // client certificate, optional
  std::string key_file;
  std::chrono::milliseconds keep_alive{30'000};
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds reconnect_min{250};
  std::chrono::milliseconds reconnect_max{30'000};
  /// Messages held (not yet handed to the broker). publish() refuses more.
  std::size_t backlog_limit = 100'000;
  /// Topic filters subscribed on every connect.
  std::vector<std::string> subscriptions;
  int subscription_qos = 0;
  /// Published first after every successful connect (empty topic: none).
  message on_connect;
  mqtt_protocol protocol = mqtt_protocol::automatic;
  /// With MQTT 5, subscribes with the No Local option, so that the broker
  /// does not send this client its own publishes (Butler publishes under
  /// the tree it subscribes to). MQTT 3.1.1 has no such option.
  bool no_local = true;
};

enum class publish_result {
  /// Held in the backlog; the client thread publishes it.
  accepted,
  /// The backlog is full; the message was not taken.
  backlog_full,
  /// The client is stopping or stopped; the message was not taken.
  stopped,
  /// The message can never be published (empty topic, a `+` or `#` in the
  /// topic, a NUL byte or invalid UTF-8, QoS outside 0-2); not taken.
  invalid,
};

/// Counters and state, readable from any thread.
struct client_stats {
  bool connected = false;
  std::uint64_t published = 0;     // handed to the broker
  std::uint64_t rejected_full = 0; // publish() answered backlog_full
  std::uint64_t rejected_invalid = 0; // publish() answered invalid
  std::uint64_t connects = 0;      // successful connects (first and re-)
  std::uint64_t connect_failures = 0;
  std::uint64_t received = 0;      // inbound messages
  std::size_t backlog = 0;         // messages held now
  /// MQTT version of the current or last connection: 5, or 4 for 3.1.1;
  /// 0 before the first connect.
  int protocol_version = 0;
};

/// What the client reports. Each callback may be empty. on_message runs on
/// Paho's receive thread and on_connection on the client thread: both must
/// only hand the event on (e.g. caf::anon_send), never block, and never call
/// bind() or stop() (callbacks run under the lock that bind() takes, and
/// stop() joins the thread that runs them).
struct callbacks {
  std::function<void(std::string topic, std::string payload)> on_message;
  /// connected == false carries the reason (connection lost, refused, ...).
  std::function<void(bool connected, std::string detail)> on_connection;
};

class client {
public:
  virtual ~client();

  /// Starts the client thread, which connects and keeps connecting. Call once.
  virtual void start() = 0;

  /// Replaces the callbacks; thread-safe. An owner that goes away binds {}.
  virtual void bind(callbacks cbs) = 0;

  /// Queues `msg`. Never blocks; thread-safe.
  virtual publish_result publish(message msg) = 0;

  /// Waits until the backlog is empty (all handed to the broker) or
  /// `deadline` passes. Returns true if the backlog is empty.
  virtual bool flush(std::chrono::milliseconds deadline) = 0;

  /// Stops taking messages, disconnects and joins the client thread.
  /// Idempotent; the destructor calls it. Messages still held are counted
  /// as lost in the log.
  virtual void stop() = 0;

  virtual client_stats stats() const = 0;
};

/// Creates a Paho-backed client. Nothing connects before start(). Throws
/// std::invalid_argument for options that can never work (empty host, port 0,
/// QoS outside 0-2, an invalid subscription or on_connect topic, reconnect_min
/// not positive or above reconnect_max, a protocol outside mqtt_protocol).
std::unique_ptr<client> make_paho_client(client_options opts);

} // namespace butler::mqtt
