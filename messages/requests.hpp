#pragma once

// Requests that actors send each other. Every struct is default- and
// copy-constructible and has a CAF 0.17 inspect overload.

#include <caf/meta/type_name.hpp>

#include <string>
#include <utility>
#include <vector>

namespace butler {

/// Asks mqtt_link to publish a message. Replied to with caf::ok_atom once the
/// message is held for the broker, or with ec::backlog_full / ec::unavailable.
struct mqtt_publish_request {
  std::string topic;
  std::string payload;
  /// QoS 0-2, or -1 for Butler.mqttConfig.qos.
  int qos = -1;
  bool retain = false;
  /// The id of the request or event this publish belongs to (for tracing).
  std::string event_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, mqtt_publish_request& x) {
  return f(caf::meta::type_name("mqtt_publish_request"), x.topic, x.payload,
           x.qos, x.retain, x.event_id);
}

/// Asks fs_worker to create a directory (mkdir -p): anywhere, or below
/// Butler.configDirectories.qvdPath when `under_qvd_root`. Replied to with
/// caf::ok_atom, or ec::invalid_argument / ec::path_escape / ec::internal.
struct create_dir_request {
  std::string directory;
  bool under_qvd_root = false;
  std::string event_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, create_dir_request& x) {
  return f(caf::meta::type_name("create_dir_request"), x.directory,
           x.under_qvd_root, x.event_id);
}

/// Asks fs_worker for the disk space of the filesystem holding `path`.
/// Replied to with disk_space_reply, or ec::not_found / ec::invalid_argument.
struct disk_space_request {
  std::string path;
  std::string event_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, disk_space_request& x) {
  return f(caf::meta::type_name("disk_space_request"), x.path, x.event_id);
}

/// Asks slack_egress to post a message to the REST message webhook
/// (slackPostMessage). Replied to with caf::ok_atom once Slack accepted it,
/// or with an error (ec::unavailable when full or not configured,
/// ec::internal when Slack refused it).
struct slack_post_request {
  std::string channel;
  std::string text;
  std::string from_user;
  std::string emoji;
  std::string event_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, slack_post_request& x) {
  return f(caf::meta::type_name("slack_post_request"), x.channel, x.text,
           x.from_user, x.emoji, x.event_id);
}

/// Asks qrs_client to start reload tasks by id, tag and custom property
/// (senseStartTask v4, the reload endpoint's follow-up tasks). Replied to with
/// task_start_result, or an error when QRS cannot be asked.
struct task_start_request {
  std::vector<std::string> task_ids;
  std::vector<std::string> tags;
  /// (custom property name, value).
  std::vector<std::pair<std::string, std::string>> custom_properties;
  /// With any unknown id, start none of the id-based tasks.
  bool all_must_exist = false;
  /// Apply Butler.startTaskFilter (false for tasks Butler starts itself).
  bool apply_filter = true;
  std::string event_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_start_request& x) {
  return f(caf::meta::type_name("task_start_request"), x.task_ids, x.tags,
           x.custom_properties, x.all_must_exist, x.apply_filter, x.event_id);
}

/// Asks engine_client for an app's full dump (senseAppDump). Replied to with
/// app_dump, or ec::unprocessable for an unknown app.
struct app_dump_request {
  std::string app_id;
  std::string event_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, app_dump_request& x) {
  return f(caf::meta::type_name("app_dump_request"), x.app_id, x.event_id);
}

/// Asks engine_client to reload an app (PUT /v4/app/{appId}/reload) and then
/// start the tasks listed for success or failure.
struct app_reload_request {
  std::string app_id;
  /// qMode: 0 stop on script errors, 1 ignore and continue, 2 ignore and
  /// abort.
  int mode = 0;
  bool partial = false;
  std::vector<std::string> start_on_success;
  std::vector<std::string> start_on_failure;
  std::string event_id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, app_reload_request& x) {
  return f(caf::meta::type_name("app_reload_request"), x.app_id, x.mode,
           x.partial, x.start_on_success, x.start_on_failure, x.event_id);
}

} // namespace butler
