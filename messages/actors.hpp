#pragma once

// The typed interface of every actor: the full list of conversations. One
// comment line per handler says what it does. Every supervised actor answers
// peer_up (its peers' current handles) and drain (the shutdown step that
// finishes or hands on what it holds).

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

namespace butler {

/// A REST call handed from the HTTP I/O thread to http_ingress (defined in
/// actors/http_ingress.hpp; it carries the HTTP responder, so it is local-only).
struct http_call;

/// Receives MQTT messages on the topic filters it registered with mqtt_link.
using mqtt_inbound_handler_actor = caf::typed_actor<
  // Handles one inbound message.
  caf::reacts_to<mqtt_inbound>>;

/// Owns the MQTT client: publishes, and dispatches inbound messages by topic.
using mqtt_link_actor = caf::typed_actor<
  // Publishes a message; it is held while the broker is away.
  caf::replies_to<mqtt_publish_request>::with<caf::ok_atom>,
  // Routes inbound messages that match a topic filter to a handler.
  caf::reacts_to<atom::subscribe, std::string, mqtt_inbound_handler_actor>,
  // Receives a message from the broker (sent from the client's thread).
  caf::reacts_to<mqtt_inbound>,
  // Receives a connection change (sent from the client's thread).
  caf::reacts_to<mqtt_connection_changed>,
  // Returns the link's state and counters.
  caf::replies_to<atom::status>::with<mqtt_link_status>,
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

/// Spawns, monitors and restarts the other actors; stops them in order.
using supervisor_actor = caf::typed_actor<
  // Returns the current handle of a child (invalid if it is not running).
  caf::replies_to<caf::get_atom, std::string>::with<caf::actor>,
  // Returns every child's state and restart count.
  caf::replies_to<atom::status>::with<supervisor_status>,
  // Stops all children in order; replies once they are gone.
  caf::replies_to<atom::shutdown>::with<caf::ok_atom>,
  // Restarts a failed child (a delayed message to itself).
  caf::reacts_to<atom::restart, std::string>>;

} // namespace butler

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<butler::http_call>)
