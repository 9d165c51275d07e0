#include "actors/mqtt_link.hpp"

#include "messages/error.hpp"
#include "test/fakes/fake_mqtt_client.hpp"
#include "test/support/caf_fixture.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <memory>
#include <string>
#include <vector>

using namespace butler;
using namespace std::chrono_literals;

namespace {

/// Records what an inbound handler received (test-only shared record).
struct inbox {
  std::vector<mqtt_inbound> messages;
};

mqtt_inbound_handler_actor::behavior_type
recorder(mqtt_inbound_handler_actor::pointer, std::shared_ptr<inbox> box) {
  return {[=](mqtt_inbound& msg) { box->messages.push_back(msg); }};
}

struct mqtt_link_test : test::caf_fixture {
  std::shared_ptr<test::fake_mqtt_client> client
    = std::make_shared<test::fake_mqtt_client>();
  mqtt_link_actor link;

  mqtt_link_test() {
    mqtt_config cfg;
    cfg.qos = 1;
    link = sys.spawn(mqtt_link, std::shared_ptr<mqtt::client>{client}, cfg);
    consume_messages();
  }

  caf::error publish_error(mqtt_publish_request req) {
    return ask_error<caf::ok_atom>(link, std::move(req));
  }

  mqtt_link_status status() {
    return ask<mqtt_link_status>(link, atom::status_v);
  }

  /// Spawns a recording handler and registers it for `filter`.
  std::shared_ptr<inbox> subscribe(const std::string& filter) {
    auto box = std::make_shared<inbox>();
    auto handler = sys.spawn(recorder, box);
    caf::anon_send(link, atom::subscribe_v, filter, handler);
    consume_messages();
    return box;
  }
};

} // namespace

TEST_F(mqtt_link_test, binds_to_the_client_on_start) {
  EXPECT_TRUE(client->bound());
  EXPECT_EQ(client->binds, 1);
}

TEST_F(mqtt_link_test, publishes_with_the_default_or_given_qos) {
  EXPECT_EQ(ask<caf::ok_atom>(link, mqtt_publish_request{"a/b", "one", -1,
                                                         false, "r1"}),
            caf::ok_atom::value);
  EXPECT_EQ(ask<caf::ok_atom>(link, mqtt_publish_request{"a/c", "two", 0, true,
                                                         "r2"}),
            caf::ok_atom::value);
  ASSERT_EQ(client->published.size(), 2u);
  EXPECT_EQ(client->published[0].topic, "a/b");
  EXPECT_EQ(client->published[0].payload, "one");
  EXPECT_EQ(client->published[0].qos, 1);
  EXPECT_FALSE(client->published[0].retain);
  EXPECT_EQ(client->published[1].qos, 0);
  EXPECT_TRUE(client->published[1].retain);
}

TEST_F(mqtt_link_test, refuses_with_backlog_full_when_the_client_is_full) {
  client->held = client->limit;
  auto err = publish_error(mqtt_publish_request{"a/b", "x", -1, false, "r1"});
  EXPECT_EQ(err, caf::make_error(ec::backlog_full));
  EXPECT_NE(error_text(err).find("backlog is full"), std::string::npos)
    << error_text(err);
  EXPECT_TRUE(client->published.empty());
  EXPECT_EQ(status().rejected_full, 1u);
}

TEST_F(mqtt_link_test, refuses_with_unavailable_when_the_client_stopped) {
  client->stop();
  auto err = publish_error(mqtt_publish_request{"a/b", "x", -1, false, "r1"});
  EXPECT_EQ(err, caf::make_error(ec::unavailable));
}

TEST_F(mqtt_link_test, dispatches_inbound_messages_by_topic_filter) {
  auto tasks = subscribe("qliksense/start_task");
  auto users = subscribe("qliksense/users/+");
  ASSERT_TRUE(client->deliver("qliksense/start_task", "e3b27f50"));
  ASSERT_TRUE(client->deliver("qliksense/users/anna", "hi"));
  ASSERT_TRUE(client->deliver("qliksense/other", "nobody"));
  consume_messages();
  ASSERT_EQ(tasks->messages.size(), 1u);
  EXPECT_EQ(tasks->messages[0].topic, "qliksense/start_task");
  EXPECT_EQ(tasks->messages[0].payload, "e3b27f50");
  ASSERT_EQ(users->messages.size(), 1u);
  EXPECT_EQ(users->messages[0].topic, "qliksense/users/anna");
  auto st = status();
  EXPECT_EQ(st.inbound_dispatched, 2u);
  EXPECT_EQ(st.inbound_ignored, 1u);
}

TEST_F(mqtt_link_test, a_new_handler_for_a_filter_replaces_the_old_one) {
  auto first = subscribe("qliksense/start_task");
  auto second = subscribe("qliksense/start_task");
  client->deliver("qliksense/start_task", "x");
  consume_messages();
  EXPECT_TRUE(first->messages.empty());
  EXPECT_EQ(second->messages.size(), 1u);
}

TEST_F(mqtt_link_test, forgets_a_handler_that_went_down) {
  auto box = std::make_shared<inbox>();
  auto handler = sys.spawn(recorder, box);
  caf::anon_send(link, atom::subscribe_v, std::string{"qliksense/#"}, handler);
  consume_messages();
  caf::anon_send_exit(handler, caf::exit_reason::kill);
  consume_messages();
  client->deliver("qliksense/x", "y");
  consume_messages();
  EXPECT_TRUE(box->messages.empty());
  EXPECT_EQ(status().inbound_ignored, 1u);
}

TEST_F(mqtt_link_test, ignores_a_handler_with_an_invalid_filter) {
  auto box = subscribe("qliksense/#/bad");
  client->deliver("qliksense/#/bad", "x");
  consume_messages();
  EXPECT_TRUE(box->messages.empty());
  EXPECT_EQ(status().inbound_ignored, 1u);
}

TEST_F(mqtt_link_test, tracks_the_connection_state) {
  client->report(true, "connected to 127.0.0.1:1883 as butler-x");
  consume_messages();
  auto up = status();
  EXPECT_TRUE(up.connected);
  EXPECT_EQ(up.detail, "connected to 127.0.0.1:1883 as butler-x");
  client->report(false, "connection lost");
  consume_messages();
  auto down = status();
  EXPECT_FALSE(down.connected);
  EXPECT_EQ(down.detail, "connection lost");
}

TEST_F(mqtt_link_test, drain_answers_at_once_when_nothing_is_held) {
  EXPECT_TRUE(ask<bool>(link, atom::drain_v, caf::timespan{1s}));
}

TEST_F(mqtt_link_test, drain_waits_for_the_backlog_and_gives_up_at_the_deadline) {
  client->held = 5;
  auto reply = self->request(link, caf::infinite, atom::drain_v,
                             caf::timespan{100ms});
  consume_messages();
  // Still waiting: the backlog has not moved.
  advance_time(50ms);
  consume_messages();
  EXPECT_TRUE(self->mailbox().empty());
  advance_time(60ms);
  consume_messages();
  reply.receive([](bool clean) { EXPECT_FALSE(clean); },
                [this](caf::error& err) { ADD_FAILURE() << sys.render(err); });
}

TEST_F(mqtt_link_test, drain_succeeds_once_the_backlog_empties) {
  client->held = 5;
  auto reply = self->request(link, caf::infinite, atom::drain_v,
                             caf::timespan{1s});
  consume_messages();
  advance_time(20ms);
  consume_messages();
  EXPECT_TRUE(self->mailbox().empty());
  client->held = 0;
  advance_time(20ms);
  consume_messages();
  reply.receive([](bool clean) { EXPECT_TRUE(clean); },
                [this](caf::error& err) { ADD_FAILURE() << sys.render(err); });
}

TEST_F(mqtt_link_test, unbinds_from_the_client_when_it_goes_down) {
  caf::anon_send_exit(link, caf::exit_reason::kill);
  consume_messages();
  EXPECT_FALSE(client->bound());
  // The client (and what it holds) outlives the actor.
  EXPECT_FALSE(client->stopped);
}
