#include "actors/supervisor.hpp"

#include "actors/actor_common.hpp"
#include "test/support/caf_fixture.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace butler;
using namespace std::chrono_literals;

namespace {

/// What the probe children saw, in order (test-only shared record).
struct probe_log {
  std::vector<std::string> lines;
  bool contains(const std::string& line) const {
    return std::find(lines.begin(), lines.end(), line) != lines.end();
  }
  std::size_t count(const std::string& line) const {
    return std::count(lines.begin(), lines.end(), line);
  }
};

/// How a probe child answers the supervisor's readiness query.
enum class readiness {
  /// Through the handler every actor installs: "" (ready).
  common,
  /// "not connected" (running, but not ready).
  not_ready,
  /// Never: the actor is stuck.
  stuck,
};

/// A supervised child: records peers and drains, answers ping, throws on
/// delete_atom (a handler failing with an exception).
caf::behavior probe(caf::event_based_actor* self, std::string name,
                    std::shared_ptr<probe_log> log, bool drain_ok,
                    readiness mode) {
  install_common_handlers(self);
  log->lines.push_back("start " + name);
  if (mode != readiness::common)
    return {
      [=](atom::ready) -> caf::result<std::string> {
        if (mode == readiness::not_ready)
          return std::string{"not connected"};
        // Never delivered: the query goes unanswered.
        return self->make_response_promise<std::string>();
      },
      [=](peer_up&) {},
      [=](atom::drain, caf::timespan) { return true; },
    };
  return {
    [=](peer_up& peer) { log->lines.push_back(name + " knows " + peer.name); },
    [=](atom::drain, caf::timespan) -> caf::result<bool> {
      log->lines.push_back("drain " + name);
      if (!drain_ok)
        return caf::make_error(ec::internal, "cannot drain");
      return true;
    },
    [=](caf::ping_atom) { return caf::pong_atom::value; },
    [=](caf::delete_atom) -> caf::pong_atom {
      throw std::runtime_error(name + " broke");
    },
  };
}

struct supervisor_test : test::caf_fixture {
  std::shared_ptr<probe_log> log = std::make_shared<probe_log>();
  /// What the supervisor told systemd, in order.
  std::shared_ptr<std::vector<std::string>> notes
    = std::make_shared<std::vector<std::string>>();
  supervisor_config cfg;
  supervisor_actor sup;

  supervisor_test() {
    cfg.restart_min = 100ms;
    cfg.restart_max = 1s;
    cfg.stable_after = 60s;
    cfg.shutdown_grace = 2s;
  }

  ~supervisor_test() override {
    // The readiness rounds go on while it runs; the fixture's final run()
    // would never end.
    if (sup)
      caf::anon_send_exit(sup, caf::exit_reason::kill);
  }

  child_spec spec(const std::string& name, bool drain_ok = true,
                  readiness mode = readiness::common) {
    auto lg = log;
    return {name, [name, lg, drain_ok, mode](caf::actor_system& sys,
                                               const butler_config&) {
              return sys.spawn(probe, name, lg, drain_ok, mode);
            }};
  }

  void start(std::vector<child_spec> specs) {
    service_notifier notifier;
    auto out = notes;
    notifier.send = [out](const std::string& line) { out->push_back(line); };
    butler_config config;
    config.supervisor = cfg;
    sup = sys.spawn(supervisor, std::make_shared<const butler_config>(config),
                    std::move(specs), notifier);
    consume_messages();
  }

  std::size_t noted(const std::string& line) const {
    return std::count(notes->begin(), notes->end(), line);
  }

  readiness_report ready() {
    return ask<readiness_report>(sup, atom::ready_v);
  }

  /// Lets `span` pass in steps of 10 ms, consuming messages after each.
  void pass(caf::timespan span) {
    for (auto left = span; left > caf::timespan{0}; left -= 10ms) {
      advance_time(std::min(left, caf::timespan{10ms}));
      consume_messages();
    }
  }

  caf::actor child(const std::string& name) {
    return ask<caf::actor>(sup, caf::get_atom::value, name);
  }

  /// Makes `name` throw, lets the supervisor see it, but fires no timer.
  void crash(const std::string& name) {
    caf::anon_send(child(name), caf::delete_atom::value);
    consume_messages();
  }

  supervisor_status status() {
    return ask<supervisor_status>(sup, atom::status_v);
  }
};

} // namespace

TEST_F(supervisor_test, starts_children_in_order_and_introduces_peers) {
  start({spec("a"), spec("b"), spec("c")});
  std::vector<std::string> starts;
  for (auto& line : log->lines)
    if (line.rfind("start ", 0) == 0)
      starts.push_back(line);
  EXPECT_EQ(starts, (std::vector<std::string>{"start a", "start b", "start c"}));
  for (auto& [who, peer] : std::vector<std::pair<std::string, std::string>>{
         {"a", "b"}, {"a", "c"}, {"b", "a"}, {"b", "c"}, {"c", "a"},
         {"c", "b"}})
    EXPECT_TRUE(log->contains(who + " knows " + peer)) << who << "/" << peer;
  auto st = status();
  ASSERT_EQ(st.children.size(), 3u);
  for (auto& c : st.children) {
    EXPECT_TRUE(c.running);
    EXPECT_EQ(c.restarts, 0u);
  }
}

TEST_F(supervisor_test, restarts_a_failed_child_after_backoff_while_others_serve) {
  start({spec("a"), spec("b")});
  pass(100ms); // ready: the readiness rounds slow down to the 5 s heartbeat
  auto old_a = child("a");
  crash("a");
  // a is down and waiting for its restart; b keeps answering meanwhile.
  auto st = status();
  EXPECT_FALSE(st.children[0].running);
  EXPECT_EQ(st.children[0].restarts, 1u);
  EXPECT_NE(st.children[0].last_failure.find("a broke"), std::string::npos)
    << st.children[0].last_failure;
  EXPECT_TRUE(st.children[1].running);
  EXPECT_EQ(ask<caf::pong_atom>(child("b"), caf::ping_atom::value),
            caf::pong_atom::value);
  EXPECT_FALSE(child("a"));
  // The restart waits for the first back-off step.
  EXPECT_EQ(next_timeout(), caf::timespan{100ms});
  advance_time(99ms);
  consume_messages();
  EXPECT_FALSE(child("a"));
  advance_time(1ms);
  consume_messages();
  auto new_a = child("a");
  ASSERT_TRUE(new_a);
  EXPECT_NE(new_a, old_a);
  EXPECT_EQ(log->count("start a"), 2u);
  EXPECT_EQ(ask<caf::pong_atom>(new_a, caf::ping_atom::value),
            caf::pong_atom::value);
  // b learnt the new handle.
  EXPECT_EQ(log->count("b knows a"), 2u);
  EXPECT_TRUE(status().children[0].running);
}

TEST_F(supervisor_test, backoff_doubles_up_to_the_limit_and_resets_when_stable) {
  cfg.max_restarts = 10;
  start({spec("a")});
  pass(100ms); // ready: the readiness rounds slow down to the 5 s heartbeat
  std::vector<caf::timespan> delays;
  for (int i = 0; i < 6; ++i) {
    crash("a");
    delays.push_back(next_timeout());
    advance_time(next_timeout());
    consume_messages();
    ASSERT_TRUE(child("a"));
  }
  EXPECT_EQ(delays, (std::vector<caf::timespan>{100ms, 200ms, 400ms, 800ms,
                                                1s, 1s}));
  EXPECT_EQ(status().children[0].restarts, 6u);
  // After a minute up, the next failure starts over at the first step.
  advance_time(60s);
  crash("a");
  EXPECT_EQ(next_timeout(), caf::timespan{100ms});
}

TEST_F(supervisor_test, shutdown_drains_children_last_first_then_stops_all) {
  start({spec("a"), spec("b"), spec("c")});
  log->lines.clear();
  auto reply = self->request(sup, caf::infinite, atom::shutdown_v);
  run();
  bool done = false;
  reply.receive([&](caf::ok_atom) { done = true; },
                [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
  EXPECT_TRUE(done);
  EXPECT_EQ(log->lines,
            (std::vector<std::string>{"drain c", "drain b", "drain a"}));
  // Nothing was restarted, and the supervisor itself is gone.
  EXPECT_EQ(log->count("start a"), 0u);
  auto err = ask_error<supervisor_status>(sup, atom::status_v);
  EXPECT_TRUE(err);
}

TEST_F(supervisor_test, shutdown_goes_on_past_a_child_that_cannot_drain) {
  start({spec("a"), spec("b", false)});
  log->lines.clear();
  auto reply = self->request(sup, caf::infinite, atom::shutdown_v);
  run();
  bool done = false;
  reply.receive([&](caf::ok_atom) { done = true; },
                [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
  EXPECT_TRUE(done);
  EXPECT_EQ(log->lines, (std::vector<std::string>{"drain b", "drain a"}));
}

TEST_F(supervisor_test, a_child_failing_during_shutdown_is_not_restarted) {
  start({spec("a"), spec("b")});
  crash("a");
  auto reply = self->request(sup, caf::infinite, atom::shutdown_v);
  run(); // also fires a's pending restart timer, which must do nothing now
  bool done = false;
  reply.receive([&](caf::ok_atom) { done = true; },
                [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
  EXPECT_TRUE(done);
  EXPECT_EQ(log->count("start a"), 1u);
  EXPECT_FALSE(log->contains("drain a"));
  EXPECT_TRUE(log->contains("drain b"));
}

// -- restart limits, heartbeats, readiness, systemd ----------------------------------

TEST_F(supervisor_test, announces_ready_once_and_feeds_the_watchdog) {
  start({spec("a"), spec("b")});
  EXPECT_EQ(noted("READY=1"), 0u) << "not before the children answered";
  pass(100ms);
  EXPECT_EQ(noted("READY=1"), 1u);
  auto rep = ready();
  EXPECT_TRUE(rep.ready);
  ASSERT_EQ(rep.checks.size(), 3u);
  EXPECT_EQ(rep.checks[0].name, "config");
  EXPECT_EQ(rep.checks[1].name, "a");
  EXPECT_EQ(rep.checks[1].detail, "running");
  EXPECT_GT(rep.checks[1].since_ms, 0);
  auto fed = noted("WATCHDOG=1");
  pass(cfg.heartbeat_interval * 2);
  EXPECT_EQ(noted("WATCHDOG=1"), fed + 2) << "one per heartbeat interval";
  EXPECT_EQ(noted("READY=1"), 1u) << "READY=1 goes out once";
}

TEST_F(supervisor_test, a_child_that_is_not_ready_makes_the_service_not_ready) {
  start({spec("a"), spec("mqtt", true, readiness::not_ready)});
  pass(cfg.heartbeat_interval);
  auto rep = ready();
  EXPECT_FALSE(rep.ready);
  EXPECT_TRUE(rep.checks[1].ok);
  EXPECT_FALSE(rep.checks[2].ok);
  EXPECT_EQ(rep.checks[2].detail, "not connected");
  EXPECT_EQ(noted("READY=1"), 0u);
  EXPECT_GT(noted("WATCHDOG=1"), 0u) << "not ready is not unhealthy";
}

TEST_F(supervisor_test, gives_up_on_a_child_past_its_restart_limit) {
  cfg.max_restarts = 2;
  cfg.restart_window = 60s;
  start({spec("a"), spec("b")});
  pass(100ms);
  for (int i = 0; i < 2; ++i) {
    crash("a");
    pass(next_timeout());
    ASSERT_TRUE(child("a")) << "restart " << i + 1 << " is within the limit";
  }
  auto fed = noted("WATCHDOG=1");
  crash("a");
  auto st = status();
  EXPECT_FALSE(st.children[0].running);
  EXPECT_TRUE(st.children[0].gave_up);
  EXPECT_EQ(st.children[0].restarts, 3u);
  pass(cfg.heartbeat_interval * 3);
  EXPECT_FALSE(child("a")) << "no restart past the limit";
  EXPECT_EQ(log->count("start a"), 3u);
  EXPECT_EQ(noted("WATCHDOG=1"), fed) << "the watchdog starves";
  auto rep = ready();
  EXPECT_FALSE(rep.ready);
  EXPECT_FALSE(rep.checks[1].ok);
  EXPECT_NE(rep.checks[1].detail.find("failed 3 times within 60 s"),
            std::string::npos)
    << rep.checks[1].detail;
  EXPECT_NE(rep.checks[1].detail.find("a broke"), std::string::npos);
  EXPECT_TRUE(rep.checks[2].ok) << "b keeps running";
  EXPECT_EQ(ask<caf::pong_atom>(child("b"), caf::ping_atom::value),
            caf::pong_atom::value);
}

TEST_F(supervisor_test, failures_older_than_the_window_do_not_count) {
  cfg.max_restarts = 1;
  cfg.restart_window = 2s;
  start({spec("a")});
  crash("a");
  pass(next_timeout());
  ASSERT_TRUE(child("a"));
  pass(3s);
  crash("a");
  pass(1s);
  EXPECT_TRUE(child("a")) << "the first failure left the window";
  EXPECT_FALSE(status().children[0].gave_up);
  crash("a");
  EXPECT_TRUE(status().children[0].gave_up) << "two within 2 s";
}

TEST_F(supervisor_test, a_child_that_stops_answering_is_restarted) {
  cfg.heartbeat_interval = 1s;
  cfg.heartbeat_timeout = 2s;
  start({spec("a"), spec("stuck", true, readiness::stuck)});
  auto old = child("stuck");
  // Asked at once; no answer within 2 s.
  pass(1990ms);
  EXPECT_EQ(status().children[1].restarts, 0u);
  pass(20ms);
  auto st = status();
  EXPECT_EQ(st.children[1].restarts, 1u);
  EXPECT_NE(st.children[1].last_failure.find("stuck: no heartbeat reply "
                                             "within 2000 ms"),
            std::string::npos)
    << st.children[1].last_failure;
  EXPECT_EQ(st.children[0].restarts, 0u) << "a answers its heartbeats";
  pass(100ms);
  auto now = child("stuck");
  ASSERT_TRUE(now);
  EXPECT_NE(now, old);
}

TEST_F(supervisor_test, shutdown_tells_systemd_it_is_stopping) {
  start({spec("a")});
  pass(100ms);
  auto reply = self->request(sup, caf::infinite, atom::shutdown_v);
  run();
  reply.receive([](caf::ok_atom) {},
                [&](caf::error& err) { ADD_FAILURE() << sys.render(err); });
  ASSERT_FALSE(notes->empty());
  EXPECT_EQ(notes->back(), "STOPPING=1");
}
