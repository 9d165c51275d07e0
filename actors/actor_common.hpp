#pragma once

// What every actor file shares. Log lines name the actor first
// (`spdlog::info("{} published {} to {}", self->name(), id, topic)`), and the
// exception handler turns a throw into a logged exit the supervisor restarts.

#include "messages/error.hpp"

#include <caf/scheduled_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <spdlog/spdlog.h>

#include <exception>
#include <string>

namespace butler {

/// Makes an exception escaping a handler end the actor with
/// ec::unhandled_exception (logged here, restarted by the supervisor) instead
/// of CAF's generic runtime_error.
inline void install_exception_handler(caf::scheduled_actor* self) {
  self->set_exception_handler(
    [](caf::scheduled_actor* who, std::exception_ptr& eptr) -> caf::error {
      std::string what = "unknown exception";
      try {
        std::rethrow_exception(eptr);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
        // keep "unknown exception"
      }
      spdlog::error("{} failed with an exception: {}", who->name(), what);
      return caf::make_error(ec::unhandled_exception, what);
    });
}

} // namespace butler
