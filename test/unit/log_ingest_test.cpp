#include "net/log_ingest.hpp"

#include "test/support/log_capture.hpp"

#include <gtest/gtest.h>

#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace butler;
using namespace butler::events;
using namespace std::chrono_literals;

namespace {

using time_point = std::chrono::steady_clock::time_point;

time_point at(std::chrono::milliseconds offset) {
  return time_point{} + 1h + offset;
}

const std::string task_id = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e";
const std::string app_id = "7552d9fc-d1bb-4975-9a38-18357de531ea";

/// Returns a valid GUID that differs by `n`.
std::string guid(int n) {
  auto digits = std::to_string(n);
  return "fb0f317d-da91-4b86-aafa-" + std::string(12 - digits.size(), '0')
         + digits;
}

std::string scheduler(const std::string& type, const std::string& exec_id) {
  return type + ";sense-node-1;Reload of Sales;Sales dashboard;"
         + "CORP\\sa_scheduler;" + task_id + ";" + app_id
         + ";2024-05-01 10:11:12,123;ERROR;" + exec_id
         + ";Max retries reached";
}

std::string reload_failed(int n) {
  return scheduler("/scheduler-reload-failed/", guid(n));
}

const std::string legacy = "sense-node-1;Reload of Sales;Sales;sa_scheduler";
const std::string engine = "/engine-reload-failed/;sense-node-1;" + app_id
                           + ";x;CORP;anna;2024-05-01 10:11:12,123;ERROR;"
                             "Script error";
const std::string start_session = "sense-node-1;Start session;CORP;anna";

/// Records the keys a pipeline asks about, on top of a real set.
class recording_set : public expiring_set {
public:
  explicit recording_set(std::vector<std::string>* keys)
    : keys_(keys), set_(make_memory_expiring_set(100)) {
    // nop
  }

  bool seen(std::string_view key, std::chrono::milliseconds ttl,
            clock::time_point now) override {
    keys_->emplace_back(key);
    return set_->seen(key, ttl, now);
  }

  std::size_t size() const override {
    return set_->size();
  }

  std::uint64_t evictions() const override {
    return set_->evictions();
  }

private:
  std::vector<std::string>* keys_;
  std::unique_ptr<expiring_set> set_;
};

std::uint64_t rejected(const ingest_pipeline& p, reject_reason reason) {
  return p.stats().rejected[static_cast<std::size_t>(reason)];
}

class log_ingest : public testing::Test {
protected:
  std::optional<log_event> task(ingest_pipeline& p, const std::string& data,
                                time_point now = at(0ms)) {
    return p.process(port_kind::task, data, "10.0.0.5", 53211, now);
  }

  std::optional<log_event> session(ingest_pipeline& p, const std::string& data,
                                   time_point now = at(0ms)) {
    return p.process(port_kind::session, data, "10.0.0.5", 53211, now);
  }

  std::vector<std::string> lines() {
    return log_.lines();
  }

  butler::test::log_capture log_;
};

} // namespace

TEST_F(log_ingest, assigns_ids_and_the_source) {
  ingest_pipeline p{ingest_options{}, make_memory_expiring_set(100)};
  auto a = task(p, reload_failed(1));
  auto b = session(p, start_session);
  auto bad = task(p, "nonsense");
  auto c = task(p, legacy);
  ASSERT_TRUE(a && b && c);
  EXPECT_FALSE(bad);
  EXPECT_EQ(a->id, 1u);
  EXPECT_EQ(b->id, 2u);
  // A rejected datagram takes no id.
  EXPECT_EQ(c->id, 3u);
  EXPECT_EQ(a->source, "10.0.0.5:53211");
  EXPECT_EQ(a->kind, log_event_kind::reload_failed);
  EXPECT_EQ(a->execution_id, guid(1));
  EXPECT_EQ(b->kind, log_event_kind::session_start);
  EXPECT_EQ(c->kind, log_event_kind::task_failure_legacy);
  auto s = p.stats();
  EXPECT_EQ(s.received, 4u);
  EXPECT_EQ(s.accepted, 3u);
  EXPECT_EQ(s.rejected[static_cast<std::size_t>(reject_reason::field_count)],
            1u);
}

TEST_F(log_ingest, ids_are_per_pipeline) {
  ingest_pipeline p1{ingest_options{}, nullptr};
  ingest_pipeline p2{ingest_options{}, nullptr};
  EXPECT_EQ(session(p1, start_session)->id, 1u);
  EXPECT_EQ(session(p1, start_session)->id, 2u);
  EXPECT_EQ(session(p2, start_session)->id, 1u);
}

TEST_F(log_ingest, formats_ipv6_sources_in_brackets) {
  ingest_pipeline p{ingest_options{}, nullptr};
  auto ev = p.process(port_kind::session, start_session, "fe80::1", 9997,
                      at(0ms));
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->source, "[fe80::1]:9997");
  EXPECT_EQ(format_source("::1", 0), "[::1]:0");
  EXPECT_EQ(format_source("192.168.1.20", 65535), "192.168.1.20:65535");
  EXPECT_EQ(format_source("::ffff:10.0.0.5", 1), "[::ffff:10.0.0.5]:1");
}

TEST_F(log_ingest, accepts_any_source_without_validation) {
  ingest_options opts;
  opts.allowed_addresses = {"10.0.0.5"}; // ignored while validation is off
  ingest_pipeline p{opts, nullptr};
  EXPECT_TRUE(p.process(port_kind::session, start_session, "192.0.2.1", 1,
                        at(0ms)));
  EXPECT_EQ(rejected(p, reject_reason::source_not_allowed), 0u);
}

TEST_F(log_ingest, rejects_sources_outside_the_allow_list) {
  ingest_options opts;
  opts.source_validation = true;
  opts.allowed_addresses = {"10.0.0.5", "::1"};
  ingest_pipeline p{opts, nullptr};
  EXPECT_TRUE(p.process(port_kind::session, start_session, "10.0.0.5", 1,
                        at(0ms)));
  EXPECT_TRUE(p.process(port_kind::session, start_session, "::1", 1, at(0ms)));
  // A dual-stack socket reports IPv4 senders as IPv4-mapped addresses.
  EXPECT_TRUE(p.process(port_kind::session, start_session, "::ffff:10.0.0.5",
                        1, at(0ms)));
  EXPECT_FALSE(p.process(port_kind::session, start_session, "10.0.0.6", 1,
                         at(0ms)));
  EXPECT_FALSE(p.process(port_kind::session, start_session, "10.0.0.50", 1,
                         at(0ms)));
  EXPECT_FALSE(p.process(port_kind::session, start_session, "::ffff:10.0.0.6",
                         1, at(0ms)));
  // The source is checked before the datagram is parsed.
  EXPECT_FALSE(p.process(port_kind::task, "garbage", "10.0.0.7", 1, at(0ms)));
  EXPECT_EQ(rejected(p, reject_reason::source_not_allowed), 4u);
  EXPECT_EQ(rejected(p, reject_reason::field_count), 0u);
  EXPECT_EQ(p.stats().accepted, 3u);
}

TEST_F(log_ingest, empty_allow_list_rejects_everything) {
  ingest_options opts;
  opts.source_validation = true;
  ingest_pipeline p{opts, nullptr};
  EXPECT_FALSE(session(p, start_session));
  EXPECT_EQ(rejected(p, reject_reason::source_not_allowed), 1u);
}

TEST_F(log_ingest, drops_duplicates_within_the_ttl_and_not_after) {
  ingest_options opts;
  opts.dedup_ttl = 10min;
  ingest_pipeline p{opts, make_memory_expiring_set(100)};
  EXPECT_TRUE(task(p, reload_failed(1), at(0ms)));
  EXPECT_FALSE(task(p, reload_failed(1), at(1s)));
  EXPECT_FALSE(task(p, reload_failed(1) + "\n", at(10min - 1ms)));
  EXPECT_TRUE(task(p, reload_failed(2), at(1s)));
  EXPECT_EQ(rejected(p, reject_reason::duplicate), 2u);
  auto again = task(p, reload_failed(1), at(10min));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->id, 3u);
  EXPECT_EQ(p.stats().accepted, 3u);
}

TEST_F(log_ingest, keys_dedup_by_kind_and_execution_id) {
  std::vector<std::string> keys;
  ingest_pipeline p{ingest_options{},
                    std::make_unique<recording_set>(&keys)};
  auto id = guid(7);
  EXPECT_TRUE(task(p, scheduler("/scheduler-reload-failed/", id)));
  // An alias is the same kind.
  EXPECT_FALSE(task(p, scheduler("/scheduler-task-failed/", id)));
  // Same execution id, other kinds: each is new once.
  EXPECT_TRUE(task(p, scheduler("/scheduler-reload-aborted/", id)));
  EXPECT_TRUE(task(p, scheduler("/scheduler-reloadtask-success/", id)));
  EXPECT_FALSE(task(p, scheduler("/scheduler-task-success//", id)));
  EXPECT_TRUE(task(p, scheduler("/scheduler-distribute/", id)));
  EXPECT_FALSE(task(p, scheduler("/scheduler-distribute/", id)));
  ASSERT_EQ(keys.size(), 7u);
  EXPECT_EQ(keys[0], "reload_failed:" + id);
  EXPECT_EQ(keys[2], "reload_aborted:" + id);
  EXPECT_EQ(keys[3], "reload_success:" + id);
  EXPECT_EQ(keys[5], "distribute:" + id);
  EXPECT_EQ(rejected(p, reject_reason::duplicate), 3u);
}

TEST_F(log_ingest, does_not_dedup_session_legacy_or_engine_events) {
  std::vector<std::string> keys;
  ingest_pipeline p{ingest_options{},
                    std::make_unique<recording_set>(&keys)};
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(session(p, start_session));
    EXPECT_TRUE(task(p, legacy));
    EXPECT_TRUE(task(p, engine));
  }
  EXPECT_TRUE(keys.empty());
  EXPECT_EQ(rejected(p, reject_reason::duplicate), 0u);
  EXPECT_EQ(p.stats().accepted, 9u);
}

TEST_F(log_ingest, does_not_dedup_when_disabled) {
  ingest_options opts;
  opts.dedup_enable = false;
  ingest_pipeline p{opts, nullptr};
  EXPECT_TRUE(task(p, reload_failed(1)));
  EXPECT_TRUE(task(p, reload_failed(1)));
  EXPECT_EQ(rejected(p, reject_reason::duplicate), 0u);
}

TEST_F(log_ingest, dedups_without_a_given_set) {
  ingest_pipeline p{ingest_options{}, nullptr};
  EXPECT_TRUE(task(p, reload_failed(1)));
  EXPECT_FALSE(task(p, reload_failed(1)));
  EXPECT_EQ(rejected(p, reject_reason::duplicate), 1u);
}

TEST_F(log_ingest, rate_limits_with_a_refilling_bucket) {
  ingest_options opts;
  opts.rate_limit_enable = true;
  opts.rate_limit_per_minute = 60; // one per second, at most 60 at once
  ingest_pipeline p{opts, nullptr};
  for (int i = 0; i < 60; ++i)
    ASSERT_TRUE(session(p, start_session, at(0ms))) << i;
  EXPECT_FALSE(session(p, start_session, at(0ms)));
  EXPECT_FALSE(session(p, start_session, at(999ms)));
  EXPECT_TRUE(session(p, start_session, at(1000ms)));
  EXPECT_FALSE(session(p, start_session, at(1000ms)));
  // Half a minute later: 30 tokens.
  for (int i = 0; i < 30; ++i)
    ASSERT_TRUE(session(p, start_session, at(31s))) << i;
  EXPECT_FALSE(session(p, start_session, at(31s)));
  // A long pause refills to the capacity, no further.
  for (int i = 0; i < 60; ++i)
    ASSERT_TRUE(session(p, start_session, at(1h))) << i;
  EXPECT_FALSE(session(p, start_session, at(1h)));
  EXPECT_EQ(rejected(p, reject_reason::rate_limited), 5u);
  EXPECT_EQ(p.stats().accepted, 151u);
}

TEST_F(log_ingest, rejected_datagrams_take_no_token) {
  ingest_options opts;
  opts.rate_limit_enable = true;
  opts.rate_limit_per_minute = 2;
  ingest_pipeline p{opts, nullptr};
  EXPECT_TRUE(task(p, reload_failed(1)));
  EXPECT_FALSE(task(p, reload_failed(1))); // duplicate
  EXPECT_FALSE(task(p, "bad"));            // field_count
  EXPECT_TRUE(task(p, reload_failed(2)));
  EXPECT_FALSE(task(p, reload_failed(3)));
  EXPECT_EQ(rejected(p, reject_reason::duplicate), 1u);
  EXPECT_EQ(rejected(p, reject_reason::rate_limited), 1u);
}

TEST_F(log_ingest, takes_new_filters_from_a_reload) {
  ingest_options opts;
  opts.source_validation = true;
  opts.allowed_addresses = {"10.0.0.5"};
  ingest_pipeline p{opts, nullptr};
  EXPECT_FALSE(p.process(port_kind::session, start_session, "10.0.0.6", 1,
                         at(0ms)));
  // Another thread (the actor) sets them; the next datagram uses them.
  std::thread reload{[&] {
    p.set_filters(true, {"10.0.0.6"}, true, 2);
  }};
  reload.join();
  EXPECT_TRUE(p.process(port_kind::session, start_session, "10.0.0.6", 1,
                        at(0ms)));
  EXPECT_FALSE(p.process(port_kind::session, start_session, "10.0.0.5", 1,
                         at(0ms)));
  // Two per minute: the first took one of the bucket's two tokens.
  EXPECT_TRUE(p.process(port_kind::session, start_session, "10.0.0.6", 1,
                        at(0ms)));
  EXPECT_FALSE(p.process(port_kind::session, start_session, "10.0.0.6", 1,
                         at(0ms)));
  EXPECT_EQ(rejected(p, reject_reason::rate_limited), 1u);
  // Validation and the limit off again: anything goes.
  p.set_filters(false, {}, false, 2);
  for (int i = 0; i < 5; ++i)
    EXPECT_TRUE(p.process(port_kind::session, start_session, "192.0.2.1", 1,
                          at(0ms)));
}

TEST_F(log_ingest, does_not_rate_limit_when_disabled) {
  ingest_options opts;
  opts.rate_limit_per_minute = 1;
  ingest_pipeline p{opts, nullptr};
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(session(p, start_session));
}

TEST_F(log_ingest, counts_every_rejection_by_reason) {
  ingest_options opts;
  opts.max_message_size = 1000;
  opts.source_validation = true;
  opts.allowed_addresses = {"10.0.0.5"};
  opts.rate_limit_enable = true;
  opts.rate_limit_per_minute = 3;
  ingest_pipeline p{opts, nullptr};
  struct datagram {
    port_kind port;
    std::string data;
    std::string ip;
  };
  const std::vector<datagram> inputs = {
    {port_kind::task, std::string(1001, 'x'), "10.0.0.5"},
    {port_kind::task, "h;t\xff;a;u", "10.0.0.5"},
    {port_kind::task, "h;t\t;a;u", "10.0.0.5"},
    {port_kind::task, "h;t;a", "10.0.0.5"},
    {port_kind::task, scheduler("/nope/", guid(1)), "10.0.0.5"},
    {port_kind::task,
     "/scheduler-reload-failed/;h;t;a;u;bad;" + app_id + ";ts;ERROR;"
       + guid(1) + ";m",
     "10.0.0.5"},
    {port_kind::task,
     "/scheduler-reload-failed/;h;t;a;u;" + task_id + ";bad;ts;ERROR;"
       + guid(1) + ";m",
     "10.0.0.5"},
    {port_kind::task,
     "/scheduler-reload-failed/;h;t;a;u;" + task_id + ";" + app_id
       + ";ts;ERROR;bad;m",
     "10.0.0.5"},
    {port_kind::task, ";t;a;u", "10.0.0.5"},
    {port_kind::session, "h;Logout;CORP;anna", "10.0.0.5"},
    {port_kind::session, start_session, "10.9.9.9"},
    {port_kind::task, reload_failed(1), "10.0.0.5"}, // accepted
    {port_kind::task, reload_failed(1), "10.0.0.5"}, // duplicate
    {port_kind::task, reload_failed(2), "10.0.0.5"}, // accepted
    {port_kind::task, reload_failed(3), "10.0.0.5"}, // accepted
    {port_kind::task, reload_failed(4), "10.0.0.5"}, // rate limited
  };
  for (const auto& in : inputs)
    p.process(in.port, in.data, in.ip, 4000, at(0ms));
  auto s = p.stats();
  EXPECT_EQ(s.received, inputs.size());
  EXPECT_EQ(s.accepted, 3u);
  for (std::size_t i = 0; i < reject_reason_count; ++i)
    EXPECT_EQ(s.rejected[i], 1u) << to_string(static_cast<reject_reason>(i));
}

TEST_F(log_ingest, logs_the_first_rejection_of_a_reason_at_once) {
  ingest_pipeline p{ingest_options{}, nullptr};
  auto bad = "/scheduler-reload-failed/;host;t;a;u;nope;" + app_id
             + ";2024-05-01 10:11:12,123;ERROR;" + guid(1) + ";m";
  EXPECT_FALSE(task(p, bad));
  auto got = lines();
  ASSERT_EQ(got.size(), 1u);
  // The datagram is 147 characters: 120 are quoted.
  ASSERT_EQ(bad.size(), 147u);
  EXPECT_EQ(got[0],
            "udp-ingest rejected a datagram from 10.0.0.5:53211 on the task "
            "port: bad_task_id (\"/scheduler-reload-failed/;host;t;a;u;nope;"
            "7552d9fc-d1bb-4975-9a38-18357de531ea;2024-05-01 10:11:12,123;"
            "ERROR;fb0f317d-da...\")");
  EXPECT_FALSE(p.process(port_kind::session, "h;x;d;u", "::1", 9997, at(0ms)));
  got = lines();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1], "udp-ingest rejected a datagram from [::1]:9997 on the "
                    "session port: unknown_command (\"h;x;d;u\")");
}

TEST_F(log_ingest, quotes_120_characters_with_control_characters_escaped) {
  ingest_pipeline p{ingest_options{}, nullptr};
  std::string data = "a\tb\r\n\x01\x7f\xff\xc3\xa9";
  data += std::string(200, 'z');
  EXPECT_FALSE(task(p, data));
  auto got = lines();
  ASSERT_EQ(got.size(), 1u);
  // 9 characters (é is one) then 111 of the z's, then "...".
  auto quoted = std::string{"a\\tb\\r\\n\\x01\\x7f\\xff\xc3\xa9"}
                + std::string(111, 'z') + "...";
  EXPECT_EQ(got[0], "udp-ingest rejected a datagram from 10.0.0.5:53211 on the "
                    "task port: not_utf8 (\""
                      + quoted + "\")");
}

TEST_F(log_ingest, throttles_log_lines_per_reason) {
  ingest_options opts;
  opts.log_interval = 10s;
  ingest_pipeline p{opts, nullptr};
  EXPECT_FALSE(task(p, "a;b", at(0s)));
  for (int i = 1; i <= 5; ++i)
    EXPECT_FALSE(task(p, "a;b", at(std::chrono::seconds{i})));
  EXPECT_EQ(lines().size(), 1u);
  // Another reason has its own budget.
  EXPECT_FALSE(session(p, "h;Nope;d;u", at(1s)));
  EXPECT_EQ(lines().size(), 2u);
  EXPECT_FALSE(task(p, "a;b", at(9999ms)));
  EXPECT_EQ(lines().size(), 2u);
  // The interval has passed: one line, with the count of those not logged.
  EXPECT_FALSE(task(p, "x;y", at(10s)));
  auto got = lines();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2], "udp-ingest rejected a datagram from 10.0.0.5:53211 on the "
                    "task port: field_count (\"x;y\"); 6 more field_count "
                    "rejections since the last report were not logged");
  // The interval restarts at that line.
  EXPECT_FALSE(task(p, "a;b", at(19s)));
  EXPECT_EQ(lines().size(), 3u);
  EXPECT_FALSE(task(p, "a;b", at(20s)));
  got = lines();
  ASSERT_EQ(got.size(), 4u);
  EXPECT_NE(got[3].find("; 1 more field_count rejections"), std::string::npos);
  // Nothing suppressed since: a plain line again.
  EXPECT_FALSE(task(p, "c;d", at(31s)));
  got = lines();
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[4].find("more"), std::string::npos);
  EXPECT_EQ(rejected(p, reject_reason::field_count), 11u);
  EXPECT_EQ(rejected(p, reject_reason::unknown_command), 1u);
}

TEST_F(log_ingest, logs_nothing_for_accepted_datagrams) {
  ingest_pipeline p{ingest_options{}, nullptr};
  EXPECT_TRUE(task(p, reload_failed(1)));
  EXPECT_TRUE(session(p, start_session));
  EXPECT_TRUE(lines().empty());
}

TEST_F(log_ingest, stats_can_be_read_while_processing) {
  ingest_options opts;
  opts.log_interval = 1h;
  ingest_pipeline p{opts, nullptr};
  constexpr std::uint64_t total = 20000;
  std::atomic<bool> done{false};
  std::uint64_t last_seen = 0;
  bool monotonic = true;
  std::thread reader{[&] {
    while (!done.load()) {
      auto s = p.stats();
      if (s.received < last_seen)
        monotonic = false;
      last_seen = s.received;
    }
  }};
  for (std::uint64_t i = 0; i < total; ++i)
    p.process(port_kind::session, i % 2 ? start_session : "bad", "10.0.0.5",
              1, at(0ms));
  done = true;
  reader.join();
  EXPECT_TRUE(monotonic);
  auto s = p.stats();
  EXPECT_EQ(s.received, total);
  EXPECT_EQ(s.accepted, total / 2);
  EXPECT_EQ(s.rejected[static_cast<std::size_t>(reject_reason::field_count)],
            total / 2);
}
