#include "actors/uptime_monitor.hpp"

#include "net/metrics.hpp"
#include "test/support/caf_fixture.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

using namespace butler;
using namespace std::chrono_literals;

namespace {

/// A supervisor stand-in that answers atom::metrics with `m` and counts the
/// queries.
caf::behavior fake_supervisor(caf::event_based_actor*, metric_set m,
                              std::shared_ptr<int> asked) {
  return {
    [=](atom::metrics) {
      ++*asked;
      return m;
    },
  };
}

metric_set some_counts() {
  metric_set m;
  m.samples = {
    metrics::counter("butler_udp_datagrams_received_total", "", 9),
    metrics::counter("butler_udp_datagrams_accepted_total", "", 7),
    metrics::counter("butler_mqtt_publishes_total", "", 5),
    metrics::counter("butler_mqtt_publish_failures_total", "", 1),
    metrics::gauge("butler_actor_up", "", 1, {{"actor", "udp-ingest"}}),
  };
  return m;
}

struct uptime_monitor_test : test::caf_fixture {
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink
    = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(100);
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  std::shared_ptr<int> asked = std::make_shared<int>(0);
  uptime_monitor_config cfg;
  uptime_monitor_actor monitor;
  caf::actor supervisor;

  uptime_monitor_test() {
    auto logger = std::make_shared<spdlog::logger>("test", sink);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
    cfg.enable = true;
    cfg.frequency = 60s;
    cfg.log_level = "info";
  }

  ~uptime_monitor_test() override {
    if (monitor)
      caf::anon_send_exit(monitor, caf::exit_reason::user_shutdown);
    if (supervisor)
      caf::anon_send_exit(supervisor, caf::exit_reason::user_shutdown);
    spdlog::set_default_logger(previous);
  }

  void start(bool with_supervisor = true) {
    monitor = sys.spawn(uptime_monitor, cfg);
    if (with_supervisor) {
      supervisor = sys.spawn(fake_supervisor, some_counts(), asked);
      caf::anon_send(monitor, peer_up{"supervisor", supervisor});
    }
    consume_messages();
  }

  /// Returns the uptime lines logged so far, with their level.
  std::vector<std::pair<spdlog::level::level_enum, std::string>> lines() {
    std::vector<std::pair<spdlog::level::level_enum, std::string>> out;
    for (auto& msg : sink->last_raw()) {
      std::string text{msg.payload.data(), msg.payload.size()};
      if (text.rfind("uptime-monitor reports", 0) == 0)
        out.emplace_back(msg.level, text);
    }
    return out;
  }
};

} // namespace

TEST_F(uptime_monitor_test, logs_one_line_per_interval_with_the_counts) {
  start();
  advance_time(59s);
  consume_messages();
  EXPECT_TRUE(lines().empty()) << "not before the interval";
  advance_time(1s);
  consume_messages();
  auto got = lines();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].first, spdlog::level::info);
  auto& text = got[0].second;
  EXPECT_EQ(text.rfind("uptime-monitor reports Butler up 0 days ", 0), 0u)
    << text;
  EXPECT_NE(text.find(", rss "), std::string::npos) << text;
  EXPECT_NE(text.find(" MiB, heap "), std::string::npos) << text;
  EXPECT_NE(text.find(", UDP events accepted 7, MQTT messages published 5"),
            std::string::npos)
    << text;
  advance_time(60s);
  consume_messages();
  EXPECT_EQ(lines().size(), 2u);
  EXPECT_EQ(*asked, 2);
  EXPECT_EQ(ask<counters_status>(monitor, atom::status_v).get("lines"), 2u);
}

TEST_F(uptime_monitor_test, verbose_is_written_at_debug) {
  cfg.log_level = "verbose";
  start();
  advance_time(60s);
  consume_messages();
  ASSERT_EQ(lines().size(), 1u);
  EXPECT_EQ(lines()[0].first, spdlog::level::debug);
}

TEST_F(uptime_monitor_test, nothing_is_gathered_while_the_level_is_filtered) {
  cfg.log_level = "verbose";
  spdlog::default_logger()->set_level(spdlog::level::info);
  start();
  advance_time(60s);
  consume_messages();
  EXPECT_TRUE(lines().empty());
  EXPECT_EQ(*asked, 0) << "the supervisor is not asked for a dropped line";
  // A reload that lowers Butler.logLevel brings the line back.
  spdlog::default_logger()->set_level(spdlog::level::debug);
  advance_time(60s);
  consume_messages();
  EXPECT_EQ(lines().size(), 1u);
}

TEST_F(uptime_monitor_test, without_the_supervisor_the_line_says_why) {
  start(false);
  advance_time(60s);
  consume_messages();
  auto got = lines();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0].second.find(
              "event counts n/a (the supervisor is not known yet)"),
            std::string::npos)
    << got[0].second;
}

TEST_F(uptime_monitor_test, a_supervisor_that_is_gone_leaves_the_counts_out) {
  start();
  caf::anon_send_exit(supervisor, caf::exit_reason::kill);
  consume_messages();
  advance_time(60s);
  consume_messages();
  auto got = lines();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0].second.find("event counts n/a (the supervisor did not "
                               "answer: "),
            std::string::npos)
    << got[0].second;
  // The schedule goes on.
  advance_time(60s);
  consume_messages();
  EXPECT_EQ(lines().size(), 2u);
}

// -- the pieces of the line -------------------------------------------------------

TEST(uptime_monitor, reads_rss_and_heap_from_proc_status) {
  const std::string status = "Name:\tbutler\n"
                             "VmPeak:\t  912345 kB\n"
                             "VmRSS:\t   41236 kB\n"
                             "RssAnon:\t   22528 kB\n"
                             "RssFile:\t   18708 kB\n"
                             "Threads:\t12\n";
  auto mem = parse_proc_status(status);
  ASSERT_TRUE(mem.has_value());
  EXPECT_EQ(mem->rss, 41236u * 1024);
  EXPECT_EQ(mem->heap, 22528u * 1024);
  EXPECT_FALSE(parse_proc_status("Name:\tbutler\nVmRSS:\t 1 kB\n"));
  EXPECT_FALSE(parse_proc_status(""));
  EXPECT_FALSE(parse_proc_status("VmRSS:\tlots\nRssAnon:\t1 kB\n"));
}

TEST(uptime_monitor, formats_uptime_in_days_and_clock_time) {
  EXPECT_EQ(format_uptime(0s), "0 days 00:00:00");
  EXPECT_EQ(format_uptime(59s), "0 days 00:00:59");
  EXPECT_EQ(format_uptime(86399s), "0 days 23:59:59");
  EXPECT_EQ(format_uptime(90061s), "1 day 01:01:01");
  EXPECT_EQ(format_uptime(200000s), "2 days 07:33:20");
  EXPECT_EQ(format_uptime(-5s), "0 days 00:00:00");
}

TEST(uptime_monitor, the_line_says_what_it_could_not_find) {
  uptime_figures f;
  f.uptime = 3661s;
  f.memory = process_memory{10 * 1024 * 1024, 5 * 1024 * 1024 + 512 * 1024};
  f.udp_accepted = 120;
  EXPECT_EQ(uptime_text(f),
            "reports Butler up 0 days 01:01:01, rss 10.0 MiB, heap 5.5 MiB, "
            "UDP events accepted 120, MQTT messages published n/a");
  f.memory.reset();
  f.counts_problem = "the supervisor did not answer: timeout";
  EXPECT_EQ(uptime_text(f),
            "reports Butler up 0 days 01:01:01, memory n/a, event counts n/a "
            "(the supervisor did not answer: timeout)");
}
