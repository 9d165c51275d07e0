#include "actors/engine_client.hpp"

#include "actors/actor_common.hpp"
#include "actors/sense_options.hpp"
#include "net/metrics.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

namespace butler {

namespace {

using self_ptr = engine_client_actor::stateful_pointer<engine_client_state>;


/// Maps an Engine failure to the Butler error the REST API renders: an
/// unknown app is 422, a timeout 504, everything else a bad gateway (502).
caf::error to_error(const engine::engine_error& err) {
  using kind = engine::engine_error::kind;
  switch (err.what) {
    case kind::not_found:
      return caf::make_error(ec::unprocessable, err.message);
    case kind::timeout:
      return caf::make_error(ec::timeout, err.message);
    default:
      return caf::make_error(ec::bad_gateway, err.message);
  }
}

/// Returns a callback that hands an operation's outcome back to the actor,
/// converted by `convert` on the engine client's thread.
template <class Result, class Convert>
auto deliver_to(self_ptr self, std::uint64_t op, Convert convert) {
  return deliver_outcome<engine_client_actor, Result, engine::engine_error>(
    self, op, convert,
    [](const engine::engine_error& err) { return to_error(err); });
}

void check_drain(self_ptr self, bool poll = false) {
  auto& st = self->state;
  auto left = st.in_flight();
  auto outcome = st.drain.settle(self, left, poll);
  if (outcome == drain_gate::expired)
    spdlog::warn("{} stops with {} Engine operations unfinished",
                 self->name(), left);
}

/// Starts the follow-up tasks of a finished reload, then answers it.
void finish_reload(self_ptr self, engine_client_state::reload job,
                   bool success) {
  auto& st = self->state;
  auto& ids = success ? job.req.start_on_success : job.req.start_on_failure;
  spdlog::info("{} reloaded app {} for {}: {}", self->name(), job.req.app_id,
               job.req.event_id, success ? "succeeded" : "failed");
  if (ids.empty() || !st.qrs) {
    if (!ids.empty())
      spdlog::error("{} cannot start the {} tasks of app {}: qrs-client is "
                    "not running",
                    self->name(), success ? "success" : "failure",
                    job.req.app_id);
    job.promise.deliver(app_reload_result{success, {}});
    return;
  }
  task_start_request start;
  start.task_ids = ids;
  // Tasks the admin named for this reload, not a caller's choice: the
  // filter for callers does not apply.
  start.apply_filter = false;
  start.event_id = job.req.event_id;
  auto promise = job.promise;
  self->request(st.qrs, caf::infinite, std::move(start))
    .then(
      [promise, success](task_start_result& started) mutable {
        promise.deliver(app_reload_result{success, std::move(started)});
      },
      [self, promise, success, app = job.req.app_id](caf::error& err) mutable {
        spdlog::error("{} could not start the follow-up tasks of app {}: {}",
                      self->name(), app, error_text(err));
        promise.deliver(app_reload_result{success, {}});
      });
}

/// Returns the counters as the status reply carries them.
counters_status status_of(const engine_client_state& st) {
  return counters_status{{{"operations", st.operations},
                          {"failures", st.failures},
                          {"in_flight", st.in_flight()}}};
}

/// How the counters appear in /metrics.
const std::vector<metrics::counter_map> metric_table{
  {"operations", "butler_engine_operations_total",
   "Engine operations (app lists, dumps, reloads)",
   false, {}},
  {"failures", "butler_engine_failures_total",
   "Engine operations that failed",
   false, {}},
  {"in_flight", "butler_engine_operations_in_flight",
   "Engine operations running",
   true, {}},
};

} // namespace

engine::engine_options engine_options_of(const butler_config& cfg) {
  return sense_options_of<engine::engine_options>(cfg.engine, cfg.cert);
}

engine_client_actor::behavior_type
engine_client(engine_client_actor::stateful_pointer<engine_client_state> self,
              engine::engine_options opts,
              std::shared_ptr<engine::client> engine) {
  install_common_handlers(self);
  auto& st = self->state;
  st.opts = std::move(opts);
  st.engine = std::move(engine);
  return {
    [=](atom::apps) -> caf::result<app_list> {
      auto& st = self->state;
      auto op = ++st.next_op;
      ++st.operations;
      auto promise = self->make_response_promise<app_list>();
      st.lists.emplace(op, promise);
      st.engine->list_apps(
        st.opts, deliver_to<std::vector<engine::app_entry>>(
                   self, op, [](const std::vector<engine::app_entry>& apps) {
                     app_list out;
                     for (auto& a : apps)
                       out.apps.emplace_back(a.id, a.name);
                     return out;
                   }));
      return promise;
    },
    [=](app_dump_request& req) -> caf::result<app_dump> {
      auto& st = self->state;
      auto op = ++st.next_op;
      ++st.operations;
      auto promise = self->make_response_promise<app_dump>();
      st.dumps.emplace(op, promise);
      spdlog::info("{} dumps app {} for {}", self->name(), req.app_id,
                   req.event_id);
      st.engine->dump_app(st.opts, req.app_id,
                          deliver_to<nlohmann::json>(
                            self, op, [](const nlohmann::json& dump) {
                              return app_dump{dump.dump(
                                -1, ' ', false,
                                nlohmann::json::error_handler_t::replace)};
                            }));
      return promise;
    },
    [=](app_reload_request& req) -> caf::result<app_reload_result> {
      auto& st = self->state;
      auto op = ++st.next_op;
      ++st.operations;
      auto promise = self->make_response_promise<app_reload_result>();
      spdlog::info("{} reloads app {} for {} (mode {}, {})", self->name(),
                   req.app_id, req.event_id, req.mode,
                   req.partial ? "partial" : "full");
      engine::reload_options ropts{req.mode, req.partial};
      auto app_id = req.app_id;
      st.reloads.emplace(op, engine_client_state::reload{std::move(req),
                                                         promise});
      st.engine->reload_app(st.opts, app_id, ropts,
                            deliver_to<bool>(self, op,
                                             [](bool ok) { return ok; }));
      return promise;
    },
    [=](atom::done, uint64_t op, app_list& apps) {
      auto& st = self->state;
      if (auto i = st.lists.find(op); i != st.lists.end()) {
        i->second.deliver(std::move(apps));
        st.lists.erase(i);
      }
      check_drain(self);
    },
    [=](atom::done, uint64_t op, app_dump& dump) {
      auto& st = self->state;
      if (auto i = st.dumps.find(op); i != st.dumps.end()) {
        i->second.deliver(std::move(dump));
        st.dumps.erase(i);
      }
      check_drain(self);
    },
    [=](atom::done, uint64_t op, bool success) {
      auto& st = self->state;
      if (auto i = st.reloads.find(op); i != st.reloads.end()) {
        auto job = std::move(i->second);
        st.reloads.erase(i);
        finish_reload(self, std::move(job), success);
      }
      check_drain(self);
    },
    [=](atom::done, uint64_t op, caf::error& err) {
      auto& st = self->state;
      ++st.failures;
      spdlog::warn("{} {}", self->name(), error_text(err));
      if (auto i = st.lists.find(op); i != st.lists.end()) {
        i->second.deliver(std::move(err));
        st.lists.erase(i);
      } else if (auto j = st.dumps.find(op); j != st.dumps.end()) {
        j->second.deliver(std::move(err));
        st.dumps.erase(j);
      } else if (auto k = st.reloads.find(op); k != st.reloads.end()) {
        k->second.promise.deliver(std::move(err));
        st.reloads.erase(k);
      }
      check_drain(self);
    },
    [=](atom::status) { return status_of(self->state); },
    [=](atom::metrics) {
      return metrics::from_counters(status_of(self->state), metric_table);
    },
    [=](atom::drain, caf::timespan grace) -> caf::result<bool> {
      auto promise = self->state.drain.open(self, grace);
      check_drain(self, true);
      return promise;
    },
    [=](atom::tick) { check_drain(self, true); },
    [=](peer_up& peer) {
      if (peer.name == "qrs-client")
        self->state.qrs = caf::actor_cast<qrs_client_actor>(peer.handle);
    },
  };
}

} // namespace butler
