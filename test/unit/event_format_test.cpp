#include "net/event_format.hpp"

#include "net/slack_format.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

using namespace butler;
using nlohmann::json;

namespace {

log_event reload(log_event_kind kind) {
  log_event ev;
  ev.id = 3;
  ev.kind = kind;
  ev.host = "sense-node-1";
  ev.task_name = "Reload of Sales";
  ev.app_name = "Sales dashboard";
  ev.user = "CORP\\sa_scheduler";
  ev.task_id = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e";
  ev.app_id = "7552d9fc-d1bb-4975-9a38-18357de531ea";
  ev.log_timestamp = "2024-05-01 10:11:12,123";
  ev.log_level = "ERROR";
  ev.execution_id = "fb0f317d-da91-4b86-aafa-0174ae1e8c8f";
  ev.log_message = "Max retries reached";
  return ev;
}

log_event audit(log_event_kind kind) {
  log_event ev;
  ev.kind = kind;
  ev.host = "sense-node-1";
  ev.user_directory = "CORP";
  ev.user_id = "anna";
  return ev;
}

std::vector<mqtt::message> messages(const log_event& ev,
                                    const mqtt_config& cfg = {}) {
  std::vector<mqtt::message> out;
  events::append_mqtt_messages(ev, cfg, 1, out);
  return out;
}

} // namespace

// -- MQTT ---------------------------------------------------------------------

TEST(event_format, a_failed_reload_gives_the_name_and_the_full_json) {
  auto out = messages(reload(log_event_kind::reload_failed));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].topic, "qliksense/task_failure");
  EXPECT_EQ(out[0].payload, "Reload of Sales");
  EXPECT_EQ(out[0].qos, 1);
  EXPECT_FALSE(out[0].retain);
  EXPECT_EQ(out[1].topic, "qliksense/task_failure_full");
  // Butler's key order, exactly.
  EXPECT_EQ(
    out[1].payload,
    R"({"hostName":"sense-node-1","user":"CORP\\sa_scheduler",)"
    R"("taskName":"Reload of Sales","taskId":"e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e",)"
    R"("appName":"Sales dashboard","appId":"7552d9fc-d1bb-4975-9a38-18357de531ea",)"
    R"("logTimeStamp":"2024-05-01 10:11:12,123","logLevel":"ERROR",)"
    R"("executionId":"fb0f317d-da91-4b86-aafa-0174ae1e8c8f",)"
    R"("logMessage":"Max retries reached","qs_appTags":[],)"
    R"("qs_appCustomProperties":{},"qs_taskTags":[],)"
    R"("qs_taskCustomProperties":{},"qs_taskMetadata":{}})");
}

TEST(event_format, an_aborted_reload_uses_the_aborted_topics) {
  auto out = messages(reload(log_event_kind::reload_aborted));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].topic, "qliksense/task_aborted");
  EXPECT_EQ(out[1].topic, "qliksense/task_aborted_full");
}

TEST(event_format, send_full_off_leaves_out_the_json) {
  mqtt_config cfg;
  cfg.task_failure_send_full = false;
  cfg.task_aborted_send_full = false;
  EXPECT_EQ(messages(reload(log_event_kind::reload_failed), cfg).size(), 1u);
  EXPECT_EQ(messages(reload(log_event_kind::reload_aborted), cfg).size(), 1u);
}

TEST(event_format, configured_topics_are_used) {
  mqtt_config cfg;
  cfg.task_failure_topic = "site/a/failed";
  cfg.session_start_topic = "site/a/in";
  EXPECT_EQ(messages(reload(log_event_kind::reload_failed), cfg)[0].topic,
            "site/a/failed");
  EXPECT_EQ(messages(audit(log_event_kind::session_start), cfg)[0].topic,
            "site/a/in");
}

TEST(event_format, a_butler2_failure_gives_the_task_name) {
  auto ev = reload(log_event_kind::task_failure_legacy);
  auto out = messages(ev);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].topic, "qliksense/task_failure");
  EXPECT_EQ(out[0].payload, "Reload of Sales");
}

TEST(event_format, audit_events_give_host_and_user) {
  struct expected {
    log_event_kind kind;
    const char* topic;
  };
  for (auto [kind, topic] :
       {expected{log_event_kind::session_start, "qliksense/session/start"},
        expected{log_event_kind::session_stop, "qliksense/session/stop"},
        expected{log_event_kind::connection_open, "qliksense/connection/open"},
        expected{log_event_kind::connection_close,
                 "qliksense/connection/close"}}) {
    auto out = messages(audit(kind));
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].topic, topic);
    EXPECT_EQ(out[0].payload, "sense-node-1: CORP/anna");
  }
}

TEST(event_format, success_distribute_and_engine_events_publish_nothing) {
  for (auto kind : {log_event_kind::reload_success, log_event_kind::distribute,
                    log_event_kind::engine_reload_failed})
    EXPECT_TRUE(messages(reload(kind)).empty()) << to_string(kind);
}

// -- Slack --------------------------------------------------------------------

TEST(slack_format, basic_template_fills_fields_and_escapes_slack_markup) {
  slack_channel_config ch{"Reload failed: {{taskName}} on {{hostName}}"};
  ch.channel = "#alerts";
  auto ev = reload(log_event_kind::reload_failed);
  ev.task_name = "A & <B>";
  auto out = slack::render_event(ev, ch, "");
  EXPECT_EQ(out.problem, "");
  EXPECT_EQ(json::parse(out.body),
            (json{{"channel", "#alerts"},
                  {"text", "Reload failed: A &amp; &lt;B&gt; on sense-node-1"},
                  {"username", "Qlik Sense"},
                  {"icon_emoji", ":ghost:"}}));
}

TEST(slack_format, a_broken_basic_template_still_sends_a_plain_message) {
  slack_channel_config ch{"Reload failed: {{taskName"};
  auto out = slack::render_event(reload(log_event_kind::reload_failed), ch, "");
  EXPECT_NE(out.problem, "");
  auto body = json::parse(out.body);
  EXPECT_NE(body["text"].get<std::string>().find("Reload of Sales"),
            std::string::npos);
}

TEST(slack_format, formatted_template_gives_json_with_escaped_values) {
  slack_channel_config ch;
  ch.message_type = "formatted";
  ch.channel = "#alerts";
  auto ev = reload(log_event_kind::reload_failed);
  ev.task_name = "Say \"hi\" & go";
  auto tmpl = R"({"blocks":[{"type":"section","text":{"type":"mrkdwn",)"
              R"("text":"*{{taskName}}* failed: {{logMessage}}"}}]})";
  auto out = slack::render_event(ev, ch, tmpl);
  EXPECT_EQ(out.problem, "");
  auto body = json::parse(out.body);
  EXPECT_EQ(body["blocks"][0]["text"]["text"],
            "*Say \"hi\" &amp; go* failed: Max retries reached");
  // Added because the template left them out.
  EXPECT_EQ(body["channel"], "#alerts");
  EXPECT_EQ(body["username"], "Qlik Sense");
  EXPECT_EQ(body["icon_emoji"], ":ghost:");
}

TEST(slack_format, a_formatted_template_that_is_not_json_falls_back) {
  slack_channel_config ch;
  ch.message_type = "formatted";
  auto out = slack::render_event(reload(log_event_kind::reload_failed), ch,
                                 "not json {{taskName}}");
  EXPECT_EQ(out.problem, "template did not give a JSON object");
  auto body = json::parse(out.body);
  EXPECT_EQ(body["text"],
            "Qlik Sense reload failed: \"Reload of Sales\" (host sense-node-1, "
            "app \"Sales dashboard\")");
}

TEST(slack_format, seed_bodies_match_butler2) {
  EXPECT_EQ(json::parse(slack::seed_audit_body(
              audit(log_event_kind::connection_close), "#logins")),
            (json{{"channel", "#logins"},
                  {"text", "Close connection for user CORP/anna"},
                  {"username", "sense-node-1"}}));
  EXPECT_EQ(
    json::parse(slack::seed_task_failure_body(
      reload(log_event_kind::task_failure_legacy), "#f")),
    (json{{"channel", "#f"},
          {"text",
           "Failed task: \"Reload of Sales\", linked to app \"Sales dashboard\"."},
          {"username", "sense-node-1"}}));
}

TEST(slack_format, rest_messages_leave_out_empty_fields) {
  EXPECT_EQ(json::parse(slack::message_body("#c", "hi", "", "")),
            (json{{"channel", "#c"}, {"text", "hi"}}));
}
