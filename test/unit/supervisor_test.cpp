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

/// A supervised child: records peers and drains, answers ping, throws on
/// delete_atom (a handler failing with an exception).
caf::behavior probe(caf::event_based_actor* self, std::string name,
                    std::shared_ptr<probe_log> log, bool drain_ok) {
  install_exception_handler(self);
  log->lines.push_back("start " + name);
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
  supervisor_config cfg;
  supervisor_actor sup;

  child_spec spec(const std::string& name, bool drain_ok = true) {
    auto lg = log;
    return {name, [name, lg, drain_ok](caf::actor_system& sys) {
              return sys.spawn(probe, name, lg, drain_ok);
            }};
  }

  void start(std::vector<child_spec> specs) {
    cfg.restart_min = 100ms;
    cfg.restart_max = 1s;
    cfg.stable_after = 60s;
    cfg.shutdown_grace = 2s;
    sup = sys.spawn(supervisor, cfg, std::move(specs));
    consume_messages();
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
  start({spec("a")});
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
