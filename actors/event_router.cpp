#include "actors/event_router.hpp"

#include "actors/actor_common.hpp"
#include "net/metrics.hpp"

#include <caf/event_based_actor.hpp>

#include <algorithm>

namespace butler {

namespace {

using self_ptr = event_router_actor::stateful_pointer<event_router_state>;

/// Batches held per sink while it is down; past it the oldest go (counted).
/// Their events also keep their places in udp_ingest's in-flight limit, so
/// the ingest sheds before this fills in practice.
constexpr std::size_t max_held_batches = 10'000;

std::size_t index(log_event_kind kind) {
  return static_cast<std::size_t>(kind);
}

void set(event_route& route, std::initializer_list<log_event_kind> kinds) {
  for (auto kind : kinds)
    route.kinds[index(kind)] = true;
}

/// Counts how many events of `batch` the route wants.
std::size_t wanted(const event_route& route, const event_batch& batch) {
  std::size_t n = 0;
  for (auto& ev : *batch.events)
    if (route.kinds[index(ev.kind)])
      ++n;
  return n;
}

void deliver(self_ptr self, event_route& route, event_batch batch,
             std::size_t n) {
  if (route.handle) {
    route.routed += n;
    self->send(route.handle, std::move(batch));
    return;
  }
  if (route.held.size() >= max_held_batches) {
    route.dropped += route.held.front().events->size();
    route.held.pop_front();
    if (route.dropped % 1000 < 64)
      spdlog::warn("{} dropped held events for {} ({} so far): it has been "
                   "down too long",
                   self->name(), route.sink, route.dropped);
  }
  route.held.push_back(std::move(batch));
}


/// Returns the kinds a route takes, e.g. "reload_failed, reload_aborted".
std::string kinds_of(const event_route& r) {
  std::string kinds;
  for (std::size_t i = 0; i < r.kinds.size(); ++i)
    if (r.kinds[i])
      kinds += (kinds.empty() ? "" : ", ")
               + std::string{to_string(static_cast<log_event_kind>(i))};
  return kinds;
}

void log_routes(self_ptr self) {
  for (auto& r : self->state.routes)
    if (auto kinds = kinds_of(r); !kinds.empty())
      spdlog::info("{} routes {} to {}", self->name(), kinds, r.sink);
}

/// Takes the routing table of a reloaded config: routes keep what they hold
/// and count; a route the new table lacks takes nothing more (what it holds
/// still reaches its sink); a new route needs its sink running.
void reroute(self_ptr self, const butler_config& cfg) {
  auto& st = self->state;
  auto fresh = make_routes(cfg);
  for (auto& r : st.routes) {
    auto f = std::find_if(fresh.begin(), fresh.end(),
                          [&](const event_route& x) { return x.sink == r.sink; });
    if (f == fresh.end()) {
      r.kinds = {};
    } else {
      r.kinds = f->kinds;
      fresh.erase(f);
    }
  }
  for (auto& f : fresh) {
    auto known = st.peers.find(f.sink);
    if (known == st.peers.end() || !known->second) {
      spdlog::warn("{} cannot route {} to {}: it is not running; restart "
                   "Butler to start it",
                   self->name(), kinds_of(f), f.sink);
      continue;
    }
    f.handle = caf::actor_cast<event_sink_actor>(known->second);
    self->monitor(f.handle);
    st.routes.push_back(std::move(f));
  }
  spdlog::info("{} took the reloaded routing table", self->name());
  log_routes(self);
}

} // namespace

std::vector<event_route> make_routes(const butler_config& cfg) {
  using k = log_event_kind;
  std::vector<event_route> routes;
  if (cfg.mqtt.enable) {
    event_route r;
    r.sink = "mqtt-link";
    set(r, {k::task_failure_legacy, k::reload_failed, k::reload_aborted,
            k::session_start, k::session_stop, k::connection_open,
            k::connection_close});
    routes.push_back(std::move(r));
  }
  auto& slack = cfg.slack;
  event_route s;
  s.sink = "slack-egress";
  if (slack.enable && slack.reload_task_failure.enable)
    set(s, {k::reload_failed});
  if (slack.enable && slack.reload_task_aborted.enable)
    set(s, {k::reload_aborted});
  if (!slack.seed_webhook_url.empty() && !slack.task_failure_channel.empty())
    set(s, {k::task_failure_legacy});
  if (!slack.seed_webhook_url.empty()
      && !slack.login_notification_channel.empty())
    set(s, {k::session_start, k::session_stop, k::connection_open,
            k::connection_close});
  for (auto on : s.kinds)
    if (on) {
      routes.push_back(std::move(s));
      break;
    }
  event_route t;
  t.sink = "session-tracker";
  set(t, {k::session_start, k::session_stop});
  routes.push_back(std::move(t));
  return routes;
}

event_router_actor::behavior_type
event_router(event_router_actor::stateful_pointer<event_router_state> self,
             std::vector<event_route> routes) {
  install_common_handlers(self);
  self->state.routes = std::move(routes);
  log_routes(self);
  self->set_down_handler([=](caf::down_msg& dm) {
    for (auto& r : self->state.routes)
      if (r.handle && r.handle.address() == dm.source) {
        r.handle = nullptr;
        spdlog::warn("{} holds events for {} until it is back", self->name(),
                     r.sink);
      }
  });
  return {
    [=](const event_batch& batch) {
      auto& st = self->state;
      for (auto& route : st.routes)
        if (auto n = wanted(route, batch); n > 0)
          deliver(self, route, batch, n);
      for (auto& ev : *batch.events) {
        bool routed = false;
        for (auto& route : st.routes)
          routed = routed || route.kinds[index(ev.kind)];
        if (!routed) {
          ++st.unrouted[index(ev.kind)];
          spdlog::debug("{} e{}: no sink takes {} events", self->name(),
                        ev.id, to_string(ev.kind));
        }
      }
    },
    [=](atom::status) {
      auto& st = self->state;
      counters_status result;
      for (auto& r : st.routes) {
        result.counters.emplace_back("routed_" + r.sink, r.routed);
        result.counters.emplace_back("held_" + r.sink, r.held.size());
        result.counters.emplace_back("dropped_" + r.sink, r.dropped);
      }
      for (std::size_t i = 0; i < st.unrouted.size(); ++i)
        if (st.unrouted[i] > 0)
          result.counters.emplace_back(
            std::string{"unrouted_"}
              + to_string(static_cast<log_event_kind>(i)),
            st.unrouted[i]);
      return result;
    },
    [=](atom::metrics) {
      using metrics::counter;
      auto& st = self->state;
      metric_set out;
      for (auto& r : st.routes) {
        out.samples.push_back(counter("butler_events_routed_total",
                                      "Events handed to a sink, by sink",
                                      r.routed, {{"sink", r.sink}}));
        out.samples.push_back(counter(
          "butler_events_dropped_total",
          "Events a sink could not take (its backlog was full), by sink",
          r.dropped, {{"sink", r.sink}}));
        out.samples.push_back(metrics::gauge(
          "butler_events_held_batches",
          "Event batches held for a sink that is restarting, by sink",
          r.held.size(), {{"sink", r.sink}}));
      }
      for (std::size_t i = 0; i < st.unrouted.size(); ++i)
        out.samples.push_back(counter(
          "butler_events_unrouted_total",
          "Events no enabled sink takes, by kind", st.unrouted[i],
          {{"kind", to_string(static_cast<log_event_kind>(i))}}));
      return out;
    },
    [=](atom::drain, caf::timespan) {
      bool clean = true;
      for (auto& r : self->state.routes)
        if (!r.held.empty()) {
          spdlog::warn("{} still holds {} batches for {}", self->name(),
                       r.held.size(), r.sink);
          clean = false;
        }
      return clean;
    },
    [=](config_ptr& cfg) { reroute(self, *cfg); },
    [=](peer_up& peer) {
      self->state.peers[peer.name] = peer.handle;
      for (auto& r : self->state.routes) {
        if (r.sink != peer.name)
          continue;
        r.handle = caf::actor_cast<event_sink_actor>(peer.handle);
        self->monitor(r.handle);
        if (!r.held.empty())
          spdlog::info("{} hands {} held batches to {}", self->name(),
                       r.held.size(), r.sink);
        while (!r.held.empty()) {
          auto n = wanted(r, r.held.front());
          r.routed += n;
          self->send(r.handle, std::move(r.held.front()));
          r.held.pop_front();
        }
      }
    },
  };
}

} // namespace butler
