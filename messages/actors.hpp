#pragma once

// The typed interface of every actor: the full list of conversations. One
// comment line per handler says what it does. Every supervised actor answers
// peer_up (its peers' current handles) and drain (the shutdown step that
// finishes or hands on what it holds), and atom::ready, the supervisor's
// periodic readiness query and heartbeat: with "" through the handler every
// actor installs (actors/actor_common.hpp), or through its own handler, listed
// below, when it has a readiness condition.

#include "messages/atoms.hpp"
#include "messages/events.hpp"
#include "messages/replies.hpp"
#include "messages/requests.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/replies_to.hpp>
#include <caf/timespan.hpp>
#include <caf/typed_actor.hpp>

#include <memory>
#include <string>
#include <vector>

namespace butler {

/// A REST call handed from the HTTP I/O thread to http_ingress (defined in
/// actors/http_ingress.hpp; it carries the HTTP responder, so it is local-only).
struct http_call;

/// The config (config/butler_config.hpp). A reloaded one travels as a
/// shared, immutable copy (local-only).
struct butler_config;
using config_ptr = std::shared_ptr<const butler_config>;

/// What every sink of the event router accepts.
using event_sink_actor = caf::typed_actor<
  // Handles the events of a batch that it wants.
  caf::reacts_to<event_batch>>;

/// Receives MQTT messages on the topic filters it registered with mqtt_link.
using mqtt_inbound_handler_actor = caf::typed_actor<
  // Handles one inbound message.
  caf::reacts_to<mqtt_inbound>>;

/// Owns the MQTT client: publishes, and dispatches inbound messages by topic.
using mqtt_link_actor = caf::typed_actor<
  // Publishes a message; it is held while the broker is away.
  caf::replies_to<mqtt_publish_request>::with<caf::ok_atom>,
  // Publishes messages without a reply; what the backlog refuses is counted.
  caf::reacts_to<std::vector<mqtt_publish_request>>,
  // Publishes log events on their topics (a sink of the event router).
  caf::reacts_to<event_batch>,
  // Routes inbound messages that match a topic filter to a handler.
  caf::reacts_to<atom::subscribe, std::string, mqtt_inbound_handler_actor>,
  // Receives a message from the broker (sent from the client's thread).
  caf::reacts_to<mqtt_inbound>,
  // Receives a connection change (sent from the client's thread).
  caf::reacts_to<mqtt_connection_changed>,
  // Returns the link's state and counters.
  caf::replies_to<atom::status>::with<mqtt_link_status>,
  // Returns its metrics for GET /metrics.
  caf::replies_to<atom::metrics>::with<metric_set>,
  // Returns "" while connected to the broker, else why not.
  caf::replies_to<atom::ready>::with<std::string>,
  // Before shutdown: waits until the backlog is with the broker or the
  // deadline passes; true when nothing is left.
  caf::replies_to<atom::drain, caf::timespan>::with<bool>,
  // Checks on a pending drain (a periodic message to itself).
  caf::reacts_to<atom::tick>,
  // Learns the current handle of a (re)started peer.
  caf::reacts_to<peer_up>>;

/// Owns the HTTP(S) listener: turns REST calls into typed requests.
using http_ingress_actor = caf::typed_actor<
  // Handles one REST call from the HTTP I/O thread.
  caf::reacts_to<std::shared_ptr<http_call>>,
  // Before shutdown: stops accepting and waits for in-flight requests up to
  // the deadline; true when none is left.
  caf::replies_to<atom::drain, caf::timespan>::with<bool>,
  // Checks on a pending drain (a periodic message to itself).
  caf::reacts_to<atom::tick>,
  // Learns the current handle of a (re)started peer.
  caf::reacts_to<peer_up>>;

/// Owns the UDP sockets: accepted log events go to the event router, with a
/// bounded number in flight.
using udp_ingest_actor = caf::typed_actor<
  // Takes the allow-list and rate limit of a reloaded config.
  caf::reacts_to<config_ptr>,
  // Forwards a batch accepted by the receive thread to the router.
  caf::reacts_to<event_batch>,
  // Returns the counters: accepted, rejected by reason, shed, kernel drops.
  caf::replies_to<atom::status>::with<udp_ingest_status>,
  // Returns its metrics for GET /metrics.
  caf::replies_to<atom::metrics>::with<metric_set>,
  // Returns "" while its sockets are bound, else why not.
  caf::replies_to<atom::ready>::with<std::string>,
  // Before shutdown: closes the sockets and waits until the events in flight
  // reached their sinks or the deadline passes; true when none is left.
  caf::replies_to<atom::drain, caf::timespan>::with<bool>,
  // Checks on a pending drain (a periodic message to itself).
  caf::reacts_to<atom::tick>,
  // Logs what changed in the counters (a periodic message to itself).
  caf::reacts_to<atom::report>,
  // Learns the current handle of a (re)started peer.
  caf::reacts_to<peer_up>>;

/// Fans each event out to the sinks that the config enables for its kind;
/// holds batches for a sink that is restarting.
using event_router_actor = caf::typed_actor<
  // Takes the routing table of a reloaded config.
  caf::reacts_to<config_ptr>,
  // Routes a batch of accepted events.
  caf::reacts_to<event_batch>,
  // Returns events routed per sink and batches held.
  caf::replies_to<atom::status>::with<counters_status>,
  // Returns its metrics for GET /metrics.
  caf::replies_to<atom::metrics>::with<metric_set>,
  // Before shutdown: hands held batches on where possible; true when none is
  // left.
  caf::replies_to<atom::drain, caf::timespan>::with<bool>,
  // Learns the current handle of a (re)started peer.
  caf::reacts_to<peer_up>>;

/// Owns the Slack webhooks: notifications for log events and REST messages,
/// with a bounded backlog, per-task rate limits, retries and back-off.
using slack_egress_actor = caf::typed_actor<
  // Takes the notification settings of a reloaded config.
  caf::reacts_to<config_ptr>,
  // Queues notifications for the failed/aborted reloads and audit events in
  // a batch (a sink of the event router).
  caf::reacts_to<event_batch>,
  // Posts a message from the REST API; replies once Slack accepted it.
  caf::replies_to<slack_post_request>::with<caf::ok_atom>,
  // Receives the outcome of a post (sent from the HTTP client's thread).
  caf::reacts_to<post_outcome>,
  // Returns the counters: posted, retried, failed, shed, rate limited.
  caf::replies_to<atom::status>::with<counters_status>,
  // Returns its metrics for GET /metrics.
  caf::replies_to<atom::metrics>::with<metric_set>,
  // Before shutdown: waits for queued posts up to the deadline; true when
  // none is left.
  caf::replies_to<atom::drain, caf::timespan>::with<bool>,
  // Starts posts that are due (a timer message to itself).
  caf::reacts_to<atom::tick>,
  // Learns the current handle of a (re)started peer.
  caf::reacts_to<peer_up>>;

/// Owns the active-user table, fed by session events.
using session_tracker_actor = caf::typed_actor<
  // Applies session starts and stops (a sink of the event router).
  caf::reacts_to<event_batch>,
  // Returns the users with an open session, sorted.
  caf::replies_to<atom::users>::with<active_users>,
  // Returns the counters.
  caf::replies_to<atom::status>::with<counters_status>,
  // Returns its metrics for GET /metrics.
  caf::replies_to<atom::metrics>::with<metric_set>,
  // Before shutdown: nothing is held; answers true.
  caf::replies_to<atom::drain, caf::timespan>::with<bool>,
  // Learns the current handle of a (re)started peer.
  caf::reacts_to<peer_up>>;

/// Owns filesystem access (on its own thread): directories and disk space.
using fs_worker_actor = caf::typed_actor<
  // Creates a directory, anywhere or below the QVD root.
  caf::replies_to<create_dir_request>::with<caf::ok_atom>,
  // Returns the disk space of a path's filesystem.
  caf::replies_to<disk_space_request>::with<disk_space_reply>,
  // Before shutdown: nothing is held; answers true.
  caf::replies_to<atom::drain, caf::timespan>::with<bool>,
  // Learns the current handle of a (re)started peer.
  caf::reacts_to<peer_up>>;

/// Owns the Qlik Repository Service connection: task starts and the QRS ping.
using qrs_client_actor = caf::typed_actor<
  // Takes the startTaskFilter of a reloaded config.
  caf::reacts_to<config_ptr>,
  // Starts tasks by id, tag and custom property (applying startTaskFilter
  // unless the request says otherwise).
  caf::replies_to<task_start_request>::with<task_start_result>,
  // Returns QRS's build version (senseQRSPing).
  caf::replies_to<atom::ping>::with<std::string>,
  // Receives the outcome of an operation from the HTTP client's thread.
  caf::reacts_to<atom::done, uint64_t, task_start_result>,
  caf::reacts_to<atom::done, uint64_t, std::string>,
  caf::reacts_to<atom::done, uint64_t, caf::error>,
  // Returns the counters: calls by outcome.
  caf::replies_to<atom::status>::with<counters_status>,
  // Returns its metrics for GET /metrics.
  caf::replies_to<atom::metrics>::with<metric_set>,
  // Before shutdown: waits for operations in flight up to the deadline.
  caf::replies_to<atom::drain, caf::timespan>::with<bool>,
  // Checks on a pending drain (a periodic message to itself).
  caf::reacts_to<atom::tick>,
  // Learns the current handle of a (re)started peer.
  caf::reacts_to<peer_up>>;

/// Owns the Qlik Engine sessions: app lists, dumps and reloads.
using engine_client_actor = caf::typed_actor<
  // Returns every app's id and name.
  caf::replies_to<atom::apps>::with<app_list>,
  // Returns an app's full dump.
  caf::replies_to<app_dump_request>::with<app_dump>,
  // Reloads an app, then starts its follow-up tasks through qrs_client.
  caf::replies_to<app_reload_request>::with<app_reload_result>,
  // Receives the outcome of an operation from the engine client's thread.
  caf::reacts_to<atom::done, uint64_t, app_list>,
  caf::reacts_to<atom::done, uint64_t, app_dump>,
  caf::reacts_to<atom::done, uint64_t, bool>,
  caf::reacts_to<atom::done, uint64_t, caf::error>,
  // Returns the counters: operations by outcome.
  caf::replies_to<atom::status>::with<counters_status>,
  // Returns its metrics for GET /metrics.
  caf::replies_to<atom::metrics>::with<metric_set>,
  // Before shutdown: waits for operations in flight up to the deadline.
  caf::replies_to<atom::drain, caf::timespan>::with<bool>,
  // Checks on a pending drain (a periodic message to itself).
  caf::reacts_to<atom::tick>,
  // Learns the current handle of a (re)started peer.
  caf::reacts_to<peer_up>>;

/// Starts a task for every valid task id that arrives on
/// Butler.mqttConfig.taskStartTopic.
using mqtt_task_starter_actor = caf::typed_actor<
  // Handles one message on the task start topic.
  caf::reacts_to<mqtt_inbound>,
  // Returns the counters: received, invalid, started, unknown, denied,
  // failed, dropped, in_flight, waiting.
  caf::replies_to<atom::status>::with<counters_status>,
  // Returns its metrics for GET /metrics.
  caf::replies_to<atom::metrics>::with<metric_set>,
  // Before shutdown: waits for the starts in flight and in the backlog;
  // answers true when all are done, false when the grace period ends first.
  caf::replies_to<atom::drain, caf::timespan>::with<bool>,
  // Polls a pending drain.
  caf::reacts_to<atom::tick>,
  // Learns the current handle of a (re)started peer.
  caf::reacts_to<peer_up>>;

/// GETs Butler.heartbeat.remoteURL on its schedule, so that a monitor notices
/// when Butler stops; failures are logged (throttled) and counted.
using heartbeat_pinger_actor = caf::typed_actor<
  // Sends the next GET (a periodic message to itself).
  caf::reacts_to<atom::tick>,
  // Receives the outcome of a GET (sent from the HTTP client's thread).
  caf::reacts_to<post_outcome>,
  // Returns the counters: ok, failed, failing in a row, skipped.
  caf::replies_to<atom::status>::with<counters_status>,
  // Returns its metrics for GET /metrics.
  caf::replies_to<atom::metrics>::with<metric_set>,
  // Before shutdown: nothing is held; answers true.
  caf::replies_to<atom::drain, caf::timespan>::with<bool>,
  // Learns the current handle of a (re)started peer.
  caf::reacts_to<peer_up>>;

/// Logs Butler's uptime, memory and event counts on Butler.uptimeMonitor's
/// schedule.
using uptime_monitor_actor = caf::typed_actor<
  // Logs one uptime line (a periodic message to itself).
  caf::reacts_to<atom::tick>,
  // Returns the counters: lines logged.
  caf::replies_to<atom::status>::with<counters_status>,
  // Before shutdown: nothing is held; answers true.
  caf::replies_to<atom::drain, caf::timespan>::with<bool>,
  // Learns the current handle of a (re)started peer (the supervisor's).
  caf::reacts_to<peer_up>>;

/// Spawns, monitors and restarts the other actors; stops them in order.
using supervisor_actor = caf::typed_actor<
  // Hands a reloaded config to the children that apply it live, and
  // starts restarted children with it.
  caf::reacts_to<config_ptr>,
  // Returns the current handle of a child (invalid if it is not running).
  caf::replies_to<caf::get_atom, std::string>::with<caf::actor>,
  // Returns every child's state and restart count.
  caf::replies_to<atom::status>::with<supervisor_status>,
  // Returns every running actor's metrics with its own (restarts, states).
  caf::replies_to<atom::metrics>::with<metric_set>,
  // Answers at once: the actor system schedules (liveness).
  caf::replies_to<atom::heartbeat>::with<atom::heartbeat>,
  // Returns whether the service is ready, with every check behind it.
  caf::replies_to<atom::ready>::with<readiness_report>,
  // The periodic readiness round and watchdog (a delayed message to itself).
  caf::reacts_to<atom::tick>,
  // Stops all children in order; replies once they are gone.
  caf::replies_to<atom::shutdown>::with<caf::ok_atom>,
  // Restarts a failed child (a delayed message to itself).
  caf::reacts_to<atom::restart, std::string>>;

} // namespace butler

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<butler::http_call>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(butler::config_ptr)
