#pragma once

// A GoogleTest fixture on CAF's deterministic test scheduler: actors run only
// when the test calls run() / consume_messages(), and time moves only with
// advance_time(). Include this header in exactly one translation unit per test
// executable (it defines CAF's test engine).

#define CAF_TEST_NO_MAIN
#include <caf/test/unit_test_impl.hpp>

#include <caf/test/dsl.hpp>

#include "actors/actor_system_setup.hpp"
#include "config/butler_config.hpp"

#include <gtest/gtest.h>

namespace butler::test {

struct caf_fixture : ::testing::Test,
                     test_coordinator_fixture<butler_system_config> {
  caf_fixture() : test_coordinator_fixture<butler_system_config>(butler_config{}) {
    // nop
  }

  /// Returns the delay until the earliest pending timeout, or -1 ns if none.
  caf::timespan next_timeout() {
    auto& schedule = sched.clock().schedule();
    if (schedule.empty())
      return caf::timespan{-1};
    return schedule.begin()->first - sched.clock().now();
  }

  /// Sends `xs...` to `dest` from the test's scoped actor, lets the actors
  /// consume their messages (firing no timer), and returns the reply of type
  /// T; fails the test on an error reply.
  template <class T, class Handle, class... Ts>
  T ask(const Handle& dest, Ts&&... xs) {
    auto handle = self->request(dest, caf::infinite, std::forward<Ts>(xs)...);
    consume_messages();
    T result{};
    handle.receive([&](T& x) { result = std::move(x); },
                   [&](caf::error& err) {
                     ADD_FAILURE() << "error reply: " << sys.render(err);
                   });
    return result;
  }

  /// Like ask(), but expects an error reply and returns it.
  template <class T, class Handle, class... Ts>
  caf::error ask_error(const Handle& dest, Ts&&... xs) {
    auto handle = self->request(dest, caf::infinite, std::forward<Ts>(xs)...);
    consume_messages();
    caf::error result;
    handle.receive([&](T&) { ADD_FAILURE() << "expected an error reply"; },
                   [&](caf::error& err) { result = std::move(err); });
    return result;
  }
};

} // namespace butler::test
