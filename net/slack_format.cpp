#include "net/slack_format.hpp"

#include "net/event_format.hpp"

#include <kainjow/mustache.hpp>
#include <nlohmann/json.hpp>

namespace butler::slack {

namespace {

using json = nlohmann::ordered_json;
using kainjow::mustache::data;
using kainjow::mustache::mustache;

/// Escapes what Slack treats as markup in message text.
std::string slack_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      default: out += c;
    }
  }
  return out;
}

/// Escapes for the inside of a JSON string, then for Slack.
std::string json_escape(const std::string& text) {
  auto quoted = json(slack_escape(text)).dump(-1, ' ', false,
                                              json::error_handler_t::replace);
  return quoted.substr(1, quoted.size() - 2);
}

/// The template fields of an event, with Butler's names.
data fields(const log_event& ev) {
  data d;
  d.set("hostName", ev.host);
  d.set("host", ev.host);
  d.set("user", ev.user);
  d.set("taskName", ev.task_name);
  d.set("taskId", ev.task_id);
  d.set("appName", ev.app_name);
  d.set("appId", ev.app_id);
  d.set("logTimeStamp", ev.log_timestamp);
  d.set("logLevel", ev.log_level);
  d.set("executionId", ev.execution_id);
  d.set("logMessage", ev.log_message);
  d.set("userDirectory", ev.user_directory);
  d.set("userId", ev.user_id);
  d.set("eventKind", to_string(ev.kind));
  return d;
}

/// Renders `text` with `escape`; false with `problem` set on a parse error.
bool render(const std::string& text, const log_event& ev,
            std::string (*escape)(const std::string&), std::string& out,
            std::string& problem) {
  mustache tmpl{text};
  if (!tmpl.is_valid()) {
    problem = "template does not parse: " + tmpl.error_message();
    return false;
  }
  tmpl.set_custom_escape(escape);
  out = tmpl.render(fields(ev));
  if (!tmpl.is_valid()) {
    problem = "template does not render: " + tmpl.error_message();
    return false;
  }
  return true;
}

json message(const std::string& channel, const std::string& text,
             const std::string& username, const std::string& icon_emoji) {
  json body = json::object();
  if (!channel.empty())
    body["channel"] = channel;
  body["text"] = text;
  if (!username.empty())
    body["username"] = username;
  if (!icon_emoji.empty())
    body["icon_emoji"] = icon_emoji;
  return body;
}

std::string dump(const json& body) {
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

/// The plain text used when a template cannot be rendered.
std::string fallback_text(const log_event& ev) {
  auto what = ev.kind == log_event_kind::reload_aborted ? "aborted" : "failed";
  return slack_escape("Qlik Sense reload " + std::string{what} + ": \""
                      + ev.task_name + "\" (host " + ev.host + ", app \""
                      + ev.app_name + "\")");
}

} // namespace

bool render_text(const std::string& text_template, const log_event& ev,
                 std::string& out, std::string& problem) {
  return render(text_template, ev, slack_escape, out, problem);
}

rendered render_event(const log_event& ev, const slack_channel_config& channel,
                      const std::string& template_text) {
  rendered result;
  std::string text;
  if (channel.message_type == "formatted") {
    std::string problem;
    if (render(template_text, ev, json_escape, text, problem)) {
      auto body = json::parse(text, nullptr, false);
      if (body.is_object()) {
        if (!body.contains("channel") && !channel.channel.empty())
          body["channel"] = channel.channel;
        if (!body.contains("username") && !channel.from_user.empty())
          body["username"] = channel.from_user;
        if (!body.contains("icon_emoji") && !channel.icon_emoji.empty())
          body["icon_emoji"] = channel.icon_emoji;
        if (!body.contains("text") && !body.contains("blocks")
            && !body.contains("attachments"))
          body["text"] = fallback_text(ev);
        result.body = dump(body);
        return result;
      }
      problem = "template did not give a JSON object";
    }
    result.problem = problem;
  } else if (!render_text(channel.basic_msg_template, ev, text,
                          result.problem)) {
    text.clear();
  }
  if (!result.problem.empty())
    text = fallback_text(ev);
  result.body = dump(message(channel.channel, text, channel.from_user,
                             channel.icon_emoji));
  return result;
}

std::string seed_task_failure_body(const log_event& ev,
                                   const std::string& channel) {
  return dump(message(channel,
                      slack_escape("Failed task: \"" + ev.task_name
                                   + "\", linked to app \"" + ev.app_name
                                   + "\"."),
                      ev.host, ""));
}

std::string seed_audit_body(const log_event& ev, const std::string& channel) {
  const char* command = "";
  switch (ev.kind) {
    case log_event_kind::session_start: command = "Start session"; break;
    case log_event_kind::session_stop: command = "Stop session"; break;
    case log_event_kind::connection_open: command = "Open connection"; break;
    case log_event_kind::connection_close: command = "Close connection"; break;
    default: break;
  }
  return dump(message(channel,
                      slack_escape(std::string{command} + " for user "
                                   + events::user_name(ev)),
                      ev.host, ""));
}

std::string message_body(const std::string& channel, const std::string& text,
                         const std::string& username,
                         const std::string& icon_emoji) {
  return dump(message(channel, text, username, icon_emoji));
}

} // namespace butler::slack
