#include "net/rest_api.hpp"

#include "config/version.hpp"
#include "net/mqtt_topic.hpp"
#include "net/query_string.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
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
  };
  return routes;
}

router::router(const endpoints_config& endpoints) {
  for (auto& r : all_routes())
    if (endpoints.enabled(r.flag))
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

} // namespace butler::rest
