#include "actors/qrs_client.hpp"

#include "actors/mqtt_task_starter.hpp"
#include "messages/error.hpp"
#include "test/fakes/fake_http_client.hpp"
#include "test/fakes/fake_mqtt_link.hpp"
#include "test/support/caf_fixture.hpp"

#include <caf/send.hpp>

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

using namespace butler;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const std::string sales = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e";
const std::string finance = "0a1b2c3d-1111-2222-3333-444455556666";

std::string task_json(const std::string& id, const std::string& name,
                      const std::string& tag = "") {
  json task{{"id", id}, {"name", name}, {"tags", json::array()},
            {"customProperties", json::array()}};
  if (!tag.empty())
    task["tags"].push_back(json{{"id", "t1"}, {"name", tag}});
  return task.dump();
}

struct qrs_client_test : test::caf_fixture {
  std::shared_ptr<test::fake_http_client> http
    = std::make_shared<test::fake_http_client>();
  qrs::qrs_options opts;
  qrs::start_filter filter;
  qrs_client_actor qrs;

  ~qrs_client_test() override {
    // A call the test left unanswered keeps the client and its caller
    // alive; stop them as the supervisor would.
    http->requests.clear();
    if (qrs)
      caf::anon_send_exit(qrs, caf::exit_reason::user_shutdown);
  }

  qrs_client_test() {
    opts.host = "sense1";
    opts.headers = {{"X-Qlik-User", "UserDirectory=Internal;UserId=sa_repository"}};
  }

  void start() {
    qrs = sys.spawn(qrs_client, opts, filter,
                    std::shared_ptr<http::client>{http});
    consume_messages();
  }

  /// The path and query of the oldest request waiting for an answer.
  std::string oldest_target() {
    auto& url = http->requests.front().req.url;
    return url.substr(url.find("/qrs/"));
  }
};

} // namespace

TEST_F(qrs_client_test, starts_tasks_after_looking_them_up) {
  start();
  task_start_request req;
  req.task_ids = {sales, finance};
  req.event_id = "r1";
  auto reply = self->request(qrs, caf::infinite, req);
  consume_messages();
  ASSERT_EQ(http->requests.size(), 1u);
  EXPECT_EQ(http->requests.front().req.method, "GET");
  EXPECT_NE(oldest_target().find("/qrs/task/full?xrfkey="), std::string::npos);
  ASSERT_TRUE(http->answer(200, {}, "[" + task_json(sales, "Reload of Sales") + "]"));
  consume_messages();
  ASSERT_EQ(http->requests.size(), 1u);
  EXPECT_EQ(http->requests.front().req.method, "POST");
  EXPECT_NE(oldest_target().find("/qrs/task/start/many"), std::string::npos);
  EXPECT_EQ(json::parse(http->requests.front().req.body), json({sales}));
  EXPECT_TRUE(http->requests.front().req.at_most_once);
  EXPECT_TRUE(self->mailbox().empty()) << "no reply before QRS started them";
  ASSERT_TRUE(http->answer(204, {}, ""));
  consume_messages();
  reply.receive(
    [&](task_start_result& result) {
      ASSERT_EQ(result.started.size(), 1u);
      EXPECT_EQ(result.started[0].id, sales);
      EXPECT_EQ(result.started[0].name, "Reload of Sales");
      EXPECT_EQ(result.invalid, (std::vector<std::string>{finance}));
    },
    [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
  EXPECT_EQ(ask<counters_status>(qrs, atom::status_v).get("tasks_started"), 1u);
}

TEST_F(qrs_client_test, applies_the_filter_unless_told_not_to) {
  filter.enable = true;
  filter.tags = {"startTask1"};
  start();
  task_start_request req;
  req.task_ids = {sales};
  auto denied = self->request(qrs, caf::infinite, req);
  consume_messages();
  ASSERT_TRUE(http->answer(200, {}, "[" + task_json(sales, "Reload of Sales") + "]"));
  consume_messages();
  EXPECT_TRUE(http->requests.empty()) << "a denied task is not started";
  denied.receive(
    [&](task_start_result& result) {
      EXPECT_TRUE(result.started.empty());
      EXPECT_EQ(result.denied, (std::vector<std::string>{sales}));
    },
    [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
  req.apply_filter = false;
  auto allowed = self->request(qrs, caf::infinite, req);
  consume_messages();
  ASSERT_TRUE(http->answer(200, {}, "[" + task_json(sales, "Reload of Sales") + "]"));
  consume_messages();
  ASSERT_EQ(http->requests.size(), 1u) << "started without the filter";
  ASSERT_TRUE(http->answer(204, {}, ""));
  consume_messages();
  allowed.receive([&](task_start_result& result) {
    EXPECT_EQ(result.started.size(), 1u);
  },
                  [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
}

TEST_F(qrs_client_test, takes_the_start_filter_of_a_reloaded_config) {
  start();
  auto reloaded = std::make_shared<butler_config>();
  reloaded->start_task_filter.enable = true;
  reloaded->start_task_filter.tags = {"startTask1"};
  caf::anon_send(qrs, config_ptr{reloaded});
  consume_messages();
  task_start_request req;
  req.task_ids = {sales};
  auto denied = self->request(qrs, caf::infinite, req);
  consume_messages();
  ASSERT_TRUE(http->answer(200, {}, "[" + task_json(sales, "Reload") + "]"));
  consume_messages();
  EXPECT_TRUE(http->requests.empty()) << "the reloaded filter denies it";
  denied.receive(
    [&](task_start_result& result) {
      EXPECT_EQ(result.denied, (std::vector<std::string>{sales}));
    },
    [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
}

TEST_F(qrs_client_test, maps_qrs_failures_to_butler_errors) {
  start();
  struct failure {
    long status;
    bool sent;
    ec expected;
  };
  for (auto [status, sent, expected] :
       {failure{500, true, ec::bad_gateway}, failure{403, true, ec::bad_gateway},
        failure{0, false, ec::bad_gateway}, failure{0, true, ec::timeout}}) {
    auto reply = self->request(qrs, caf::infinite, atom::ping_v);
    consume_messages();
    if (status > 0)
      ASSERT_TRUE(http->answer(status, {}, "QRS says no"));
    else
      ASSERT_TRUE(http->fail(sent, sent ? "Operation timed out"
                                        : "Connection refused"));
    consume_messages();
    caf::error err;
    reply.receive([](std::string&) { ADD_FAILURE() << "expected an error"; },
                  [&](caf::error& e) { err = std::move(e); });
    EXPECT_EQ(err, caf::make_error(expected)) << status;
    EXPECT_NE(error_text(err).find("sense1:4242"), std::string::npos)
      << error_text(err);
  }
}

TEST_F(qrs_client_test, a_full_http_queue_is_service_unavailable) {
  start();
  http->refuse = true;
  auto reply = self->request(qrs, caf::infinite, atom::ping_v);
  consume_messages();
  caf::error err;
  reply.receive([](std::string&) { ADD_FAILURE() << "expected an error"; },
                [&](caf::error& e) { err = std::move(e); });
  EXPECT_EQ(err, caf::make_error(ec::unavailable));
  EXPECT_NE(error_text(err).find("too many calls waiting for QRS at "
                                 "sense1:4242"),
            std::string::npos)
    << error_text(err);
  EXPECT_EQ(http->submitted, 0u);
}

TEST_F(qrs_client_test, ping_answers_the_build_version) {
  start();
  auto reply = self->request(qrs, caf::infinite, atom::ping_v);
  consume_messages();
  EXPECT_NE(oldest_target().find("/qrs/about"), std::string::npos);
  ASSERT_TRUE(http->answer(200, {}, R"({"buildVersion":"30.4.2.0"})"));
  consume_messages();
  reply.receive([](std::string& v) { EXPECT_EQ(v, "30.4.2.0"); },
                [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
}

TEST_F(qrs_client_test, drain_waits_for_calls_in_flight) {
  start();
  auto ping = self->request(qrs, caf::infinite, atom::ping_v);
  consume_messages();
  auto drain = self->request(qrs, caf::infinite, atom::drain_v,
                             caf::timespan{1s});
  consume_messages();
  advance_time(20ms);
  consume_messages();
  ASSERT_TRUE(http->answer(200, {}, R"({"buildVersion":"1"})"));
  consume_messages();
  advance_time(20ms);
  consume_messages();
  drain.receive([](bool clean) { EXPECT_TRUE(clean); },
                [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
  ping.receive([](std::string&) {}, [](caf::error&) {});
}

// -- MQTT task starts -------------------------------------------------------------

namespace {

/// The starter in front of the real qrs_client, whose QRS calls the test
/// answers through the fake HTTP client.
struct mqtt_task_starter_test : qrs_client_test {
  std::shared_ptr<test::fake_link_script> link_script
    = std::make_shared<test::fake_link_script>();
  task_starter_options starter_opts;
  mqtt_task_starter_actor starter;

  ~mqtt_task_starter_test() override {
    if (starter)
      caf::anon_send_exit(starter, caf::exit_reason::user_shutdown);
  }

  void start_starter() {
    start();
    starter = sys.spawn(mqtt_task_starter, starter_opts);
    caf::anon_send(starter,
                   peer_up{"qrs-client", caf::actor_cast<caf::actor>(qrs)});
    consume_messages();
  }

  void deliver(std::string payload) {
    caf::anon_send(starter, mqtt_inbound{"qliksense/start_task",
                                         std::move(payload)});
    consume_messages();
  }

  /// Answers the lookup of task `id` with that task (or none when `known`
  /// is false) and, for a known task, the start that follows.
  void answer_start(const std::string& id, bool known = true) {
    auto lookup = [&](const http::outbound_request& req) {
      return req.url.find("id%20eq%20" + id) != std::string::npos;
    };
    ASSERT_TRUE(http->answer_first(lookup, 200,
                                   known ? "[" + task_json(id, "Reload") + "]"
                                         : "[]"))
      << "no lookup of " << id << " waits";
    consume_messages();
    if (!known)
      return;
    auto start = [&](const http::outbound_request& req) {
      return req.url.find("/qrs/task/start/many") != std::string::npos
             && req.body.find(id) != std::string::npos;
    };
    ASSERT_TRUE(http->answer_first(start, 204, ""))
      << "no start of " << id << " waits";
    consume_messages();
  }

  counters_status status() {
    return ask<counters_status>(starter, atom::status_v);
  }
};

/// Returns a task id that differs from the others by `n`.
std::string task_id(int n) {
  auto id = sales;
  id.replace(id.size() - 2, 2, (n < 10 ? "0" : "") + std::to_string(n));
  return id;
}

} // namespace

TEST_F(mqtt_task_starter_test, starts_a_valid_task_id_through_qrs) {
  start_starter();
  deliver("  " + sales + "\r\n");
  ASSERT_EQ(http->requests.size(), 1u);
  answer_start(sales);
  auto st = status();
  EXPECT_EQ(st.get("started"), 1u);
  EXPECT_EQ(st.get("in_flight"), 0u);
}

TEST_F(mqtt_task_starter_test, counts_what_it_cannot_start) {
  start_starter();
  deliver("not a task id");
  deliver("");
  EXPECT_TRUE(http->requests.empty());
  deliver(finance);
  answer_start(finance, false);
  deliver(sales);
  ASSERT_TRUE(http->answer(500, {}, "boom"));
  consume_messages();
  auto st = status();
  EXPECT_EQ(st.get("received"), 4u);
  EXPECT_EQ(st.get("invalid"), 2u);
  EXPECT_EQ(st.get("unknown"), 1u);
  EXPECT_EQ(st.get("failed"), 1u);
  EXPECT_EQ(st.get("started"), 0u);
}

TEST_F(mqtt_task_starter_test, applies_the_start_filter) {
  filter.enable = true;
  filter.task_ids = {finance};
  start_starter();
  deliver(sales);
  ASSERT_TRUE(http->answer(200, {}, "[" + task_json(sales, "Reload") + "]"));
  consume_messages();
  EXPECT_TRUE(http->requests.empty()) << "a denied task is not started";
  EXPECT_EQ(status().get("denied"), 1u);
}

TEST_F(mqtt_task_starter_test, a_burst_waits_in_order_behind_a_few_starts) {
  starter_opts.max_in_flight = 2;
  starter_opts.max_waiting = 3;
  start_starter();
  for (int i = 1; i <= 6; ++i)
    deliver(task_id(i));
  EXPECT_EQ(http->requests.size(), 2u) << "two starts in flight";
  auto st = status();
  EXPECT_EQ(st.get("in_flight"), 2u);
  EXPECT_EQ(st.get("waiting"), 3u);
  EXPECT_EQ(st.get("dropped"), 1u) << "the sixth found the backlog full";
  // Each finished start lets the oldest waiting one go, in arrival order.
  for (int i = 1; i <= 5; ++i)
    answer_start(task_id(i));
  EXPECT_TRUE(http->requests.empty());
  st = status();
  EXPECT_EQ(st.get("started"), 5u);
  EXPECT_EQ(st.get("in_flight"), 0u);
  EXPECT_EQ(st.get("waiting"), 0u);
}

TEST_F(mqtt_task_starter_test, a_lost_answer_frees_its_slot) {
  starter_opts.max_in_flight = 1;
  starter_opts.reply_timeout = std::chrono::seconds{5};
  start_starter();
  deliver(task_id(1));
  deliver(task_id(2));
  EXPECT_EQ(status().get("waiting"), 1u);
  // qrs-client goes away with the first start in hand; the starter learns
  // the restarted one's handle.
  auto old_qrs = qrs;
  start();
  caf::anon_send(starter,
                 peer_up{"qrs-client", caf::actor_cast<caf::actor>(qrs)});
  caf::anon_send_exit(old_qrs, caf::exit_reason::kill);
  consume_messages();
  http->requests.clear();
  advance_time(std::chrono::seconds{5});
  consume_messages();
  auto st = status();
  EXPECT_EQ(st.get("failed"), 1u);
  EXPECT_EQ(st.get("in_flight"), 1u) << "the second start went out";
  EXPECT_EQ(st.get("waiting"), 0u);
  answer_start(task_id(2));
  EXPECT_EQ(status().get("started"), 1u);
}

TEST_F(mqtt_task_starter_test, drain_waits_for_the_backlog) {
  starter_opts.max_in_flight = 1;
  start_starter();
  deliver(task_id(1));
  deliver(task_id(2));
  auto drain = self->request(starter, caf::infinite, atom::drain_v,
                             caf::timespan{10s});
  consume_messages();
  answer_start(task_id(1));
  advance_time(20ms);
  consume_messages();
  EXPECT_TRUE(self->mailbox().empty()) << "one start still waits";
  answer_start(task_id(2));
  advance_time(20ms);
  consume_messages();
  drain.receive([](bool clean) { EXPECT_TRUE(clean); },
                [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
}

TEST_F(mqtt_task_starter_test, drain_gives_up_at_the_end_of_the_grace) {
  start_starter();
  deliver(task_id(1));
  auto drain = self->request(starter, caf::infinite, atom::drain_v,
                             caf::timespan{50ms});
  consume_messages();
  for (int i = 0; i < 10; ++i) {
    advance_time(10ms);
    consume_messages();
  }
  drain.receive([](bool clean) { EXPECT_FALSE(clean); },
                [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
}

TEST_F(mqtt_task_starter_test, registers_its_topic_with_the_mqtt_link) {
  start_starter();
  auto link = sys.spawn(test::fake_mqtt_link, link_script);
  caf::anon_send(starter, peer_up{"mqtt-link", caf::actor_cast<caf::actor>(link)});
  consume_messages();
  EXPECT_EQ(link_script->subscriptions,
            (std::vector<std::string>{"qliksense/start_task"}));
}
