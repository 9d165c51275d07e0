#pragma once

// Butler's REST API without sockets or actors: the route table (seed, /v2/ and
// /v4/ spellings, each behind one endpoint), endpoint flags, parameter checks
// that turn a request into a typed message, and the JSON replies. The Beast
// server (net/http_server) and http_ingress (actors/) sit on either side.

#include "config/butler_config.hpp"
#include "messages/error_code.hpp"
#include "messages/replies.hpp"
#include "messages/requests.hpp"
#include "net/http_types.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace butler::rest {

/// What a route leads to; one handler per endpoint serves all its spellings.
enum class endpoint : uint8_t {
  butler_ping,
  endpoints_enabled,
  mqtt_publish,
  create_dir,
  create_dir_qvd,
  disk_space,
  slack_post,
  active_user_count,
  active_users,
  qrs_ping,
  start_task,
  list_apps,
  app_dump,
  app_reload,
  /// Liveness and readiness probes: always on.
  health,
  ready,
  /// Prometheus metrics.
  metrics,
};

/// Returns the endpoint's name as metrics label it, e.g. "butler_ping".
const char* to_string(endpoint ep);

/// Which generation of the API a route belongs to.
enum class spelling : uint8_t {
  seed, // Butler 1: "/butlerPing", GET with query parameters
  v2,   // Butler 2: "/v2/butlerPing", GET with query parameters
  v4,   // Butler 4-16: the OpenAPI contract
};

/// One row of the route table.
struct route {
  const char* method;
  /// Path; a "{name}" segment is a parameter. Literal segments match
  /// case-insensitively.
  const char* pattern;
  endpoint ep;
  spelling sp;
  /// restServerEndpointsEnable flag that switches the route on; nullptr:
  /// always on.
  const char* flag;
};

/// Returns every route Butler serves, enabled or not.
const std::vector<route>& all_routes();

/// The outcome of matching a request against the enabled routes.
struct route_match {
  /// 0 when a route matched, otherwise 404 or 405.
  unsigned status = 0;
  endpoint ep = endpoint::butler_ping;
  spelling sp = spelling::seed;
  /// Values of the "{name}" segments, in order.
  std::vector<std::string> params;
  /// For 405: the methods the path accepts, e.g. "GET, PUT".
  std::string allow;
};

/// Matches requests against the routes whose flag is enabled. Immutable after
/// construction, so the I/O threads share one.
class router {
public:
  explicit router(const endpoints_config& endpoints);

  /// Matches `method` and the path of a target (query already cut off). A
  /// disabled route answers 404 exactly like an unknown one.
  route_match match(std::string_view method, std::string_view path) const;

  /// Returns the names of the enabled endpoint flags, in config order.
  const std::vector<std::string>& enabled_flags() const {
    return enabled_flags_;
  }

private:
  std::vector<route> routes_;
  std::vector<std::string> enabled_flags_;
};

/// Returns the method to route by: the X-HTTP-Method-Override header when a
/// GET or POST carries one (load scripts can only send GET and POST),
/// otherwise the request's own.
std::string effective_method(const http::request& req);

/// Maps a Butler error code to its HTTP status: the one table.
unsigned status_for(ec code);

// -- endpoints ----------------------------------------------------------------

/// GET butlerPing (all spellings).
http::response ping_response();

/// GET /v4/configfile/endpointsenabled.
http::response endpoints_enabled_response(const std::vector<std::string>& flags);

/// Either the typed request or the 400 response to send instead.
template <class T>
using parsed = std::variant<T, http::response>;

/// mqttPublishMessage: seed and v2 take `topic` and `message` from the query
/// string, v4 from a JSON body {"topic":..,"message":..}.
parsed<mqtt_publish_request> parse_mqtt_publish(const http::request& req,
                                                spelling sp);

/// The reply once the message is held for the broker: 200 (seed, v2) or 201
/// (v4) with {"topic":..,"message":..}.
http::response mqtt_publish_response(const mqtt_publish_request& req,
                                      spelling sp);

/// createDir and createDirQVD: seed and v2 take `directory` from the query
/// string, v4 from a JSON body {"directory":..}.
parsed<create_dir_request> parse_create_dir(const http::request& req,
                                            spelling sp, bool under_qvd_root);

/// The reply once the directory exists: 200 (seed, v2) or 201 (v4) with
/// {"directory":..} as given.
http::response create_dir_response(const create_dir_request& req, spelling sp);

/// getDiskSpace: `path` from the query string (all spellings).
parsed<disk_space_request> parse_disk_space(const http::request& req);

/// {"path":..,"available":..,"free":..,"total":..} in bytes.
http::response disk_space_response(const disk_space_reply& reply);

/// slackPostMessage: `channel`, `from_user`, `msg` (required) and `emoji`
/// from the query string (seed, v2) or a JSON body (v4). An emoji without
/// colons gets them (Slack wants ":thumbsup:").
parsed<slack_post_request> parse_slack_post(const http::request& req,
                                            spelling sp);

/// The reply once Slack took the message: 200 (seed, v2) or 201 (v4) with
/// {"channel","msg","from_user","emoji"} as given.
http::response slack_post_response(const slack_post_request& req, spelling sp);

// -- Qlik Sense ---------------------------------------------------------------

/// senseStartTask: seed and v2 take `taskId` from the query string; v4 takes
/// the path's task id ("-" for none), the optional JSON body of entries by id
/// (starttaskid), tag (starttasktag) and custom property
/// (starttaskcustomproperty), and `allTaskIdsMustExist`. A malformed task id
/// anywhere is a 400 naming it.
parsed<task_start_request> parse_start_task(const http::request& req,
                                            spelling sp,
                                            const std::string& path_task_id);

/// The reply to a start: seed and v2 answer 200 {"taskId"} once the task
/// started, 404 for a task Qlik Sense does not know, 403 for one outside
/// startTaskFilter; v4 answers 200 with the started, invalid and denied
/// tasks by id, tag and custom property.
http::response start_task_response(const task_start_request& req,
                                   const task_start_result& result, spelling sp);

/// senseQRSPing: {"response":"QRS reachable","version":"<buildVersion>"}.
http::response qrs_ping_response(const std::string& version);

/// GET /healthz once the actor system answered: 200 {"status":"ok"}.
http::response health_response();

/// GET /readyz: 200 when ready, else 503, with
/// {"ready":bool,"checks":[{"name","ok","since" (ISO 8601 UTC),"detail"}]}.
http::response readiness_response(const readiness_report& report);

/// senseListApps: [{"id","name"}, ...].
http::response list_apps_response(const app_list& apps);

/// senseAppDump: seed and v2 take `appId` from the query string, v4 from the
/// path; it must be a GUID.
parsed<app_dump_request> parse_app_dump(const http::request& req, spelling sp,
                                        const std::string& path_app_id);

/// The dump as JSON (200).
http::response app_dump_response(const app_dump& dump);

/// PUT /v4/app/{appId}/reload: the path's app id and the optional body
/// {"reloadMode","partialReload","startQSEoWTaskOnSuccess",
/// "startQSEoWTaskOnFailure"}.
parsed<app_reload_request> parse_app_reload(const http::request& req,
                                            const std::string& path_app_id);

/// 201 {"appId"} after a successful reload; 500 naming the app when the
/// reload failed (the failure tasks were started).
http::response app_reload_response(const app_reload_request& req,
                                   const app_reload_result& result);

/// activeUserCount: the number as JSON, e.g. `5`.
http::response active_user_count_response(std::size_t count);

/// activeUsers: a JSON array of user names.
http::response active_users_response(const std::vector<std::string>& users);

} // namespace butler::rest
