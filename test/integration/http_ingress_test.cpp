// http_ingress in a real actor system with real HTTP on loopback, in front of
// a scripted stand-in for mqtt_link: how replies, errors, a dead peer and a
// peer that never answers turn into HTTP.

#include "actors/actor_system_setup.hpp"
#include "actors/http_ingress.hpp"
#include "test/fakes/fake_mqtt_link.hpp"
#include "test/support/eventually.hpp"
#include "test/support/free_port.hpp"
#include "test/support/http_client.hpp"

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <thread>

using namespace butler;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

using test::eventually;

class http_ingress_test : public ::testing::Test {
protected:
  void start(bool mqtt_enabled = true, bool introduce_link = true) {
    port_ = test::free_tcp_port();
    http_ingress_options opts;
    opts.rest.port = port_;
    opts.rest.request_timeout = 1s;
    opts.endpoints.flags = {{"butlerping", true},
                            {"mqttPublishMessage", true}};
    opts.mqtt_enabled = mqtt_enabled;
    ingress_ = sys_.spawn(http_ingress, opts);
    link_ = sys_.spawn(test::fake_mqtt_link, script_);
    if (introduce_link)
      caf::anon_send(ingress_, peer_up{"mqtt-link",
                                       caf::actor_cast<caf::actor>(link_)});
    ASSERT_TRUE(eventually([&] { return ping() == 200; }));
  }

  void TearDown() override {
    caf::anon_send_exit(ingress_, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(link_, caf::exit_reason::user_shutdown);
  }

  unsigned ping() {
    return test::http_request(port_, "GET", "/v4/butlerping", {}, 1s).status;
  }

  test::http_result publish() {
    return test::http_request(port_, "PUT", "/v4/mqttpublishmessage",
                              R"({"topic":"a/b","message":"x"})", 10s);
  }

  static std::string message_of(const test::http_result& res) {
    auto body = json::parse(res.body, nullptr, false);
    return body.is_object() && body.contains("message")
             ? body["message"].get<std::string>()
             : "<no message in " + res.body + ">";
  }

  butler_config cfg_;
  butler_system_config caf_cfg_{cfg_};
  caf::actor_system sys_{caf_cfg_};
  std::shared_ptr<test::fake_link_script> script_
    = std::make_shared<test::fake_link_script>();
  uint16_t port_ = 0;
  http_ingress_actor ingress_;
  mqtt_link_actor link_;
};

} // namespace

TEST_F(http_ingress_test, a_reply_becomes_201) {
  start();
  auto res = publish();
  EXPECT_EQ(res.status, 201u) << res.body;
  EXPECT_EQ(json::parse(res.body), (json{{"topic", "a/b"}, {"message", "x"}}));
  EXPECT_EQ(script_->publishes, 1);
}

TEST_F(http_ingress_test, a_peer_that_never_answers_gives_504_and_others_still_work) {
  start();
  script_->mode = test::fake_link_script::stall;
  std::optional<test::http_result> stalled;
  std::thread caller{[&] { stalled = publish(); }};
  // While that call waits, the service answers everything else.
  EXPECT_TRUE(eventually([&] { return script_->publishes == 1; }));
  EXPECT_EQ(ping(), 200u);
  caller.join();
  ASSERT_TRUE(stalled);
  EXPECT_EQ(stalled->status, 504u) << stalled->body;
  EXPECT_EQ(message_of(*stalled), "mqtt-link did not answer within 1000 ms");
  // The peer recovers: the next call is answered normally.
  script_->mode = test::fake_link_script::accept;
  EXPECT_EQ(publish().status, 201u);
}

TEST_F(http_ingress_test, butler_errors_map_through_the_status_table) {
  start();
  script_->mode = test::fake_link_script::fail;
  script_->code = ec::backlog_full;
  auto full = publish();
  EXPECT_EQ(full.status, 503u);
  EXPECT_EQ(message_of(full), "scripted failure");
  script_->code = ec::invalid_argument;
  EXPECT_EQ(publish().status, 400u);
  script_->code = ec::internal;
  EXPECT_EQ(publish().status, 500u);
  EXPECT_EQ(ping(), 200u);
}

TEST_F(http_ingress_test, a_dead_peer_gives_503_restarting) {
  start();
  caf::anon_send_exit(link_, caf::exit_reason::kill);
  test::http_result res;
  ASSERT_TRUE(eventually([&] {
    res = publish();
    return res.status == 503;
  }));
  EXPECT_EQ(message_of(res), "mqtt-link is restarting; try again");
}

TEST_F(http_ingress_test, an_unknown_peer_gives_503_not_running) {
  start(true, false);
  auto res = publish();
  EXPECT_EQ(res.status, 503u);
  EXPECT_EQ(message_of(res), "mqtt-link is not running");
}

TEST_F(http_ingress_test, mqtt_disabled_in_config_gives_503_naming_the_key) {
  start(false);
  auto res = publish();
  EXPECT_EQ(res.status, 503u);
  EXPECT_EQ(message_of(res),
            "MQTT is disabled in the config (Butler.mqttConfig.enable)");
  EXPECT_EQ(script_->publishes, 0);
}

TEST_F(http_ingress_test, drain_waits_for_a_call_in_flight) {
  start();
  script_->mode = test::fake_link_script::stall;
  std::optional<test::http_result> stalled;
  std::thread caller{[&] { stalled = publish(); }};
  ASSERT_TRUE(eventually([&] { return script_->publishes == 1; }));
  caf::scoped_actor self{sys_};
  bool drained = true;
  self->request(ingress_, 5s, atom::drain_v, caf::timespan{100ms})
    .receive([&](bool clean) { drained = clean; },
             [](caf::error& err) { ADD_FAILURE() << to_string(err); });
  EXPECT_FALSE(drained) << "a call was still in flight";
  // The stalled call still ends (504), and then nothing is in flight.
  caller.join();
  ASSERT_TRUE(stalled);
  EXPECT_EQ(stalled->status, 504u);
}
