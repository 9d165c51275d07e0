#pragma once

// Waiting on a condition in tests that run real threads and servers: poll
// with a deadline instead of sleeping a fixed time.

#include <chrono>
#include <thread>

namespace butler::test {

/// Polls `pred` until it holds or `timeout` passes; returns its last value.
template <class Predicate>
bool eventually(Predicate pred,
                std::chrono::milliseconds timeout = std::chrono::seconds{10}) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds{2});
  }
  return true;
}

} // namespace butler::test
