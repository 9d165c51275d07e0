#include "actors/http_ingress.hpp"

#include "actors/actor_common.hpp"
#include "net/query_string.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>

#include <optional>
#include <variant>

namespace butler {

namespace {

using self_ptr = http_ingress_actor::stateful_pointer<http_ingress_state>;

/// How often pending calls and a pending drain are checked.
constexpr auto tick_interval = std::chrono::milliseconds{20};

/// Maps an actor's error reply to HTTP: Butler codes through the one table,
/// a dead or restarting peer to 503.
http::response error_reply(const caf::error& err, const std::string& peer) {
  if (err.category() == caf::atom("butler"))
    return http::error_response(rest::status_for(static_cast<ec>(err.code())),
                                error_text(err));
  if (err == caf::sec::request_receiver_down)
    return http::error_response(503, peer + " is restarting; try again");
  return http::error_response(500, error_text(err));
}

void schedule_tick(self_ptr self) {
  if (!self->state.ticking) {
    self->state.ticking = true;
    self->delayed_send(self, tick_interval, atom::tick_v);
  }
}

/// Drops answered calls from the front of the pending queues, so that they
/// hold about as many entries as there are calls in flight.
void trim_pending(self_ptr self) {
  for (auto& [timeout, calls] : self->state.pending)
    while (!calls.empty() && calls.front().call.expired())
      calls.pop_front();
}

/// Answers 504 for every call whose deadline passed; a reply arriving later
/// is ignored by the responder.
void expire_pending(self_ptr self) {
  auto& st = self->state;
  auto now = self->clock().now();
  for (auto& [timeout, calls] : st.pending) {
    while (!calls.empty() && calls.front().deadline <= now) {
      auto& front = calls.front();
      if (auto call = front.call.lock()) {
        auto ms = front.timeout.count();
        spdlog::warn("{} answers 504: {} did not answer {} {} within {} ms",
                     self->name(), front.peer, call->req.method,
                     call->req.target, ms);
        call->reply(http::error_response(504, std::string{front.peer}
                                                + " did not answer within "
                                                + std::to_string(ms) + " ms"));
      }
      calls.pop_front();
    }
  }
  trim_pending(self);
}

void check_drain(self_ptr self) {
  auto& st = self->state;
  if (!st.drain.pending())
    return;
  auto in_flight = st.server ? st.server->stats().requests_in_flight : 0;
  if (st.drain.settle(in_flight, self->clock().now()) == drain_gate::expired)
    spdlog::warn("{} gives up on {} requests still in flight", self->name(),
                 in_flight);
}

void on_tick(self_ptr self) {
  auto& st = self->state;
  st.ticking = false;
  expire_pending(self);
  check_drain(self);
  if (st.has_pending() || st.drain.pending())
    schedule_tick(self);
}

/// Sends `req` to `dest` (named `peer`) and answers `call` with
/// `render(reply)`, with the error mapping on an error, or with 504 once
/// Butler.restServerConfig.requestTimeoutSeconds passes.
template <class Reply, class Dest, class Request, class Render>
void forward(self_ptr self, std::shared_ptr<http_call> call, const Dest& dest,
             const char* peer, Request req, Render render,
             std::chrono::milliseconds timeout = std::chrono::milliseconds{0}) {
  auto& st = self->state;
  if (timeout.count() == 0)
    timeout = st.opts.rest.request_timeout;
  st.pending[timeout].push_back(
    pending_call{self->clock().now() + timeout, call, peer, timeout});
  schedule_tick(self);
  self->request(dest, caf::infinite, std::move(req))
    .then(
      [self, call, render](Reply& reply) {
        call->reply(render(reply));
        trim_pending(self);
      },
      [self, call, peer](caf::error& err) {
        spdlog::warn("{} got an error from {} for {} {}: {}", self->name(),
                     peer, call->req.method, call->req.target,
                     error_text(err));
        call->reply(error_reply(err, peer));
        trim_pending(self);
      });
}

// -- endpoints served by actors -------------------------------------------------

/// Answers 503 when the peer an endpoint needs is not known (not running).
template <class Handle>
bool require_peer(const Handle& peer, const char* name, http_call& call) {
  if (peer)
    return true;
  call.reply(http::error_response(503, std::string{name} + " is not running"));
  return false;
}

/// Returns the parsed request, or answers the call with the 400 and returns
/// nothing.
template <class T>
std::optional<T> accept(rest::parsed<T> parsed, http_call& call) {
  if (auto* res = std::get_if<http::response>(&parsed)) {
    call.reply(std::move(*res));
    return std::nullopt;
  }
  return std::get<T>(std::move(parsed));
}

void mqtt_publish(self_ptr self, std::shared_ptr<http_call> call) {
  auto& st = self->state;
  auto req = accept(rest::parse_mqtt_publish(call->req, call->match.sp),
                    *call);
  if (!req)
    return;
  if (!st.opts.mqtt_enabled) {
    call->reply(http::error_response(
      503, "MQTT is disabled in the config (Butler.mqttConfig.enable)"));
    return;
  }
  if (!require_peer(st.mqtt, "mqtt-link", *call))
    return;
  req->event_id = "r" + std::to_string(++st.next_id);
  auto response = rest::mqtt_publish_response(*req, call->match.sp);
  forward<caf::ok_atom>(self, std::move(call), st.mqtt, "mqtt-link",
                        std::move(*req),
                        [response](caf::ok_atom) { return response; });
}

void create_dir(self_ptr self, std::shared_ptr<http_call> call, bool qvd) {
  auto& st = self->state;
  auto req = accept(rest::parse_create_dir(call->req, call->match.sp, qvd),
                    *call);
  if (!req || !require_peer(st.fs, "fs-worker", *call))
    return;
  req->event_id = "r" + std::to_string(++st.next_id);
  auto response = rest::create_dir_response(*req, call->match.sp);
  forward<caf::ok_atom>(self, std::move(call), st.fs, "fs-worker",
                        std::move(*req),
                        [response](caf::ok_atom) { return response; });
}

void disk_space(self_ptr self, std::shared_ptr<http_call> call) {
  auto& st = self->state;
  auto req = accept(rest::parse_disk_space(call->req), *call);
  if (!req || !require_peer(st.fs, "fs-worker", *call))
    return;
  req->event_id = "r" + std::to_string(++st.next_id);
  forward<disk_space_reply>(self, std::move(call), st.fs, "fs-worker",
                            std::move(*req), [](disk_space_reply& reply) {
                              return rest::disk_space_response(reply);
                            });
}

void slack_post(self_ptr self, std::shared_ptr<http_call> call) {
  auto& st = self->state;
  auto req = accept(rest::parse_slack_post(call->req, call->match.sp), *call);
  if (!req || !require_peer(st.slack, "slack-egress", *call))
    return;
  req->event_id = "r" + std::to_string(++st.next_id);
  auto response = rest::slack_post_response(*req, call->match.sp);
  if (!req->emoji.empty() && req->emoji.front() != ':')
    req->emoji = ":" + req->emoji + ":";
  forward<caf::ok_atom>(self, std::move(call), st.slack, "slack-egress",
                        std::move(*req),
                        [response](caf::ok_atom) { return response; });
}

void active_users_call(self_ptr self, std::shared_ptr<http_call> call,
                       bool count_only) {
  auto& st = self->state;
  if (!require_peer(st.sessions, "session-tracker", *call))
    return;
  forward<active_users>(self, std::move(call), st.sessions, "session-tracker",
                        atom::users_v, [count_only](active_users& users) {
                          return count_only
                                   ? rest::active_user_count_response(
                                     users.users.size())
                                   : rest::active_users_response(users.users);
                        });
}

// -- Qlik Sense ---------------------------------------------------------------

/// The REST deadline for a start: a lookup and a start, each bounded by
/// configQRS.requestTimeoutSeconds, whose own 504 names QRS.
std::chrono::milliseconds qrs_deadline(const http_ingress_options& opts) {
  return opts.qrs_timeout * 2 + std::chrono::seconds{2};
}

std::chrono::milliseconds engine_deadline(const http_ingress_options& opts) {
  return opts.engine_timeout + std::chrono::seconds{2};
}

/// Returns the first path parameter ("{taskId}", "{appId}") or "".
const std::string& path_param(const http_call& call) {
  static const std::string none;
  return call.match.params.empty() ? none : call.match.params.front();
}

void qrs_ping(self_ptr self, std::shared_ptr<http_call> call) {
  auto& st = self->state;
  if (!require_peer(st.qrs, "qrs-client", *call))
    return;
  forward<std::string>(
    self, std::move(call), st.qrs, "qrs-client", atom::ping_v,
    [](std::string& version) { return rest::qrs_ping_response(version); },
    qrs_deadline(st.opts));
}

void start_task(self_ptr self, std::shared_ptr<http_call> call) {
  auto& st = self->state;
  auto req = accept(rest::parse_start_task(call->req, call->match.sp,
                                           path_param(*call)),
                    *call);
  if (!req || !require_peer(st.qrs, "qrs-client", *call))
    return;
  req->event_id = "r" + std::to_string(++st.next_id);
  auto sp = call->match.sp;
  auto copy = *req;
  forward<task_start_result>(
    self, std::move(call), st.qrs, "qrs-client", std::move(*req),
    [copy, sp](task_start_result& result) {
      return rest::start_task_response(copy, result, sp);
    },
    qrs_deadline(st.opts));
}

void list_apps(self_ptr self, std::shared_ptr<http_call> call) {
  auto& st = self->state;
  if (!require_peer(st.engine, "engine-client", *call))
    return;
  forward<app_list>(
    self, std::move(call), st.engine, "engine-client", atom::apps_v,
    [](app_list& apps) { return rest::list_apps_response(apps); },
    engine_deadline(st.opts));
}

void app_dump_call(self_ptr self, std::shared_ptr<http_call> call) {
  auto& st = self->state;
  auto req = accept(rest::parse_app_dump(call->req, call->match.sp,
                                         path_param(*call)),
                    *call);
  if (!req || !require_peer(st.engine, "engine-client", *call))
    return;
  req->event_id = "r" + std::to_string(++st.next_id);
  forward<app_dump>(
    self, std::move(call), st.engine, "engine-client", std::move(*req),
    [](app_dump& dump) { return rest::app_dump_response(dump); },
    engine_deadline(st.opts));
}

void app_reload(self_ptr self, std::shared_ptr<http_call> call) {
  auto& st = self->state;
  auto req = accept(rest::parse_app_reload(call->req, path_param(*call)),
                    *call);
  if (!req || !require_peer(st.engine, "engine-client", *call))
    return;
  req->event_id = "r" + std::to_string(++st.next_id);
  auto copy = *req;
  forward<app_reload_result>(
    self, std::move(call), st.engine, "engine-client", std::move(*req),
    [copy](app_reload_result& result) {
      return rest::app_reload_response(copy, result);
    },
    engine_deadline(st.opts) + qrs_deadline(st.opts));
}

/// How long the liveness and readiness probes wait for the supervisor.
constexpr auto probe_timeout = std::chrono::milliseconds{2000};

void health(self_ptr self, std::shared_ptr<http_call> call) {
  auto& st = self->state;
  if (!require_peer(st.supervisor, "supervisor", *call))
    return;
  forward<atom::heartbeat>(
    self, std::move(call), st.supervisor, "supervisor", atom::heartbeat_v,
    [](atom::heartbeat) { return rest::health_response(); }, probe_timeout);
}

void readiness(self_ptr self, std::shared_ptr<http_call> call) {
  auto& st = self->state;
  if (!require_peer(st.supervisor, "supervisor", *call))
    return;
  forward<readiness_report>(
    self, std::move(call), st.supervisor, "supervisor", atom::ready_v,
    [](readiness_report& rep) { return rest::readiness_response(rep); },
    probe_timeout);
}

void metrics_call(self_ptr self, std::shared_ptr<http_call> call) {
  auto& st = self->state;
  if (!require_peer(st.supervisor, "supervisor", *call))
    return;
  auto requests = st.requests;
  forward<metric_set>(
    self, std::move(call), st.supervisor, "supervisor", atom::metrics_v,
    [requests](metric_set& set) {
      for (auto& s : metrics::process_samples().samples)
        set.samples.push_back(std::move(s));
      http::response res;
      res.content_type = metrics::content_type;
      res.body = metrics::render(set, requests.get());
      return res;
    },
    probe_timeout);
}

/// Records each answer in the request metrics before it goes out.
class recording_sink final : public http::reply_sink {
public:
  recording_sink(http::responder reply,
                 std::shared_ptr<metrics::request_metrics> requests,
                 const char* route)
    : reply_(std::move(reply)),
      requests_(std::move(requests)),
      route_(route),
      started_(std::chrono::steady_clock::now()) {
    // nop
  }

  void send(http::response res) override {
    std::chrono::duration<double> took = std::chrono::steady_clock::now()
                                         - started_;
    requests_->record(route_, res.status, took.count());
    reply_(std::move(res));
  }

private:
  http::responder reply_;
  std::shared_ptr<metrics::request_metrics> requests_;
  const char* route_;
  std::chrono::steady_clock::time_point started_;
};

/// Builds the handler the I/O threads call for every request. `listed` are
/// the endpoint flags GET /v4/configfile/endpointsenabled names.
http::handler make_handler(caf::weak_actor_ptr ingress,
                           std::shared_ptr<const rest::router> router,
                           const std::vector<std::string>& listed,
                           std::shared_ptr<metrics::request_metrics> requests) {
  // Built once: ping and the endpoint list never change while running.
  auto ping = std::make_shared<const http::response>(rest::ping_response());
  auto endpoints = std::make_shared<const http::response>(
    rest::endpoints_enabled_response(listed));
  return [ingress, router, ping, endpoints,
          requests](http::request&& req, http::responder answer) {
    auto method = rest::effective_method(req);
    auto path = http::split_target(req.target).path;
    auto match = router->match(method, path);
    http::responder reply{std::make_shared<recording_sink>(
      std::move(answer), requests,
      match.status == 0 ? rest::to_string(match.ep) : "unmatched")};
    if (match.status == 404) {
      reply(http::error_response(404, "Route " + method + " "
                                        + std::string{path} + " not found"));
      return;
    }
    if (match.status == 405) {
      auto res = http::error_response(405, "Method " + method
                                             + " is not allowed on "
                                             + std::string{path});
      res.headers.emplace_back("Allow", match.allow);
      reply(std::move(res));
      return;
    }
    switch (match.ep) {
      case rest::endpoint::butler_ping:
        reply(*ping);
        return;
      case rest::endpoint::endpoints_enabled:
        reply(*endpoints);
        return;
      default:
        // When the actor is gone the responder dies here unanswered, and the
        // server answers 503 for it.
        if (auto strong = ingress.lock())
          caf::anon_send(caf::actor_cast<http_ingress_actor>(strong),
                         std::make_shared<http_call>(http_call{
                           std::move(req), std::move(match), std::move(reply)}));
    }
  };
}

} // namespace

http_ingress_state::~http_ingress_state() {
  // Joins the I/O threads, so no handler runs once the state is gone.
  if (metrics_server)
    metrics_server->stop();
  if (health_server)
    health_server->stop();
  if (server)
    server->stop();
}

http_ingress_actor::behavior_type
http_ingress(http_ingress_actor::stateful_pointer<http_ingress_state> self,
             http_ingress_options opts) {
  install_common_handlers(self);
  auto& st = self->state;
  st.opts = std::move(opts);
  auto& rest_cfg = st.opts.rest;
  http::server_options sopts;
  sopts.host = rest_cfg.host;
  sopts.port = rest_cfg.port;
  sopts.tls = rest_cfg.tls.enable;
  sopts.cert_file = rest_cfg.tls.cert;
  sopts.key_file = rest_cfg.tls.key;
  sopts.ca_file = rest_cfg.tls.ca;
  sopts.body_limit = rest_cfg.body_limit;
  sopts.header_limit = rest_cfg.header_limit;
  sopts.read_timeout = rest_cfg.read_timeout;
  sopts.write_timeout = rest_cfg.write_timeout;
  sopts.max_connections = rest_cfg.max_connections;
  sopts.threads = rest_cfg.io_threads;
  st.requests = std::make_shared<metrics::request_metrics>();
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(self);
  auto listed = rest::router{st.opts.endpoints}.enabled_flags();
  auto rest_endpoints = st.opts.endpoints;
  auto& prom = st.opts.prometheus;
  if (prom.enable && prom.port == 0)
    rest_endpoints.flags.emplace_back("prometheus", true);
  auto router = std::make_shared<const rest::router>(rest_endpoints);
  std::string error;
  st.server = http::start_server(
    sopts, make_handler(weak, router, listed, st.requests), error);
  if (!st.server) {
    spdlog::error("{} {}", self->name(), error);
    self->quit(caf::make_error(ec::unavailable, error));
    return http_ingress_actor::behavior_type::make_empty_behavior();
  }
  spdlog::info("{} serves the REST API on {}://{}:{} ({} endpoint flags on)",
               self->name(), sopts.tls ? "https" : "http", rest_cfg.host,
               st.server->port(), listed.size());
  // Plain-HTTP side listeners: Docker's HEALTHCHECK (GET /health) and the
  // Prometheus scraper (GET /metrics), each also serving the probes.
  auto side = [&](std::unique_ptr<http::server>& server, uint16_t port,
                  const char* flag, const char* key, const char* what) {
    auto opts = sopts;
    opts.port = port;
    opts.tls = false;
    opts.threads = 1;
    opts.max_connections = 16;
    endpoints_config only{{{flag, true}}};
    server = http::start_server(
      opts,
      make_handler(weak, std::make_shared<const rest::router>(only), {},
                   st.requests),
      error);
    if (!server) {
      spdlog::error("{} {}: {}", self->name(), key, error);
      return false;
    }
    spdlog::info("{} serves {} on http://{}:{}", self->name(), what,
                 rest_cfg.host, server->port());
    return true;
  };
  if ((st.opts.docker_health.enable
       && !side(st.health_server, st.opts.docker_health.port,
                "dockerHealthCheck", "Butler.dockerHealthCheck",
                "GET /health"))
      || (prom.enable && prom.port != 0
          && !side(st.metrics_server, prom.port, "prometheus",
                   "Butler.prometheus", "GET /metrics"))) {
    self->quit(caf::make_error(ec::unavailable, error));
    return http_ingress_actor::behavior_type::make_empty_behavior();
  }
  return {
    [=](std::shared_ptr<http_call>& call) {
      switch (call->match.ep) {
        case rest::endpoint::mqtt_publish:
          mqtt_publish(self, std::move(call));
          return;
        case rest::endpoint::create_dir:
          create_dir(self, std::move(call), false);
          return;
        case rest::endpoint::create_dir_qvd:
          create_dir(self, std::move(call), true);
          return;
        case rest::endpoint::disk_space:
          disk_space(self, std::move(call));
          return;
        case rest::endpoint::slack_post:
          slack_post(self, std::move(call));
          return;
        case rest::endpoint::active_user_count:
          active_users_call(self, std::move(call), true);
          return;
        case rest::endpoint::active_users:
          active_users_call(self, std::move(call), false);
          return;
        case rest::endpoint::qrs_ping:
          qrs_ping(self, std::move(call));
          return;
        case rest::endpoint::start_task:
          start_task(self, std::move(call));
          return;
        case rest::endpoint::list_apps:
          list_apps(self, std::move(call));
          return;
        case rest::endpoint::app_dump:
          app_dump_call(self, std::move(call));
          return;
        case rest::endpoint::app_reload:
          app_reload(self, std::move(call));
          return;
        case rest::endpoint::health:
          health(self, std::move(call));
          return;
        case rest::endpoint::ready:
          readiness(self, std::move(call));
          return;
        case rest::endpoint::metrics:
          metrics_call(self, std::move(call));
          return;
        default:
          call->reply(http::error_response(500, "no handler for this route"));
      }
    },
    [=](atom::drain, caf::timespan grace) -> caf::result<bool> {
      auto& st = self->state;
      if (st.drain.pending())
        return caf::make_error(ec::unavailable, "drain already running");
      spdlog::info("{} stops accepting connections", self->name());
      st.server->stop_accepting();
      if (st.health_server)
        st.health_server->stop_accepting();
      if (st.metrics_server)
        st.metrics_server->stop_accepting();
      auto promise = st.drain.open(self, grace);
      check_drain(self);
      if (st.drain.pending())
        schedule_tick(self);
      return promise;
    },
    [=](atom::tick) { on_tick(self); },
    [=](peer_up& peer) {
      auto& st = self->state;
      if (peer.name == "mqtt-link")
        st.mqtt = caf::actor_cast<mqtt_link_actor>(peer.handle);
      else if (peer.name == "fs-worker")
        st.fs = caf::actor_cast<fs_worker_actor>(peer.handle);
      else if (peer.name == "slack-egress")
        st.slack = caf::actor_cast<slack_egress_actor>(peer.handle);
      else if (peer.name == "session-tracker")
        st.sessions = caf::actor_cast<session_tracker_actor>(peer.handle);
      else if (peer.name == "qrs-client")
        st.qrs = caf::actor_cast<qrs_client_actor>(peer.handle);
      else if (peer.name == "engine-client")
        st.engine = caf::actor_cast<engine_client_actor>(peer.handle);
      else if (peer.name == "supervisor")
        st.supervisor = caf::actor_cast<supervisor_actor>(peer.handle);
    },
  };
}

} // namespace butler
