#pragma once

// QRS operations on Butler's asynchronous curl client: ping, start by ids,
// tags and custom properties (senseStartTask), look up and start one task.
//
// Each operation calls its callback exactly once, on the client's thread,
// except in two cases where it runs before the operation returns, on the
// caller's thread: when the client refuses the request (queue full or
// stopped: kind unreachable), and when nothing needs QRS (start_tasks with
// nothing to look up and nothing to start; start_task or lookup_task with an
// id that is no GUID: kind rejected, status 0). The options and filter are
// copied, so they need not outlive the call.
//
// Single starts (seed, v2, MQTT) leave the filter to the caller: when
// Butler.startTaskFilter is enabled, call lookup_task, check the task with
// qrs::task_allowed, then start_task; otherwise call start_task directly.

#include "net/curl_client.hpp"
#include "net/qrs_api.hpp"

#include <functional>
#include <string>
#include <variant>

namespace butler::qrs {

/// Why a QRS operation failed.
struct qrs_error {
  enum class kind {
    /// No connection (refused, no route, name not resolved, closed early).
    unreachable,
    /// The TLS handshake failed (server not trusted, client cert refused).
    tls,
    /// 403: Xrfkey, X-Qlik-User or client certificate not accepted.
    forbidden,
    /// 404: no such task.
    not_found,
    /// Any other 4xx.
    rejected,
    /// 5xx.
    server,
    /// No answer within qrs_options::timeout. A start may still have run.
    timeout,
    /// An answer Butler cannot use (not JSON, wrong shape, 1xx/3xx).
    bad_response,
    /// Butler's own HTTP client refused the call: its queue is full (too
    /// many calls waiting for QRS) or it is stopping. Nothing was sent.
    busy,
  } kind = kind::unreachable;
  /// The enum's name: `kind` alone names the member.
  using kind_type = enum kind;
  /// HTTP status when QRS answered, else 0.
  long status = 0;
  /// Names the QRS and what failed, e.g. "QRS at sense1:4242 answered 403:
  /// XrfKey header and querystring values do not match".
  std::string message;
};

/// Returns the name of `k` ("unreachable", "tls", ...).
const char* to_string(qrs_error::kind_type k);

/// Maps a finished request to an error, or returns false when QRS answered
/// 2xx. Exposed for tests.
bool classify(const qrs_options& opts, const http::outbound_response& res,
              qrs_error& err);

using about_callback
  = std::function<void(std::variant<std::string, qrs_error>)>;
using start_tasks_callback
  = std::function<void(std::variant<start_result, qrs_error>)>;
using start_task_callback
  = std::function<void(std::variant<task_ref, qrs_error>)>;
using lookup_task_callback
  = std::function<void(std::variant<qrs_task, qrs_error>)>;

/// GET /qrs/about; passes on buildVersion.
void about(http::client& client, const qrs_options& opts, about_callback done);

/// Runs a senseStartTask: one GET /qrs/task/full?filter=id eq A or ... for
/// the GUIDs among the ids, one per allowed tag and per allowed custom
/// property (all at once), then plan_start, then one POST
/// /qrs/task/start/many with the planned ids (sent at most once), and
/// passes on the plan's result. Any failed lookup fails the whole operation
/// before anything starts; a failed start fails it too. An empty plan sends
/// no start.
void start_tasks(http::client& client, const qrs_options& opts,
                 const start_filter& filter, start_request req,
                 start_tasks_callback done);

/// POST /qrs/task/{id}/start (sent at most once); passes on {id, ""} since
/// QRS names no task in its 204. An unknown id fails with not_found.
void start_task(http::client& client, const qrs_options& opts,
                std::string task_id, start_task_callback done);

/// GET /qrs/task/full?filter=id eq {id}; an unknown id fails with not_found.
void lookup_task(http::client& client, const qrs_options& opts,
                 std::string task_id, lookup_task_callback done);

} // namespace butler::qrs
