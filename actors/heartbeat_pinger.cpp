#include "actors/heartbeat_pinger.hpp"

#include "actors/actor_common.hpp"
#include "net/metrics.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <chrono>

namespace butler {

namespace {

using self_ptr
  = heartbeat_pinger_actor::stateful_pointer<heartbeat_pinger_state>;

/// Longest time a connect may take, within the request's own deadline.
constexpr auto connect_timeout = std::chrono::seconds{5};

/// Counts one failed ping and logs the first of a run and every tenth.
void record_failure(self_ptr self, const std::string& why) {
  auto& st = self->state;
  ++st.failed;
  ++st.failing;
  if (st.failing == 1 || st.failing % defaults::heartbeat::failure_log_every == 0)
    spdlog::warn("{} could not ping {}: {} (failure {} in a row; logged at "
                 "the first and every {}th)",
                 self->name(), st.target, why, st.failing,
                 defaults::heartbeat::failure_log_every);
}

/// Sends one GET, unless the one before is still out.
void ping(self_ptr self) {
  auto& st = self->state;
  if (st.in_flight != 0) {
    ++st.skipped;
    spdlog::debug("{} skips a ping: the one before to {} has not finished",
                  self->name(), st.target);
    return;
  }
  auto deadline = std::min<std::chrono::milliseconds>(
    st.cfg.frequency, defaults::heartbeat::request_timeout);
  http::outbound_request req;
  req.method = "GET";
  req.url = st.cfg.remote_url;
  req.timeout = deadline;
  req.connect_timeout = std::min<std::chrono::milliseconds>(deadline,
                                                            connect_timeout);
  auto id = ++st.next_job;
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(self);
  auto accepted = st.http->submit(
    std::move(req), [weak, id](http::outbound_response res) {
      if (auto strong = weak.lock())
        caf::anon_send(caf::actor_cast<heartbeat_pinger_actor>(strong),
                       post_outcome{id, res.status, -1, res.request_sent,
                                    res.error, std::string{}});
    });
  if (!accepted) {
    record_failure(self, "the HTTP client refused the request (full or "
                         "stopping)");
    return;
  }
  st.in_flight = id;
}

void on_outcome(self_ptr self, const post_outcome& out) {
  auto& st = self->state;
  if (out.job != st.in_flight)
    return; // not the GET this actor is waiting for
  st.in_flight = 0;
  if (out.status >= 200 && out.status < 300) {
    ++st.ok;
    if (st.failing > 0)
      spdlog::info("{} reaches {} again after {} failed ping(s)",
                   self->name(), st.target, st.failing);
    else
      spdlog::debug("{} pinged {} ({})", self->name(), st.target, out.status);
    st.failing = 0;
    return;
  }
  if (out.status != 0)
    record_failure(self, "it answered " + std::to_string(out.status));
  else
    record_failure(self, out.error.empty() ? std::string{"no response"}
                                           : out.error);
}

/// Returns the counters as the status reply carries them.
counters_status status_of(const heartbeat_pinger_state& st) {
  return counters_status{{{"ok", st.ok},
                          {"failed", st.failed},
                          {"failing", st.failing},
                          {"skipped", st.skipped}}};
}

/// How the counters appear in /metrics.
const std::vector<metrics::counter_map> metric_table{
  {"ok", "butler_heartbeat_pings_total",
   "Heartbeat GETs to Butler.heartbeat.remoteURL by outcome",
   false, {{"outcome", "ok"}}},
  {"failed", "butler_heartbeat_pings_total",
   "Heartbeat GETs to Butler.heartbeat.remoteURL by outcome",
   false, {{"outcome", "failed"}}},
  {"failing", "butler_heartbeat_failures_in_a_row",
   "Heartbeat GETs that failed since the last one that worked",
   true, {}},
};

} // namespace

std::string url_origin(const std::string& url) {
  auto scheme_end = url.find("://");
  auto authority = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  auto end = url.find_first_of("/?#", authority);
  if (end == std::string::npos)
    end = url.size();
  auto at = url.rfind('@', end);
  auto host = at != std::string::npos && at >= authority ? at + 1 : authority;
  return url.substr(0, authority) + url.substr(host, end - host);
}

heartbeat_pinger_actor::behavior_type
heartbeat_pinger(
  heartbeat_pinger_actor::stateful_pointer<heartbeat_pinger_state> self,
  heartbeat_config cfg, std::shared_ptr<http::client> http) {
  install_common_handlers(self);
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.http = std::move(http);
  st.target = url_origin(st.cfg.remote_url);
  spdlog::info("{} pings {} now and every {} s", self->name(), st.target,
               st.cfg.frequency.count());
  // The first ping goes out at once, so a monitor sees Butler come up.
  self->send(self, atom::tick_v);
  return {
    [=](atom::tick) {
      self->delayed_send(self, self->state.cfg.frequency, atom::tick_v);
      ping(self);
    },
    [=](post_outcome& out) { on_outcome(self, out); },
    [=](atom::status) { return status_of(self->state); },
    [=](atom::metrics) {
      return metrics::from_counters(status_of(self->state), metric_table);
    },
    [=](atom::drain, caf::timespan) { return true; },
    [=](peer_up&) {
      // heartbeat_pinger needs no peers.
    },
  };
}

} // namespace butler
