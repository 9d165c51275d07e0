#pragma once

// What every actor file shares. Log lines name the actor first
// (`spdlog::info("{} published {} to {}", self->name(), id, topic)`); the
// exception handler turns a throw into a logged exit the supervisor restarts;
// and every actor answers the supervisor's heartbeat and readiness queries.

#include "messages/atoms.hpp"
#include "messages/error.hpp"
#include "messages/replies.hpp"

#include <caf/make_message.hpp>
#include <caf/message_view.hpp>
#include <caf/actor_cast.hpp>
#include <caf/scheduled_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <spdlog/spdlog.h>

#include <cstdint>
#include <exception>
#include <string>
#include <variant>

namespace butler {

/// Makes an exception escaping a handler end the actor with
/// ec::unhandled_exception (logged here, restarted by the supervisor) instead
/// of CAF's generic runtime_error; and answers the supervisor's periodic
/// atom::ready query, unless the actor's own interface handles it, with ""
/// (an actor without a readiness condition is ready while it runs; that it
/// answers at all shows it is not stuck), and atom::metrics, unless handled,
/// with no samples. Any other unexpected message is logged and dropped, as
/// CAF does by default.
inline void install_common_handlers(caf::scheduled_actor* self) {
  self->set_default_handler(
    [](caf::scheduled_actor* who,
       caf::message_view& view) -> caf::result<caf::message> {
      auto& xs = view.content();
      if (xs.size() == 1 && xs.match_element<caf::atom_value>(0)) {
        auto tag = xs.get_as<caf::atom_value>(0);
        if (tag == atom::ready_v.value)
          return caf::make_message(std::string{});
        if (tag == atom::metrics_v.value)
          return caf::make_message(metric_set{});
      }
      return caf::print_and_drop(who, view);
    });
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

/// Returns the completion callback for operation `op` of a client library
/// that reports std::variant<Result, Error> on its own thread: it sends
/// (atom::done, op, convert(result)) or (atom::done, op, to_error(error)) to
/// the actor behind `self` (typed as Handle), unless the actor is gone.
template <class Handle, class Result, class Error, class Self, class Convert,
          class ToError>
auto deliver_outcome(Self* self, std::uint64_t op, Convert convert,
                     ToError to_error) {
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(self);
  return [weak, op, convert, to_error](std::variant<Result, Error> outcome) {
    auto strong = weak.lock();
    if (!strong)
      return;
    auto handle = caf::actor_cast<Handle>(strong);
    if (auto* ok = std::get_if<Result>(&outcome))
      caf::anon_send(handle, atom::done_v, op, convert(*ok));
    else
      caf::anon_send(handle, atom::done_v, op,
                     to_error(std::get<Error>(outcome)));
  };
}

} // namespace butler
