#include "actors/supervisor.hpp"

#include "actors/actor_common.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <memory>

namespace butler {

namespace {

using self_ptr = supervisor_actor::stateful_pointer<supervisor_state>;
using child = supervisor_state::child;

child* find_child(self_ptr self, const std::string& name) {
  for (auto& c : self->state.children)
    if (c.spec.name == name)
      return &c;
  return nullptr;
}

/// Tells `target` about `peer`.
void announce(const caf::actor& target, const child& peer) {
  if (target && peer.handle)
    caf::anon_send(target, peer_up{peer.spec.name, peer.handle});
}

/// Spawns `c`, monitors it and exchanges handles with the running peers.
void start_child(self_ptr self, child& c) {
  c.handle = c.spec.spawn(self->home_system());
  c.started = self->clock().now();
  if (!c.handle) {
    // A spawn function that cannot even produce an actor is treated like an
    // immediate failure, so it goes through the same back-off.
    spdlog::error("{} could not spawn {}", self->name(), c.spec.name);
    return;
  }
  self->monitor(c.handle);
  for (auto& other : self->state.children) {
    if (&other == &c || !other.handle)
      continue;
    announce(other.handle, c);
    announce(c.handle, other);
  }
}

/// Returns the wait before the next restart of `c`.
caf::timespan backoff(self_ptr self, child& c) {
  auto& cfg = self->state.cfg;
  auto up_for = self->clock().now() - c.started;
  if (up_for >= cfg.stable_after)
    c.consecutive_failures = 0;
  ++c.consecutive_failures;
  auto delay = std::chrono::duration_cast<caf::timespan>(cfg.restart_min);
  for (int i = 1; i < c.consecutive_failures && delay < cfg.restart_max; ++i)
    delay *= 2;
  return std::min(delay,
                  std::chrono::duration_cast<caf::timespan>(cfg.restart_max));
}

/// Returns whether every child is down.
bool all_down(self_ptr self) {
  auto& children = self->state.children;
  return std::none_of(children.begin(), children.end(),
                      [](const child& c) { return bool{c.handle}; });
}

/// Ends the shutdown once the last child is gone.
void finish_if_done(self_ptr self) {
  if (self->state.exiting && all_down(self)) {
    spdlog::info("{} stopped every actor", self->name());
    self->state.shutdown_promise.deliver(caf::ok_atom::value);
    self->quit();
  }
}

/// Asks every child to exit, last started first.
void exit_all(self_ptr self) {
  self->state.exiting = true;
  auto& children = self->state.children;
  for (auto i = children.rbegin(); i != children.rend(); ++i)
    if (i->handle)
      self->send_exit(i->handle, caf::exit_reason::user_shutdown);
  finish_if_done(self);
}

/// Drains the children one at a time from last to first (each bounded by the
/// grace period), then asks them all to exit. `pos` counts from the end.
void drain_next(self_ptr self, std::size_t pos) {
  auto& children = self->state.children;
  while (pos < children.size() && !children[children.size() - 1 - pos].handle)
    ++pos;
  if (pos >= children.size()) {
    exit_all(self);
    return;
  }
  auto& c = children[children.size() - 1 - pos];
  auto grace = std::chrono::duration_cast<caf::timespan>(
    self->state.cfg.shutdown_grace);
  auto name = c.spec.name;
  spdlog::info("{} drains {}", self->name(), name);
  self
    ->request(c.handle, grace + std::chrono::seconds{1}, atom::drain_v, grace)
    .then(
      [=](bool clean) {
        if (!clean)
          spdlog::warn("{} stopped waiting for {} to drain after {} ms", self->name(),
                       name, self->state.cfg.shutdown_grace.count());
        drain_next(self, pos + 1);
      },
      [=](caf::error& err) {
        spdlog::warn("{} could not drain {}: {}", self->name(), name, error_text(err));
        drain_next(self, pos + 1);
      });
}

} // namespace

supervisor_actor::behavior_type
supervisor(supervisor_actor::stateful_pointer<supervisor_state> self,
           supervisor_config cfg, std::vector<child_spec> specs) {
  install_exception_handler(self);
  self->state.cfg = cfg;
  for (auto& spec : specs)
    self->state.children.push_back(child{std::move(spec), {}, 0, 0, {}, {}});
  for (auto& c : self->state.children) {
    start_child(self, c);
    if (!c.handle)
      self->delayed_send(self, backoff(self, c), atom::restart_v,
                         c.spec.name);
  }
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& children = self->state.children;
    auto i = std::find_if(children.begin(), children.end(), [&](child& c) {
      return c.handle && c.handle.address() == dm.source;
    });
    if (i == children.end())
      return;
    i->handle = nullptr;
    if (self->state.shutting_down) {
      spdlog::info("{} saw {} stop", self->name(), i->spec.name);
      finish_if_done(self);
      return;
    }
    i->last_failure = dm.reason ? self->home_system().render(dm.reason)
                                : std::string{"stopped without an error"};
    ++i->restarts;
    auto delay = backoff(self, *i);
    spdlog::error("{} saw {} fail ({}); restart {} in {} ms", self->name(),
                  i->spec.name, i->last_failure, i->restarts,
                  std::chrono::duration_cast<std::chrono::milliseconds>(delay)
                    .count());
    self->delayed_send(self, delay, atom::restart_v, i->spec.name);
  });
  return {
    [=](caf::get_atom, const std::string& name) -> caf::actor {
      auto c = find_child(self, name);
      return c ? c->handle : caf::actor{};
    },
    [=](atom::status) -> supervisor_status {
      supervisor_status result;
      for (auto& c : self->state.children)
        result.children.push_back(child_status{c.spec.name, bool{c.handle},
                                               c.restarts, c.last_failure});
      return result;
    },
    [=](atom::shutdown) -> caf::result<caf::ok_atom> {
      if (self->state.shutting_down)
        return caf::make_error(ec::unavailable, "shutdown already running");
      spdlog::info("{} begins an orderly shutdown", self->name());
      self->state.shutting_down = true;
      self->state.shutdown_promise = self->make_response_promise<caf::ok_atom>();
      drain_next(self, 0);
      return self->state.shutdown_promise;
    },
    [=](atom::restart, const std::string& name) {
      if (self->state.shutting_down)
        return;
      if (auto c = find_child(self, name); c && !c->handle) {
        spdlog::info("{} restarts {}", self->name(), name);
        start_child(self, *c);
        if (!c->handle) {
          ++c->restarts;
          self->delayed_send(self, backoff(self, *c),
                             atom::restart_v, name);
        }
      }
    },
  };
}

} // namespace butler
