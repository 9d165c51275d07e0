#include "net/rest_api.hpp"

#include "config/version.hpp"
#include "net/mqtt_topic.hpp"
#include "net/query_string.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

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
  if (sp == spelling::v4) {
    auto body = json::parse(req.body, nullptr, false);
    if (body.is_discarded())
      return bad_request("Request body is not valid JSON");
    if (!body.is_object())
      return bad_request("Request body must be a JSON object with topic and "
                         "message");
    for (auto [name, field] : {std::pair{"topic", &result.topic},
                               std::pair{"message", &result.payload}}) {
      auto i = body.find(name);
      if (i == body.end() || i->is_null())
        return bad_request(std::string{"Required parameter "} + name
                           + " is missing");
      if (!i->is_string())
        return bad_request(std::string{"Parameter "} + name
                           + " must be a string");
      *field = i->get<std::string>();
    }
  } else {
    auto query = http::query_params::parse(http::split_target(req.target).query);
    if (!query)
      return bad_request("Query string has a malformed %-escape");
    for (auto [name, field] : {std::pair{"topic", &result.topic},
                               std::pair{"message", &result.payload}}) {
      auto value = query->find(name);
      if (value == nullptr)
        return bad_request(std::string{"Required parameter "} + name
                           + " is missing");
      *field = *value;
    }
  }
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

} // namespace butler::rest
