#pragma once

// Butler's atoms (at most 10 characters each), used as message tags. Written
// with CAF_ADD_ATOM so the block carries over to CAF 0.18 unchanged; each
// defines butler::atom::<name> and butler::atom::<name>_v.

#include <caf/atom.hpp>
#include <caf/type_id.hpp>

/// Tags a status query.
CAF_ADD_ATOM(butler_atoms, butler::atom, status, "status")
/// Tags "stop accepting and finish what is in flight".
CAF_ADD_ATOM(butler_atoms, butler::atom, drain, "drain")
/// Tags a supervisor's delayed restart of one child.
CAF_ADD_ATOM(butler_atoms, butler::atom, restart, "restart")
/// Tags an orderly shutdown of the whole service.
CAF_ADD_ATOM(butler_atoms, butler::atom, shutdown, "shutdown")
/// Tags a periodic self-message.
CAF_ADD_ATOM(butler_atoms, butler::atom, tick, "tick")
/// Tags a handler registration.
CAF_ADD_ATOM(butler_atoms, butler::atom, subscribe, "subscribe")
/// Tags a query for the active users.
CAF_ADD_ATOM(butler_atoms, butler::atom, users, "users")
/// Tags a periodic summary of an actor's counters for the log.
CAF_ADD_ATOM(butler_atoms, butler::atom, report, "report")
/// Tags a query for the apps the Engine knows.
CAF_ADD_ATOM(butler_atoms, butler::atom, apps, "apps")
/// Tags the completion of an operation another thread ran.
CAF_ADD_ATOM(butler_atoms, butler::atom, done, "done")
/// Tags a reachability check of a peer service (QRS).
CAF_ADD_ATOM(butler_atoms, butler::atom, ping, "ping")
/// Tags a liveness check of the actor system (the supervisor answers it).
CAF_ADD_ATOM(butler_atoms, butler::atom, heartbeat, "heartbeat")
/// Tags a readiness query: an actor answers "" when it does its job, or
/// why it does not (for example "not connected to the MQTT broker"); every
/// actor answers it (actor_common.hpp), so the supervisor's periodic query
/// doubles as a heartbeat, and one that is not answered in time marks the
/// actor stuck.
CAF_ADD_ATOM(butler_atoms, butler::atom, ready, "ready")
/// Tags a query for an actor's metrics (Prometheus samples).
CAF_ADD_ATOM(butler_atoms, butler::atom, metrics, "metrics")
