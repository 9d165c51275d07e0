// The real actor system, a real mosquitto and real HTTP on loopback: one
// actor fails, the service keeps answering, and the supervisor brings the
// actor back.

#include "actors/actor_common.hpp"
#include "actors/actor_system_setup.hpp"
#include "actors/supervisor.hpp"
#include "messages/actors.hpp"
#include "net/mqtt_client.hpp"
#include "test/support/eventually.hpp"
#include "test/support/free_port.hpp"
#include "test/support/http_client.hpp"
#include "test/support/mosquitto_broker.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace butler;
using namespace std::chrono_literals;

namespace {

using test::eventually;

/// Collects what a real MQTT client receives on butlertest/#.
class subscriber {
public:
  explicit subscriber(uint16_t port) {
    mqtt::client_options opts;
    opts.port = port;
    opts.client_id = "supervision-test-subscriber";
    opts.subscriptions = {"butlertest/#"};
    opts.reconnect_min = 50ms;
    client_ = mqtt::make_paho_client(opts);
    client_->bind({[this](std::string topic, std::string payload) {
                     std::lock_guard<std::mutex> guard{mtx_};
                     received_.push_back(topic + " " + payload);
                   },
                   {}});
    client_->start();
  }

  bool connected() const {
    return client_->stats().connected;
  }

  bool has(const std::string& line) const {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& x : received_)
      if (x == line)
        return true;
    return false;
  }

private:
  std::unique_ptr<mqtt::client> client_;
  mutable std::mutex mtx_;
  std::vector<std::string> received_;
};

class supervision : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_TRUE(broker_.start()) << broker_.last_error();
    rest_port_ = test::free_tcp_port();
    cfg_.rest.port = rest_port_;
    cfg_.endpoints.flags = {{"butlerping", true}, {"mqttPublishMessage", true}};
    cfg_.mqtt.enable = true;
    cfg_.mqtt.broker_port = broker_.port();
    cfg_.mqtt.reconnect_min = 50ms;
    cfg_.supervisor.restart_min = restart_min_;
    cfg_.supervisor.restart_max = std::max<std::chrono::milliseconds>(
      restart_min_, 1s);
    caf_cfg_.emplace(cfg_);
    sys_.emplace(*caf_cfg_);
    sup_ = start_service(*sys_, cfg_);
    sub_.emplace(broker_.port());
    ASSERT_TRUE(eventually([&] { return ping() == 200; }))
      << "butler never answered ping";
    ASSERT_TRUE(eventually([&] { return link_status().connected; }));
    ASSERT_TRUE(eventually([&] { return sub_->connected(); }));
  }

  void TearDown() override {
    if (sys_) {
      caf::scoped_actor self{*sys_};
      self->request(sup_, 20s, atom::shutdown_v)
        .receive([](caf::ok_atom) {},
                 [](caf::error& err) {
                   ADD_FAILURE() << "shutdown failed: " << to_string(err);
                 });
    }
    sub_.reset();
    sys_.reset();
  }

  unsigned ping() {
    return test::http_request(rest_port_, "GET", "/v4/butlerping", {}, 1s)
      .status;
  }

  test::http_result publish(const std::string& topic, const std::string& msg) {
    return test::http_request(rest_port_, "PUT", "/v4/mqttpublishmessage",
                              R"({"topic":")" + topic + R"(","message":")"
                                + msg + R"("})");
  }

  caf::actor child(const std::string& name) {
    caf::scoped_actor self{*sys_};
    caf::actor result;
    self->request(sup_, 5s, caf::get_atom::value, name)
      .receive([&](caf::actor& x) { result = std::move(x); },
               [](caf::error& err) { ADD_FAILURE() << to_string(err); });
    return result;
  }

  child_status status_of(const std::string& name) {
    caf::scoped_actor self{*sys_};
    child_status result;
    self->request(sup_, 5s, atom::status_v)
      .receive(
        [&](supervisor_status& st) {
          for (auto& c : st.children)
            if (c.name == name)
              result = c;
        },
        [](caf::error& err) { ADD_FAILURE() << to_string(err); });
    return result;
  }

  mqtt_link_status link_status() {
    mqtt_link_status result;
    auto link = caf::actor_cast<mqtt_link_actor>(child("mqtt-link"));
    if (!link)
      return result;
    caf::scoped_actor self{*sys_};
    self->request(link, 5s, atom::status_v)
      .receive([&](mqtt_link_status& st) { result = std::move(st); },
               [](caf::error&) {});
    return result;
  }

  std::chrono::milliseconds restart_min_ = 100ms;
  test::mosquitto_broker broker_;
  uint16_t rest_port_ = 0;
  butler_config cfg_;
  std::optional<butler_system_config> caf_cfg_;
  std::optional<caf::actor_system> sys_;
  supervisor_actor sup_;
  std::optional<subscriber> sub_;
};

} // namespace

TEST_F(supervision, a_failed_mqtt_link_comes_back_while_rest_keeps_answering) {
  ASSERT_EQ(publish("butlertest/before", "one").status, 201u);
  ASSERT_TRUE(eventually([&] { return sub_->has("butlertest/before one"); }));
  auto old_link = child("mqtt-link");
  ASSERT_TRUE(old_link);
  caf::anon_send_exit(old_link, caf::exit_reason::kill);
  // The REST API answers throughout, whatever the link's state.
  EXPECT_EQ(ping(), 200u);
  ASSERT_TRUE(eventually([&] {
    auto st = status_of("mqtt-link");
    return st.running && st.restarts == 1;
  })) << "mqtt-link was not restarted";
  EXPECT_NE(status_of("mqtt-link").last_failure, "");
  auto new_link = child("mqtt-link");
  EXPECT_NE(new_link, old_link);
  EXPECT_EQ(ping(), 200u);
  // http-ingress learnt the new handle: publishing works again.
  ASSERT_TRUE(eventually([&] {
    return publish("butlertest/after", "two").status == 201;
  }));
  EXPECT_TRUE(eventually([&] { return sub_->has("butlertest/after two"); }));
  // The MQTT client (connection and backlog) outlived the actor.
  auto st = link_status();
  EXPECT_TRUE(st.connected);
  EXPECT_EQ(st.connects, 1u);
  // The other actor was left alone.
  EXPECT_EQ(status_of("http-ingress").restarts, 0u);
}

TEST_F(supervision, a_failed_http_ingress_comes_back_on_the_same_port) {
  auto link = child("mqtt-link");
  caf::anon_send_exit(child("http-ingress"), caf::exit_reason::kill);
  ASSERT_TRUE(eventually([&] {
    auto st = status_of("http-ingress");
    return st.running && st.restarts == 1;
  })) << "http-ingress was not restarted";
  ASSERT_TRUE(eventually([&] { return ping() == 200; }))
    << "the REST port did not come back";
  // The restarted ingress knows the running mqtt-link.
  ASSERT_EQ(publish("butlertest/ingress", "back").status, 201u);
  EXPECT_TRUE(eventually([&] { return sub_->has("butlertest/ingress back"); }));
  EXPECT_EQ(child("mqtt-link"), link);
  EXPECT_EQ(status_of("mqtt-link").restarts, 0u);
}

/// Restarts wait 3 s, which leaves a wide window to call a dead peer.
class slow_restart : public supervision {
protected:
  slow_restart() {
    restart_min_ = 3s;
  }
};

TEST_F(slow_restart, a_request_to_a_restarting_peer_gets_503_not_silence) {
  caf::anon_send_exit(child("mqtt-link"), caf::exit_reason::kill);
  ASSERT_TRUE(eventually([&] { return !status_of("mqtt-link").running; }));
  auto res = publish("butlertest/gap", "x");
  EXPECT_EQ(res.status, 503u) << res.body;
  EXPECT_NE(res.body.find("restarting"), std::string::npos) << res.body;
  EXPECT_EQ(ping(), 200u);
  EXPECT_TRUE(eventually([&] { return status_of("mqtt-link").running; }));
}

// -- a stuck actor, on real threads ------------------------------------------------

namespace {

/// Blocks its worker thread for `block` on caf::delete_atom, like an actor
/// caught in a blocking call.
caf::behavior blocking_child(caf::event_based_actor* self,
                             std::chrono::milliseconds block,
                             std::shared_ptr<std::atomic<int>> starts) {
  install_common_handlers(self);
  ++*starts;
  return {
    [=](caf::delete_atom) { std::this_thread::sleep_for(block); },
    [=](peer_up&) {},
    [=](atom::drain, caf::timespan) { return true; },
  };
}

} // namespace

TEST(stuck_actor, is_restarted_when_it_stops_answering_heartbeats) {
  butler_config cfg;
  cfg.runtime.worker_threads = 2;
  cfg.supervisor.heartbeat_interval = 100ms;
  cfg.supervisor.heartbeat_timeout = 300ms;
  cfg.supervisor.restart_min = 50ms;
  butler_system_config caf_cfg{cfg};
  caf::actor_system sys{caf_cfg};
  auto starts = std::make_shared<std::atomic<int>>(0);
  std::vector<child_spec> specs{
    {"blocker", [starts](caf::actor_system& s, const butler_config&) {
       return s.spawn(blocking_child, std::chrono::milliseconds{1500},
                      starts);
     }}};
  auto sup = sys.spawn(supervisor, std::make_shared<const butler_config>(cfg),
                       std::move(specs), service_notifier{});
  caf::scoped_actor self{sys};
  auto status = [&] {
    supervisor_status result;
    self->request(sup, 5s, atom::status_v)
      .receive([&](supervisor_status& st) { result = std::move(st); },
               [](caf::error& err) { ADD_FAILURE() << to_string(err); });
    return result.children.at(0);
  };
  auto first = [&] {
    caf::actor result;
    self->request(sup, 5s, caf::get_atom::value, std::string{"blocker"})
      .receive([&](caf::actor& x) { result = std::move(x); },
               [](caf::error& err) { ADD_FAILURE() << to_string(err); });
    return result;
  }();
  ASSERT_TRUE(first);
  ASSERT_EQ(status().restarts, 0u);
  // Block it well past the heartbeat timeout.
  caf::anon_send(first, caf::delete_atom::value);
  ASSERT_TRUE(test::eventually([&] { return status().restarts == 1; }))
    << "the stuck actor was never counted as failed";
  auto st = status();
  EXPECT_NE(st.last_failure.find("stuck: no heartbeat reply within 300 ms"),
            std::string::npos)
    << st.last_failure;
  EXPECT_TRUE(test::eventually([&] { return status().running; }));
  EXPECT_TRUE(test::eventually([&] { return starts->load() == 2; }))
    << "a second instance took over";
  self->request(sup, 10s, atom::shutdown_v)
    .receive([](caf::ok_atom) {},
             [](caf::error& err) { ADD_FAILURE() << to_string(err); });
}
