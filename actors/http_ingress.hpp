#pragma once

// http_ingress owns the HTTP(S) listener. The I/O thread routes each request
// (net/rest_api) and answers what needs no actor (ping, the endpoint list) on
// the spot; everything else comes here as an http_call, is turned into a typed
// request for the actor that owns the resource, and its reply or error is
// mapped back to HTTP (a timeout becomes 504).

#include "config/butler_config.hpp"
#include "actors/drain_gate.hpp"
#include "messages/actors.hpp"
#include "net/http_server.hpp"
#include "net/http_types.hpp"
#include "net/metrics.hpp"
#include "net/rest_api.hpp"

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/actor_clock.hpp>
#include <caf/typed_response_promise.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

namespace butler {

/// A REST call handed from the I/O thread to http_ingress.
struct http_call {
  http::request req;
  rest::route_match match;
  http::responder reply;
};

/// What http_ingress needs from the config.
struct http_ingress_options {
  rest_server_config rest;
  endpoints_config endpoints;
  /// Whether Butler.mqttConfig.enable is on (else MQTT endpoints answer 503).
  bool mqtt_enabled = false;
  /// How long a QRS or Engine operation may take (their own timeouts, which
  /// answer 504 with a precise message, come first).
  std::chrono::milliseconds qrs_timeout{30'000};
  std::chrono::milliseconds engine_timeout{600'000};
  /// A second listener for GET /health (and the probes) when enabled.
  docker_health_config docker_health;
  /// GET /metrics, on the REST port or a listener of its own.
  prometheus_config prometheus;
};

/// A call forwarded to an actor, waiting for its reply or its deadline.
struct pending_call {
  caf::actor_clock::time_point deadline;
  /// Expires once the reply (or error) handler has run and released the call.
  std::weak_ptr<http_call> call;
  /// The actor asked, for the 504 message.
  const char* peer;
  std::chrono::milliseconds timeout;
};

struct http_ingress_state {
  static constexpr const char* name = "http-ingress";

  http_ingress_options opts;
  std::unique_ptr<http::server> server;
  /// Butler.dockerHealthCheck's listener, if enabled.
  std::unique_ptr<http::server> health_server;
  /// Butler.prometheus's listener, if it has a port of its own.
  std::unique_ptr<http::server> metrics_server;
  /// Requests by route and status, recorded by the I/O threads.
  std::shared_ptr<metrics::request_metrics> requests;
  // Peers, from the supervisor's peer_up messages.
  mqtt_link_actor mqtt;
  fs_worker_actor fs;
  slack_egress_actor slack;
  session_tracker_actor sessions;
  qrs_client_actor qrs;
  engine_client_actor engine;
  supervisor_actor supervisor;
  /// Numbers the calls handed to actors, for tracing ("r17").
  std::uint64_t next_id = 0;
  /// Forwarded calls by their timeout, each queue in deadline order (calls
  /// with one timeout expire in the order they went out). Requests go out
  /// without a CAF timeout, because CAF 0.17 keeps every request timeout
  /// until it fires even when the reply came long before, which grows memory
  /// with the request rate; the periodic tick answers 504 instead.
  std::map<std::chrono::milliseconds, std::deque<pending_call>> pending;

  bool has_pending() const {
    for (auto& [timeout, calls] : pending)
      if (!calls.empty())
        return true;
    return false;
  }
  /// Whether a tick is scheduled.
  bool ticking = false;
  /// Pending drain: answered when nothing is in flight or at the deadline.
  drain_gate drain;

  ~http_ingress_state();
};

/// Starts the listener of `opts.rest` and serves the REST API. Fails (and is
/// restarted by the supervisor) when it cannot listen.
http_ingress_actor::behavior_type
http_ingress(http_ingress_actor::stateful_pointer<http_ingress_state> self,
             http_ingress_options opts);

} // namespace butler
