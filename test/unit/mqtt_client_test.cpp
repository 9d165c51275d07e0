#include "net/mqtt_client.hpp"

#include "test/support/eventually.hpp"
#include "test/support/log_capture.hpp"
#include "test/support/free_port.hpp"
#include "test/support/mosquitto_broker.hpp"
#include "test/support/test_certs.hpp"

#include <gtest/gtest.h>

#include <netinet/tcp.h>

#include <dirent.h>

#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace std::chrono_literals;

namespace mqtt = butler::mqtt;
namespace bt = butler::test;

namespace {

using butler::test::eventually;

using message_list = std::vector<std::pair<std::string, std::string>>;

/// Collects what a client reports through its callbacks.
class recorder {
public:
  mqtt::callbacks callbacks() {
    mqtt::callbacks cbs;
    cbs.on_message = [this](std::string topic, std::string payload) {
      std::lock_guard<std::mutex> guard{mutex_};
      messages_.emplace_back(std::move(topic), std::move(payload));
    };
    cbs.on_connection = [this](bool up, std::string detail) {
      std::lock_guard<std::mutex> guard{mutex_};
      events_.emplace_back(up, std::move(detail));
    };
    return cbs;
  }

  message_list messages() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return messages_;
  }

  std::size_t message_count() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return messages_.size();
  }

  std::vector<std::pair<bool, std::string>> events() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return events_;
  }

  std::size_t count_events(bool up) const {
    std::lock_guard<std::mutex> guard{mutex_};
    std::size_t n = 0;
    for (const auto& event : events_)
      if (event.first == up)
        ++n;
    return n;
  }

private:
  mutable std::mutex mutex_;
  message_list messages_;
  std::vector<std::pair<bool, std::string>> events_;
};

/// Sends the log to a collecting sink while it lives. Create it before the
/// clients and let it go after them: a client thread may log any time.
using log_capture = butler::test::log_capture;

/// Returns the warning the client logs when it falls back to 3.1.1.
std::string fallback_warning(uint16_t port) {
  return "mqtt-client: broker 127.0.0.1:" + std::to_string(port)
         + " does not speak MQTT 5; using 3.1.1, so the broker echoes "
           "Butler's own publishes back to it";
}

std::string to_string(mqtt::mqtt_protocol protocol) {
  switch (protocol) {
    case mqtt::mqtt_protocol::automatic:
      return "automatic";
    case mqtt::mqtt_protocol::v311:
      return "v311";
    case mqtt::mqtt_protocol::v5:
      return "v5";
  }
  return "unknown";
}

/// Names the instances of a test parameterized on the protocol.
struct protocol_name {
  std::string operator()(
    const ::testing::TestParamInfo<mqtt::mqtt_protocol>& info) const {
    return to_string(info.param);
  }
};

/// Returns the version number a client of `protocol` connects to mosquitto
/// with.
int version_of(mqtt::mqtt_protocol protocol) {
  return protocol == mqtt::mqtt_protocol::v311 ? 4 : 5;
}

/// Returns options for a client of 127.0.0.1:`port` that retries quickly.
mqtt::client_options local_options(
  uint16_t port, const std::string& id,
  mqtt::mqtt_protocol protocol = mqtt::mqtt_protocol::automatic) {
  mqtt::client_options opts;
  opts.host = "127.0.0.1";
  opts.port = port;
  opts.client_id = id;
  opts.connect_timeout = 3s;
  opts.reconnect_min = 20ms;
  opts.reconnect_max = 200ms;
  opts.protocol = protocol;
  return opts;
}

/// Lets a client receive its own publishes under MQTT 5 as well, for tests
/// that subscribe to the topics they publish to (to learn when the broker
/// routed them, or to keep message order across a broker restart).
void receive_own_publishes(mqtt::client_options& opts) {
  opts.no_local = false;
}

mqtt::message make_message(std::string topic, std::string payload,
                           int qos = 0) {
  mqtt::message msg;
  msg.topic = std::move(topic);
  msg.payload = std::move(payload);
  msg.qos = qos;
  return msg;
}

/// Runs mosquitto_pub once against 127.0.0.1:`port`; `extra` holds e.g.
/// {"-m", "text"} or {"-n"}.
bt::command_result mosquitto_pub(uint16_t port, const std::string& topic,
                                 std::vector<std::string> extra) {
  std::vector<std::string> argv{"mosquitto_pub", "-h", "127.0.0.1", "-p",
                                std::to_string(port), "-q", "1", "-t", topic};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return bt::run_command(argv);
}

// -- a broker that holds back acks ----------------------------------------------

struct publish_packet {
  std::string topic;
  std::string payload;
  int qos = 0;
  uint16_t id = 0;
};

/// How a fake_broker answers an MQTT 5 CONNECT.
enum class v5_answer {
  /// As an MQTT 5 broker: CONNACK, success.
  accept,
  /// As the 3.1.1 spec tells a broker to: CONNACK with return code 1
  /// (unacceptable protocol version), then close.
  connack_rc1,
  /// As some 3.1.1 brokers do: close the connection without a word.
  close,
};

std::string to_string(v5_answer answer) {
  switch (answer) {
    case v5_answer::accept:
      return "accept";
    case v5_answer::connack_rc1:
      return "connack_rc1";
    case v5_answer::close:
      return "close";
  }
  return "unknown";
}

/// Speaks just enough MQTT 3.1.1 and 5 (server side) to withhold PUBACKs
/// and to refuse MQTT 5, which mosquitto cannot be made to do: accepts one
/// client at a time, answers CONNECT, SUBSCRIBE and PINGREQ, and hands
/// PUBLISH packets to the test.
class fake_broker {
public:
  /// `receive_maximum` > 0 goes into the MQTT 5 CONNACK.
  explicit fake_broker(v5_answer v5 = v5_answer::accept,
                       int receive_maximum = 0)
    : v5_(v5), receive_maximum_(receive_maximum) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0)
      throw std::runtime_error("fake_broker: socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
          != 0
        || ::listen(listen_fd_, 4) != 0
        || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len)
             != 0)
      throw std::runtime_error("fake_broker: bind/listen");
    port_ = ntohs(addr.sin_port);
  }

  ~fake_broker() {
    drop_client();
    stop_listening();
  }

  fake_broker(const fake_broker&) = delete;
  fake_broker& operator=(const fake_broker&) = delete;

  uint16_t port() const {
    return port_;
  }

  /// Accepts clients until one sends a CONNECT that this broker takes (an
  /// MQTT 5 one is refused as the constructor says) and answers it; false
  /// on timeout.
  bool accept_client(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto level = next_connect(deadline);
      if (level < 0)
        return false;
      if (level == 5 && v5_ != v5_answer::accept) {
        refuse();
        continue;
      }
      level_ = level;
      if (level == 5 && receive_maximum_ > 0) {
        // Session present 0, reason code 0, Receive Maximum (0x21).
        const unsigned char connack[] = {
          0x20, 0x06, 0x00, 0x00, 0x03, 0x21,
          static_cast<unsigned char>(receive_maximum_ >> 8),
          static_cast<unsigned char>(receive_maximum_ & 0xFF)};
        return write_all(connack, sizeof(connack));
      }
      if (level == 5) {
        // Session present 0, reason code 0, no properties.
        const unsigned char connack[] = {0x20, 0x03, 0x00, 0x00, 0x00};
        return write_all(connack, sizeof(connack));
      }
      const unsigned char connack[] = {0x20, 0x02, 0x00, 0x00};
      return write_all(connack, sizeof(connack));
    }
  }

  /// Refuses MQTT 5 CONNECTs until `n` were refused; false on timeout or
  /// when a CONNECT of another version comes (which stays unanswered).
  bool refuse_clients(int n, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (refused_ < n) {
      auto level = next_connect(deadline);
      if (level != 5)
        return false;
      refuse();
    }
    return true;
  }

  /// Returns how many MQTT 5 CONNECTs this broker refused.
  int refused() const {
    return refused_;
  }

  /// Returns the protocol level of the client accepted last: 4 is 3.1.1.
  int level() const {
    return level_;
  }

  /// Returns the next PUBLISH, answering other packets meanwhile; acks it
  /// (QoS 1) if `ack`. Returns nullopt on timeout or a closed connection.
  std::optional<publish_packet> next_publish(std::chrono::milliseconds timeout,
                                             bool ack) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto packet = read_packet(deadline);
      if (!packet)
        return std::nullopt;
      auto [header, body] = std::move(*packet);
      switch (header >> 4) {
        case 3: // PUBLISH
          return parse_publish(header, body, ack);
        case 8: { // SUBSCRIBE: grant QoS 0 to the (one) filter
          std::string suback{'\x90', '\x03', body[0], body[1], '\x00'};
          if (level_ == 5) // no properties
            suback = std::string{'\x90', '\x04', body[0], body[1], '\x00',
                                 '\x00'};
          write_all(suback.data(), suback.size());
          break;
        }
        case 12: { // PINGREQ
          const unsigned char pingresp[] = {0xD0, 0x00};
          write_all(pingresp, sizeof(pingresp));
          break;
        }
        default:
          break;
      }
    }
  }

  /// Sends an MQTT 5 DISCONNECT with `reason` (no properties) and closes
  /// the connection, as the spec asks of a broker.
  void send_disconnect(unsigned char reason) {
    const unsigned char disconnect[] = {0xE0, 0x01, reason};
    write_all(disconnect, sizeof(disconnect));
    drop_client();
  }

  /// Closes the listening socket; connections not accepted yet are reset.
  void stop_listening() {
    if (listen_fd_ >= 0)
      ::close(listen_fd_);
    listen_fd_ = -1;
  }

  /// Closes the client's connection (as a crashing broker would).
  void drop_client() {
    if (conn_fd_ >= 0)
      ::close(conn_fd_);
    conn_fd_ = -1;
  }

private:
  using time_point = std::chrono::steady_clock::time_point;

  /// Accepts the next connection and reads its CONNECT; returns the
  /// protocol level, or -1 on timeout. Skips connections that close early.
  int next_connect(time_point deadline) {
    for (;;) {
      drop_client();
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return -1;
      pollfd pfd{listen_fd_, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) != 1)
        continue;
      conn_fd_ = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn_fd_ < 0)
        continue;
      auto packet = read_packet(deadline);
      // CONNECT: protocol name "MQTT" (2 + 4 bytes), then the level.
      if (!packet || (packet->first >> 4) != 1 || packet->second.size() < 7)
        continue;
      return static_cast<unsigned char>(packet->second[6]);
    }
  }

  /// Refuses the MQTT 5 client connected now, as v5_ says.
  void refuse() {
    if (v5_ == v5_answer::connack_rc1) {
      // A 3.1.1 CONNACK: no properties.
      const unsigned char connack[] = {0x20, 0x02, 0x00, 0x01};
      write_all(connack, sizeof(connack));
    }
    drop_client();
    ++refused_;
  }

  std::optional<publish_packet> parse_publish(unsigned char header,
                                              const std::string& body,
                                              bool ack) {
    publish_packet result;
    result.qos = (header >> 1) & 0x03;
    if (body.size() < 2)
      return std::nullopt;
    std::size_t topic_len = (static_cast<unsigned char>(body[0]) << 8)
                            | static_cast<unsigned char>(body[1]);
    std::size_t pos = 2 + topic_len;
    if (body.size() < pos + (result.qos > 0 ? 2 : 0))
      return std::nullopt;
    result.topic = body.substr(2, topic_len);
    if (result.qos > 0) {
      result.id = static_cast<uint16_t>(
        (static_cast<unsigned char>(body[pos]) << 8)
        | static_cast<unsigned char>(body[pos + 1]));
      pos += 2;
    }
    if (level_ == 5) {
      // Skips the properties: a variable byte integer length, then them.
      std::size_t props_len = 0;
      for (int shift = 0; shift < 28; shift += 7) {
        if (pos >= body.size())
          return std::nullopt;
        auto byte = static_cast<unsigned char>(body[pos++]);
        props_len |= static_cast<std::size_t>(byte & 0x7F) << shift;
        if ((byte & 0x80) == 0)
          break;
      }
      pos += props_len;
      if (pos > body.size())
        return std::nullopt;
    }
    result.payload = body.substr(pos);
    if (ack && result.qos == 1) {
      const unsigned char puback[] = {0x40, 0x02,
                                      static_cast<unsigned char>(result.id >> 8),
                                      static_cast<unsigned char>(result.id
                                                                 & 0xFF)};
      write_all(puback, sizeof(puback));
    }
    return result;
  }

  /// Reads one packet: the first header byte and the body.
  std::optional<std::pair<unsigned char, std::string>>
  read_packet(time_point deadline) {
    unsigned char header = 0;
    if (!read_exact(&header, 1, deadline))
      return std::nullopt;
    std::size_t remaining = 0;
    for (int shift = 0; shift < 28; shift += 7) {
      unsigned char byte = 0;
      if (!read_exact(&byte, 1, deadline))
        return std::nullopt;
      remaining |= static_cast<std::size_t>(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0)
        break;
    }
    std::string body(remaining, '\0');
    if (remaining > 0 && !read_exact(body.data(), remaining, deadline))
      return std::nullopt;
    return std::make_pair(header, std::move(body));
  }

  bool read_exact(void* buf, std::size_t n, time_point deadline) {
    auto* out = static_cast<char*>(buf);
    while (n > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || conn_fd_ < 0)
        return false;
      pollfd pfd{conn_fd_, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) != 1)
        continue;
      auto got = ::read(conn_fd_, out, n);
      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0)
        return false;
      out += got;
      n -= static_cast<std::size_t>(got);
    }
    return true;
  }

  bool write_all(const void* buf, std::size_t n) {
    const auto* in = static_cast<const char*>(buf);
    while (n > 0) {
      auto put = ::send(conn_fd_, in, n, MSG_NOSIGNAL);
      if (put < 0 && errno == EINTR)
        continue;
      if (put <= 0)
        return false;
      in += put;
      n -= static_cast<std::size_t>(put);
    }
    return true;
  }

  v5_answer v5_;
  int receive_maximum_;
  int listen_fd_ = -1;
  int conn_fd_ = -1;
  uint16_t port_ = 0;
  int level_ = 0;
  int refused_ = 0;
};

} // namespace

// -- options and input validation ---------------------------------------------------

TEST(mqtt_client_options, unusable_options_throw) {
  auto base = local_options(1883, "butler-options");
  auto expect_invalid = [&](const char* what, auto change) {
    auto opts = base;
    change(opts);
    EXPECT_THROW(mqtt::make_paho_client(opts), std::invalid_argument) << what;
  };
  expect_invalid("empty host", [](auto& o) { o.host.clear(); });
  expect_invalid("port 0", [](auto& o) { o.port = 0; });
  expect_invalid("subscription qos 3", [](auto& o) { o.subscription_qos = 3; });
  expect_invalid("subscription qos -1",
                 [](auto& o) { o.subscription_qos = -1; });
  expect_invalid("reconnect_min 0", [](auto& o) { o.reconnect_min = 0ms; });
  expect_invalid("reconnect_max < min", [](auto& o) {
    o.reconnect_min = 2s;
    o.reconnect_max = 1s;
  });
  expect_invalid("connect_timeout 0", [](auto& o) { o.connect_timeout = 0ms; });
  expect_invalid("negative keep_alive", [](auto& o) { o.keep_alive = -1ms; });
  expect_invalid("empty filter", [](auto& o) { o.subscriptions = {""}; });
  expect_invalid("# not last", [](auto& o) { o.subscriptions = {"a/#/b"}; });
  expect_invalid("+ inside a level", [](auto& o) { o.subscriptions = {"a+"}; });
  expect_invalid("# inside a level", [](auto& o) { o.subscriptions = {"a#"}; });
  expect_invalid("wildcard on_connect topic",
                 [](auto& o) { o.on_connect = make_message("a/+", "x"); });
  expect_invalid("on_connect qos 5",
                 [](auto& o) { o.on_connect = make_message("a", "x", 5); });
  expect_invalid("unknown protocol", [](auto& o) {
    o.protocol = static_cast<mqtt::mqtt_protocol>(7);
  });
  auto good = base;
  good.subscriptions = {"#", "a/+/b", "a/#", "+", "qliksense/#"};
  good.on_connect = make_message("qliksense/butler/mqtt/status", "up");
  EXPECT_NO_THROW(mqtt::make_paho_client(good));
  auto no_id = base;
  no_id.client_id.clear();
  EXPECT_NO_THROW(mqtt::make_paho_client(no_id));
  for (auto protocol : {mqtt::mqtt_protocol::automatic,
                        mqtt::mqtt_protocol::v311, mqtt::mqtt_protocol::v5}) {
    auto with_protocol = good;
    with_protocol.protocol = protocol;
    EXPECT_NO_THROW(mqtt::make_paho_client(with_protocol))
      << to_string(protocol);
  }
}

TEST(mqtt_client_options, invalid_messages_are_refused) {
  auto client = mqtt::make_paho_client(local_options(1883, "butler-input"));
  std::vector<mqtt::message> bad{
    make_message("", "empty topic"),
    make_message("a/+/b", "plus"),
    make_message("a/#", "hash"),
    make_message(std::string("a\0b", 3), "NUL in topic"),
    make_message("\xff\xfe", "not UTF-8"),
    make_message("\xc0\xaf", "overlong UTF-8"),
    make_message("\xed\xa0\x80", "UTF-16 surrogate"),
    make_message("a/\xe2\x82", "truncated UTF-8"),
    make_message("a", "qos 3", 3),
    make_message("a", "qos -1", -1),
  };
  for (auto& msg : bad)
    EXPECT_EQ(client->publish(msg), mqtt::publish_result::invalid)
      << msg.payload;
  auto st = client->stats();
  EXPECT_EQ(st.rejected_invalid, bad.size());
  EXPECT_EQ(st.backlog, 0u);
  EXPECT_EQ(client->publish(make_message("a/b", "fine")),
            mqtt::publish_result::accepted);
  EXPECT_EQ(client->publish(make_message("gr\xc3\xbc\xc3\x9f" "e/\xe2\x82\xac",
                                         "UTF-8 topic", 2)),
            mqtt::publish_result::accepted);
  EXPECT_EQ(client->stats().backlog, 2u);
}

// -- against a real mosquitto -------------------------------------------------------

/// Runs each test under MQTT 5 and under 3.1.1.
class mqtt_client_test : public ::testing::TestWithParam<mqtt::mqtt_protocol> {
protected:
  void start_broker() {
    ASSERT_TRUE(broker_.start()) << broker_.last_error();
  }

  mqtt::client_options options(const std::string& id) {
    return local_options(broker_.port(), id, GetParam());
  }

  int version() const {
    return version_of(GetParam());
  }

  std::string endpoint() {
    return "127.0.0.1:" + std::to_string(broker_.port());
  }

  bt::mosquitto_broker broker_;
};

TEST_P(mqtt_client_test, connects_and_publishes_the_status_message) {
  start_broker();
  recorder rec;
  auto opts = options("butler-status");
  // The client also subscribes to its own status topic, so the test knows
  // when the broker has stored the retained message.
  opts.subscriptions = {"qliksense/butler/#"};
  receive_own_publishes(opts);
  mqtt::message status;
  status.topic = "qliksense/butler/mqtt/status";
  status.payload = "Connected to MQTT broker " + endpoint()
                   + " with client ID butler-status";
  status.retain = true;
  opts.on_connect = status;
  auto client = mqtt::make_paho_client(opts);
  client->bind(rec.callbacks());
  client->start();
  ASSERT_TRUE(eventually([&] { return rec.count_events(true) == 1; }));
  auto events = rec.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].second,
            "connected to " + endpoint() + " as butler-status");
  ASSERT_TRUE(eventually([&] { return rec.message_count() == 1; }));
  EXPECT_EQ(rec.messages()[0], std::make_pair(status.topic, status.payload));
  auto st = client->stats();
  EXPECT_TRUE(st.connected);
  EXPECT_EQ(st.connects, 1u);
  EXPECT_EQ(st.connect_failures, 0u);
  EXPECT_EQ(st.published, 0u); // the status message is not a publish() call
  EXPECT_EQ(st.protocol_version, version());
  // An independent subscriber gets the retained status message.
  auto sub = bt::run_command({"mosquitto_sub", "-h", "127.0.0.1", "-p",
                              std::to_string(broker_.port()), "-t",
                              status.topic, "-C", "1", "-v", "-W", "5"});
  EXPECT_EQ(sub.exit_code, 0) << sub.output;
  EXPECT_EQ(sub.output, status.topic + " " + status.payload + "\n");
}

/// Returns the TCP_NODELAY setting of this process's socket connected to
/// 127.0.0.1:`port`, or -1 if there is none.
int nodelay_of_socket_to(uint16_t port) {
  auto* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr)
    return -1;
  int result = -1;
  while (auto* entry = ::readdir(dir)) {
    int fd = std::atoi(entry->d_name);
    sockaddr_in peer{};
    socklen_t len = sizeof(peer);
    if (entry->d_name[0] == '.'
        || ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0
        || peer.sin_family != AF_INET || ntohs(peer.sin_port) != port)
      continue;
    int on = 0;
    socklen_t on_len = sizeof(on);
    if (::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &on_len) == 0)
      result = on != 0 ? 1 : 0;
  }
  ::closedir(dir);
  return result;
}

TEST_P(mqtt_client_test, turns_off_nagle_on_its_broker_connection) {
  // With Nagle on, a stream of small publishes waits for the broker's
  // delayed ACKs (up to 40 ms each).
  start_broker();
  recorder rec;
  auto client = mqtt::make_paho_client(options("butler-nodelay"));
  client->bind(rec.callbacks());
  client->start();
  ASSERT_TRUE(eventually([&] { return rec.count_events(true) == 1; }));
  EXPECT_EQ(nodelay_of_socket_to(broker_.port()), 1);
}

TEST_P(mqtt_client_test, delivers_1000_messages_in_order) {
  start_broker();
  recorder sub_rec;
  auto sub_opts = options("butler-sub");
  sub_opts.subscriptions = {"test/#"};
  auto sub = mqtt::make_paho_client(sub_opts);
  sub->bind(sub_rec.callbacks());
  sub->start();
  // on_connection(true) comes after the subscription was acknowledged.
  ASSERT_TRUE(eventually([&] { return sub_rec.count_events(true) == 1; }));
  recorder pub_rec;
  auto pub = mqtt::make_paho_client(options("butler-pub"));
  pub->bind(pub_rec.callbacks());
  pub->start();
  constexpr int n = 1000;
  for (int i = 0; i < n; ++i)
    ASSERT_EQ(pub->publish(make_message("test/seq", std::to_string(i))),
              mqtt::publish_result::accepted);
  EXPECT_TRUE(pub->flush(10s));
  ASSERT_TRUE(eventually([&] { return sub_rec.message_count() >= n; }))
    << sub_rec.message_count();
  auto got = sub_rec.messages();
  ASSERT_EQ(got.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(got[i].first, "test/seq");
    ASSERT_EQ(got[i].second, std::to_string(i)) << "at " << i;
  }
  auto st = pub->stats();
  EXPECT_EQ(st.published, static_cast<std::uint64_t>(n));
  EXPECT_EQ(st.backlog, 0u);
  EXPECT_EQ(sub->stats().received, static_cast<std::uint64_t>(n));
}

TEST_P(mqtt_client_test, publish_is_safe_from_many_threads) {
  start_broker();
  recorder rec;
  auto opts = options("butler-threads");
  opts.subscriptions = {"test/#"};
  receive_own_publishes(opts);
  auto client = mqtt::make_paho_client(opts);
  client->bind(rec.callbacks());
  client->start();
  constexpr int threads = 4;
  constexpr int per_thread = 250;
  std::atomic<int> refused{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i)
        if (client->publish(make_message("test/t" + std::to_string(t),
                                         std::to_string(i)))
            != mqtt::publish_result::accepted)
          ++refused;
    });
  for (auto& worker : workers)
    worker.join();
  EXPECT_EQ(refused, 0);
  ASSERT_TRUE(eventually(
    [&] { return rec.message_count() >= threads * per_thread; }));
  // Each thread's messages arrive in the order it published them.
  std::vector<int> next(threads, 0);
  for (const auto& [topic, payload] : rec.messages()) {
    auto t = std::stoi(topic.substr(6));
    ASSERT_EQ(payload, std::to_string(next[t])) << topic;
    ++next[t];
  }
  for (int t = 0; t < threads; ++t)
    EXPECT_EQ(next[t], per_thread);
}

TEST_P(mqtt_client_test, receives_messages_on_subscribed_topics) {
  start_broker();
  recorder rec;
  auto opts = options("butler-inbound");
  opts.subscriptions = {"test/#"};
  auto client = mqtt::make_paho_client(opts);
  client->bind(rec.callbacks());
  client->start();
  ASSERT_TRUE(eventually([&] { return rec.count_events(true) == 1; }));
  // mosquitto_pub -q 1 exits after the broker routed the message, so a
  // wrongly delivered other/topic would arrive before test/in.
  auto res = mosquitto_pub(broker_.port(), "other/topic", {"-m", "ignored"});
  ASSERT_EQ(res.exit_code, 0) << res.output;
  res = mosquitto_pub(broker_.port(), "test/in", {"-m", "hello world"});
  ASSERT_EQ(res.exit_code, 0) << res.output;
  res = mosquitto_pub(broker_.port(), "test/empty", {"-n"});
  ASSERT_EQ(res.exit_code, 0) << res.output;
  ASSERT_TRUE(eventually([&] { return rec.message_count() >= 2; }));
  message_list expected{{"test/in", "hello world"}, {"test/empty", ""}};
  EXPECT_EQ(rec.messages(), expected);
  EXPECT_EQ(client->stats().received, 2u);
}

TEST_P(mqtt_client_test, bind_replaces_the_callbacks) {
  start_broker();
  recorder first;
  recorder second;
  auto opts = options("butler-bind");
  opts.subscriptions = {"test/#"};
  auto client = mqtt::make_paho_client(opts);
  client->bind(first.callbacks());
  client->start();
  ASSERT_TRUE(eventually([&] { return first.count_events(true) == 1; }));
  ASSERT_EQ(mosquitto_pub(broker_.port(), "test/1", {"-m", "one"}).exit_code,
            0);
  ASSERT_TRUE(eventually([&] { return first.message_count() == 1; }));
  client->bind(second.callbacks());
  ASSERT_EQ(mosquitto_pub(broker_.port(), "test/2", {"-m", "two"}).exit_code,
            0);
  ASSERT_TRUE(eventually([&] { return second.message_count() == 1; }));
  client->bind({});
  ASSERT_EQ(mosquitto_pub(broker_.port(), "test/3", {"-m", "three"}).exit_code,
            0);
  ASSERT_TRUE(eventually([&] { return client->stats().received == 3; }));
  EXPECT_EQ(first.messages(), (message_list{{"test/1", "one"}}));
  EXPECT_EQ(second.messages(), (message_list{{"test/2", "two"}}));
  EXPECT_EQ(second.count_events(true), 0u);
}

TEST_P(mqtt_client_test, holds_messages_until_the_broker_starts) {
  // The broker is not running yet. The client subscribes to its own topics:
  // on connect it subscribes before it publishes its backlog, so there is a
  // subscriber before the first held message reaches the broker.
  recorder rec;
  auto opts = options("butler-early");
  opts.subscriptions = {"test/#"};
  receive_own_publishes(opts);
  auto client = mqtt::make_paho_client(opts);
  client->bind(rec.callbacks());
  client->start();
  constexpr int n = 100;
  for (int i = 0; i < n; ++i)
    ASSERT_EQ(client->publish(make_message("test/held", std::to_string(i))),
              mqtt::publish_result::accepted);
  ASSERT_TRUE(eventually([&] { return client->stats().connect_failures >= 2; }));
  auto st = client->stats();
  EXPECT_FALSE(st.connected);
  EXPECT_EQ(st.backlog, static_cast<std::size_t>(n));
  EXPECT_EQ(st.published, 0u);
  EXPECT_EQ(st.connects, 0u);
  ASSERT_EQ(rec.count_events(false), 1u);
  EXPECT_EQ(rec.events()[0].second.rfind("cannot connect to " + endpoint(), 0),
            0u)
    << rec.events()[0].second;
  start_broker();
  ASSERT_TRUE(eventually([&] { return rec.message_count() >= n; }))
    << rec.message_count();
  auto got = rec.messages();
  ASSERT_EQ(got.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    ASSERT_EQ(got[i].second, std::to_string(i)) << "at " << i;
  st = client->stats();
  EXPECT_TRUE(st.connected);
  EXPECT_EQ(st.connects, 1u);
  EXPECT_EQ(st.published, static_cast<std::uint64_t>(n));
  EXPECT_EQ(st.backlog, 0u);
  EXPECT_EQ(rec.count_events(true), 1u);
}

TEST_P(mqtt_client_test, holds_messages_across_a_broker_restart) {
  // Why a self-subscription: after the restart a separate subscriber and the
  // publisher race to reconnect, and messages reaching the broker before the
  // subscriber are gone. The client subscribes before it publishes its
  // backlog on every connect, which makes the order deterministic without a
  // persistent broker session.
  start_broker();
  recorder rec;
  auto opts = options("butler-restart");
  opts.subscriptions = {"test/#"};
  receive_own_publishes(opts);
  opts.on_connect = make_message("test/status", "up");
  auto client = mqtt::make_paho_client(opts);
  client->bind(rec.callbacks());
  client->start();
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(client->publish(make_message("test/before", std::to_string(i))),
              mqtt::publish_result::accepted);
  ASSERT_TRUE(client->flush(10s));
  ASSERT_TRUE(eventually([&] { return rec.message_count() == 11; }));
  broker_.stop();
  ASSERT_TRUE(eventually([&] { return rec.count_events(false) >= 1; }));
  EXPECT_FALSE(client->stats().connected);
  EXPECT_EQ(rec.events()[1].second.rfind("lost the connection to " + endpoint(),
                                         0),
            0u)
    << rec.events()[1].second;
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(client->publish(make_message("test/after", std::to_string(i))),
              mqtt::publish_result::accepted);
  EXPECT_EQ(client->stats().backlog, 10u);
  EXPECT_FALSE(client->flush(50ms));
  start_broker();
  ASSERT_TRUE(eventually([&] { return rec.message_count() >= 22; }))
    << rec.message_count();
  message_list expected{{"test/status", "up"}};
  for (int i = 0; i < 10; ++i)
    expected.emplace_back("test/before", std::to_string(i));
  expected.emplace_back("test/status", "up");
  for (int i = 0; i < 10; ++i)
    expected.emplace_back("test/after", std::to_string(i));
  EXPECT_EQ(rec.messages(), expected);
  auto st = client->stats();
  EXPECT_EQ(st.connects, 2u);
  EXPECT_EQ(st.published, 20u);
  EXPECT_EQ(st.backlog, 0u);
  EXPECT_EQ(rec.count_events(true), 2u);
}

TEST_P(mqtt_client_test, full_backlog_refuses_messages) {
  // The broker stays down, so nothing leaves the backlog.
  auto opts = options("butler-full");
  opts.backlog_limit = 5;
  auto client = mqtt::make_paho_client(opts);
  client->start();
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(client->publish(make_message("test/full", std::to_string(i))),
              mqtt::publish_result::accepted);
  EXPECT_EQ(client->publish(make_message("test/full", "5")),
            mqtt::publish_result::backlog_full);
  EXPECT_EQ(client->publish(make_message("test/full", "6")),
            mqtt::publish_result::backlog_full);
  auto st = client->stats();
  EXPECT_EQ(st.rejected_full, 2u);
  EXPECT_EQ(st.backlog, 5u);
}

TEST_P(mqtt_client_test, publish_after_stop_is_refused) {
  start_broker();
  recorder rec;
  auto client = mqtt::make_paho_client(options("butler-stop"));
  client->bind(rec.callbacks());
  client->start();
  ASSERT_TRUE(eventually([&] { return client->stats().connected; }));
  client->stop();
  EXPECT_FALSE(client->stats().connected);
  EXPECT_EQ(client->publish(make_message("test/late", "x")),
            mqtt::publish_result::stopped);
  client->stop(); // idempotent
  EXPECT_EQ(client->stats().backlog, 0u);
  // Never started: stop() still refuses later publishes.
  auto idle = mqtt::make_paho_client(options("butler-idle"));
  idle->stop();
  EXPECT_EQ(idle->publish(make_message("test/late", "x")),
            mqtt::publish_result::stopped);
}

TEST_P(mqtt_client_test, flush_waits_for_delivery) {
  start_broker();
  auto client = mqtt::make_paho_client(options("butler-flush"));
  client->start();
  for (int i = 0; i < 100; ++i)
    client->publish(make_message("test/flush", std::to_string(i)));
  EXPECT_TRUE(client->flush(10s));
  auto st = client->stats();
  EXPECT_EQ(st.published, 100u);
  EXPECT_EQ(st.backlog, 0u);
}

TEST_P(mqtt_client_test, flush_times_out_without_a_broker) {
  auto client = mqtt::make_paho_client(options("butler-noflush"));
  client->start();
  ASSERT_EQ(client->publish(make_message("test/flush", "x")),
            mqtt::publish_result::accepted);
  EXPECT_FALSE(client->flush(100ms));
  EXPECT_EQ(client->stats().backlog, 1u);
}

TEST_P(mqtt_client_test, stop_interrupts_the_reconnect_back_off) {
  auto opts = options("butler-backoff");
  opts.reconnect_min = 30s;
  opts.reconnect_max = 30s;
  auto client = mqtt::make_paho_client(opts);
  client->start();
  ASSERT_TRUE(eventually([&] { return client->stats().connect_failures >= 1; }));
  auto started = std::chrono::steady_clock::now();
  client->stop();
  // Generous: the back-off alone would take 30 s.
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST_P(mqtt_client_test, repeated_connect_failures_are_reported_once) {
  auto opts = options("butler-calm");
  opts.reconnect_min = 5ms;
  opts.reconnect_max = 10ms;
  recorder rec;
  auto client = mqtt::make_paho_client(opts);
  client->bind(rec.callbacks());
  client->start();
  ASSERT_TRUE(eventually([&] { return client->stats().connect_failures >= 5; }));
  EXPECT_EQ(rec.count_events(false), 1u);
  EXPECT_EQ(rec.count_events(true), 0u);
}

TEST_P(mqtt_client_test, qos1_messages_count_once_acknowledged) {
  start_broker();
  recorder sub_rec;
  auto sub_opts = options("butler-qos1-sub");
  sub_opts.subscriptions = {"test/#"};
  sub_opts.subscription_qos = 1;
  auto sub = mqtt::make_paho_client(sub_opts);
  sub->bind(sub_rec.callbacks());
  sub->start();
  ASSERT_TRUE(eventually([&] { return sub_rec.count_events(true) == 1; }));
  auto pub = mqtt::make_paho_client(options("butler-qos1-pub"));
  pub->start();
  constexpr int n = 500;
  for (int i = 0; i < n; ++i)
    ASSERT_EQ(pub->publish(make_message("test/qos1", std::to_string(i), 1)),
              mqtt::publish_result::accepted);
  ASSERT_TRUE(pub->flush(20s)) << pub->stats().backlog;
  EXPECT_EQ(pub->stats().published, static_cast<std::uint64_t>(n));
  ASSERT_TRUE(eventually([&] { return sub_rec.message_count() >= n; }));
  auto got = sub_rec.messages();
  ASSERT_EQ(got.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    ASSERT_EQ(got[i].second, std::to_string(i)) << "at " << i;
}

TEST_P(mqtt_client_test, own_publishes_come_back_only_under_3_1_1) {
  start_broker();
  // Another subscriber shows when the broker has routed every message.
  recorder other_rec;
  auto other_opts = options("butler-other");
  other_opts.subscriptions = {"test/#"};
  auto other = mqtt::make_paho_client(other_opts);
  other->bind(other_rec.callbacks());
  other->start();
  ASSERT_TRUE(eventually([&] { return other_rec.count_events(true) == 1; }));
  recorder rec;
  auto opts = options("butler-self");
  opts.subscriptions = {"test/#"}; // no_local keeps its default
  auto client = mqtt::make_paho_client(opts);
  client->bind(rec.callbacks());
  client->start();
  ASSERT_TRUE(eventually([&] { return rec.count_events(true) == 1; }));
  constexpr int n = 100;
  for (int i = 0; i < n; ++i)
    ASSERT_EQ(client->publish(make_message("test/x", std::to_string(i))),
              mqtt::publish_result::accepted);
  ASSERT_TRUE(client->flush(10s));
  ASSERT_TRUE(eventually([&] { return other_rec.message_count() >= n; }))
    << other_rec.message_count();
  auto others = other_rec.messages();
  ASSERT_EQ(others.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i)
    ASSERT_EQ(others[i], std::make_pair(std::string{"test/x"},
                                        std::to_string(i)));
  // Another client's message still reaches the client. The broker routes it
  // after the client's own, so any echo of those is in before it.
  auto res = mosquitto_pub(broker_.port(), "test/y", {"-m", "from another"});
  ASSERT_EQ(res.exit_code, 0) << res.output;
  auto has_y = [&] {
    for (const auto& msg : rec.messages())
      if (msg.first == "test/y")
        return true;
    return false;
  };
  ASSERT_TRUE(eventually(has_y));
  message_list expected;
  if (GetParam() == mqtt::mqtt_protocol::v311) {
    // MQTT 3.1.1 has no No Local: the broker echoes all of them.
    for (int i = 0; i < n; ++i)
      expected.emplace_back("test/x", std::to_string(i));
  }
  expected.emplace_back("test/y", "from another");
  EXPECT_EQ(rec.messages(), expected);
  EXPECT_EQ(client->stats().received, expected.size());
  EXPECT_EQ(client->stats().protocol_version, version());
}

TEST_P(mqtt_client_test, status_message_reaches_other_clients) {
  start_broker();
  recorder rec;
  auto opts = options("butler-status-others");
  opts.subscriptions = {"qliksense/butler/#"}; // no_local keeps its default
  mqtt::message status;
  status.topic = "qliksense/butler/mqtt/status";
  status.payload = "Connected to MQTT broker " + endpoint();
  status.retain = true;
  opts.on_connect = status;
  auto client = mqtt::make_paho_client(opts);
  client->bind(rec.callbacks());
  client->start();
  ASSERT_TRUE(eventually([&] { return rec.count_events(true) == 1; }));
  // Whether mosquitto_sub comes before or after the status message reached
  // the broker, it gets it (live, or retained).
  auto sub = bt::run_command({"mosquitto_sub", "-h", "127.0.0.1", "-p",
                              std::to_string(broker_.port()), "-t",
                              status.topic, "-C", "1", "-v", "-W", "5"});
  EXPECT_EQ(sub.exit_code, 0) << sub.output;
  EXPECT_EQ(sub.output, status.topic + " " + status.payload + "\n");
  // The broker routes this after the status message.
  auto res = mosquitto_pub(broker_.port(), "qliksense/butler/marker",
                           {"-m", "marker"});
  ASSERT_EQ(res.exit_code, 0) << res.output;
  ASSERT_TRUE(eventually([&] {
    auto got = rec.messages();
    return !got.empty() && got.back().first == "qliksense/butler/marker";
  }));
  message_list expected;
  if (GetParam() == mqtt::mqtt_protocol::v311)
    expected.emplace_back(status.topic, status.payload);
  expected.emplace_back("qliksense/butler/marker", "marker");
  EXPECT_EQ(rec.messages(), expected);
}

INSTANTIATE_TEST_SUITE_P(protocols, mqtt_client_test,
                         ::testing::Values(mqtt::mqtt_protocol::v5,
                                           mqtt::mqtt_protocol::v311),
                         protocol_name{});

// -- choosing the protocol ------------------------------------------------------------

TEST(mqtt_client_protocol, automatic_keeps_mqtt_5_while_the_broker_is_down) {
  log_capture log;
  bt::mosquitto_broker broker; // not running yet
  auto client = mqtt::make_paho_client(
    local_options(broker.port(), "butler-auto"));
  client->start();
  // A refused TCP connect must not look like a broker that drops MQTT 5.
  ASSERT_TRUE(
    eventually([&] { return client->stats().connect_failures >= 3; }));
  EXPECT_EQ(client->stats().protocol_version, 0);
  ASSERT_TRUE(broker.start()) << broker.last_error();
  ASSERT_TRUE(eventually([&] { return client->stats().connected; }));
  EXPECT_EQ(client->stats().protocol_version, 5);
  client->stop();
  EXPECT_EQ(log.count(fallback_warning(broker.port())), 0u);
  EXPECT_EQ(log.count("does not speak MQTT 5"), 0u);
}

TEST(mqtt_client_protocol, v311_never_tries_mqtt_5) {
  log_capture log;
  fake_broker fake{v5_answer::connack_rc1};
  recorder rec;
  auto client = mqtt::make_paho_client(
    local_options(fake.port(), "butler-v311", mqtt::mqtt_protocol::v311));
  client->bind(rec.callbacks());
  client->start();
  ASSERT_TRUE(fake.accept_client(5s));
  EXPECT_EQ(fake.level(), 4);
  EXPECT_EQ(fake.refused(), 0);
  ASSERT_TRUE(eventually([&] { return rec.count_events(true) == 1; }));
  EXPECT_EQ(client->stats().protocol_version, 4);
  client->stop();
  EXPECT_EQ(log.count("does not speak MQTT 5"), 0u);
}

TEST(mqtt_client_protocol, a_broker_disconnect_names_its_reason) {
  // mosquitto 2.0.11 just closes the socket (on a session take-over, on
  // shutdown), so a fake MQTT 5 broker sends the DISCONNECT.
  fake_broker fake;
  recorder rec;
  auto client = mqtt::make_paho_client(
    local_options(fake.port(), "butler-told-off", mqtt::mqtt_protocol::v5));
  client->bind(rec.callbacks());
  client->start();
  ASSERT_TRUE(fake.accept_client(5s));
  EXPECT_EQ(fake.level(), 5);
  ASSERT_TRUE(eventually([&] { return rec.count_events(true) == 1; }));
  fake.send_disconnect(0x8B); // Server shutting down
  ASSERT_TRUE(eventually([&] { return rec.count_events(false) == 1; }));
  EXPECT_EQ(rec.events()[1].second,
            "lost the connection to 127.0.0.1:" + std::to_string(fake.port())
              + ": the broker sent DISCONNECT: Server shutting down (reason "
                "code 0x8B)");
  // The client connects again.
  ASSERT_TRUE(fake.accept_client(5s));
  ASSERT_TRUE(eventually([&] { return client->stats().connects == 2; }));
  EXPECT_EQ(client->stats().protocol_version, 5);
}

TEST(mqtt_client_protocol, stays_within_the_brokers_receive_maximum) {
  fake_broker fake{v5_answer::accept, 2};
  auto client = mqtt::make_paho_client(
    local_options(fake.port(), "butler-receive-max", mqtt::mqtt_protocol::v5));
  client->start();
  constexpr int n = 6;
  for (int i = 0; i < n; ++i)
    ASSERT_EQ(client->publish(make_message("test/qos1", std::to_string(i), 1)),
              mqtt::publish_result::accepted);
  ASSERT_TRUE(fake.accept_client(5s));
  for (int i = 0; i < 2; ++i) {
    auto packet = fake.next_publish(5s, false);
    ASSERT_TRUE(packet) << i;
    EXPECT_EQ(packet->payload, std::to_string(i));
  }
  // With two unacked the client must wait for an ack itself, where stop()
  // reaches it. Paho would block inside its publish call until the
  // connection ends, and stop() would wait for that.
  auto stopped = std::async(std::launch::async, [&] { client->stop(); });
  bool in_time = stopped.wait_for(5s) == std::future_status::ready;
  if (!in_time)
    fake.drop_client(); // lets Paho return, so that the test can end
  stopped.wait();
  EXPECT_TRUE(in_time);
  EXPECT_EQ(client->stats().backlog, static_cast<std::size_t>(n));
  EXPECT_EQ(client->stats().published, 0u);
}

/// Runs each test against a fake 3.1.1-only broker, once for each way such
/// a broker turns MQTT 5 away.
class mqtt_client_fallback : public ::testing::TestWithParam<v5_answer> {
};

TEST_P(mqtt_client_fallback, automatic_falls_back_to_3_1_1_and_stays_there) {
  log_capture log;
  fake_broker fake{GetParam()};
  recorder rec;
  auto client = mqtt::make_paho_client(
    local_options(fake.port(), "butler-fallback"));
  client->bind(rec.callbacks());
  client->start();
  ASSERT_TRUE(fake.accept_client(5s));
  int refusals = 1;
  if (GetParam() == v5_answer::close) {
    // Paho reports a closed connection like a refused TCP connect, so the
    // client asks with MQTT 5 once more (dropping the 3.1.1 connection)
    // before it gives MQTT 5 up: the broker might just have come up.
    ASSERT_TRUE(fake.accept_client(5s));
    refusals = 2;
  }
  EXPECT_EQ(fake.level(), 4);
  EXPECT_EQ(fake.refused(), refusals);
  ASSERT_TRUE(eventually([&] { return rec.count_events(true) == 1; }));
  auto st = client->stats();
  EXPECT_TRUE(st.connected);
  EXPECT_EQ(st.protocol_version, 4);
  EXPECT_EQ(st.connects, 1u);
  EXPECT_EQ(st.connect_failures, 0u); // one attempt, several CONNECTs
  EXPECT_EQ(rec.count_events(false), 0u);
  EXPECT_EQ(log.count(fallback_warning(fake.port())), 1u);
  // The 3.1.1 connection works.
  ASSERT_EQ(client->publish(make_message("test/fallback", "one", 1)),
            mqtt::publish_result::accepted);
  auto packet = fake.next_publish(5s, true);
  ASSERT_TRUE(packet);
  EXPECT_EQ(packet->topic, "test/fallback");
  EXPECT_EQ(packet->payload, "one");
  EXPECT_TRUE(client->flush(5s));
  // Reconnects stay on 3.1.1 without trying MQTT 5 again.
  fake.drop_client();
  ASSERT_TRUE(fake.accept_client(5s));
  EXPECT_EQ(fake.level(), 4);
  EXPECT_EQ(fake.refused(), refusals);
  ASSERT_TRUE(eventually([&] { return client->stats().connects == 2; }));
  EXPECT_EQ(client->stats().protocol_version, 4);
  client->stop();
  EXPECT_EQ(log.count(fallback_warning(fake.port())), 1u);
}

TEST_P(mqtt_client_fallback, v5_never_connects) {
  log_capture log;
  fake_broker fake{GetParam()};
  recorder rec;
  auto client = mqtt::make_paho_client(
    local_options(fake.port(), "butler-v5-only", mqtt::mqtt_protocol::v5));
  client->bind(rec.callbacks());
  client->start();
  ASSERT_TRUE(fake.refuse_clients(3, 10s));
  EXPECT_EQ(fake.level(), 0); // nothing was accepted
  ASSERT_TRUE(eventually([&] { return client->stats().connect_failures >= 2; }));
  // Connections waiting in the backlog are reset, so the next attempt
  // fails at once instead of waiting for a CONNACK.
  fake.stop_listening();
  client->stop();
  auto st = client->stats();
  EXPECT_EQ(st.connects, 0u);
  EXPECT_EQ(st.protocol_version, 0);
  EXPECT_EQ(rec.count_events(true), 0u);
  ASSERT_GE(rec.count_events(false), 1u);
  auto reason = rec.events()[0].second;
  EXPECT_EQ(reason.rfind("cannot connect to 127.0.0.1:"
                           + std::to_string(fake.port()) + ": ",
                         0),
            0u)
    << reason;
  // The same refusal every time: reported once.
  EXPECT_EQ(rec.count_events(false), 1u);
  if (GetParam() == v5_answer::connack_rc1) {
    EXPECT_NE(reason.find("connection refused: unacceptable protocol version "
                          "(rc 1): the broker does not speak MQTT 5"),
              std::string::npos)
      << reason;
  } else {
    // Paho reports a closed connection like any failed connect.
    EXPECT_NE(reason.find("(rc -1)"), std::string::npos) << reason;
  }
  EXPECT_EQ(log.count("does not speak MQTT 5; using 3.1.1"), 0u);
}

INSTANTIATE_TEST_SUITE_P(refusals, mqtt_client_fallback,
                         ::testing::Values(v5_answer::connack_rc1,
                                           v5_answer::close),
                         [](const auto& info) {
                           return to_string(info.param);
                         });

class mqtt_client_acks : public ::testing::TestWithParam<mqtt::mqtt_protocol> {
};

TEST_P(mqtt_client_acks, unacknowledged_messages_are_sent_again_after_reconnect) {
  fake_broker fake;
  auto opts = local_options(fake.port(), "butler-unacked", GetParam());
  auto client = mqtt::make_paho_client(opts);
  client->start();
  constexpr int n = 10;
  for (int i = 0; i < n; ++i)
    ASSERT_EQ(client->publish(make_message("test/qos1", std::to_string(i), 1)),
              mqtt::publish_result::accepted);
  ASSERT_TRUE(fake.accept_client(5s));
  EXPECT_EQ(fake.level(), version_of(GetParam()));
  for (int i = 0; i < n; ++i) {
    auto packet = fake.next_publish(5s, false);
    ASSERT_TRUE(packet) << "first connection, message " << i;
    EXPECT_EQ(packet->qos, 1);
    EXPECT_EQ(packet->payload, std::to_string(i));
  }
  // Sent but not acknowledged: still held, not published.
  auto st = client->stats();
  EXPECT_EQ(st.published, 0u);
  EXPECT_EQ(st.backlog, static_cast<std::size_t>(n));
  EXPECT_FALSE(client->flush(50ms));
  fake.drop_client();
  ASSERT_TRUE(fake.accept_client(5s));
  for (int i = 0; i < n; ++i) {
    auto packet = fake.next_publish(5s, true);
    ASSERT_TRUE(packet) << "second connection, message " << i;
    EXPECT_EQ(packet->topic, "test/qos1");
    EXPECT_EQ(packet->payload, std::to_string(i));
  }
  EXPECT_TRUE(client->flush(5s));
  st = client->stats();
  EXPECT_EQ(st.published, static_cast<std::uint64_t>(n));
  EXPECT_EQ(st.backlog, 0u);
  EXPECT_EQ(st.connects, 2u);
  EXPECT_EQ(st.protocol_version, version_of(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(protocols, mqtt_client_acks,
                         ::testing::Values(mqtt::mqtt_protocol::v5,
                                           mqtt::mqtt_protocol::v311),
                         protocol_name{});

// -- credentials and TLS ------------------------------------------------------------

class mqtt_client_auth : public ::testing::TestWithParam<mqtt::mqtt_protocol> {
};

TEST_P(mqtt_client_auth, password_is_checked) {
  bt::broker_options broker_opts;
  broker_opts.users = {{"butler", "s3cret"}};
  bt::mosquitto_broker broker{broker_opts};
  ASSERT_TRUE(broker.start()) << broker.last_error();
  auto opts = local_options(broker.port(), "butler-auth", GetParam());
  opts.username = "butler";
  opts.password = "s3cret";
  auto good = mqtt::make_paho_client(opts);
  good->start();
  EXPECT_TRUE(eventually([&] { return good->stats().connects == 1; }));
  for (auto [user, password] :
       {std::pair<std::string, std::string>{"butler", "wrong"},
        std::pair<std::string, std::string>{"", ""}}) {
    recorder rec;
    auto bad_opts = local_options(broker.port(), "butler-auth-bad", GetParam());
    bad_opts.username = user;
    bad_opts.password = password;
    auto bad = mqtt::make_paho_client(bad_opts);
    bad->bind(rec.callbacks());
    bad->start();
    ASSERT_TRUE(eventually([&] { return bad->stats().connect_failures >= 2; }))
      << user;
    EXPECT_EQ(bad->stats().connects, 0u) << user;
    ASSERT_EQ(rec.count_events(false), 1u) << user;
    EXPECT_NE(rec.events()[0].second.find("refused"), std::string::npos)
      << rec.events()[0].second;
    if (GetParam() == mqtt::mqtt_protocol::v5) {
      // An MQTT 5 refusal names its reason code.
      EXPECT_NE(rec.events()[0].second.find("(reason code 0x8"),
                std::string::npos)
        << rec.events()[0].second;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(protocols, mqtt_client_auth,
                         ::testing::Values(mqtt::mqtt_protocol::v5,
                                           mqtt::mqtt_protocol::v311),
                         protocol_name{});

class mqtt_client_tls_test
  : public ::testing::TestWithParam<mqtt::mqtt_protocol> {
protected:
  void SetUp() override {
    dir_ = bt::make_temp_dir("butler-mqtt-certs-");
    certs_ = bt::make_test_certs(dir_);
  }

  void TearDown() override {
    bt::remove_tree(dir_);
  }

  bt::broker_options tls_broker(bool require_certificate = false) {
    bt::broker_options opts;
    opts.ca_file = certs_.ca_cert;
    opts.cert_file = certs_.server_cert;
    opts.key_file = certs_.server_key;
    opts.require_certificate = require_certificate;
    return opts;
  }

  mqtt::client_options tls_options(uint16_t port, const std::string& id) {
    auto opts = local_options(port, id, GetParam());
    opts.tls = true;
    opts.ca_file = certs_.ca_cert;
    return opts;
  }

  std::string dir_;
  bt::cert_files certs_;
};

TEST_P(mqtt_client_tls_test, round_trips_a_message) {
  bt::mosquitto_broker broker{tls_broker()};
  ASSERT_TRUE(broker.start()) << broker.last_error();
  recorder rec;
  auto opts = tls_options(broker.port(), "butler-tls");
  opts.subscriptions = {"test/#"};
  receive_own_publishes(opts);
  auto client = mqtt::make_paho_client(opts);
  client->bind(rec.callbacks());
  client->start();
  ASSERT_TRUE(eventually([&] { return rec.count_events(true) == 1; }))
    << (rec.events().empty() ? "" : rec.events()[0].second);
  ASSERT_EQ(client->publish(make_message("test/tls", "over TLS", 1)),
            mqtt::publish_result::accepted);
  ASSERT_TRUE(eventually([&] { return rec.message_count() == 1; }));
  EXPECT_EQ(rec.messages()[0], std::make_pair(std::string{"test/tls"},
                                              std::string{"over TLS"}));
}

TEST_P(mqtt_client_tls_test, a_server_from_another_ca_is_refused) {
  bt::mosquitto_broker broker{tls_broker()};
  ASSERT_TRUE(broker.start()) << broker.last_error();
  auto other_dir = bt::make_temp_dir("butler-mqtt-other-ca-");
  auto other = bt::make_test_certs(other_dir);
  recorder rec;
  auto opts = tls_options(broker.port(), "butler-tls-wrong-ca");
  opts.ca_file = other.ca_cert;
  auto client = mqtt::make_paho_client(opts);
  client->bind(rec.callbacks());
  client->start();
  bool failed = eventually([&] { return client->stats().connect_failures >= 1; });
  client->stop();
  bt::remove_tree(other_dir);
  ASSERT_TRUE(failed);
  EXPECT_EQ(client->stats().connects, 0u);
  ASSERT_EQ(rec.count_events(false), 1u);
  EXPECT_EQ(rec.count_events(true), 0u);
  EXPECT_NE(rec.events()[0].second.find("certificate verify failed"),
            std::string::npos)
    << rec.events()[0].second;
}

TEST_P(mqtt_client_tls_test, client_certificate_when_the_broker_requires_one) {
  bt::mosquitto_broker broker{tls_broker(true)};
  ASSERT_TRUE(broker.start()) << broker.last_error();
  auto with_cert = tls_options(broker.port(), "butler-tls-cert");
  with_cert.cert_file = certs_.client_cert;
  with_cert.key_file = certs_.client_key;
  auto good = mqtt::make_paho_client(with_cert);
  good->start();
  EXPECT_TRUE(eventually([&] { return good->stats().connects == 1; }));
  auto bad = mqtt::make_paho_client(tls_options(broker.port(), "butler-tls-no-cert"));
  bad->start();
  ASSERT_TRUE(eventually([&] { return bad->stats().connect_failures >= 1; }));
  EXPECT_EQ(bad->stats().connects, 0u);
}

INSTANTIATE_TEST_SUITE_P(protocols, mqtt_client_tls_test,
                         ::testing::Values(mqtt::mqtt_protocol::v5,
                                           mqtt::mqtt_protocol::v311),
                         protocol_name{});
