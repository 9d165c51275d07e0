#pragma once

// Replies and status snapshots. Every struct is default- and
// copy-constructible and has a CAF 0.17 inspect overload.

#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace butler {

/// mqtt_link's state and counters.
struct mqtt_link_status {
  bool connected = false;
  /// Why the link is down, or whom it is connected to.
  std::string detail;
  std::uint64_t published = 0;
  std::uint64_t rejected_full = 0;
  std::uint64_t connects = 0;
  std::uint64_t received = 0;
  std::uint64_t inbound_dispatched = 0;
  std::uint64_t inbound_ignored = 0;
  std::uint64_t backlog = 0;
  /// Messages from log events and fire-and-forget publishes: taken, refused.
  std::uint64_t events_published = 0;
  std::uint64_t shed = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, mqtt_link_status& x) {
  return f(caf::meta::type_name("mqtt_link_status"), x.connected, x.detail,
           x.published, x.rejected_full, x.connects, x.received,
           x.inbound_dispatched, x.inbound_ignored, x.backlog,
           x.events_published, x.shed);
}

/// The disk space of a path's filesystem, in bytes.
struct disk_space_reply {
  std::string path;
  std::uint64_t available = 0;
  std::uint64_t free = 0;
  std::uint64_t total = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, disk_space_reply& x) {
  return f(caf::meta::type_name("disk_space_reply"), x.path, x.available,
           x.free, x.total);
}

/// The users with an open Sense session.
struct active_users {
  std::vector<std::string> users;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, active_users& x) {
  return f(caf::meta::type_name("active_users"), x.users);
}

/// udp_ingest's counters.
struct udp_ingest_status {
  bool listening = false;
  std::vector<uint16_t> ports;
  std::uint64_t received = 0;
  std::uint64_t accepted = 0;
  /// (reason, count) for every reason with a count.
  std::vector<std::pair<std::string, std::uint64_t>> rejected;
  /// Accepted, then shed because the events in flight reached the limit.
  std::uint64_t shed = 0;
  std::uint64_t kernel_drops = 0;
  std::uint64_t in_flight = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, udp_ingest_status& x) {
  return f(caf::meta::type_name("udp_ingest_status"), x.listening, x.ports,
           x.received, x.accepted, x.rejected, x.shed, x.kernel_drops,
           x.in_flight);
}

/// Counters of an event sink or of the router: (name, value) pairs.
struct counters_status {
  std::vector<std::pair<std::string, std::uint64_t>> counters;

  /// Returns the value of `name`, 0 if absent.
  std::uint64_t get(const std::string& name) const {
    for (auto& [key, value] : counters)
      if (key == name)
        return value;
    return 0;
  }
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, counters_status& x) {
  return f(caf::meta::type_name("counters_status"), x.counters);
}

/// A task, as QRS names it.
struct task_ref {
  std::string id;
  std::string name;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_ref& x) {
  return f(caf::meta::type_name("task_ref"), x.id, x.name);
}

/// What a task start did, in the shape of the v4 reply.
struct task_start_result {
  /// Started by id (tasksId.started).
  std::vector<task_ref> started;
  /// Ids Qlik Sense does not know (tasksId.invalid).
  std::vector<std::string> invalid;
  /// Ids outside Butler.startTaskFilter (tasksId.denied).
  std::vector<std::string> denied;
  /// Started through a tag (tasksTag) and tags not allowed (tasksTagDenied).
  std::vector<task_ref> by_tag;
  std::vector<std::string> tags_denied;
  /// Started through a custom property (tasksCP), and those not allowed.
  std::vector<task_ref> by_custom_property;
  std::vector<std::pair<std::string, std::string>> custom_properties_denied;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_start_result& x) {
  return f(caf::meta::type_name("task_start_result"), x.started, x.invalid,
           x.denied, x.by_tag, x.tags_denied, x.by_custom_property,
           x.custom_properties_denied);
}

/// The apps the Engine lists: (id, name).
struct app_list {
  std::vector<std::pair<std::string, std::string>> apps;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, app_list& x) {
  return f(caf::meta::type_name("app_list"), x.apps);
}

/// An app's full dump, as JSON text.
struct app_dump {
  std::string json;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, app_dump& x) {
  return f(caf::meta::type_name("app_dump"), x.json);
}

/// The outcome of an app reload.
struct app_reload_result {
  bool success = false;
  /// The follow-up tasks that were started (on success or on failure).
  task_start_result started;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, app_reload_result& x) {
  return f(caf::meta::type_name("app_reload_result"), x.success, x.started);
}

/// One supervised actor.
struct child_status {
  std::string name;
  bool running = false;
  std::uint64_t restarts = 0;
  /// The reason of the latest failure, empty if none.
  std::string last_failure;
  /// Past its restart limit: the supervisor no longer restarts it.
  bool gave_up = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, child_status& x) {
  return f(caf::meta::type_name("child_status"), x.name, x.running, x.restarts,
           x.last_failure, x.gave_up);
}

/// One Prometheus sample: a counter or gauge value with its labels.
struct metric_sample {
  /// Prometheus name with the butler_ prefix, e.g.
  /// "butler_udp_datagrams_accepted_total".
  std::string name;
  std::string help;
  /// A gauge (a value that goes up and down) rather than a counter.
  bool gauge = false;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, metric_sample& x) {
  return f(caf::meta::type_name("metric_sample"), x.name, x.help, x.gauge,
           x.labels, x.value);
}

/// An actor's metrics (the supervisor merges every actor's).
struct metric_set {
  std::vector<metric_sample> samples;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, metric_set& x) {
  return f(caf::meta::type_name("metric_set"), x.samples);
}

/// One line of the readiness report.
struct readiness_check {
  /// What is checked, e.g. "actor udp-ingest" or "mqtt".
  std::string name;
  bool ok = false;
  /// When the check last changed state, in ms since the Unix epoch.
  std::int64_t since_ms = 0;
  /// What the state means, e.g. "running" or why not.
  std::string detail;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, readiness_check& x) {
  return f(caf::meta::type_name("readiness_check"), x.name, x.ok, x.since_ms,
           x.detail);
}

/// Whether the service does its job, and every check behind the answer.
struct readiness_report {
  bool ready = false;
  std::vector<readiness_check> checks;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, readiness_report& x) {
  return f(caf::meta::type_name("readiness_report"), x.ready, x.checks);
}

/// The supervisor's view of its children.
struct supervisor_status {
  std::vector<child_status> children;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, supervisor_status& x) {
  return f(caf::meta::type_name("supervisor_status"), x.children);
}

} // namespace butler
