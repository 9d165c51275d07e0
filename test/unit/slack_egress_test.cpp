#include "actors/slack_egress.hpp"

#include "messages/error.hpp"
#include "test/fakes/fake_http_client.hpp"
#include "test/support/caf_fixture.hpp"

#include <caf/send.hpp>

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

using namespace butler;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

log_event failed_reload(std::uint64_t id, std::string task_id,
                        std::string task_name = "Reload of Sales") {
  log_event ev;
  ev.id = id;
  ev.kind = log_event_kind::reload_failed;
  ev.host = "sense-node-1";
  ev.task_name = std::move(task_name);
  ev.task_id = std::move(task_id);
  ev.app_name = "Sales dashboard";
  return ev;
}

event_batch batch_of(std::vector<log_event> events) {
  return event_batch{
    std::make_shared<const std::vector<log_event>>(std::move(events)),
    nullptr};
}

struct slack_egress_test : test::caf_fixture {
  std::shared_ptr<test::fake_http_client> http
    = std::make_shared<test::fake_http_client>();
  slack_config cfg;
  slack_egress_actor slack;

  slack_egress_test() {
    cfg.enable = true;
    cfg.reload_task_failure.enable = true;
    cfg.reload_task_failure.webhook_url = "http://127.0.0.1:1/hook";
    cfg.reload_task_failure.channel = "#failures";
    cfg.reload_task_failure.rate_limit = 300s;
    cfg.rest_webhook_url = "http://127.0.0.1:1/rest";
    cfg.retry_min = 1s;
    cfg.retry_max = 8s;
    cfg.max_attempts = 4;
  }

  void start() {
    slack = sys.spawn(slack_egress, cfg,
                      std::shared_ptr<http::client>{http});
    consume_messages();
  }

  void send_events(std::vector<log_event> events) {
    caf::anon_send(slack, batch_of(std::move(events)));
    consume_messages();
  }

  counters_status status() {
    return ask<counters_status>(slack, atom::status_v);
  }

  /// Lets the actor handle the outcome of an answered request.
  void settle() {
    consume_messages();
  }
};

} // namespace

TEST_F(slack_egress_test, posts_a_failed_reload_with_the_basic_template) {
  start();
  send_events({failed_reload(7, "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e")});
  ASSERT_EQ(http->requests.size(), 1u);
  auto& req = http->requests.front().req;
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.url, "http://127.0.0.1:1/hook");
  EXPECT_TRUE(req.at_most_once) << "a kept-alive connection could re-send it";
  EXPECT_EQ(json::parse(req.body),
            (json{{"channel", "#failures"},
                  {"text", "Qlik Sense reload failed: \"Reload of Sales\""},
                  {"username", "Qlik Sense"},
                  {"icon_emoji", ":ghost:"}}));
  ASSERT_TRUE(http->answer(200));
  settle();
  auto st = status();
  EXPECT_EQ(st.get("posted"), 1u);
  EXPECT_EQ(st.get("held"), 0u);
}

TEST_F(slack_egress_test, takes_the_settings_of_a_reloaded_config) {
  start();
  auto reloaded = std::make_shared<butler_config>();
  reloaded->slack = cfg;
  reloaded->slack.reload_task_failure.channel = "#reloads";
  reloaded->slack.reload_task_failure.basic_msg_template
    = "Reload failed: {{taskName}}";
  reloaded->slack.reload_task_failure.webhook_url = "http://127.0.0.1:1/new";
  reloaded->slack.reload_task_aborted.enable = true;
  reloaded->slack.reload_task_aborted.webhook_url = "http://127.0.0.1:1/ab";
  caf::anon_send(slack, config_ptr{reloaded});
  consume_messages();
  send_events({failed_reload(7, "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e")});
  ASSERT_EQ(http->requests.size(), 1u);
  auto& req = http->requests.front().req;
  EXPECT_EQ(req.url, "http://127.0.0.1:1/new");
  auto body = json::parse(req.body);
  EXPECT_EQ(body["channel"], "#reloads");
  EXPECT_EQ(body["text"], "Reload failed: Reload of Sales");
  ASSERT_TRUE(http->answer(200));
  settle();
  // The aborted channel, off at start, is on now.
  auto aborted = failed_reload(8, "0a1b2c3d-1111-2222-3333-444455556666");
  aborted.kind = log_event_kind::reload_aborted;
  send_events({aborted});
  ASSERT_EQ(http->requests.size(), 1u);
  EXPECT_EQ(http->requests.front().req.url, "http://127.0.0.1:1/ab");
}

TEST_F(slack_egress_test, ignores_kinds_whose_channel_is_off) {
  start();
  auto aborted = failed_reload(1, "a");
  aborted.kind = log_event_kind::reload_aborted;
  auto session = failed_reload(2, "b");
  session.kind = log_event_kind::session_start;
  send_events({aborted, session});
  EXPECT_TRUE(http->requests.empty());
}

TEST_F(slack_egress_test, retries_a_5xx_after_backoff_and_delivers_once) {
  start();
  send_events({failed_reload(1, "task-1")});
  ASSERT_TRUE(http->answer(500, {}, "server_error"));
  settle();
  EXPECT_TRUE(http->requests.empty()) << "no retry before the back-off";
  advance_time(999ms);
  consume_messages();
  EXPECT_TRUE(http->requests.empty());
  advance_time(1ms);
  consume_messages();
  ASSERT_EQ(http->requests.size(), 1u);
  ASSERT_TRUE(http->answer(200));
  settle();
  auto st = status();
  EXPECT_EQ(st.get("posted"), 1u);
  EXPECT_EQ(st.get("retried"), 1u);
  EXPECT_EQ(http->submitted, 2u);
}

TEST_F(slack_egress_test, backoff_doubles_and_gives_up_after_max_attempts) {
  start();
  send_events({failed_reload(1, "task-1")});
  std::vector<caf::timespan> waits;
  for (int attempt = 1; attempt < cfg.max_attempts; ++attempt) {
    ASSERT_TRUE(http->answer(503));
    settle();
    waits.push_back(next_timeout());
    advance_time(next_timeout());
    consume_messages();
  }
  ASSERT_TRUE(http->answer(503));
  settle();
  EXPECT_EQ(waits, (std::vector<caf::timespan>{1s, 2s, 4s}));
  EXPECT_TRUE(http->requests.empty());
  auto st = status();
  EXPECT_EQ(st.get("failed"), 1u);
  EXPECT_EQ(st.get("posted"), 0u);
  EXPECT_EQ(st.get("held"), 0u);
}

TEST_F(slack_egress_test, honours_retry_after_for_the_whole_webhook) {
  start();
  send_events({failed_reload(1, "task-1")});
  ASSERT_TRUE(http->answer(429, {{"retry-after", "5"}}, "rate_limited"));
  settle();
  // Another notification for the same webhook waits too.
  send_events({failed_reload(2, "task-2")});
  EXPECT_TRUE(http->requests.empty());
  advance_time(4900ms);
  consume_messages();
  EXPECT_TRUE(http->requests.empty()) << "Retry-After (5 s) beats retryMin";
  advance_time(100ms);
  consume_messages();
  EXPECT_EQ(http->requests.size(), 2u);
}

TEST_F(slack_egress_test, does_not_retry_other_4xx) {
  start();
  send_events({failed_reload(1, "task-1")});
  ASSERT_TRUE(http->answer(404, {}, "no_service"));
  settle();
  advance_time(10s);
  consume_messages();
  EXPECT_TRUE(http->requests.empty());
  EXPECT_EQ(status().get("failed"), 1u);
}

TEST_F(slack_egress_test, retries_a_request_that_never_left) {
  start();
  send_events({failed_reload(1, "task-1")});
  ASSERT_TRUE(http->fail(false, "Connection refused"));
  settle();
  advance_time(1s);
  consume_messages();
  ASSERT_EQ(http->requests.size(), 1u);
  ASSERT_TRUE(http->answer(200));
  settle();
  EXPECT_EQ(status().get("posted"), 1u);
}

TEST_F(slack_egress_test, never_retries_a_request_that_may_have_arrived) {
  start();
  send_events({failed_reload(1, "task-1")});
  ASSERT_TRUE(http->fail(true, "Operation timed out"));
  settle();
  advance_time(60s);
  consume_messages();
  EXPECT_TRUE(http->requests.empty());
  auto st = status();
  EXPECT_EQ(st.get("unknown_outcome"), 1u);
  EXPECT_EQ(http->submitted, 1u);
}

TEST_F(slack_egress_test, rate_limits_per_task) {
  start();
  send_events({failed_reload(1, "task-1"), failed_reload(2, "task-1"),
               failed_reload(3, "task-2")});
  EXPECT_EQ(http->requests.size(), 2u);
  EXPECT_EQ(status().get("rate_limited"), 1u);
}

TEST_F(slack_egress_test, sheds_when_the_backlog_is_full) {
  cfg.backlog_size = 2;
  cfg.reload_task_failure.rate_limit = 1ms;
  start();
  send_events({failed_reload(1, "a"), failed_reload(2, "b"),
               failed_reload(3, "c")});
  auto st = status();
  EXPECT_EQ(st.get("shed"), 1u);
  EXPECT_EQ(st.get("held"), 2u);
}

TEST_F(slack_egress_test, runs_at_most_four_posts_at_once) {
  cfg.reload_task_failure.rate_limit = 1ms;
  start();
  std::vector<log_event> events;
  for (std::uint64_t i = 0; i < 10; ++i)
    events.push_back(failed_reload(i, "task-" + std::to_string(i)));
  send_events(events);
  EXPECT_EQ(http->requests.size(), slack_max_concurrent);
  ASSERT_TRUE(http->answer(200));
  settle();
  EXPECT_EQ(http->requests.size(), slack_max_concurrent);
  EXPECT_EQ(http->submitted, slack_max_concurrent + 1);
}

TEST_F(slack_egress_test, a_rest_post_is_answered_after_slack_accepts_it) {
  start();
  auto reply = self->request(slack, caf::infinite,
                             slack_post_request{"#general", "hello & <bye>",
                                                "Butler", ":thumbsup:", "r1"});
  consume_messages();
  ASSERT_EQ(http->requests.size(), 1u);
  auto& req = http->requests.front().req;
  EXPECT_EQ(req.url, "http://127.0.0.1:1/rest");
  EXPECT_EQ(json::parse(req.body), (json{{"channel", "#general"},
                                         {"text", "hello & <bye>"},
                                         {"username", "Butler"},
                                         {"icon_emoji", ":thumbsup:"}}));
  EXPECT_TRUE(self->mailbox().empty()) << "no answer before Slack's";
  ASSERT_TRUE(http->answer(200));
  settle();
  bool ok = false;
  reply.receive([&](caf::ok_atom) { ok = true; },
                [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
  EXPECT_TRUE(ok);
}

TEST_F(slack_egress_test, a_rest_post_refused_by_slack_gets_an_error) {
  start();
  auto reply = self->request(slack, caf::infinite,
                             slack_post_request{"#x", "y", "z", "", "r1"});
  consume_messages();
  ASSERT_TRUE(http->answer(404, {}, "channel_not_found"));
  settle();
  caf::error err;
  reply.receive([](caf::ok_atom) { ADD_FAILURE() << "expected an error"; },
                [&](caf::error& e) { err = std::move(e); });
  EXPECT_EQ(err, caf::make_error(ec::internal));
  EXPECT_NE(error_text(err).find("channel_not_found"), std::string::npos)
    << error_text(err);
}

TEST_F(slack_egress_test, a_rest_post_without_a_webhook_is_unavailable) {
  cfg.rest_webhook_url.clear();
  start();
  auto err = ask_error<caf::ok_atom>(
    slack, slack_post_request{"#x", "y", "z", "", "r1"});
  EXPECT_EQ(err, caf::make_error(ec::unavailable));
  EXPECT_TRUE(http->requests.empty());
}

TEST_F(slack_egress_test, drain_gives_waiting_posts_a_last_attempt) {
  start();
  send_events({failed_reload(1, "task-1")});
  ASSERT_TRUE(http->answer(500));
  settle();
  EXPECT_TRUE(http->requests.empty());
  auto reply = self->request(slack, caf::infinite, atom::drain_v,
                             caf::timespan{2s});
  consume_messages();
  ASSERT_EQ(http->requests.size(), 1u) << "retried at once on drain";
  ASSERT_TRUE(http->answer(200));
  settle();
  advance_time(10ms);
  consume_messages();
  bool clean = false;
  reply.receive([&](bool x) { clean = x; },
                [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
  EXPECT_TRUE(clean);
}

TEST_F(slack_egress_test, seed_channels_post_audit_events_and_old_failures) {
  cfg = slack_config{};
  cfg.seed_webhook_url = "http://127.0.0.1:1/seed";
  cfg.login_notification_channel = "#logins";
  cfg.task_failure_channel = "#failures";
  start();
  log_event audit;
  audit.id = 1;
  audit.kind = log_event_kind::session_start;
  audit.host = "sense-node-1";
  audit.user_directory = "CORP";
  audit.user_id = "anna";
  log_event legacy;
  legacy.id = 2;
  legacy.kind = log_event_kind::task_failure_legacy;
  legacy.host = "sense-node-2";
  legacy.task_name = "Reload of Sales";
  legacy.app_name = "Sales";
  send_events({audit, legacy});
  ASSERT_EQ(http->requests.size(), 2u);
  EXPECT_EQ(json::parse(http->requests[0].req.body),
            (json{{"channel", "#logins"},
                  {"text", "Start session for user CORP/anna"},
                  {"username", "sense-node-1"}}));
  EXPECT_EQ(json::parse(http->requests[1].req.body),
            (json{{"channel", "#failures"},
                  {"text",
                   "Failed task: \"Reload of Sales\", linked to app \"Sales\"."},
                  {"username", "sense-node-2"}}));
}
