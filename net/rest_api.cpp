#include "net/rest_api.hpp"

#include "config/version.hpp"
#include "net/log_event_parser.hpp"
#include "net/mqtt_topic.hpp"
#include "net/query_string.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <optional>

namespace butler::rest {

namespace {

// Keys keep the order Butler has always sent them in.
using json = nlohmann::ordered_json;

/// Compares ASCII case-insensitively.
bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size()
         && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
              return std::tolower(static_cast<unsigned char>(x))
                     == std::tolower(static_cast<unsigned char>(y));
            });
}

/// Matches `path` against `pattern`, collecting "{name}" segments.
bool match_path(std::string_view pattern, std::string_view path,
                std::vector<std::string>& params) {
  params.clear();
  // Butler's routers ignore one trailing slash.
  if (path.size() > 1 && path.back() == '/')
    path.remove_suffix(1);
  while (true) {
    auto pslash = pattern.find('/', 1);
    auto tslash = path.find('/', 1);
    auto pseg = pattern.substr(0, pslash);
    auto tseg = path.substr(0, tslash);
    if (pseg.size() > 2 && pseg[1] == '{') {
      if (tseg.size() < 2)
        return false;
      auto value = http::url_decode(tseg.substr(1), false);
      if (!value)
        return false;
      params.push_back(std::move(*value));
    } else if (!iequals(pseg, tseg)) {
      return false;
    }
    if (pslash == std::string_view::npos || tslash == std::string_view::npos)
      return pslash == tslash;
    pattern = pattern.substr(pslash);
    path = path.substr(tslash);
  }
}

http::response json_response(unsigned status, const json& body) {
  http::response res;
  res.status = status;
  res.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return res;
}

http::response bad_request(const std::string& message) {
  return http::error_response(400, message);
}

/// A named request parameter, where it goes, and whether it must be given.
struct param {
  const char* name;
  std::string* out;
  bool required;
};

/// Reads string parameters from a JSON object body (`from_body`, the v4
/// routes that send one) or from the query string (seed, v2, v4 GET).
/// Returns the 400 response for a bad body or a missing required one.
std::optional<http::response> read_params(const http::request& req,
                                          bool from_body,
                                          std::initializer_list<param> params) {
  if (from_body) {
    auto body = json::parse(req.body, nullptr, false);
    if (body.is_discarded())
      return bad_request("Request body is not valid JSON");
    if (!body.is_object()) {
      std::vector<std::string> names;
      for (auto& p : params)
        if (p.required)
          names.emplace_back(p.name);
      std::string list;
      for (std::size_t i = 0; i < names.size(); ++i)
        list += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ")
                + names[i];
      return bad_request("Request body must be a JSON object with " + list);
    }
    for (auto& p : params) {
      auto i = body.find(p.name);
      if (i == body.end() || i->is_null()) {
        if (p.required)
          return bad_request(std::string{"Required parameter "} + p.name
                             + " is missing");
        continue;
      }
      if (!i->is_string())
        return bad_request(std::string{"Parameter "} + p.name
                           + " must be a string");
      *p.out = i->get<std::string>();
    }
    return std::nullopt;
  }
  auto query = http::query_params::parse(http::split_target(req.target).query);
  if (!query)
    return bad_request("Query string has a malformed %-escape");
  for (auto& p : params) {
    if (auto value = query->find(p.name))
      *p.out = *value;
    else if (p.required)
      return bad_request(std::string{"Required parameter "} + p.name
                         + " is missing");
  }
  return std::nullopt;
}

/// Returns the 400 response if `value` (parameter `name`) is empty.
std::optional<http::response> require_value(const char* name,
                                            const std::string& value) {
  if (value.empty())
    return bad_request(std::string{"Parameter "} + name
                       + " must not be empty");
  return std::nullopt;
}

} // namespace

const std::vector<route>& all_routes() {
  static const std::vector<route> routes{
    {"GET", "/butlerPing", endpoint::butler_ping, spelling::seed, "butlerping"},
    {"GET", "/v2/butlerPing", endpoint::butler_ping, spelling::v2,
     "butlerping"},
    {"GET", "/v4/butlerping", endpoint::butler_ping, spelling::v4,
     "butlerping"},
    {"GET", "/v4/configfile/endpointsenabled", endpoint::endpoints_enabled,
     spelling::v4, "apiListEnabledEndpoints"},
    {"GET", "/mqttPublishMessage", endpoint::mqtt_publish, spelling::seed,
     "mqttPublishMessage"},
    {"GET", "/v2/mqttPublishMessage", endpoint::mqtt_publish, spelling::v2,
     "mqttPublishMessage"},
    {"PUT", "/v4/mqttpublishmessage", endpoint::mqtt_publish, spelling::v4,
     "mqttPublishMessage"},
    {"GET", "/createDir", endpoint::create_dir, spelling::seed, "createDir"},
    {"GET", "/v2/createDir", endpoint::create_dir, spelling::v2, "createDir"},
    {"POST", "/v4/createdir", endpoint::create_dir, spelling::v4, "createDir"},
    {"GET", "/createDirQVD", endpoint::create_dir_qvd, spelling::seed,
     "createDirQVD"},
    {"GET", "/v2/createDirQVD", endpoint::create_dir_qvd, spelling::v2,
     "createDirQVD"},
    {"POST", "/v4/createdirqvd", endpoint::create_dir_qvd, spelling::v4,
     "createDirQVD"},
    {"GET", "/getDiskSpace", endpoint::disk_space, spelling::seed,
     "getDiskSpace"},
    {"GET", "/v2/getDiskSpace", endpoint::disk_space, spelling::v2,
     "getDiskSpace"},
    {"GET", "/v4/getdiskspace", endpoint::disk_space, spelling::v4,
     "getDiskSpace"},
    {"GET", "/slackPostMessage", endpoint::slack_post, spelling::seed,
     "slackPostMessage"},
    {"GET", "/v2/slackPostMessage", endpoint::slack_post, spelling::v2,
     "slackPostMessage"},
    {"PUT", "/v4/slackpostmessage", endpoint::slack_post, spelling::v4,
     "slackPostMessage"},
    {"GET", "/activeUserCount", endpoint::active_user_count, spelling::seed,
     "activeUserCount"},
    {"GET", "/v2/activeUserCount", endpoint::active_user_count, spelling::v2,
     "activeUserCount"},
    {"GET", "/activeUsers", endpoint::active_users, spelling::seed,
     "activeUsers"},
    {"GET", "/v2/activeUsers", endpoint::active_users, spelling::v2,
     "activeUsers"},
    {"GET", "/senseQRSPing", endpoint::qrs_ping, spelling::seed,
     "senseQRSPing"},
    {"GET", "/senseStartTask", endpoint::start_task, spelling::seed,
     "senseStartTask"},
    {"GET", "/v2/senseStartTask", endpoint::start_task, spelling::v2,
     "senseStartTask"},
    {"PUT", "/v4/reloadtask/{taskId}/start", endpoint::start_task,
     spelling::v4, "senseStartTask"},
    {"POST", "/v4/reloadtask/{taskId}/start", endpoint::start_task,
     spelling::v4, "senseStartTask"},
    {"GET", "/senseListApps", endpoint::list_apps, spelling::seed,
     "senseListApps"},
    {"GET", "/v2/senseListApps", endpoint::list_apps, spelling::v2,
     "senseListApps"},
    {"GET", "/v4/senselistapps", endpoint::list_apps, spelling::v4,
     "senseListApps"},
    {"GET", "/v4/apps/list", endpoint::list_apps, spelling::v4,
     "senseListApps"},
    {"GET", "/senseAppDump", endpoint::app_dump, spelling::seed,
     "senseAppDump"},
    {"GET", "/v2/senseAppDump", endpoint::app_dump, spelling::v2,
     "senseAppDump"},
    {"GET", "/v4/senseappdump/{appId}", endpoint::app_dump, spelling::v4,
     "senseAppDump"},
    {"GET", "/v4/app/{appId}/dump", endpoint::app_dump, spelling::v4,
     "senseAppDump"},
    {"PUT", "/v4/app/{appId}/reload", endpoint::app_reload, spelling::v4,
     "senseAppReload"},
    {"GET", "/healthz", endpoint::health, spelling::v4, nullptr},
    // Only on Butler.dockerHealthCheck's port (its router alone enables it).
    {"GET", "/health", endpoint::health, spelling::v4, "dockerHealthCheck"},
    // Where Butler.prometheus puts it (the listener's router enables it).
    {"GET", "/metrics", endpoint::metrics, spelling::v4, "prometheus"},
    {"GET", "/readyz", endpoint::ready, spelling::v4, nullptr},
  };
  return routes;
}

const char* to_string(endpoint ep) {
  switch (ep) {
    case endpoint::butler_ping:
      return "butler_ping";
    case endpoint::endpoints_enabled:
      return "endpoints_enabled";
    case endpoint::mqtt_publish:
      return "mqtt_publish";
    case endpoint::create_dir:
      return "create_dir";
    case endpoint::create_dir_qvd:
      return "create_dir_qvd";
    case endpoint::disk_space:
      return "disk_space";
    case endpoint::slack_post:
      return "slack_post";
    case endpoint::active_user_count:
      return "active_user_count";
    case endpoint::active_users:
      return "active_users";
    case endpoint::qrs_ping:
      return "qrs_ping";
    case endpoint::start_task:
      return "start_task";
    case endpoint::list_apps:
      return "list_apps";
    case endpoint::app_dump:
      return "app_dump";
    case endpoint::app_reload:
      return "app_reload";
    case endpoint::health:
      return "health";
    case endpoint::ready:
      return "ready";
    case endpoint::metrics:
      return "metrics";
  }
  return "unknown";
}

router::router(const endpoints_config& endpoints) {
  for (auto& r : all_routes())
    if (r.flag == nullptr || endpoints.enabled(r.flag))
      routes_.push_back(r);
  for (auto& [name, on] : endpoints.flags)
    if (on)
      enabled_flags_.push_back(name);
}

route_match router::match(std::string_view method,
                          std::string_view path) const {
  route_match result;
  std::vector<std::string> params;
  for (auto& r : routes_) {
    if (!match_path(r.pattern, path, params))
      continue;
    if (method == r.method) {
      result.status = 0;
      result.ep = r.ep;
      result.sp = r.sp;
      result.params = std::move(params);
      result.allow.clear();
      return result;
    }
    if (result.allow.find(r.method) == std::string::npos)
      result.allow += result.allow.empty() ? r.method
                                           : std::string{", "} + r.method;
  }
  result.status = result.allow.empty() ? 404 : 405;
  return result;
}

std::string effective_method(const http::request& req) {
  if (req.method == "GET" || req.method == "POST") {
    auto override_method = req.header("x-http-method-override");
    if (!override_method.empty()) {
      std::string upper{override_method};
      for (auto& c : upper)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      return upper;
    }
  }
  return req.method;
}

unsigned status_for(ec code) {
  switch (code) {
    case ec::none: return 200;
    case ec::invalid_argument: return 400;
    case ec::path_escape: return 400;
    case ec::not_found: return 404;
    case ec::backlog_full: return 503;
    case ec::unavailable: return 503;
    case ec::timeout: return 504;
    case ec::unhandled_exception: return 500;
    case ec::internal: return 500;
    case ec::bad_gateway: return 502;
    case ec::forbidden: return 403;
    case ec::unprocessable: return 422;
  }
  return 500;
}

// -- endpoints ----------------------------------------------------------------

http::response ping_response() {
  return json_response(200, json{{"response", "Butler reporting for duty"},
                                 {"butlerVersion", version()}});
}

http::response
endpoints_enabled_response(const std::vector<std::string>& flags) {
  return json_response(200, json(flags));
}

parsed<mqtt_publish_request> parse_mqtt_publish(const http::request& req,
                                                spelling sp) {
  mqtt_publish_request result;
  if (auto error = read_params(req, sp == spelling::v4,
                               {{"topic", &result.topic, true},
                                {"message", &result.payload, true}}))
    return std::move(*error);
  if (auto problem = mqtt::check_publish_topic(result.topic); !problem.empty())
    return bad_request("Parameter topic " + problem);
  if (result.payload.empty())
    return bad_request("Parameter message must not be empty");
  return result;
}

http::response mqtt_publish_response(const mqtt_publish_request& req,
                                      spelling sp) {
  return json_response(sp == spelling::v4 ? 201 : 200,
                       json{{"topic", req.topic}, {"message", req.payload}});
}

parsed<create_dir_request> parse_create_dir(const http::request& req,
                                            spelling sp, bool under_qvd_root) {
  create_dir_request result;
  result.under_qvd_root = under_qvd_root;
  if (auto error = read_params(req, sp == spelling::v4,
                               {{"directory", &result.directory, true}}))
    return std::move(*error);
  if (auto error = require_value("directory", result.directory))
    return std::move(*error);
  return result;
}

http::response create_dir_response(const create_dir_request& req,
                                   spelling sp) {
  return json_response(sp == spelling::v4 ? 201 : 200,
                       json{{"directory", req.directory}});
}

parsed<disk_space_request> parse_disk_space(const http::request& req) {
  disk_space_request result;
  if (auto error = read_params(req, false, {{"path", &result.path, true}}))
    return std::move(*error);
  if (auto error = require_value("path", result.path))
    return std::move(*error);
  return result;
}

http::response disk_space_response(const disk_space_reply& reply) {
  return json_response(200, json{{"path", reply.path},
                                 {"available", reply.available},
                                 {"free", reply.free},
                                 {"total", reply.total}});
}

parsed<slack_post_request> parse_slack_post(const http::request& req,
                                            spelling sp) {
  slack_post_request result;
  if (auto error = read_params(req, sp == spelling::v4,
                               {{"channel", &result.channel, true},
                                {"from_user", &result.from_user, true},
                                {"msg", &result.text, true},
                                {"emoji", &result.emoji, false}}))
    return std::move(*error);
  for (auto [name, value] : {std::pair{"channel", &result.channel},
                             std::pair{"from_user", &result.from_user},
                             std::pair{"msg", &result.text}})
    if (auto error = require_value(name, *value))
      return std::move(*error);
  return result;
}

http::response slack_post_response(const slack_post_request& req,
                                   spelling sp) {
  return json_response(sp == spelling::v4 ? 201 : 200,
                       json{{"channel", req.channel},
                            {"msg", req.text},
                            {"from_user", req.from_user},
                            {"emoji", req.emoji}});
}

http::response active_user_count_response(std::size_t count) {
  return json_response(200, json(count));
}

http::response active_users_response(const std::vector<std::string>& users) {
  return json_response(200, json(users));
}

// -- Qlik Sense ---------------------------------------------------------------

namespace {

/// Returns the 400 response unless `id` is a GUID.
std::optional<http::response> require_guid(const char* what,
                                           const std::string& id) {
  if (events::is_guid(id))
    return std::nullopt;
  return bad_request(std::string{"Parameter "} + what
                     + " must be a Qlik Sense id (GUID), got \"" + id + "\"");
}

/// Reads a string member of a body entry's payload.
std::optional<http::response> payload_string(const json& payload,
                                             const char* name,
                                             std::string& out) {
  auto i = payload.find(name);
  if (i == payload.end() || !i->is_string() || i->get<std::string>().empty())
    return bad_request(std::string{"Body entry payload needs a non-empty "}
                       + name);
  out = i->get<std::string>();
  return std::nullopt;
}

json task_refs(const std::vector<task_ref>& tasks) {
  json out = json::array();
  for (auto& t : tasks)
    out.push_back(json{{"taskId", t.id}, {"taskName", t.name}});
  return out;
}

} // namespace

parsed<task_start_request> parse_start_task(const http::request& req,
                                            spelling sp,
                                            const std::string& path_task_id) {
  task_start_request result;
  if (sp != spelling::v4) {
    std::string id;
    if (auto error = read_params(req, false, {{"taskId", &id, true}}))
      return std::move(*error);
    if (auto error = require_guid("taskId", id))
      return std::move(*error);
    result.task_ids.push_back(std::move(id));
    return result;
  }
  if (path_task_id != "-") {
    if (auto error = require_guid("taskId", path_task_id))
      return std::move(*error);
    result.task_ids.push_back(path_task_id);
  }
  std::string must_exist;
  if (auto error = read_params(req, false,
                               {{"allTaskIdsMustExist", &must_exist, false}}))
    return std::move(*error);
  if (must_exist == "true")
    result.all_must_exist = true;
  else if (!must_exist.empty() && must_exist != "false")
    return bad_request("Parameter allTaskIdsMustExist must be true or false, "
                       "got \""
                       + must_exist + "\"");
  auto blank = req.body.find_first_not_of(" \t\r\n") == std::string::npos;
  if (!blank) {
    auto body = json::parse(req.body, nullptr, false);
    if (body.is_discarded())
      return bad_request("Request body is not valid JSON");
    if (!body.is_array())
      return bad_request("Request body must be a JSON array of "
                         "{\"type\",\"payload\"} entries");
    for (auto& entry : body) {
      if (!entry.is_object() || !entry.contains("type")
          || !entry["type"].is_string())
        return bad_request("Each body entry needs a \"type\"");
      auto type = entry["type"].get<std::string>();
      auto payload = entry.value("payload", json::object());
      if (!payload.is_object())
        return bad_request("Body entry " + type + " needs a payload object");
      if (type == "starttaskid") {
        std::string id;
        if (auto error = payload_string(payload, "taskId", id))
          return std::move(*error);
        if (auto error = require_guid("taskId", id))
          return std::move(*error);
        result.task_ids.push_back(std::move(id));
      } else if (type == "starttasktag") {
        std::string tag;
        if (auto error = payload_string(payload, "tag", tag))
          return std::move(*error);
        result.tags.push_back(std::move(tag));
      } else if (type == "starttaskcustomproperty") {
        std::string name;
        std::string value;
        if (auto error = payload_string(payload, "customPropertyName", name))
          return std::move(*error);
        if (auto error = payload_string(payload, "customPropertyValue", value))
          return std::move(*error);
        result.custom_properties.emplace_back(std::move(name),
                                              std::move(value));
      } else if (type == "keyvaluestore") {
        return bad_request("Body entries of type keyvaluestore are not "
                           "supported: this Butler has no key-value store "
                           "yet");
      } else {
        return bad_request("Unknown body entry type \"" + type
                           + "\" (starttaskid, starttasktag, "
                             "starttaskcustomproperty)");
      }
    }
  }
  if (result.task_ids.empty() && result.tags.empty()
      && result.custom_properties.empty())
    return bad_request("No task to start: give a task id in the path or "
                       "entries in the body");
  return result;
}

http::response start_task_response(const task_start_request& req,
                                   const task_start_result& result,
                                   spelling sp) {
  if (sp != spelling::v4) {
    auto& id = req.task_ids.front();
    if (!result.invalid.empty())
      return http::error_response(404, "Task " + id
                                         + " does not exist in Qlik Sense");
    if (!result.denied.empty())
      return http::error_response(403, "Task " + id
                                         + " may not be started (not allowed "
                                           "by Butler.startTaskFilter)");
    return json_response(200, json{{"taskId", id}});
  }
  json invalid = json::array();
  for (auto& id : result.invalid)
    invalid.push_back(json{{"taskId", id}});
  json denied = json::array();
  for (auto& id : result.denied)
    denied.push_back(json{{"taskId", id}});
  json tags_denied = json::array();
  for (auto& tag : result.tags_denied)
    tags_denied.push_back(json{{"tag", tag}});
  json cps_denied = json::array();
  for (auto& [name, value] : result.custom_properties_denied)
    cps_denied.push_back(json{{"name", name}, {"value", value}});
  return json_response(200, json{{"tasksId",
                                  json{{"started", task_refs(result.started)},
                                       {"invalid", invalid},
                                       {"denied", denied}}},
                                 {"tasksTag", task_refs(result.by_tag)},
                                 {"tasksTagDenied", tags_denied},
                                 {"tasksCP",
                                  task_refs(result.by_custom_property)},
                                 {"tasksCPDenied", cps_denied}});
}

http::response qrs_ping_response(const std::string& version) {
  return json_response(200, json{{"response", "QRS reachable"},
                                 {"version", version}});
}

http::response health_response() {
  return json_response(200, json{{"status", "ok"}});
}

namespace {

/// Formats ms since the Unix epoch as ISO 8601 UTC with milliseconds.
std::string iso_utc(std::int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

} // namespace

http::response readiness_response(const readiness_report& report) {
  json checks = json::array();
  for (auto& c : report.checks)
    checks.push_back(json{{"name", c.name},
                          {"ok", c.ok},
                          {"since", iso_utc(c.since_ms)},
                          {"detail", c.detail}});
  return json_response(report.ready ? 200 : 503,
                       json{{"ready", report.ready}, {"checks", checks}});
}

http::response list_apps_response(const app_list& apps) {
  json out = json::array();
  for (auto& [id, name] : apps.apps)
    out.push_back(json{{"id", id}, {"name", name}});
  return json_response(200, out);
}

parsed<app_dump_request> parse_app_dump(const http::request& req, spelling sp,
                                        const std::string& path_app_id) {
  app_dump_request result;
  if (sp == spelling::v4) {
    result.app_id = path_app_id;
  } else if (auto error = read_params(req, false,
                                      {{"appId", &result.app_id, true}})) {
    return std::move(*error);
  }
  if (auto error = require_guid("appId", result.app_id))
    return std::move(*error);
  return result;
}

http::response app_dump_response(const app_dump& dump) {
  http::response res;
  res.body = dump.json;
  return res;
}

parsed<app_reload_request> parse_app_reload(const http::request& req,
                                            const std::string& path_app_id) {
  app_reload_request result;
  result.app_id = path_app_id;
  if (auto error = require_guid("appId", result.app_id))
    return std::move(*error);
  if (req.body.find_first_not_of(" \t\r\n") == std::string::npos)
    return result;
  auto body = json::parse(req.body, nullptr, false);
  if (body.is_discarded())
    return bad_request("Request body is not valid JSON");
  if (!body.is_object())
    return bad_request("Request body must be a JSON object");
  if (auto i = body.find("reloadMode"); i != body.end() && !i->is_null()) {
    // Compared as JSON numbers: a conversion to int first would wrap
    // 4294967297 round to 1.
    if (!i->is_number_integer() || (*i != 0 && *i != 1 && *i != 2))
      return bad_request("Parameter reloadMode must be 0, 1 or 2");
    result.mode = i->get<int>();
  }
  if (auto i = body.find("partialReload"); i != body.end() && !i->is_null()) {
    if (!i->is_boolean())
      return bad_request("Parameter partialReload must be true or false");
    result.partial = i->get<bool>();
  }
  for (auto [name, out] :
       {std::pair{"startQSEoWTaskOnSuccess", &result.start_on_success},
        std::pair{"startQSEoWTaskOnFailure", &result.start_on_failure}}) {
    auto i = body.find(name);
    if (i == body.end() || i->is_null())
      continue;
    if (!i->is_array())
      return bad_request(std::string{"Parameter "} + name
                         + " must be an array of task ids");
    for (auto& id : *i) {
      if (!id.is_string())
        return bad_request(std::string{"Parameter "} + name
                           + " must be an array of task ids");
      if (auto error = require_guid(name, id.get<std::string>()))
        return std::move(*error);
      out->push_back(id.get<std::string>());
    }
  }
  return result;
}

http::response app_reload_response(const app_reload_request& req,
                                   const app_reload_result& result) {
  if (result.success)
    return json_response(201, json{{"appId", req.app_id}});
  return http::error_response(500, "Reload of app " + req.app_id
                                     + " failed"
                                     + (req.start_on_failure.empty()
                                          ? std::string{}
                                          : "; the tasks in "
                                            "startQSEoWTaskOnFailure were "
                                            "started"));
}

} // namespace butler::rest
