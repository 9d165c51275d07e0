#include "actors/heartbeat_pinger.hpp"

#include "net/metrics.hpp"
#include "test/fakes/fake_http_client.hpp"
#include "test/support/caf_fixture.hpp"
#include "test/support/log_capture.hpp"

#include <caf/send.hpp>

#include <memory>
#include <string>

using namespace butler;
using namespace std::chrono_literals;

namespace {

const std::string monitor_url
  = "https://user:pw@monitor.example.org:8443/ping/3f1c-secret-token?x=1";

struct heartbeat_pinger_test : test::caf_fixture {
  test::log_capture log;
  std::shared_ptr<test::fake_http_client> http
    = std::make_shared<test::fake_http_client>();
  heartbeat_config cfg;
  heartbeat_pinger_actor pinger;

  heartbeat_pinger_test() {
    cfg.enable = true;
    cfg.remote_url = monitor_url;
    cfg.frequency = 30s;
  }

  ~heartbeat_pinger_test() override {
    http->requests.clear();
    if (pinger)
      caf::anon_send_exit(pinger, caf::exit_reason::user_shutdown);
  }

  void start() {
    pinger = sys.spawn(heartbeat_pinger, cfg,
                       std::shared_ptr<http::client>{http});
    consume_messages();
  }

  /// Lets one schedule interval pass.
  void tick() {
    advance_time(cfg.frequency);
    consume_messages();
  }

  counters_status status() {
    return ask<counters_status>(pinger, atom::status_v);
  }
};

} // namespace

TEST_F(heartbeat_pinger_test, pings_at_start_and_then_on_every_interval) {
  start();
  ASSERT_EQ(http->requests.size(), 1u) << "the first GET goes out at once";
  auto& req = http->requests.front().req;
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.url, monitor_url);
  EXPECT_EQ(req.body, "");
  EXPECT_EQ(req.timeout, 10s);
  EXPECT_EQ(req.connect_timeout, 5s);
  ASSERT_TRUE(http->answer(200));
  consume_messages();
  advance_time(29s);
  consume_messages();
  EXPECT_TRUE(http->requests.empty()) << "not before the interval";
  advance_time(1s);
  consume_messages();
  ASSERT_EQ(http->requests.size(), 1u);
  ASSERT_TRUE(http->answer(204));
  consume_messages();
  tick();
  ASSERT_TRUE(http->answer(200));
  consume_messages();
  EXPECT_EQ(http->submitted, 3u);
  auto st = status();
  EXPECT_EQ(st.get("ok"), 3u);
  EXPECT_EQ(st.get("failed"), 0u);
  EXPECT_EQ(log.count("could not ping"), 0u);
}

TEST_F(heartbeat_pinger_test, a_short_schedule_shortens_the_deadline) {
  cfg.frequency = 2s;
  start();
  ASSERT_EQ(http->requests.size(), 1u);
  EXPECT_EQ(http->requests.front().req.timeout, 2s);
  EXPECT_EQ(http->requests.front().req.connect_timeout, 2s);
}

TEST_F(heartbeat_pinger_test, failures_are_counted_and_logged_throttled) {
  start();
  for (int i = 1; i <= 25; ++i) {
    ASSERT_TRUE(http->answer(500)) << "ping " << i;
    consume_messages();
    if (i < 25)
      tick();
  }
  auto warned = log.matching("could not ping");
  ASSERT_EQ(warned.size(), 3u) << "the 1st, 10th and 20th in a row";
  EXPECT_NE(warned[0].find("it answered 500 (failure 1 in a row"),
            std::string::npos)
    << warned[0];
  EXPECT_NE(warned[1].find("(failure 10 in a row"), std::string::npos)
    << warned[1];
  EXPECT_NE(warned[2].find("(failure 20 in a row"), std::string::npos)
    << warned[2];
  auto st = status();
  EXPECT_EQ(st.get("failed"), 25u);
  EXPECT_EQ(st.get("failing"), 25u);
  EXPECT_EQ(st.get("ok"), 0u);
  // Never fatal: the next ping goes out and, when it works, says so once.
  tick();
  ASSERT_TRUE(http->answer(200));
  consume_messages();
  EXPECT_EQ(log.count("heartbeat-pinger reaches https://monitor.example.org:8443 "
                      "again after 25 failed ping(s)"),
            1u);
  tick();
  ASSERT_TRUE(http->answer(200));
  consume_messages();
  EXPECT_EQ(log.count("again after"), 1u) << "only the first success after "
                                              "failures is logged at info";
  st = status();
  EXPECT_EQ(st.get("ok"), 2u);
  EXPECT_EQ(st.get("failing"), 0u);
  // A new run of failures is logged from its first again.
  tick();
  ASSERT_TRUE(http->answer(503));
  consume_messages();
  EXPECT_EQ(log.count("could not ping"), 4u);
  EXPECT_NE(log.matching("could not ping").back().find("(failure 1 in a row"),
            std::string::npos);
}

TEST_F(heartbeat_pinger_test, every_non_2xx_status_is_a_failure) {
  start();
  for (long status : {301L, 404L, 429L, 500L}) {
    ASSERT_TRUE(http->answer(status));
    consume_messages();
    tick();
  }
  ASSERT_TRUE(http->answer(299));
  consume_messages();
  auto st = status();
  EXPECT_EQ(st.get("failed"), 4u);
  EXPECT_EQ(st.get("ok"), 1u);
  EXPECT_EQ(log.count("it answered 301"), 1u);
}

TEST_F(heartbeat_pinger_test, network_errors_are_failures) {
  start();
  ASSERT_TRUE(http->fail(false, "Failed to connect: Connection refused"));
  consume_messages();
  EXPECT_EQ(log.count("could not ping https://monitor.example.org:8443: "
                      "Failed to connect: Connection refused (failure 1 in a "
                      "row"),
            1u);
  tick();
  ASSERT_TRUE(http->fail(true, "Operation timed out"));
  consume_messages();
  tick();
  ASSERT_TRUE(http->fail(false, ""));
  consume_messages();
  EXPECT_EQ(status().get("failed"), 3u);
}

TEST_F(heartbeat_pinger_test, a_refused_submit_is_a_failure_and_retried_later) {
  http->refuse = true;
  start();
  EXPECT_EQ(status().get("failed"), 1u);
  EXPECT_EQ(log.count("refused the request"), 1u);
  http->refuse = false;
  tick();
  ASSERT_EQ(http->requests.size(), 1u);
  ASSERT_TRUE(http->answer(200));
  consume_messages();
  EXPECT_EQ(status().get("ok"), 1u);
}

TEST_F(heartbeat_pinger_test, one_get_at_a_time) {
  start();
  tick();
  tick();
  EXPECT_EQ(http->requests.size(), 1u) << "no second GET while one is out";
  auto st = status();
  EXPECT_EQ(st.get("skipped"), 2u);
  EXPECT_EQ(st.get("failed"), 0u);
  ASSERT_TRUE(http->answer(200));
  consume_messages();
  tick();
  EXPECT_EQ(http->requests.size(), 1u) << "the schedule goes on";
}

TEST_F(heartbeat_pinger_test, the_urls_token_never_reaches_the_log) {
  start();
  ASSERT_TRUE(http->answer(500));
  consume_messages();
  tick();
  ASSERT_TRUE(http->answer(200));
  consume_messages();
  ASSERT_FALSE(log.lines().empty());
  for (auto& line : log.lines()) {
    EXPECT_EQ(line.find("secret-token"), std::string::npos) << line;
    EXPECT_EQ(line.find("pw@"), std::string::npos) << line;
  }
  EXPECT_EQ(log.count("heartbeat-pinger pings https://monitor.example.org:8443 "
                      "now and every 30 s"),
            1u);
}

TEST_F(heartbeat_pinger_test, metrics_count_pings_by_outcome) {
  start();
  ASSERT_TRUE(http->answer(200));
  consume_messages();
  tick();
  ASSERT_TRUE(http->answer(500));
  consume_messages();
  tick();
  ASSERT_TRUE(http->fail(false));
  consume_messages();
  auto m = ask<metric_set>(pinger, atom::metrics_v);
  auto value = [&](const std::string& name, const std::string& outcome) {
    for (auto& s : m.samples)
      if (s.name == name
          && (outcome.empty()
              || s.labels == metrics::label_list{{"outcome", outcome}}))
        return s.value;
    ADD_FAILURE() << "no sample " << name << " " << outcome;
    return -1.0;
  };
  EXPECT_EQ(value("butler_heartbeat_pings_total", "ok"), 1.0);
  EXPECT_EQ(value("butler_heartbeat_pings_total", "failed"), 2.0);
  EXPECT_EQ(value("butler_heartbeat_failures_in_a_row", ""), 2.0);
  for (auto& s : m.samples)
    EXPECT_EQ(s.gauge, s.name == "butler_heartbeat_failures_in_a_row")
      << s.name;
}

TEST(url_origin, keeps_scheme_host_and_port_only) {
  EXPECT_EQ(url_origin("https://monitor.example.org/ping/abc"),
            "https://monitor.example.org");
  EXPECT_EQ(url_origin("http://user:pw@127.0.0.1:8000/p?t=1#f"),
            "http://127.0.0.1:8000");
  EXPECT_EQ(url_origin("http://monitor?token=1"), "http://monitor");
  EXPECT_EQ(url_origin("http://monitor"), "http://monitor");
  EXPECT_EQ(url_origin("http://a@b@monitor/x@y"), "http://monitor");
}
