#include "actors/supervisor.hpp"

#include "actors/actor_common.hpp"
#include "net/metrics.hpp"

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

/// Returns the wall-clock time in ms since the Unix epoch.
std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

/// Records `c`'s readiness answer ("" when ready), noting when it changed.
void set_readiness(child& c, std::string not_ready) {
  if (c.not_ready.empty() != not_ready.empty())
    c.since_ms = now_ms();
  c.not_ready = std::move(not_ready);
}

/// Tells `target` about `peer`.
void announce(const caf::actor& target, const child& peer) {
  if (target && peer.handle)
    caf::anon_send(target, peer_up{peer.spec.name, peer.handle});
}

/// Spawns `c`, monitors it and exchanges handles with the running peers.
void start_child(self_ptr self, child& c) {
  c.handle = c.spec.spawn(self->home_system(), *self->state.config);
  c.started = self->clock().now();
  if (!c.handle) {
    // A spawn function that cannot even produce an actor is treated like an
    // immediate failure, so it goes through the same back-off.
    spdlog::error("{} could not spawn {}", self->name(), c.spec.name);
    return;
  }
  self->monitor(c.handle);
  set_readiness(c, "starting");
  caf::anon_send(c.handle,
                 peer_up{"supervisor", caf::actor_cast<caf::actor>(self)});
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

/// Handles a failure of `c` (its handle already cleared): restarts it after
/// back-off, or leaves it stopped once it failed more than maxRestarts times
/// within the restart window.
void on_failure(self_ptr self, child& c, std::string reason) {
  auto& cfg = self->state.cfg;
  auto now = self->clock().now();
  c.last_failure = std::move(reason);
  ++c.restarts;
  c.recent_failures.push_back(now);
  while (!c.recent_failures.empty()
         && now - c.recent_failures.front() > cfg.restart_window)
    c.recent_failures.pop_front();
  auto window_s
    = std::chrono::duration_cast<std::chrono::seconds>(cfg.restart_window)
        .count();
  if (c.recent_failures.size() > static_cast<std::size_t>(cfg.max_restarts)) {
    c.gave_up = true;
    set_readiness(c, "stopped: failed " + std::to_string(
                                             c.recent_failures.size())
                       + " times within " + std::to_string(window_s)
                       + " s (Butler.supervisor.maxRestarts "
                       + std::to_string(cfg.max_restarts)
                       + "); last failure: " + c.last_failure);
    spdlog::critical("{} gives up on {}: it failed {} times within {} s "
                     "(maxRestarts {}); last failure: {}. Butler is not "
                     "ready and stops feeding the systemd watchdog",
                     self->name(), c.spec.name, c.recent_failures.size(),
                     window_s, cfg.max_restarts, c.last_failure);
    return;
  }
  set_readiness(c, "restarting after a failure: " + c.last_failure);
  auto delay = backoff(self, c);
  spdlog::error("{} saw {} fail ({}); restart {} in {} ms", self->name(),
                c.spec.name, c.last_failure, c.restarts,
                std::chrono::duration_cast<std::chrono::milliseconds>(delay)
                  .count());
  self->delayed_send(self, delay, atom::restart_v, c.spec.name);
}

/// Returns the wait between readiness rounds: the heartbeat interval, at most
/// half the systemd watchdog period, and short until the service first became
/// ready so that READY=1 goes out soon after start.
caf::timespan tick_interval(self_ptr self) {
  auto& st = self->state;
  auto interval = std::chrono::duration_cast<caf::timespan>(
    st.cfg.heartbeat_interval);
  if (st.notify.watchdog.count() > 0)
    interval = std::min(interval, std::chrono::duration_cast<caf::timespan>(
                                    st.notify.watchdog / 2));
  if (!st.announced_ready)
    interval = std::min(interval, caf::timespan{std::chrono::milliseconds{100}});
  return interval;
}

/// Sends one state line to systemd, if run by it.
void tell_systemd(self_ptr self, const std::string& line) {
  if (self->state.notify.send)
    self->state.notify.send(line);
}

/// Builds the readiness report from the latest answers.
readiness_report report_of(self_ptr self) {
  auto& st = self->state;
  readiness_report rep;
  rep.checks.push_back({"config", true, st.started_ms, "loaded and valid"});
  for (auto& c : st.children) {
    bool ok = c.handle && c.not_ready.empty();
    rep.checks.push_back({c.spec.name, ok, c.since_ms,
                          ok ? std::string{"running"} : c.not_ready});
  }
  rep.ready = !st.shutting_down
              && std::all_of(rep.checks.begin(), rep.checks.end(),
                             [](const readiness_check& x) { return x.ok; });
  return rep;
}

/// Returns whether no child is past its restart limit.
bool healthy(self_ptr self) {
  for (auto& c : self->state.children)
    if (c.gave_up)
      return false;
  return true;
}

/// Asks every running child for readiness (its heartbeat); one that does not
/// answer within the heartbeat timeout is stuck: killed and handled as a
/// failure.
void query_children(self_ptr self) {
  auto timeout = std::chrono::duration_cast<caf::timespan>(
    self->state.cfg.heartbeat_timeout);
  for (auto& c : self->state.children) {
    if (!c.handle || c.query_pending)
      continue;
    c.query_pending = true;
    auto name = c.spec.name;
    auto asked = c.handle;
    self->request(c.handle, timeout, atom::ready_v)
      .then(
        [=](std::string& not_ready) {
          auto c = find_child(self, name);
          if (c == nullptr || c->handle != asked)
            return;
          c->query_pending = false;
          set_readiness(*c, std::move(not_ready));
        },
        [=](caf::error& err) {
          auto c = find_child(self, name);
          if (c == nullptr || c->handle != asked)
            return;
          c->query_pending = false;
          if (err != caf::sec::request_timeout || self->state.shutting_down)
            return; // a child that went down is handled by the down handler
          auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      self->state.cfg.heartbeat_timeout)
                      .count();
          spdlog::error("{} saw {} stop answering: no heartbeat reply within "
                        "{} ms; it counts as failed",
                        self->name(), name, ms);
          self->demonitor(c->handle);
          self->send_exit(c->handle, caf::exit_reason::kill);
          c->handle = nullptr;
          on_failure(self, *c,
                     "stuck: no heartbeat reply within " + std::to_string(ms)
                       + " ms");
        });
  }
}

/// One readiness round: announces READY=1 the first time the service is
/// ready, feeds the watchdog while no child is past its restart limit, and
/// asks the children again.
void on_tick(self_ptr self) {
  auto& st = self->state;
  if (st.shutting_down)
    return;
  auto rep = report_of(self);
  if (rep.ready && !st.announced_ready) {
    st.announced_ready = true;
    spdlog::info("{} reports Butler ready", self->name());
    tell_systemd(self, "READY=1");
  }
  if (healthy(self))
    tell_systemd(self, "WATCHDOG=1");
  query_children(self);
  self->delayed_send(self, tick_interval(self), atom::tick_v);
}

/// Returns the supervisor's own samples: per actor whether it runs, its
/// restarts and whether it was given up on; and whether Butler is ready.
metric_set own_metrics(self_ptr self) {
  metric_set out;
  for (auto& c : self->state.children) {
    metrics::label_list actor{{"actor", c.spec.name}};
    out.samples.push_back(metrics::counter(
      "butler_actor_restarts_total",
      "Failures of an actor (each followed by a restart unless given up)",
      c.restarts, actor));
    out.samples.push_back(metrics::gauge("butler_actor_up",
                                         "1 while the actor runs",
                                         c.handle ? 1 : 0, actor));
    out.samples.push_back(metrics::gauge(
      "butler_actor_given_up",
      "1 once the actor failed past supervisor.maxRestarts", c.gave_up ? 1 : 0,
      actor));
  }
  out.samples.push_back(metrics::gauge(
    "butler_ready", "1 while every readiness check passes",
    report_of(self).ready ? 1 : 0));
  return out;
}

/// Answers `promise` with every running child's metrics and the
/// supervisor's own; a child that does not answer within a second is left
/// out of this scrape.
void gather_metrics(self_ptr self,
                    caf::typed_response_promise<metric_set> promise) {
  auto all = std::make_shared<metric_set>(own_metrics(self));
  auto left = std::make_shared<std::size_t>(0);
  for (auto& c : self->state.children)
    if (c.handle)
      ++*left;
  if (*left == 0) {
    promise.deliver(std::move(*all));
    return;
  }
  auto one_done = [all, left, promise]() mutable {
    if (--*left == 0)
      promise.deliver(std::move(*all));
  };
  for (auto& c : self->state.children) {
    if (!c.handle)
      continue;
    self->request(c.handle, std::chrono::seconds{1}, atom::metrics_v)
      .then(
        [all, one_done](metric_set& m) mutable {
          for (auto& s : m.samples)
            all->samples.push_back(std::move(s));
          one_done();
        },
        [one_done](caf::error&) mutable { one_done(); });
  }
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
           config_ptr config, std::vector<child_spec> specs,
           service_notifier notify) {
  install_common_handlers(self);
  self->state.cfg = config->supervisor;
  self->state.config = std::move(config);
  self->state.notify = std::move(notify);
  self->state.started_ms = now_ms();
  for (auto& spec : specs) {
    child c;
    c.spec = std::move(spec);
    c.since_ms = self->state.started_ms;
    self->state.children.push_back(std::move(c));
  }
  for (auto& c : self->state.children) {
    start_child(self, c);
    if (!c.handle)
      on_failure(self, c, "could not be spawned");
  }
  self->send(self, atom::tick_v);
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
    on_failure(self, *i,
               dm.reason ? self->home_system().render(dm.reason)
                         : std::string{"stopped without an error"});
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
                                               c.restarts, c.last_failure,
                                               c.gave_up});
      return result;
    },
    [=](atom::shutdown) -> caf::result<caf::ok_atom> {
      if (self->state.shutting_down)
        return caf::make_error(ec::unavailable, "shutdown already running");
      spdlog::info("{} begins an orderly shutdown", self->name());
      self->state.shutting_down = true;
      tell_systemd(self, "STOPPING=1");
      self->state.shutdown_promise = self->make_response_promise<caf::ok_atom>();
      drain_next(self, 0);
      return self->state.shutdown_promise;
    },
    [=](atom::heartbeat) { return atom::heartbeat_v; },
    [=](atom::ready) { return report_of(self); },
    [=](atom::metrics) -> caf::result<metric_set> {
      auto promise = self->make_response_promise<metric_set>();
      gather_metrics(self, promise);
      return promise;
    },
    [=](atom::tick) { on_tick(self); },
    [=](config_ptr& cfg) {
      auto& st = self->state;
      st.config = cfg;
      std::string told;
      for (auto& c : st.children)
        if (c.spec.reloads && c.handle) {
          caf::anon_send(c.handle, cfg);
          told += (told.empty() ? "" : ", ") + c.spec.name;
        }
      spdlog::info("{} hands the reloaded config to {}", self->name(),
                   told.empty() ? std::string{"no running actor"} : told);
    },
    [=](atom::restart, const std::string& name) {
      if (self->state.shutting_down)
        return;
      if (auto c = find_child(self, name); c && !c->handle && !c->gave_up) {
        spdlog::info("{} restarts {}", self->name(), name);
        start_child(self, *c);
        if (!c->handle)
          on_failure(self, *c, "could not be spawned");
      }
    },
  };
}

} // namespace butler
