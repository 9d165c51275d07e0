#pragma once

// The shutdown drain every actor with work in flight answers: the
// supervisor sends atom::drain with a grace period, and the actor replies
// true once nothing is left, or false when the grace period ends first.

#include "messages/atoms.hpp"
#include "messages/error.hpp"

#include <caf/actor_clock.hpp>
#include <caf/result.hpp>
#include <caf/typed_response_promise.hpp>

#include <chrono>
#include <cstddef>

namespace butler {

/// One actor's pending drain request.
class drain_gate {
public:
  /// What settle() did.
  enum outcome {
    /// No drain is waiting.
    idle,
    /// Nothing was left: answered true.
    drained,
    /// The grace period is over: answered false.
    expired,
    /// Work is left and time remains: still waiting.
    waiting,
  };

  /// How often a waiting drain is checked again (atom::tick to the actor).
  static constexpr auto poll_interval = std::chrono::milliseconds{10};

  bool pending() const {
    return promise_.pending();
  }

  /// Takes the drain request `self` is handling, to be answered by settle()
  /// within `grace`. A second request while one waits is refused.
  template <class Self>
  caf::result<bool> open(Self* self, caf::timespan grace) {
    if (pending())
      return caf::make_error(ec::unavailable, "drain already running");
    promise_ = self->template make_response_promise<bool>();
    deadline_ = self->clock().now() + grace;
    return promise_;
  }

  /// Answers a waiting drain: true when `left` is 0, false once `now` has
  /// reached the deadline (the caller logs what it gives up on).
  outcome settle(std::size_t left, caf::actor_clock::time_point now);

  /// settle() at `self`'s current time; while the drain waits and `poll` is
  /// set, schedules the next check as an atom::tick to `self`.
  template <class Self>
  outcome settle(Self* self, std::size_t left, bool poll = true) {
    auto out = settle(left, self->clock().now());
    if (out == waiting && poll)
      self->delayed_send(self, poll_interval, atom::tick_v);
    return out;
  }

private:
  caf::typed_response_promise<bool> promise_;
  caf::actor_clock::time_point deadline_;
};

inline drain_gate::outcome
drain_gate::settle(std::size_t left, caf::actor_clock::time_point now) {
  if (!pending())
    return idle;
  if (left == 0) {
    promise_.deliver(true);
    return drained;
  }
  if (now >= deadline_) {
    promise_.deliver(false);
    return expired;
  }
  return waiting;
}

} // namespace butler
