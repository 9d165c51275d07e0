#pragma once

// Requests that actors send each other. Every struct is default- and
// copy-constructible and has a CAF 0.17 inspect overload.

#include <caf/meta/type_name.hpp>

#include <string>

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

} // namespace butler
