#include "net/rest_api.hpp"

#include "config/version.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <variant>

using namespace butler;
using namespace butler::rest;
using nlohmann::json;

namespace {

endpoints_config flags(std::initializer_list<const char*> on) {
  endpoints_config cfg;
  for (auto name : {"activeUserCount", "apiListEnabledEndpoints", "butlerping",
                    "createDir", "mqttPublishMessage", "senseStartTask"}) {
    bool enabled = false;
    for (auto x : on)
      enabled = enabled || std::string{x} == name;
    cfg.flags.emplace_back(name, enabled);
  }
  return cfg;
}

http::request make_request(std::string method, std::string target,
                           std::string body = {}) {
  http::request req;
  req.method = std::move(method);
  req.target = std::move(target);
  req.body = std::move(body);
  return req;
}

/// Returns the 400 message of a failed parse, or "" if it parsed.
std::string parse_error(const parsed<mqtt_publish_request>& result) {
  if (auto res = std::get_if<http::response>(&result)) {
    EXPECT_EQ(res->status, 400u);
    return json::parse(res->body).at("message").get<std::string>();
  }
  return {};
}

} // namespace

// -- routing --------------------------------------------------------------------

TEST(rest_router, serves_one_endpoint_under_three_spellings) {
  router r{flags({"butlerping"})};
  auto seed = r.match("GET", "/butlerPing");
  auto v2 = r.match("GET", "/v2/butlerPing");
  auto v4 = r.match("GET", "/v4/butlerping");
  for (auto& m : {seed, v2, v4}) {
    EXPECT_EQ(m.status, 0u);
    EXPECT_EQ(m.ep, endpoint::butler_ping);
  }
  EXPECT_EQ(seed.sp, spelling::seed);
  EXPECT_EQ(v2.sp, spelling::v2);
  EXPECT_EQ(v4.sp, spelling::v4);
}

TEST(rest_router, matches_literal_segments_case_insensitively) {
  router r{flags({"butlerping"})};
  EXPECT_EQ(r.match("GET", "/BUTLERPING").status, 0u);
  EXPECT_EQ(r.match("GET", "/v4/ButlerPing").status, 0u);
  EXPECT_EQ(r.match("GET", "/V2/butlerping").status, 0u);
}

TEST(rest_router, ignores_one_trailing_slash) {
  router r{flags({"butlerping"})};
  EXPECT_EQ(r.match("GET", "/v4/butlerping/").status, 0u);
  EXPECT_EQ(r.match("GET", "/v4/butlerping//").status, 404u);
}

TEST(rest_router, answers_404_for_unknown_paths) {
  router r{flags({"butlerping", "mqttPublishMessage"})};
  EXPECT_EQ(r.match("GET", "/").status, 404u);
  EXPECT_EQ(r.match("GET", "/v3/butlerping").status, 404u);
  EXPECT_EQ(r.match("GET", "/v4/butlerping/extra").status, 404u);
  EXPECT_EQ(r.match("GET", "/v4").status, 404u);
  EXPECT_EQ(r.match("GET", "").status, 404u);
  EXPECT_EQ(r.match("GET", "*").status, 404u);
}

TEST(rest_router, a_disabled_endpoint_answers_404_like_an_unknown_one) {
  router r{flags({"mqttPublishMessage"})};
  EXPECT_EQ(r.match("GET", "/v4/butlerping").status, 404u);
  EXPECT_EQ(r.match("GET", "/butlerPing").status, 404u);
  // Not 405 either: a disabled route must not reveal that it exists.
  EXPECT_EQ(r.match("PUT", "/v4/butlerping").status, 404u);
  EXPECT_EQ(r.match("PUT", "/v4/mqttpublishmessage").status, 0u);
}

TEST(rest_router, answers_405_with_allow_for_a_wrong_method) {
  router r{flags({"butlerping", "mqttPublishMessage"})};
  auto m = r.match("POST", "/v4/butlerping");
  EXPECT_EQ(m.status, 405u);
  EXPECT_EQ(m.allow, "GET");
  auto publish = r.match("GET", "/v4/mqttpublishmessage");
  EXPECT_EQ(publish.status, 405u);
  EXPECT_EQ(publish.allow, "PUT");
  auto seed = r.match("PUT", "/mqttPublishMessage");
  EXPECT_EQ(seed.status, 405u);
  EXPECT_EQ(seed.allow, "GET");
}

TEST(rest_router, every_route_has_a_known_flag_and_pattern) {
  for (auto& r : all_routes()) {
    EXPECT_EQ(r.pattern[0], '/') << r.pattern;
    bool probe = r.ep == endpoint::health || r.ep == endpoint::ready;
    // Only the probes are always on.
    if (r.flag == nullptr)
      EXPECT_TRUE(probe) << r.pattern;
    if (r.flag != nullptr)
      EXPECT_NE(std::string{r.flag}, "") << r.pattern;
  }
}

TEST(rest_router, serves_the_probes_whatever_the_flags_say) {
  router r{flags({})};
  EXPECT_EQ(r.match("GET", "/healthz").ep, endpoint::health);
  EXPECT_EQ(r.match("GET", "/readyz").ep, endpoint::ready);
  EXPECT_EQ(r.match("POST", "/readyz").status, 405);
  EXPECT_EQ(r.match("GET", "/health").status, 404)
    << "GET /health is only on the dockerHealthCheck port";
  EXPECT_TRUE(r.enabled_flags().empty()) << "the probes are no endpoint flag";
  router docker{endpoints_config{{{"dockerHealthCheck", true}}}};
  EXPECT_EQ(docker.match("GET", "/health").ep, endpoint::health);
}

TEST(rest_api, readiness_lists_every_check_with_since_in_utc) {
  readiness_report rep;
  rep.ready = false;
  rep.checks.push_back({"config", true, 1764094200123, "loaded and valid"});
  rep.checks.push_back({"udp-ingest", false, 0, "port 9998 in use"});
  auto res = readiness_response(rep);
  EXPECT_EQ(res.status, 503u);
  EXPECT_EQ(json::parse(res.body),
            json::parse(R"({"ready":false,"checks":[
              {"name":"config","ok":true,"since":"2025-11-25T18:10:00.123Z",
               "detail":"loaded and valid"},
              {"name":"udp-ingest","ok":false,"since":"1970-01-01T00:00:00.000Z",
               "detail":"port 9998 in use"}]})"));
  rep.ready = true;
  EXPECT_EQ(readiness_response(rep).status, 200u);
  EXPECT_EQ(json::parse(health_response().body), json({{"status", "ok"}}));
}

TEST(rest_router, lists_enabled_flags_in_config_order) {
  router r{flags({"senseStartTask", "butlerping", "activeUserCount"})};
  EXPECT_EQ(r.enabled_flags(), (std::vector<std::string>{
                                 "activeUserCount", "butlerping",
                                 "senseStartTask"}));
  auto res = endpoints_enabled_response(r.enabled_flags());
  EXPECT_EQ(res.status, 200u);
  EXPECT_EQ(json::parse(res.body),
            json({"activeUserCount", "butlerping", "senseStartTask"}));
  EXPECT_EQ(json::parse(endpoints_enabled_response({}).body), json::array());
}

TEST(rest_router, honours_method_override_from_get_and_post) {
  auto post = make_request("POST", "/v4/mqttpublishmessage");
  post.headers.emplace_back("x-http-method-override", "put");
  EXPECT_EQ(effective_method(post), "PUT");
  auto get = make_request("GET", "/x");
  get.headers.emplace_back("x-http-method-override", "DELETE");
  EXPECT_EQ(effective_method(get), "DELETE");
  auto put = make_request("PUT", "/x");
  put.headers.emplace_back("x-http-method-override", "GET");
  EXPECT_EQ(effective_method(put), "PUT");
  EXPECT_EQ(effective_method(make_request("GET", "/x")), "GET");
}

// -- replies ----------------------------------------------------------------------

TEST(rest_replies, ping_names_the_version) {
  auto res = ping_response();
  EXPECT_EQ(res.status, 200u);
  auto body = json::parse(res.body);
  EXPECT_EQ(body, (json{{"response", "Butler reporting for duty"},
                        {"butlerVersion", version()}}));
  EXPECT_EQ(res.content_type, "application/json; charset=utf-8");
  // Keys in Butler's order, for clients that compare text.
  EXPECT_EQ(res.body, std::string{R"({"response":"Butler reporting for duty",)"}
                        + R"("butlerVersion":")" + version() + "\"}");
}

TEST(rest_replies, error_bodies_follow_butler_shape) {
  auto res = http::error_response(413, "too big");
  EXPECT_EQ(res.status, 413u);
  EXPECT_EQ(json::parse(res.body),
            (json{{"statusCode", 413},
                  {"error", "Payload Too Large"},
                  {"message", "too big"}}));
  EXPECT_EQ(res.body, R"({"statusCode":413,"error":"Payload Too Large",)"
                      R"("message":"too big"})");
  // Invalid UTF-8 echoed from a parameter must still give valid JSON.
  auto bad = http::error_response(400, "topic \xff\xfe");
  EXPECT_NO_THROW(json::parse(bad.body));
}

TEST(rest_replies, maps_each_error_code_to_one_status) {
  EXPECT_EQ(status_for(ec::invalid_argument), 400u);
  EXPECT_EQ(status_for(ec::path_escape), 400u);
  EXPECT_EQ(status_for(ec::not_found), 404u);
  EXPECT_EQ(status_for(ec::backlog_full), 503u);
  EXPECT_EQ(status_for(ec::unavailable), 503u);
  EXPECT_EQ(status_for(ec::timeout), 504u);
  EXPECT_EQ(status_for(ec::internal), 500u);
  EXPECT_EQ(status_for(ec::unhandled_exception), 500u);
  EXPECT_EQ(status_for(ec::bad_gateway), 502u);
  EXPECT_EQ(status_for(ec::forbidden), 403u);
  EXPECT_EQ(status_for(ec::unprocessable), 422u);
}

// -- mqttPublishMessage -----------------------------------------------------------

TEST(rest_mqtt_publish, reads_query_parameters_in_seed_and_v2) {
  for (auto sp : {spelling::seed, spelling::v2}) {
    auto result = parse_mqtt_publish(
      make_request("GET", "/v2/mqttPublishMessage?topic=qliksense%2Fnew_data"
                          "&message=dt%3D20201028+ok"),
      sp);
    ASSERT_TRUE(std::holds_alternative<mqtt_publish_request>(result))
      << parse_error(result);
    auto& req = std::get<mqtt_publish_request>(result);
    EXPECT_EQ(req.topic, "qliksense/new_data");
    EXPECT_EQ(req.payload, "dt=20201028 ok");
    EXPECT_EQ(req.qos, -1);
    auto res = mqtt_publish_response(req, sp);
    EXPECT_EQ(res.status, 200u);
    EXPECT_EQ(json::parse(res.body),
              (json{{"topic", "qliksense/new_data"},
                    {"message", "dt=20201028 ok"}}));
  }
}

TEST(rest_mqtt_publish, reads_a_json_body_in_v4_and_answers_201) {
  auto result = parse_mqtt_publish(
    make_request("PUT", "/v4/mqttpublishmessage",
                 R"({"topic":"qliksense/x","message":"{\"a\":1}"})"),
    spelling::v4);
  ASSERT_TRUE(std::holds_alternative<mqtt_publish_request>(result))
    << parse_error(result);
  auto& req = std::get<mqtt_publish_request>(result);
  EXPECT_EQ(req.topic, "qliksense/x");
  EXPECT_EQ(req.payload, R"({"a":1})");
  EXPECT_EQ(mqtt_publish_response(req, spelling::v4).status, 201u);
}

TEST(rest_mqtt_publish, names_a_missing_parameter) {
  EXPECT_EQ(parse_error(parse_mqtt_publish(
              make_request("GET", "/mqttPublishMessage?message=x"),
              spelling::seed)),
            "Required parameter topic is missing");
  EXPECT_EQ(parse_error(parse_mqtt_publish(
              make_request("GET", "/mqttPublishMessage?topic=a"),
              spelling::seed)),
            "Required parameter message is missing");
  EXPECT_EQ(parse_error(parse_mqtt_publish(
              make_request("GET", "/mqttPublishMessage"), spelling::v2)),
            "Required parameter topic is missing");
  EXPECT_EQ(parse_error(parse_mqtt_publish(
              make_request("PUT", "/v4/mqttpublishmessage",
                           R"({"topic":"a"})"),
              spelling::v4)),
            "Required parameter message is missing");
  EXPECT_EQ(parse_error(parse_mqtt_publish(
              make_request("PUT", "/v4/mqttpublishmessage",
                           R"({"topic":null,"message":"x"})"),
              spelling::v4)),
            "Required parameter topic is missing");
}

TEST(rest_mqtt_publish, rejects_empty_values) {
  EXPECT_EQ(parse_error(parse_mqtt_publish(
              make_request("GET", "/mqttPublishMessage?topic=&message=x"),
              spelling::seed)),
            "Parameter topic must not be empty");
  EXPECT_EQ(parse_error(parse_mqtt_publish(
              make_request("GET", "/mqttPublishMessage?topic=a&message="),
              spelling::seed)),
            "Parameter message must not be empty");
  EXPECT_EQ(parse_error(parse_mqtt_publish(
              make_request("PUT", "/v4/mqttpublishmessage",
                           R"({"topic":"","message":"x"})"),
              spelling::v4)),
            "Parameter topic must not be empty");
}

TEST(rest_mqtt_publish, rejects_wildcards_and_reserved_topics) {
  for (auto topic : {"a%2F%2B%2Fb", "a%2F%23", "%23", "%24SYS%2Fx"}) {
    auto msg = parse_error(parse_mqtt_publish(
      make_request("GET", std::string{"/mqttPublishMessage?message=x&topic="}
                            + topic),
      spelling::seed));
    EXPECT_NE(msg, "") << topic;
    EXPECT_EQ(msg.rfind("Parameter topic must not", 0), 0u) << msg;
  }
  EXPECT_EQ(parse_error(parse_mqtt_publish(
              make_request("PUT", "/v4/mqttpublishmessage",
                           R"({"topic":"a/+/b","message":"x"})"),
              spelling::v4)),
            "Parameter topic must not contain the MQTT wildcards + or #");
}

TEST(rest_mqtt_publish, rejects_bad_bodies_and_queries) {
  EXPECT_EQ(parse_error(parse_mqtt_publish(
              make_request("PUT", "/v4/mqttpublishmessage", "{topic: x"),
              spelling::v4)),
            "Request body is not valid JSON");
  EXPECT_EQ(parse_error(parse_mqtt_publish(
              make_request("PUT", "/v4/mqttpublishmessage", ""), spelling::v4)),
            "Request body is not valid JSON");
  EXPECT_NE(parse_error(parse_mqtt_publish(
              make_request("PUT", "/v4/mqttpublishmessage", R"(["a","b"])"),
              spelling::v4)),
            "");
  EXPECT_EQ(parse_error(parse_mqtt_publish(
              make_request("PUT", "/v4/mqttpublishmessage",
                           R"({"topic":5,"message":"x"})"),
              spelling::v4)),
            "Parameter topic must be a string");
  EXPECT_EQ(parse_error(parse_mqtt_publish(
              make_request("PUT", "/v4/mqttpublishmessage",
                           R"({"topic":"a","message":{"x":1}})"),
              spelling::v4)),
            "Parameter message must be a string");
  EXPECT_EQ(parse_error(parse_mqtt_publish(
              make_request("GET", "/mqttPublishMessage?topic=%zz&message=x"),
              spelling::seed)),
            "Query string has a malformed %-escape");
}

// -- filesystem, Slack and active-user endpoints ------------------------------

TEST(rest_router, serves_the_new_endpoints_under_their_spellings) {
  endpoints_config cfg;
  for (auto name : {"createDir", "createDirQVD", "getDiskSpace",
                    "slackPostMessage", "activeUserCount", "activeUsers"})
    cfg.flags.emplace_back(name, true);
  router r{cfg};
  struct expected {
    const char* method;
    const char* path;
    endpoint ep;
  };
  for (auto [method, path, ep] :
       {expected{"GET", "/createDir", endpoint::create_dir},
        expected{"GET", "/v2/createDir", endpoint::create_dir},
        expected{"POST", "/v4/createdir", endpoint::create_dir},
        expected{"GET", "/createDirQVD", endpoint::create_dir_qvd},
        expected{"POST", "/v4/createdirqvd", endpoint::create_dir_qvd},
        expected{"GET", "/getDiskSpace", endpoint::disk_space},
        expected{"GET", "/v4/getdiskspace", endpoint::disk_space},
        expected{"GET", "/v2/slackPostMessage", endpoint::slack_post},
        expected{"PUT", "/v4/slackpostmessage", endpoint::slack_post},
        expected{"GET", "/activeUserCount", endpoint::active_user_count},
        expected{"GET", "/v2/activeUsers", endpoint::active_users}}) {
    auto m = r.match(method, path);
    EXPECT_EQ(m.status, 0u) << method << " " << path;
    EXPECT_EQ(m.ep, ep) << path;
  }
  EXPECT_EQ(r.match("GET", "/v4/createdir").status, 405u);
}

TEST(rest_create_dir, reads_directory_from_query_or_body) {
  auto seed = parse_create_dir(
    make_request("GET", "/createDir?directory=%2Fdata%2Fqvd%2F2024"),
    spelling::seed, false);
  ASSERT_TRUE(std::holds_alternative<create_dir_request>(seed));
  EXPECT_EQ(std::get<create_dir_request>(seed).directory, "/data/qvd/2024");
  EXPECT_FALSE(std::get<create_dir_request>(seed).under_qvd_root);
  auto v4 = parse_create_dir(make_request("POST", "/v4/createdirqvd",
                                          R"({"directory":"sub/2024-10"})"),
                             spelling::v4, true);
  ASSERT_TRUE(std::holds_alternative<create_dir_request>(v4));
  auto& req = std::get<create_dir_request>(v4);
  EXPECT_TRUE(req.under_qvd_root);
  auto res = create_dir_response(req, spelling::v4);
  EXPECT_EQ(res.status, 201u);
  EXPECT_EQ(res.body, R"({"directory":"sub/2024-10"})");
  EXPECT_EQ(create_dir_response(req, spelling::v2).status, 200u);
}

TEST(rest_create_dir, rejects_missing_and_empty_directories) {
  auto missing = parse_create_dir(make_request("GET", "/createDir"),
                                  spelling::seed, false);
  ASSERT_TRUE(std::holds_alternative<http::response>(missing));
  EXPECT_EQ(json::parse(std::get<http::response>(missing).body)["message"],
            "Required parameter directory is missing");
  auto empty = parse_create_dir(
    make_request("POST", "/v4/createdir", R"({"directory":""})"), spelling::v4,
    false);
  ASSERT_TRUE(std::holds_alternative<http::response>(empty));
  EXPECT_EQ(json::parse(std::get<http::response>(empty).body)["message"],
            "Parameter directory must not be empty");
  auto bad = parse_create_dir(
    make_request("POST", "/v4/createdir", R"({"directory":7})"), spelling::v4,
    false);
  ASSERT_TRUE(std::holds_alternative<http::response>(bad));
}

TEST(rest_disk_space, reads_path_and_renders_bytes) {
  auto parsed = parse_disk_space(make_request("GET", "/v4/getdiskspace?path=/data"));
  ASSERT_TRUE(std::holds_alternative<disk_space_request>(parsed));
  EXPECT_EQ(std::get<disk_space_request>(parsed).path, "/data");
  auto res = disk_space_response(disk_space_reply{"/data", 1, 2, 3});
  EXPECT_EQ(res.body, R"({"path":"/data","available":1,"free":2,"total":3})");
  auto missing = parse_disk_space(make_request("GET", "/getDiskSpace?path="));
  ASSERT_TRUE(std::holds_alternative<http::response>(missing));
  EXPECT_EQ(json::parse(std::get<http::response>(missing).body)["message"],
            "Parameter path must not be empty");
}

TEST(rest_slack_post, reads_all_fields_and_requires_three) {
  auto parsed = parse_slack_post(
    make_request("GET", "/slackPostMessage?channel=%23general&from_user=Bot"
                        "&msg=Reload+done&emoji=thumbsup"),
    spelling::seed);
  ASSERT_TRUE(std::holds_alternative<slack_post_request>(parsed));
  auto& req = std::get<slack_post_request>(parsed);
  EXPECT_EQ(req.channel, "#general");
  EXPECT_EQ(req.from_user, "Bot");
  EXPECT_EQ(req.text, "Reload done");
  EXPECT_EQ(req.emoji, "thumbsup");
  EXPECT_EQ(slack_post_response(req, spelling::seed).body,
            R"({"channel":"#general","msg":"Reload done","from_user":"Bot",)"
            R"("emoji":"thumbsup"})");
  EXPECT_EQ(slack_post_response(req, spelling::v4).status, 201u);
  for (auto [target, name] :
       {std::pair{"/slackPostMessage?from_user=a&msg=b", "channel"},
        std::pair{"/slackPostMessage?channel=a&msg=b", "from_user"},
        std::pair{"/slackPostMessage?channel=a&from_user=b", "msg"}}) {
    auto res = parse_slack_post(make_request("GET", target), spelling::v2);
    ASSERT_TRUE(std::holds_alternative<http::response>(res)) << target;
    EXPECT_EQ(json::parse(std::get<http::response>(res).body)["message"],
              std::string{"Required parameter "} + name + " is missing");
  }
  auto no_emoji = parse_slack_post(
    make_request("PUT", "/v4/slackpostmessage",
                 R"({"channel":"#c","from_user":"u","msg":"m"})"),
    spelling::v4);
  ASSERT_TRUE(std::holds_alternative<slack_post_request>(no_emoji));
  EXPECT_EQ(std::get<slack_post_request>(no_emoji).emoji, "");
  auto empty = parse_slack_post(
    make_request("PUT", "/v4/slackpostmessage",
                 R"({"channel":"#c","from_user":"u","msg":""})"),
    spelling::v4);
  ASSERT_TRUE(std::holds_alternative<http::response>(empty));
}

TEST(rest_active_users, render_a_number_and_an_array) {
  EXPECT_EQ(active_user_count_response(5).body, "5");
  EXPECT_EQ(active_users_response({"anna", "bo"}).body, R"(["anna","bo"])");
  EXPECT_EQ(active_users_response({}).body, "[]");
}

// -- Qlik Sense endpoints -------------------------------------------------------

namespace {

const std::string task_a = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e";
const std::string task_b = "7552d9fc-d1bb-4975-9a38-18357de531ea";

std::string message_of(const http::response& res) {
  return json::parse(res.body).at("message").get<std::string>();
}

} // namespace

TEST(rest_sense, routes_every_spelling) {
  endpoints_config cfg;
  for (auto name : {"senseQRSPing", "senseStartTask", "senseListApps",
                    "senseAppDump", "senseAppReload"})
    cfg.flags.emplace_back(name, true);
  router r{cfg};
  auto put = r.match("PUT", "/v4/reloadtask/" + task_a + "/start");
  EXPECT_EQ(put.ep, endpoint::start_task);
  EXPECT_EQ(put.params, (std::vector<std::string>{task_a}));
  EXPECT_EQ(r.match("POST", "/v4/reloadtask/-/start").params,
            (std::vector<std::string>{"-"}));
  EXPECT_EQ(r.match("GET", "/v4/apps/list").ep, endpoint::list_apps);
  EXPECT_EQ(r.match("GET", "/v4/app/" + task_b + "/dump").ep,
            endpoint::app_dump);
  EXPECT_EQ(r.match("PUT", "/v4/app/" + task_b + "/reload").ep,
            endpoint::app_reload);
  EXPECT_EQ(r.match("GET", "/senseQRSPing").ep, endpoint::qrs_ping);
  EXPECT_EQ(r.match("GET", "/v4/reloadtask/x/start").status, 405u);
}

TEST(rest_sense, seed_start_needs_a_guid) {
  auto ok = parse_start_task(
    make_request("GET", "/senseStartTask?taskId=" + task_a), spelling::seed, "");
  ASSERT_TRUE(std::holds_alternative<task_start_request>(ok));
  EXPECT_EQ(std::get<task_start_request>(ok).task_ids,
            (std::vector<std::string>{task_a}));
  auto bad = parse_start_task(make_request("GET", "/senseStartTask?taskId=abc"),
                              spelling::v2, "");
  ASSERT_TRUE(std::holds_alternative<http::response>(bad));
  EXPECT_EQ(message_of(std::get<http::response>(bad)),
            "Parameter taskId must be a Qlik Sense id (GUID), got \"abc\"");
  auto missing = parse_start_task(make_request("GET", "/senseStartTask"),
                                  spelling::seed, "");
  ASSERT_TRUE(std::holds_alternative<http::response>(missing));
}

TEST(rest_sense, v4_start_reads_path_body_and_flag) {
  auto body = json::array(
    {json{{"type", "starttaskid"}, {"payload", {{"taskId", task_b}}}},
     json{{"type", "starttasktag"}, {"payload", {{"tag", "startTask1"}}}},
     json{{"type", "starttaskcustomproperty"},
          {"payload",
           {{"customPropertyName", "taskGroup"},
            {"customPropertyValue", "tasks2"}}}}});
  auto parsed = parse_start_task(
    make_request("PUT", "/v4/reloadtask/" + task_a
                          + "/start?allTaskIdsMustExist=true",
                 body.dump()),
    spelling::v4, task_a);
  ASSERT_TRUE(std::holds_alternative<task_start_request>(parsed));
  auto& req = std::get<task_start_request>(parsed);
  EXPECT_EQ(req.task_ids, (std::vector<std::string>{task_a, task_b}));
  EXPECT_EQ(req.tags, (std::vector<std::string>{"startTask1"}));
  EXPECT_EQ(req.custom_properties,
            (std::vector<std::pair<std::string, std::string>>{
              {"taskGroup", "tasks2"}}));
  EXPECT_TRUE(req.all_must_exist);
  EXPECT_TRUE(req.apply_filter);
  // The dash means "no id in the path"; an empty body is fine with an id.
  auto dash_only = parse_start_task(make_request("POST", "/x"), spelling::v4,
                                    "-");
  ASSERT_TRUE(std::holds_alternative<http::response>(dash_only));
  EXPECT_EQ(message_of(std::get<http::response>(dash_only)),
            "No task to start: give a task id in the path or entries in the "
            "body");
  auto path_only = parse_start_task(make_request("POST", "/x", ""),
                                    spelling::v4, task_a);
  ASSERT_TRUE(std::holds_alternative<task_start_request>(path_only));
}

TEST(rest_sense, v4_start_rejects_bad_input_naming_it) {
  struct bad_case {
    std::string path_id;
    std::string target;
    std::string body;
    std::string message;
  };
  for (auto& c : std::vector<bad_case>{
         {"abc", "/x", "", "Parameter taskId must be a Qlik Sense id (GUID), "
                           "got \"abc\""},
         {task_a, "/x?allTaskIdsMustExist=yes", "",
          "Parameter allTaskIdsMustExist must be true or false, got \"yes\""},
         {task_a, "/x", "{", "Request body is not valid JSON"},
         {task_a, "/x", "{}",
          "Request body must be a JSON array of {\"type\",\"payload\"} "
          "entries"},
         {task_a, "/x", R"([{"payload":{}}])", "Each body entry needs a \"type\""},
         {task_a, "/x", R"([{"type":"starttaskid","payload":{"taskId":"zz"}}])",
          "Parameter taskId must be a Qlik Sense id (GUID), got \"zz\""},
         {task_a, "/x", R"([{"type":"starttasktag","payload":{}}])",
          "Body entry payload needs a non-empty tag"},
         {task_a, "/x",
          R"([{"type":"starttaskcustomproperty","payload":{"customPropertyName":"a"}}])",
          "Body entry payload needs a non-empty customPropertyValue"},
         {task_a, "/x", R"([{"type":"keyvaluestore","payload":{}}])",
          "Body entries of type keyvaluestore are not supported: this Butler "
          "has no key-value store yet"},
         {task_a, "/x", R"([{"type":"launch","payload":{}}])",
          "Unknown body entry type \"launch\" (starttaskid, starttasktag, "
          "starttaskcustomproperty)"},
       }) {
    auto parsed = parse_start_task(make_request("PUT", c.target, c.body),
                                   spelling::v4, c.path_id);
    ASSERT_TRUE(std::holds_alternative<http::response>(parsed)) << c.body;
    EXPECT_EQ(std::get<http::response>(parsed).status, 400u);
    EXPECT_EQ(message_of(std::get<http::response>(parsed)), c.message);
  }
}

TEST(rest_sense, start_replies_follow_each_spelling) {
  task_start_request req;
  req.task_ids = {task_a};
  task_start_result started;
  started.started = {{task_a, "Reload of Sales"}};
  EXPECT_EQ(start_task_response(req, started, spelling::seed).body,
            R"({"taskId":")" + task_a + R"("})");
  task_start_result unknown;
  unknown.invalid = {task_a};
  auto not_found = start_task_response(req, unknown, spelling::v2);
  EXPECT_EQ(not_found.status, 404u);
  task_start_result denied;
  denied.denied = {task_a};
  EXPECT_EQ(start_task_response(req, denied, spelling::seed).status, 403u);
  task_start_result all;
  all.started = {{task_a, "Reload of Sales"}};
  all.invalid = {task_b};
  all.by_tag = {{task_b, "Nightly"}};
  all.tags_denied = {"secret"};
  all.custom_properties_denied = {{"taskGroup", "tasks9"}};
  auto v4 = start_task_response(req, all, spelling::v4);
  EXPECT_EQ(v4.status, 200u);
  EXPECT_EQ(json::parse(v4.body),
            json::parse(R"({"tasksId":{"started":[{"taskId":")" + task_a
                        + R"(","taskName":"Reload of Sales"}],"invalid":[{"taskId":")"
                        + task_b + R"("}],"denied":[]},"tasksTag":[{"taskId":")"
                        + task_b + R"(","taskName":"Nightly"}],)"
                        + R"("tasksTagDenied":[{"tag":"secret"}],"tasksCP":[],)"
                        + R"("tasksCPDenied":[{"name":"taskGroup","value":"tasks9"}]})"));
}

TEST(rest_sense, dump_and_reload_parse_their_ids_and_options) {
  auto seed = parse_app_dump(make_request("GET", "/senseAppDump?appId=" + task_b),
                             spelling::seed, "");
  ASSERT_TRUE(std::holds_alternative<app_dump_request>(seed));
  EXPECT_EQ(std::get<app_dump_request>(seed).app_id, task_b);
  auto bad = parse_app_dump(make_request("GET", "/x"), spelling::v4, "nope");
  ASSERT_TRUE(std::holds_alternative<http::response>(bad));
  auto reload = parse_app_reload(
    make_request("PUT", "/x",
                 R"({"reloadMode":1,"partialReload":true,)"
                 R"("startQSEoWTaskOnSuccess":[")" + task_a + R"("],)"
                 R"("startQSEoWTaskOnFailure":[]})"),
    task_b);
  ASSERT_TRUE(std::holds_alternative<app_reload_request>(reload));
  auto& r = std::get<app_reload_request>(reload);
  EXPECT_EQ(r.mode, 1);
  EXPECT_TRUE(r.partial);
  EXPECT_EQ(r.start_on_success, (std::vector<std::string>{task_a}));
  for (auto body : {R"({"reloadMode":3})", R"({"reloadMode":4294967297})",
                    R"({"reloadMode":-4294967295})", R"({"reloadMode":1.0})",
                    R"({"partialReload":"yes"})",
                    R"({"startQSEoWTaskOnSuccess":"x"})",
                    R"({"startQSEoWTaskOnFailure":["nope"]})", "[1]"}) {
    auto res = parse_app_reload(make_request("PUT", "/x", body), task_b);
    EXPECT_TRUE(std::holds_alternative<http::response>(res)) << body;
  }
  app_reload_result ok{true, {}};
  EXPECT_EQ(app_reload_response(r, ok).status, 201u);
  EXPECT_EQ(app_reload_response(r, ok).body, R"({"appId":")" + task_b + R"("})");
  EXPECT_EQ(app_reload_response(r, app_reload_result{}).status, 500u);
}

TEST(rest_sense, list_and_ping_replies) {
  EXPECT_EQ(list_apps_response(app_list{{{task_b, "Sales dashboard"}}}).body,
            R"([{"id":")" + task_b + R"(","name":"Sales dashboard"}])");
  EXPECT_EQ(qrs_ping_response("30.4.2.0").body,
            R"({"response":"QRS reachable","version":"30.4.2.0"})");
}
