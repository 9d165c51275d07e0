#include "actors/qrs_client.hpp"

#include "actors/actor_common.hpp"
#include "actors/sense_options.hpp"
#include "net/metrics.hpp"
#include "net/qrs_ops.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

namespace butler {

namespace {

using self_ptr = qrs_client_actor::stateful_pointer<qrs_client_state>;


/// Maps a QRS failure to the Butler error the REST API renders: a timeout
/// is 504, an unknown task 404, a full queue 503, everything else a bad
/// gateway (502).
caf::error to_error(const qrs::qrs_error& err) {
  using kind = qrs::qrs_error::kind_type;
  switch (err.kind) {
    case kind::timeout:
      return caf::make_error(ec::timeout, err.message);
    case kind::not_found:
      return caf::make_error(ec::not_found, err.message);
    case kind::busy:
      return caf::make_error(ec::unavailable, err.message);
    default:
      return caf::make_error(ec::bad_gateway, err.message);
  }
}

task_start_result to_message(const qrs::start_result& r) {
  task_start_result out;
  for (auto& t : r.started)
    out.started.push_back(task_ref{t.id, t.name});
  out.invalid = r.invalid;
  out.denied = r.denied;
  for (auto& t : r.by_tag)
    out.by_tag.push_back(task_ref{t.id, t.name});
  out.tags_denied = r.tags_denied;
  for (auto& t : r.by_custom_property)
    out.by_custom_property.push_back(task_ref{t.id, t.name});
  out.custom_properties_denied = r.custom_properties_denied;
  return out;
}

/// Returns a callback that hands an operation's outcome back to the actor.
template <class Result, class Convert>
auto deliver_to(self_ptr self, std::uint64_t op, Convert convert) {
  return deliver_outcome<qrs_client_actor, Result, qrs::qrs_error>(
    self, op, convert,
    [](const qrs::qrs_error& err) { return to_error(err); });
}

/// Answers a pending drain once nothing is in flight; only the tick chain
/// (`poll`) keeps polling, so completions do not start more chains.
void check_drain(self_ptr self, bool poll = false) {
  auto& st = self->state;
  auto left = st.starts.size() + st.pings.size();
  auto outcome = st.drain.settle(self, left, poll);
  if (outcome == drain_gate::expired)
    spdlog::warn("{} stops with {} QRS calls unanswered", self->name(), left);
}

/// Returns the counters as the status reply carries them.
counters_status status_of(const qrs_client_state& st) {
  return counters_status{{{"start_calls", st.start_calls},
                          {"tasks_started", st.tasks_started},
                          {"failures", st.failures},
                          {"in_flight", st.starts.size() + st.pings.size()}}};
}

/// How the counters appear in /metrics.
const std::vector<metrics::counter_map> metric_table{
  {"start_calls", "butler_qrs_task_start_requests_total",
   "Task start requests handled through QRS",
   false, {}},
  {"tasks_started", "butler_qrs_tasks_started_total",
   "Tasks QRS started",
   false, {}},
  {"failures", "butler_qrs_failures_total",
   "QRS operations that failed",
   false, {}},
  {"in_flight", "butler_qrs_operations_in_flight",
   "QRS operations waiting for an answer",
   true, {}},
};

} // namespace

qrs::qrs_options qrs_options_of(const butler_config& cfg) {
  return sense_options_of<qrs::qrs_options>(cfg.qrs, cfg.cert);
}

qrs::start_filter start_filter_of(const butler_config& cfg) {
  auto& f = cfg.start_task_filter;
  return qrs::start_filter{f.enable, f.task_ids, f.tags, f.custom_properties};
}

qrs_client_actor::behavior_type
qrs_client(qrs_client_actor::stateful_pointer<qrs_client_state> self,
           qrs::qrs_options opts, qrs::start_filter filter,
           std::shared_ptr<http::client> http) {
  install_common_handlers(self);
  auto& st = self->state;
  st.opts = std::move(opts);
  st.filter = std::move(filter);
  st.http = std::move(http);
  return {
    [=](task_start_request& req) -> caf::result<task_start_result> {
      auto& st = self->state;
      auto op = ++st.next_op;
      auto promise = self->make_response_promise<task_start_result>();
      st.starts.emplace(op, promise);
      ++st.start_calls;
      spdlog::info("{} starts tasks for {}: {} ids, {} tags, {} custom "
                   "properties",
                   self->name(), req.event_id, req.task_ids.size(),
                   req.tags.size(), req.custom_properties.size());
      qrs::start_request sreq{std::move(req.task_ids), std::move(req.tags),
                              std::move(req.custom_properties),
                              req.all_must_exist};
      qrs::start_tasks(*st.http, st.opts,
                       req.apply_filter ? st.filter : qrs::start_filter{},
                       std::move(sreq),
                       deliver_to<qrs::start_result>(self, op, to_message));
      return promise;
    },
    [=](atom::ping) -> caf::result<std::string> {
      auto& st = self->state;
      auto op = ++st.next_op;
      auto promise = self->make_response_promise<std::string>();
      st.pings.emplace(op, promise);
      qrs::about(*st.http, st.opts,
                 deliver_to<std::string>(self, op,
                                         [](const std::string& v) { return v; }));
      return promise;
    },
    [=](atom::done, uint64_t op, task_start_result& result) {
      auto& st = self->state;
      auto i = st.starts.find(op);
      if (i == st.starts.end())
        return;
      st.tasks_started += result.started.size() + result.by_tag.size()
                          + result.by_custom_property.size();
      spdlog::info("{} started {} tasks ({} unknown, {} denied)", self->name(),
                   result.started.size() + result.by_tag.size()
                     + result.by_custom_property.size(),
                   result.invalid.size(),
                   result.denied.size() + result.tags_denied.size()
                     + result.custom_properties_denied.size());
      i->second.deliver(std::move(result));
      st.starts.erase(i);
      check_drain(self);
    },
    [=](atom::done, uint64_t op, std::string& version) {
      auto& st = self->state;
      auto i = st.pings.find(op);
      if (i == st.pings.end())
        return;
      i->second.deliver(std::move(version));
      st.pings.erase(i);
      check_drain(self);
    },
    [=](atom::done, uint64_t op, caf::error& err) {
      auto& st = self->state;
      ++st.failures;
      spdlog::warn("{} {}", self->name(), error_text(err));
      if (auto i = st.starts.find(op); i != st.starts.end()) {
        i->second.deliver(std::move(err));
        st.starts.erase(i);
      } else if (auto j = st.pings.find(op); j != st.pings.end()) {
        j->second.deliver(std::move(err));
        st.pings.erase(j);
      }
      check_drain(self);
    },
    [=](config_ptr& cfg) {
      self->state.filter = start_filter_of(*cfg);
      spdlog::info("{} took the reloaded startTaskFilter (enabled: {})",
                   self->name(), self->state.filter.enable);
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
    [=](peer_up&) {
      // qrs_client needs no peers.
    },
  };
}

} // namespace butler
