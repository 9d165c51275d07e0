#pragma once

// What Butler posts to Slack incoming webhooks: message bodies for log events
// (basic templates, or a formatted JSON template file) and for the REST API,
// as pure functions. Templates use Mustache ({{taskName}} ...), the subset of
// Handlebars Butler's templates use.

#include "config/butler_config.hpp"
#include "messages/log_event.hpp"

#include <string>

namespace butler::slack {

/// A rendered message body.
struct rendered {
  /// The JSON body to POST.
  std::string body;
  /// Empty when the template rendered; otherwise why not (the body is then
  /// a plain message instead, so the notification still goes out).
  std::string problem;
};

/// Renders the notification for a failed or aborted reload on `channel`:
/// messageType basic fills basicMsgTemplate; formatted fills `template_text`
/// (the content of templateFile), which must give a JSON object, and adds
/// channel, username and icon_emoji where the template leaves them out.
rendered render_event(const log_event& ev, const slack_channel_config& channel,
                      const std::string& template_text);

/// Renders `text_template` with the event's fields; Slack's control
/// characters (&, <, >) in values are escaped. Returns false (and sets
/// `problem`) if the template does not parse.
bool render_text(const std::string& text_template, const log_event& ev,
                 std::string& out, std::string& problem);

/// The seed's post for a Butler 2 task failure:
/// `Failed task: "<task>", linked to app "<app>".` from user <host>.
std::string seed_task_failure_body(const log_event& ev,
                                   const std::string& channel);

/// The seed's post for a user audit event:
/// `<Command> for user <dir>/<user>` from user <host>.
std::string seed_audit_body(const log_event& ev, const std::string& channel);

/// A message from the REST API (slackPostMessage):
/// {"channel","text","username","icon_emoji"}; empty fields are left out.
std::string message_body(const std::string& channel, const std::string& text,
                         const std::string& username,
                         const std::string& icon_emoji);

} // namespace butler::slack
