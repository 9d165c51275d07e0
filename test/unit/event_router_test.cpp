#include "actors/event_router.hpp"

#include "actors/session_tracker.hpp"
#include "test/fakes/fake_mqtt_link.hpp"
#include "test/support/caf_fixture.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <memory>
#include <string>
#include <vector>

using namespace butler;
using k = butler::log_event_kind;

namespace {

/// What a recording sink received (test-only shared record).
struct sink_log {
  std::vector<std::uint64_t> ids;
  std::size_t batches = 0;
};

event_sink_actor::behavior_type recording_sink(event_sink_actor::pointer,
                                               std::shared_ptr<sink_log> log) {
  return {[=](const event_batch& batch) {
    ++log->batches;
    for (auto& ev : *batch.events)
      log->ids.push_back(ev.id);
  }};
}

log_event make_event(std::uint64_t id, log_event_kind kind) {
  log_event ev;
  ev.id = id;
  ev.kind = kind;
  ev.host = "sense-node-1";
  ev.user_directory = "CORP";
  ev.user_id = "user" + std::to_string(id);
  return ev;
}

/// A batch whose permit counts down `released` when the last holder lets go.
event_batch make_batch(std::vector<log_event> events,
                       std::shared_ptr<int> released = nullptr) {
  std::shared_ptr<const void> permit;
  if (released)
    permit = std::shared_ptr<const void>{nullptr,
                                         [released](const void*) {
                                           ++*released;
                                         }};
  return event_batch{
    std::make_shared<const std::vector<log_event>>(std::move(events)),
    std::move(permit)};
}

struct event_router_test : test::caf_fixture {
  butler_config cfg;
  event_router_actor router;

  void start() {
    router = sys.spawn(event_router, make_routes(cfg));
    consume_messages();
  }

  std::shared_ptr<sink_log> attach(const std::string& name) {
    auto log = std::make_shared<sink_log>();
    auto sink = sys.spawn(recording_sink, log);
    caf::anon_send(router, peer_up{name, caf::actor_cast<caf::actor>(sink)});
    consume_messages();
    sinks.push_back(sink);
    return log;
  }

  void route(std::vector<log_event> events,
             std::shared_ptr<int> released = nullptr) {
    caf::anon_send(router, make_batch(std::move(events), released));
    consume_messages();
  }

  std::vector<event_sink_actor> sinks;
};

bool has_route(const std::vector<event_route>& routes, const std::string& sink,
               log_event_kind kind) {
  for (auto& r : routes)
    if (r.sink == sink)
      return r.kinds[static_cast<std::size_t>(kind)];
  return false;
}

} // namespace

TEST(event_routes, follow_the_config) {
  butler_config cfg;
  auto plain = make_routes(cfg);
  // Without MQTT or Slack only the session tracker takes sessions.
  EXPECT_FALSE(has_route(plain, "mqtt-link", k::reload_failed));
  EXPECT_FALSE(has_route(plain, "slack-egress", k::reload_failed));
  EXPECT_TRUE(has_route(plain, "session-tracker", k::session_start));
  EXPECT_FALSE(has_route(plain, "session-tracker", k::connection_open));
  cfg.mqtt.enable = true;
  cfg.slack.enable = true;
  cfg.slack.reload_task_failure.enable = true;
  cfg.slack.seed_webhook_url = "http://x";
  cfg.slack.login_notification_channel = "#l";
  auto all = make_routes(cfg);
  for (auto kind : {k::reload_failed, k::reload_aborted, k::task_failure_legacy,
                    k::session_start, k::connection_close})
    EXPECT_TRUE(has_route(all, "mqtt-link", kind)) << to_string(kind);
  EXPECT_FALSE(has_route(all, "mqtt-link", k::reload_success));
  EXPECT_TRUE(has_route(all, "slack-egress", k::reload_failed));
  EXPECT_FALSE(has_route(all, "slack-egress", k::reload_aborted));
  EXPECT_FALSE(has_route(all, "slack-egress", k::task_failure_legacy));
  EXPECT_TRUE(has_route(all, "slack-egress", k::connection_open));
}

TEST_F(event_router_test, hands_each_sink_only_batches_it_wants) {
  cfg.mqtt.enable = true;
  start();
  auto mqtt = attach("mqtt-link");
  auto tracker = attach("session-tracker");
  route({make_event(1, k::reload_failed)});
  route({make_event(2, k::session_start), make_event(3, k::reload_aborted)});
  EXPECT_EQ(mqtt->ids, (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(tracker->batches, 1u) << "only the batch with a session event";
  auto st = ask<counters_status>(router, atom::status_v);
  EXPECT_EQ(st.get("routed_mqtt-link"), 3u);
  EXPECT_EQ(st.get("routed_session-tracker"), 1u);
}

TEST_F(event_router_test, counts_events_no_sink_takes) {
  start();
  route({make_event(1, k::reload_success), make_event(2, k::distribute)});
  auto st = ask<counters_status>(router, atom::status_v);
  EXPECT_EQ(st.get("unrouted_reload_success"), 1u);
  EXPECT_EQ(st.get("unrouted_distribute"), 1u);
}

TEST_F(event_router_test, takes_the_routing_table_of_a_reloaded_config) {
  cfg.mqtt.enable = true;
  start();
  auto mqtt = attach("mqtt-link");
  auto tracker = attach("session-tracker");
  auto slack = attach("slack-egress"); // running, but routed nothing yet
  route({make_event(1, k::reload_failed)});
  EXPECT_TRUE(slack->ids.empty());
  // Slack notifications for failed reloads turned on, MQTT turned off.
  auto reloaded = std::make_shared<butler_config>(cfg);
  reloaded->mqtt.enable = false;
  reloaded->slack.enable = true;
  reloaded->slack.reload_task_failure.enable = true;
  caf::anon_send(router, config_ptr{reloaded});
  consume_messages();
  route({make_event(2, k::reload_failed), make_event(3, k::session_start)});
  EXPECT_EQ(slack->ids, (std::vector<std::uint64_t>{2, 3}))
    << "the batch goes to Slack, which takes what it wants";
  EXPECT_EQ(mqtt->ids, (std::vector<std::uint64_t>{1}))
    << "mqtt-link takes nothing more";
  EXPECT_EQ(tracker->batches, 1u) << "the session tracker keeps its route";
  auto st = ask<counters_status>(router, atom::status_v);
  EXPECT_EQ(st.get("routed_mqtt-link"), 1u) << "counters carry over";
  EXPECT_EQ(st.get("routed_slack-egress"), 1u);
}

TEST_F(event_router_test, a_reloaded_route_to_a_sink_not_running_is_left_out) {
  start();
  auto tracker = attach("session-tracker");
  auto reloaded = std::make_shared<butler_config>(cfg);
  reloaded->slack.enable = true;
  reloaded->slack.reload_task_failure.enable = true;
  caf::anon_send(router, config_ptr{reloaded});
  consume_messages();
  route({make_event(1, k::reload_failed)});
  auto st = ask<counters_status>(router, atom::status_v);
  EXPECT_EQ(st.get("unrouted_reload_failed"), 1u)
    << "no slack-egress runs: nothing is held for it";
  EXPECT_EQ(st.get("held_slack-egress"), 0u);
}

TEST_F(event_router_test, holds_batches_for_a_sink_until_it_is_back) {
  cfg.mqtt.enable = true;
  start();
  auto released = std::make_shared<int>(0);
  // No mqtt-link known yet: held, and its permit is kept.
  route({make_event(1, k::reload_failed)}, released);
  EXPECT_EQ(*released, 0);
  EXPECT_EQ(ask<counters_status>(router, atom::status_v).get("held_mqtt-link"),
            1u);
  EXPECT_FALSE(ask<bool>(router, atom::drain_v, caf::timespan{0}));
  auto mqtt = attach("mqtt-link");
  EXPECT_EQ(mqtt->ids, (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(*released, 1) << "the permit returns once the sink is done";
  // The sink fails: held again, then handed to its successor.
  caf::anon_send_exit(sinks.back(), caf::exit_reason::kill);
  sinks.pop_back();
  consume_messages();
  route({make_event(2, k::reload_failed)});
  auto successor = attach("mqtt-link");
  EXPECT_EQ(successor->ids, (std::vector<std::uint64_t>{2}));
  EXPECT_TRUE(ask<bool>(router, atom::drain_v, caf::timespan{0}));
}

// -- session tracker ----------------------------------------------------------

namespace {

struct session_tracker_test : test::caf_fixture {
  std::shared_ptr<test::fake_link_script> link_script
    = std::make_shared<test::fake_link_script>();
  std::vector<mqtt_publish_request>& publishes = link_script->notes;
  session_tracker_actor tracker;

  session_tracker_test() {
    mqtt_config cfg;
    cfg.enable = true;
    tracker = sys.spawn(session_tracker, cfg);
    auto link = sys.spawn(test::fake_mqtt_link, link_script);
    caf::anon_send(tracker,
                   peer_up{"mqtt-link", caf::actor_cast<caf::actor>(link)});
    consume_messages();
  }

  void apply(std::vector<log_event> events) {
    caf::anon_send(tracker, make_batch(std::move(events)));
    consume_messages();
  }

  std::vector<std::string> users() {
    return ask<active_users>(tracker, atom::users_v).users;
  }

  log_event user_event(log_event_kind kind, std::string dir, std::string id) {
    auto ev = make_event(0, kind);
    ev.user_directory = std::move(dir);
    ev.user_id = std::move(id);
    return ev;
  }
};

} // namespace

TEST_F(session_tracker_test, sessions_make_users_active_connections_do_not) {
  apply({user_event(k::session_start, "CORP", "anna"),
         user_event(k::connection_open, "CORP", "bo")});
  EXPECT_EQ(users(), (std::vector<std::string>{"anna"}));
  ASSERT_EQ(publishes.size(), 2u);
  EXPECT_EQ(publishes[0].topic, "qliksense/users/active/count");
  EXPECT_EQ(publishes[0].payload, "1");
  EXPECT_EQ(publishes[1].topic, "qliksense/users/active/usernames");
  EXPECT_EQ(publishes[1].payload, R"(["anna"])");
}

TEST_F(session_tracker_test, a_user_stays_active_until_the_last_session_stops) {
  apply({user_event(k::session_start, "CORP", "anna")});
  apply({user_event(k::session_start, "CORP", "anna")});
  EXPECT_EQ(publishes.size(), 2u) << "no change, no publish";
  apply({user_event(k::session_stop, "CORP", "anna")});
  EXPECT_EQ(users(), (std::vector<std::string>{"anna"}));
  apply({user_event(k::session_stop, "CORP", "anna")});
  EXPECT_TRUE(users().empty());
  ASSERT_EQ(publishes.size(), 4u);
  EXPECT_EQ(publishes[2].payload, "0");
  EXPECT_EQ(publishes[3].payload, "[]");
}

TEST_F(session_tracker_test, a_stop_without_a_start_changes_nothing) {
  apply({user_event(k::session_stop, "CORP", "ghost")});
  EXPECT_TRUE(users().empty());
  EXPECT_TRUE(publishes.empty());
  auto st = ask<counters_status>(tracker, atom::status_v);
  EXPECT_EQ(st.get("unmatched_stops"), 1u);
}

TEST_F(session_tracker_test, every_change_in_a_batch_is_published) {
  apply({user_event(k::session_start, "CORP", "anna"),
         user_event(k::session_start, "CORP", "bo"),
         user_event(k::session_start, "CORP", "bo"),
         user_event(k::session_start, "EXT", "anna")});
  EXPECT_EQ(users(), (std::vector<std::string>{"anna", "bo", "anna"}));
  // Three changes (bo's second session is none), two messages each.
  ASSERT_EQ(publishes.size(), 6u);
  EXPECT_EQ(publishes[0].payload, "1");
  EXPECT_EQ(publishes[2].payload, "2");
  EXPECT_EQ(publishes[3].payload, R"(["anna","bo"])");
  EXPECT_EQ(publishes[4].payload, "3");
}
