#pragma once

// The Qlik Repository Service (QRS) calls Butler makes, as pure functions:
// building requests (Xrfkey, static headers, client certificate, filters),
// parsing replies, and planning a senseStartTask (which requested tasks to
// start, which are invalid or denied). No I/O here; net/qrs_ops.hpp runs
// the calls on the curl client. See reference/qrs-api.md.

#include "net/curl_client.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace butler::qrs {

// -- requests -----------------------------------------------------------------

/// How to reach QRS (Butler.configQRS plus Butler.cert).
struct qrs_options {
  std::string host;
  uint16_t port = 4242;
  bool use_ssl = true;
  /// Client certificate and key (PEM) presented to QRS.
  std::string client_cert;
  std::string client_key;
  /// Sense's root (PEM) to check the server with; empty uses the system store.
  std::string ca_file;
  /// Checks the server certificate (configQRS.rejectUnauthorized).
  bool verify_peer = false;
  /// configQRS.headers.static; must include X-Qlik-User.
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds timeout{30'000};
};

/// Returns a fresh Xrfkey: 16 random letters and digits.
std::string make_xrfkey();

/// Percent-encodes every byte of `text` except A-Z a-z 0-9 - . _ ~ (so a
/// space becomes %20, never '+').
std::string url_encode(std::string_view text);

/// Builds a QRS request: URL `http[s]://host:port<path>?xrfkey=K&<query>`
/// (names and values percent-encoded), headers `X-Qlik-Xrfkey: K`, the
/// static headers and, for a method that carries a body (POST, PUT, PATCH)
/// or a non-empty body, `Content-Type: application/json`; TLS fields and
/// timeout from `opts`. `path` is used as given (e.g. "/qrs/task/full"), so
/// callers encode any segment they put in it.
http::outbound_request
build_request(const qrs_options& opts, std::string method, std::string path,
              std::vector<std::pair<std::string, std::string>> query,
              std::string body = {});

/// Returns "host:port" for messages (IPv6 hosts in brackets).
std::string authority(const qrs_options& opts);

// -- filters ------------------------------------------------------------------

/// Quotes `text` as a QRS string literal: 'it''s'.
std::string quote(std::string_view text);

/// Returns `id eq A or id eq B ...` (ids as given; empty for no ids).
std::string filter_ids(const std::vector<std::string>& ids);

/// Returns `tags.name eq 'T'`.
std::string filter_tag(std::string_view tag);

/// Returns `customProperties.definition.name eq 'N' and
/// customProperties.value eq 'V'`.
std::string filter_custom_property(std::string_view name,
                                   std::string_view value);

// -- replies ------------------------------------------------------------------

/// A reply from QRS that Butler cannot use, and why.
struct parse_error {
  std::string message;
};

/// A task as QRS lists it (GET /qrs/task or /qrs/task/full).
struct qrs_task {
  std::string id;
  std::string name;
  /// Tag names (empty in the condensed form).
  std::vector<std::string> tags;
  /// Custom property (definition name, value) pairs.
  std::vector<std::pair<std::string, std::string>> custom_properties;
};

/// Returns buildVersion from a GET /qrs/about reply.
std::variant<std::string, parse_error> parse_about(std::string_view body);

/// Parses a task array, condensed or full. Each entry needs a string `id`;
/// `name`, `tags` and `customProperties` may be absent or null but must have
/// the right shape when present.
std::variant<std::vector<qrs_task>, parse_error>
parse_tasks(std::string_view body);

/// Returns whether two task ids are equal, ignoring case.
bool same_id(std::string_view a, std::string_view b);

// -- planning a start ---------------------------------------------------------

/// What a senseStartTask call asks for.
struct start_request {
  /// Task ids as given; "-" (the path placeholder) is skipped.
  std::vector<std::string> task_ids;
  std::vector<std::string> tags;
  /// Custom property (name, value) pairs.
  std::vector<std::pair<std::string, std::string>> custom_properties;
  /// allTaskIdsMustExist: one invalid id cancels every id-based start.
  bool all_must_exist = false;
};

/// Butler.startTaskFilter: what may be started when enabled.
struct start_filter {
  bool enable = false;
  std::vector<std::string> task_ids;
  std::vector<std::string> tags;
  std::vector<std::pair<std::string, std::string>> custom_properties;
};

/// The lookups a start needs: the distinct GUIDs among the ids (one filter),
/// and the tags and custom properties the filter allows (one call each).
struct start_lookups_needed {
  std::vector<std::string> task_ids;
  std::vector<std::string> tags;
  std::vector<std::pair<std::string, std::string>> custom_properties;
};

/// What QRS answered to those lookups.
struct start_lookups {
  /// Tasks found for the ids (any order, any case).
  std::vector<qrs_task> by_id;
  /// Tasks found per tag; a tag missing here found nothing.
  std::vector<std::pair<std::string, std::vector<qrs_task>>> by_tag;
  /// Tasks found per custom property (name, value).
  std::vector<std::pair<std::pair<std::string, std::string>,
                        std::vector<qrs_task>>>
    by_custom_property;
};

struct task_ref {
  std::string id;
  std::string name;
};

/// The outcome reported to the caller (Butler's tasksId / tasksTag /
/// tasksCP reply).
struct start_result {
  /// Id-based tasks started (ids as given).
  std::vector<task_ref> started;
  /// Ids that are no GUID or that QRS does not know (as given).
  std::vector<std::string> invalid;
  /// Ids the filter does not allow (as given).
  std::vector<std::string> denied;
  /// Tasks started because of a requested tag.
  std::vector<task_ref> by_tag;
  std::vector<std::string> tags_denied;
  /// Tasks started because of a requested custom property.
  std::vector<task_ref> by_custom_property;
  std::vector<std::pair<std::string, std::string>> custom_properties_denied;
};

struct start_plan {
  /// Task ids to send to QRS (its spelling), deduplicated, in request order:
  /// ids, then tags, then custom properties.
  std::vector<std::string> to_start;
  start_result result;
};

/// Returns whether the enabled `filter` allows `task`: its id is in
/// allowTask.taskId (any case), or one of its tags is in allowTask.tag, or
/// one of its custom properties (name and value) is in
/// allowTask.customProperty. A disabled filter allows everything.
bool task_allowed(const start_filter& filter, const qrs_task& task);

/// Returns what to look up for `req`: non-GUID ids and denied tags or custom
/// properties need no lookup.
start_lookups_needed plan_lookups(const start_request& req,
                                  const start_filter& filter);

/// Decides what to start and what to report (Butler's rules): an id that is
/// no GUID or that QRS did not return is invalid; with all_must_exist any
/// invalid id cancels every id-based start (tag and custom-property starts
/// go ahead); with the filter enabled an id task not allowed (see
/// task_allowed) is denied, and a tag or custom property not in allowTask is
/// denied with all its tasks. A task reached twice is started once but
/// reported in each list that reached it. Each list holds an entry once.
start_plan plan_start(const start_request& req, const start_filter& filter,
                      const start_lookups& found);

/// Renders `res` as Butler's reply: {"tasksId":{"started":[{"taskId",
/// "taskName"}],"invalid":[{"taskId"}],"denied":[{"taskId"}]},"tasksTag":[..],
/// "tasksTagDenied":[{"tag"}],"tasksCP":[..],"tasksCPDenied":[{"name",
/// "value"}]}.
std::string start_result_json(const start_result& res);

} // namespace butler::qrs
