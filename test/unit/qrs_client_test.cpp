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

/// A stand-in for qrs_client that records start requests and answers them.
struct start_log {
  std::vector<task_start_request> requests;
  bool unknown = false;
};

qrs_client_actor::behavior_type fake_qrs(qrs_client_actor::pointer,
                                         std::shared_ptr<start_log> log) {
  return {
    [=](task_start_request& req) -> task_start_result {
      log->requests.push_back(req);
      task_start_result result;
      if (log->unknown)
        result.invalid = req.task_ids;
      else
        result.started.push_back(task_ref{req.task_ids.front(), "t"});
      return result;
    },
    [=](atom::ping) { return std::string{"1"}; },
    [=](atom::done, uint64_t, task_start_result&) {},
    [=](atom::done, uint64_t, std::string&) {},
    [=](atom::done, uint64_t, caf::error&) {},
    [=](atom::status) { return counters_status{}; },
    [=](atom::drain, caf::timespan) { return true; },
    [=](atom::tick) {},
    [=](peer_up&) {},
  };
}

struct mqtt_task_starter_test : test::caf_fixture {
  std::shared_ptr<start_log> starts = std::make_shared<start_log>();
  std::shared_ptr<test::fake_link_script> link_script
    = std::make_shared<test::fake_link_script>();
  mqtt_task_starter_actor starter;

  mqtt_task_starter_test() {
    starter = sys.spawn(mqtt_task_starter, std::string{"qliksense/start_task"});
    auto qrs = sys.spawn(fake_qrs, starts);
    caf::anon_send(starter, peer_up{"qrs-client", caf::actor_cast<caf::actor>(qrs)});
    consume_messages();
  }

  void deliver(std::string payload) {
    caf::anon_send(starter, mqtt_inbound{"qliksense/start_task", std::move(payload)});
    consume_messages();
  }

  counters_status status() {
    return ask<counters_status>(starter, atom::status_v);
  }
};

} // namespace

TEST_F(mqtt_task_starter_test, starts_a_valid_task_id_through_qrs) {
  deliver("  " + sales + "\r\n");
  ASSERT_EQ(starts->requests.size(), 1u);
  EXPECT_EQ(starts->requests[0].task_ids, (std::vector<std::string>{sales}));
  EXPECT_TRUE(starts->requests[0].apply_filter);
  EXPECT_EQ(status().get("started"), 1u);
}

TEST_F(mqtt_task_starter_test, counts_what_it_cannot_start) {
  deliver("not a task id");
  deliver("");
  EXPECT_TRUE(starts->requests.empty());
  starts->unknown = true;
  deliver(finance);
  auto st = status();
  EXPECT_EQ(st.get("received"), 3u);
  EXPECT_EQ(st.get("invalid"), 2u);
  EXPECT_EQ(st.get("unknown"), 1u);
  EXPECT_EQ(st.get("started"), 0u);
}

TEST_F(mqtt_task_starter_test, registers_its_topic_with_the_mqtt_link) {
  auto link = sys.spawn(test::fake_mqtt_link, link_script);
  caf::anon_send(starter, peer_up{"mqtt-link", caf::actor_cast<caf::actor>(link)});
  consume_messages();
  EXPECT_EQ(link_script->subscriptions,
            (std::vector<std::string>{"qliksense/start_task"}));
}
