#include "net/log_event_parser.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace butler;
using namespace butler::events;

namespace {

constexpr std::size_t max_size = 65507;

const std::string task_id = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e";
const std::string app_id = "7552d9fc-d1bb-4975-9a38-18357de531ea";
const std::string exec_id = "fb0f317d-da91-4b86-aafa-0174ae1e8c8f";

// The reference's examples (reference/log-events.md).
const std::string reload_failed_line
  = "/scheduler-reload-failed/;sense-node-1;Reload of Sales;Sales dashboard;"
    "CORP\\sa_scheduler;e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e;"
    "7552d9fc-d1bb-4975-9a38-18357de531ea;2024-05-01 10:11:12,123;ERROR;"
    "fb0f317d-da91-4b86-aafa-0174ae1e8c8f;Max retries reached";
const std::string reload_aborted_line
  = "/scheduler-reload-aborted/;sense-node-2;Nightly finance;Finance;"
    "CORP\\sa_scheduler;0a1b2c3d-1111-2222-3333-444455556666;"
    "9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff;2024-05-01 23:00:01,004;WARN;"
    "12345678-90ab-cdef-1234-567890abcdef;Execution State Change to Aborting";
const std::string task_success_line
  = "/scheduler-task-success//;sense-node-1;Reload of Sales;Sales dashboard;"
    "CORP\\sa_scheduler;e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e;"
    "7552d9fc-d1bb-4975-9a38-18357de531ea;2024-05-01 10:20:00,500;INFO;"
    "2b7e1516-28ae-d2a6-abf7-158809cf4f3c;"
    "Execution State Change to FinishedSuccess";

/// Builds a scheduler line with the given fields (index 0..10).
std::string scheduler_line(const std::string& type,
                           const std::string& host = "sense-node-1",
                           const std::string& task = "Reload of Sales",
                           const std::string& app = "Sales dashboard",
                           const std::string& user = "CORP\\sa_scheduler",
                           const std::string& tid = task_id,
                           const std::string& aid = app_id,
                           const std::string& eid = exec_id,
                           const std::string& message
                           = "Max retries reached") {
  return type + ";" + host + ";" + task + ";" + app + ";" + user + ";" + tid
         + ";" + aid + ";2024-05-01 10:11:12,123;ERROR;" + eid + ";"
         + message;
}

parse_result task(const std::string& line) {
  return parse_task_datagram(line, max_size);
}

parse_result session(const std::string& line) {
  return parse_session_datagram(line, max_size);
}

/// Expects `result` to be a rejection for `reason`.
void expect_reject(const parse_result& result, reject_reason reason) {
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(to_string(result.reason), std::string{to_string(reason)});
}

} // namespace

// -- scheduler messages -------------------------------------------------------

TEST(log_event_parser, maps_every_field_of_a_reload_failed_message) {
  auto r = task(reload_failed_line);
  ASSERT_TRUE(r.ok) << to_string(r.reason);
  const auto& ev = r.event;
  EXPECT_EQ(ev.kind, log_event_kind::reload_failed);
  EXPECT_EQ(ev.host, "sense-node-1");
  EXPECT_EQ(ev.task_name, "Reload of Sales");
  EXPECT_EQ(ev.app_name, "Sales dashboard");
  EXPECT_EQ(ev.user, "CORP\\sa_scheduler");
  EXPECT_EQ(ev.task_id, task_id);
  EXPECT_EQ(ev.app_id, app_id);
  EXPECT_EQ(ev.log_timestamp, "2024-05-01 10:11:12,123");
  EXPECT_EQ(ev.log_level, "ERROR");
  EXPECT_EQ(ev.execution_id, exec_id);
  EXPECT_EQ(ev.log_message, "Max retries reached");
  // Not carried by this format; id and source are the caller's.
  EXPECT_EQ(ev.user_directory, "");
  EXPECT_EQ(ev.user_id, "");
  EXPECT_EQ(ev.id, 0u);
  EXPECT_EQ(ev.source, "");
}

TEST(log_event_parser, maps_the_reference_aborted_and_success_examples) {
  auto aborted = task(reload_aborted_line);
  ASSERT_TRUE(aborted.ok) << to_string(aborted.reason);
  EXPECT_EQ(aborted.event.kind, log_event_kind::reload_aborted);
  EXPECT_EQ(aborted.event.host, "sense-node-2");
  EXPECT_EQ(aborted.event.task_name, "Nightly finance");
  EXPECT_EQ(aborted.event.app_name, "Finance");
  EXPECT_EQ(aborted.event.task_id, "0a1b2c3d-1111-2222-3333-444455556666");
  EXPECT_EQ(aborted.event.app_id, "9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff");
  EXPECT_EQ(aborted.event.log_timestamp, "2024-05-01 23:00:01,004");
  EXPECT_EQ(aborted.event.log_level, "WARN");
  EXPECT_EQ(aborted.event.execution_id,
            "12345678-90ab-cdef-1234-567890abcdef");
  EXPECT_EQ(aborted.event.log_message, "Execution State Change to Aborting");

  auto success = task(task_success_line);
  ASSERT_TRUE(success.ok) << to_string(success.reason);
  EXPECT_EQ(success.event.kind, log_event_kind::reload_success);
  EXPECT_EQ(success.event.execution_id,
            "2b7e1516-28ae-d2a6-abf7-158809cf4f3c");
  EXPECT_EQ(success.event.log_level, "INFO");
  EXPECT_EQ(success.event.log_message,
            "Execution State Change to FinishedSuccess");
}

TEST(log_event_parser, accepts_every_type_alias) {
  struct alias {
    const char* type;
    log_event_kind kind;
  };
  const alias aliases[] = {
    {"/scheduler-reload-failed/", log_event_kind::reload_failed},
    {"/scheduler-task-failed/", log_event_kind::reload_failed},
    {"/scheduler-reloadtask-failed/", log_event_kind::reload_failed},
    {"/scheduler-reload-aborted/", log_event_kind::reload_aborted},
    {"/scheduler-task-aborted/", log_event_kind::reload_aborted},
    {"/scheduler-reloadtask-success/", log_event_kind::reload_success},
    {"/scheduler-task-success/", log_event_kind::reload_success},
    {"/scheduler-task-success//", log_event_kind::reload_success},
    {"/scheduler-distribute/", log_event_kind::distribute},
  };
  for (const auto& a : aliases) {
    SCOPED_TRACE(a.type);
    auto r = task(scheduler_line(a.type));
    ASSERT_TRUE(r.ok) << to_string(r.reason);
    EXPECT_EQ(r.event.kind, a.kind);
    EXPECT_EQ(r.event.task_id, task_id);
    EXPECT_EQ(r.event.execution_id, exec_id);
  }
}

TEST(log_event_parser, trims_spaces_around_the_type_only) {
  auto r = task(scheduler_line("  /scheduler-distribute/ ", " sense-node-1 "));
  ASSERT_TRUE(r.ok) << to_string(r.reason);
  EXPECT_EQ(r.event.kind, log_event_kind::distribute);
  EXPECT_EQ(r.event.host, " sense-node-1 ");
}

TEST(log_event_parser, keeps_a_log_message_that_contains_semicolons) {
  auto r = task(scheduler_line("/scheduler-reload-failed/", "h", "t", "a",
                               "CORP\\u", task_id, app_id, exec_id,
                               "Error: a;b;;c;"));
  ASSERT_TRUE(r.ok) << to_string(r.reason);
  EXPECT_EQ(r.event.log_message, "Error: a;b;;c;");
  EXPECT_EQ(r.event.execution_id, exec_id);
}

TEST(log_event_parser, accepts_an_empty_log_message) {
  auto r = task(scheduler_line("/scheduler-reload-failed/", "h", "t", "a",
                               "u", task_id, app_id, exec_id, ""));
  ASSERT_TRUE(r.ok) << to_string(r.reason);
  EXPECT_EQ(r.event.log_message, "");
}

TEST(log_event_parser, makes_a_doubled_backslash_in_the_user_single) {
  auto r = task(scheduler_line("/scheduler-reload-failed/", "h", "t", "a",
                               "CORP\\\\sa_scheduler"));
  ASSERT_TRUE(r.ok) << to_string(r.reason);
  EXPECT_EQ(r.event.user, "CORP\\sa_scheduler");
  // A single backslash stays as it is.
  auto single = task(scheduler_line("/scheduler-reload-failed/", "h", "t", "a",
                                    "CORP\\sa_scheduler"));
  ASSERT_TRUE(single.ok);
  EXPECT_EQ(single.event.user, "CORP\\sa_scheduler");
}

TEST(log_event_parser, accepts_an_empty_app_id_and_app_name) {
  auto r = task(scheduler_line("/scheduler-distribute/", "h", "t", "", "u",
                               task_id, "", exec_id));
  ASSERT_TRUE(r.ok) << to_string(r.reason);
  EXPECT_EQ(r.event.app_id, "");
  EXPECT_EQ(r.event.app_name, "");
}

TEST(log_event_parser, accepts_guids_in_upper_and_mixed_case) {
  auto r = task(scheduler_line("/scheduler-reload-failed/", "h", "t", "a", "u",
                               "E3B27F50-B1C0-4879-88FC-C7CDD9C1CF3E",
                               "7552d9fc-D1BB-4975-9a38-18357DE531EA",
                               "FB0F317D-DA91-4B86-AAFA-0174AE1E8C8F"));
  ASSERT_TRUE(r.ok) << to_string(r.reason);
  EXPECT_EQ(r.event.task_id, "E3B27F50-B1C0-4879-88FC-C7CDD9C1CF3E");
}

TEST(log_event_parser, rejects_bad_task_ids) {
  const std::string bad[] = {
    "",
    "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3",   // 35 characters
    "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e0", // 37 characters
    "e3b27f50b1c0-4879-88fc-c7cdd9c1cf3e0",  // hyphen missing
    "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3g",  // not hex
    "{e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3}", // braces
    " e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e", // space kept, so not a GUID
    "e3b27f50-b1c0-4879-88fc_c7cdd9c1cf3e",
  };
  for (const auto& id : bad) {
    SCOPED_TRACE(id);
    expect_reject(task(scheduler_line("/scheduler-reload-failed/", "h", "t",
                                      "a", "u", id)),
                  reject_reason::bad_task_id);
  }
}

TEST(log_event_parser, rejects_bad_app_and_execution_ids) {
  expect_reject(task(scheduler_line("/scheduler-reload-failed/", "h", "t", "a",
                                    "u", task_id, "not-a-guid")),
                reject_reason::bad_app_id);
  expect_reject(task(scheduler_line("/scheduler-reload-failed/", "h", "t", "a",
                                    "u", task_id, app_id.substr(1))),
                reject_reason::bad_app_id);
  expect_reject(task(scheduler_line("/scheduler-reload-failed/", "h", "t", "a",
                                    "u", task_id, app_id, "")),
                reject_reason::bad_execution_id);
  expect_reject(task(scheduler_line("/scheduler-reload-failed/", "h", "t", "a",
                                    "u", task_id, app_id,
                                    "fb0f317d-da91-4b86-aafa-0174ae1e8c8")),
                reject_reason::bad_execution_id);
}

TEST(log_event_parser, rejects_an_empty_host_or_task_name) {
  expect_reject(task(scheduler_line("/scheduler-reload-failed/", "")),
                reject_reason::missing_field);
  expect_reject(task(scheduler_line("/scheduler-reload-failed/", "h", "")),
                reject_reason::missing_field);
}

TEST(log_event_parser, needs_eleven_fields_for_scheduler_types) {
  // 10 fields: the log message and its ';' are missing.
  auto ten = reload_failed_line.substr(0, reload_failed_line.rfind(';'));
  expect_reject(task(ten), reject_reason::field_count);
  // 12 fields: the last ';' belongs to the log message.
  auto twelve = task(reload_failed_line + ";more");
  ASSERT_TRUE(twelve.ok) << to_string(twelve.reason);
  EXPECT_EQ(twelve.event.log_message, "Max retries reached;more");
  expect_reject(task("/scheduler-reload-failed/"), reject_reason::field_count);
  expect_reject(task("/scheduler-distribute/;h;t"), reject_reason::field_count);
}

TEST(log_event_parser, rejects_unknown_types) {
  expect_reject(task(scheduler_line("/scheduler-reload-exploded/")),
                reject_reason::unknown_type);
  // Case matters: Sense sends the types in lower case.
  expect_reject(task(scheduler_line("/Scheduler-Reload-Failed/")),
                reject_reason::unknown_type);
  expect_reject(task(scheduler_line("//")), reject_reason::unknown_type);
  // Only the success alias has the doubled slash.
  expect_reject(task(scheduler_line("/scheduler-reload-failed//")),
                reject_reason::unknown_type);
  expect_reject(task("/x/;a;b;c"), reject_reason::unknown_type);
}

// -- engine messages ----------------------------------------------------------

TEST(log_event_parser, maps_an_engine_reload_failed_message) {
  auto r = task("/engine-reload-failed/;sense-node-1;" + app_id
                + ";something;CORP;anna;2024-05-01 10:11:12,123;ERROR;"
                  "Script error in line 12");
  ASSERT_TRUE(r.ok) << to_string(r.reason);
  const auto& ev = r.event;
  EXPECT_EQ(ev.kind, log_event_kind::engine_reload_failed);
  EXPECT_EQ(ev.host, "sense-node-1");
  EXPECT_EQ(ev.app_id, app_id);
  EXPECT_EQ(ev.user_directory, "CORP");
  EXPECT_EQ(ev.user_id, "anna");
  EXPECT_EQ(ev.user, "CORP\\anna");
  EXPECT_EQ(ev.log_timestamp, "2024-05-01 10:11:12,123");
  EXPECT_EQ(ev.log_level, "ERROR");
  EXPECT_EQ(ev.log_message, "Script error in line 12");
  EXPECT_EQ(ev.task_id, "");
  EXPECT_EQ(ev.task_name, "");
  EXPECT_EQ(ev.execution_id, "");
}

TEST(log_event_parser, checks_engine_field_count_app_id_and_host) {
  const std::string head = "/engine-reload-failed/;sense-node-1;";
  // 8 and 10 fields.
  expect_reject(task(head + app_id + ";x;CORP;anna;ts;ERROR"),
                reject_reason::field_count);
  expect_reject(task(head + app_id + ";x;CORP;anna;ts;ERROR;msg;extra"),
                reject_reason::field_count);
  expect_reject(task(head + ";x;CORP;anna;ts;ERROR;msg"),
                reject_reason::bad_app_id);
  expect_reject(task(head + "nope;x;CORP;anna;ts;ERROR;msg"),
                reject_reason::bad_app_id);
  expect_reject(task("/engine-reload-failed/;;" + app_id
                     + ";x;CORP;anna;ts;ERROR;msg"),
                reject_reason::missing_field);
}

// -- Butler 2 task failure ----------------------------------------------------

TEST(log_event_parser, maps_a_legacy_four_field_task_failure) {
  auto r = task("sense-node-1;Reload of Sales;Sales dashboard;sa_scheduler");
  ASSERT_TRUE(r.ok) << to_string(r.reason);
  const auto& ev = r.event;
  EXPECT_EQ(ev.kind, log_event_kind::task_failure_legacy);
  EXPECT_EQ(ev.host, "sense-node-1");
  EXPECT_EQ(ev.task_name, "Reload of Sales");
  EXPECT_EQ(ev.app_name, "Sales dashboard");
  EXPECT_EQ(ev.user, "sa_scheduler");
  EXPECT_EQ(ev.task_id, "");
  EXPECT_EQ(ev.execution_id, "");
}

TEST(log_event_parser, checks_legacy_field_count_and_required_fields) {
  expect_reject(task("h;t;a"), reject_reason::field_count);
  expect_reject(task("h;t;a;u;x"), reject_reason::field_count);
  expect_reject(task(";t;a;u"), reject_reason::missing_field);
  expect_reject(task("h;;a;u"), reject_reason::missing_field);
  // App name and user may be empty (non-app tasks).
  auto r = task("h;t;;");
  ASSERT_TRUE(r.ok) << to_string(r.reason);
  EXPECT_EQ(r.event.app_name, "");
}

TEST(log_event_parser, rejects_empty_and_separator_only_datagrams) {
  expect_reject(task(""), reject_reason::field_count);
  expect_reject(task(";"), reject_reason::field_count);
  expect_reject(task(";;;"), reject_reason::missing_field);
  expect_reject(task(";;;;;;;;;;"), reject_reason::field_count);
  expect_reject(session(""), reject_reason::field_count);
  expect_reject(session(";"), reject_reason::field_count);
  expect_reject(session(";;;"), reject_reason::unknown_command);
}

// -- session port -------------------------------------------------------------

TEST(log_event_parser, maps_all_four_session_commands) {
  struct command {
    const char* text;
    log_event_kind kind;
  };
  const command commands[] = {
    {"Start session", log_event_kind::session_start},
    {"Stop session", log_event_kind::session_stop},
    {"Open connection", log_event_kind::connection_open},
    {"Close connection", log_event_kind::connection_close},
  };
  for (const auto& c : commands) {
    SCOPED_TRACE(c.text);
    auto r = session(std::string{"sense-node-1;"} + c.text + ";CORP;anna");
    ASSERT_TRUE(r.ok) << to_string(r.reason);
    EXPECT_EQ(r.event.kind, c.kind);
    EXPECT_TRUE(is_user_event(r.event.kind));
    EXPECT_EQ(r.event.host, "sense-node-1");
    EXPECT_EQ(r.event.user_directory, "CORP");
    EXPECT_EQ(r.event.user_id, "anna");
    EXPECT_EQ(r.event.task_name, "");
  }
}

TEST(log_event_parser, rejects_unknown_session_commands) {
  expect_reject(session("h;start session;CORP;anna"),
                reject_reason::unknown_command);
  expect_reject(session("h;Start Session;CORP;anna"),
                reject_reason::unknown_command);
  expect_reject(session("h;Start session ;CORP;anna"),
                reject_reason::unknown_command);
  expect_reject(session("h;Logout;CORP;anna"), reject_reason::unknown_command);
  expect_reject(session("h;;CORP;anna"), reject_reason::unknown_command);
}

TEST(log_event_parser, checks_session_field_count_and_required_fields) {
  expect_reject(session("h;Start session;CORP"), reject_reason::field_count);
  expect_reject(session("h;Start session;CORP;anna;x"),
                reject_reason::field_count);
  expect_reject(session(";Start session;CORP;anna"),
                reject_reason::missing_field);
  expect_reject(session("h;Start session;CORP;"),
                reject_reason::missing_field);
  // The directory may be empty.
  auto r = session("h;Stop session;;anna");
  ASSERT_TRUE(r.ok) << to_string(r.reason);
  EXPECT_EQ(r.event.user_directory, "");
}

TEST(log_event_parser, does_not_take_task_messages_on_the_session_port) {
  expect_reject(session(reload_failed_line), reject_reason::field_count);
  expect_reject(session("sense-node-1;Reload of Sales;Sales dashboard;sa"),
                reject_reason::unknown_command);
}

// -- line ends, size, bytes ---------------------------------------------------

TEST(log_event_parser, removes_one_trailing_lf_or_crlf) {
  auto lf = task(reload_failed_line + "\n");
  ASSERT_TRUE(lf.ok) << to_string(lf.reason);
  EXPECT_EQ(lf.event.log_message, "Max retries reached");
  auto crlf = task(reload_failed_line + "\r\n");
  ASSERT_TRUE(crlf.ok) << to_string(crlf.reason);
  EXPECT_EQ(crlf.event.log_message, "Max retries reached");
  auto s = session("h;Start session;CORP;anna\r\n");
  ASSERT_TRUE(s.ok) << to_string(s.reason);
  EXPECT_EQ(s.event.user_id, "anna");
  // Only one line end; a lone CR is a control character.
  expect_reject(task(reload_failed_line + "\n\n"),
                reject_reason::control_character);
  expect_reject(task(reload_failed_line + "\r"),
                reject_reason::control_character);
  expect_reject(session("h;Start session;CORP;anna\n\r\n"),
                reject_reason::control_character);
}

TEST(log_event_parser, rejects_control_characters) {
  expect_reject(task(std::string("h;t;a;u\0x", 9)),
                reject_reason::control_character);
  expect_reject(task(std::string("\0", 1)), reject_reason::control_character);
  expect_reject(task("h;t\t1;a;u"), reject_reason::control_character);
  expect_reject(task("h;t;a;u\x7f"), reject_reason::control_character);
  expect_reject(task("h\x1b[31m;t;a;u"), reject_reason::control_character);
  expect_reject(task("h\n;t;a;u"), reject_reason::control_character);
  expect_reject(session("h;Start session;CORP;an\x01na"),
                reject_reason::control_character);
  expect_reject(task(scheduler_line("/scheduler-reload-failed/", "h", "t", "a",
                                    "u", task_id, app_id, exec_id,
                                    "line one\nline two")),
                reject_reason::control_character);
}

TEST(log_event_parser, rejects_invalid_utf8) {
  const std::string bad[] = {
    "\x80",             // stray continuation byte
    "\xC3",             // truncated 2-byte sequence
    "\xC0\xAF",         // overlong '/'
    "\xC1\xBF",         // overlong
    "\xE0\x80\xAF",     // overlong 3-byte
    "\xED\xA0\x80",     // UTF-16 surrogate
    "\xF0\x8F\xBF\xBF", // overlong 4-byte
    "\xF4\x90\x80\x80", // past U+10FFFF
    "\xF5\x80\x80\x80", // invalid lead byte
    "\xFF",
    "\xE2\x82",         // truncated 3-byte sequence
  };
  for (const auto& b : bad) {
    SCOPED_TRACE(testing::PrintToString(b));
    expect_reject(task("h;t" + b + ";a;u"), reject_reason::not_utf8);
    expect_reject(session("h;Start session;CORP;" + b),
                  reject_reason::not_utf8);
  }
  // Invalid UTF-8 wins over a control character that comes first.
  expect_reject(task("h\t;t;a;\xFF"), reject_reason::not_utf8);
}

TEST(log_event_parser, accepts_well_formed_multibyte_text) {
  auto r = task("sense-nöde;Ladda försäljning €;Appen 𝄞;CORP\\ÅsaÖ");
  ASSERT_TRUE(r.ok) << to_string(r.reason);
  EXPECT_EQ(r.event.task_name, "Ladda försäljning €");
  EXPECT_EQ(r.event.app_name, "Appen 𝄞");
}

TEST(log_event_parser, rejects_a_datagram_over_the_size_limit) {
  const auto line = "h;Start session;CORP;anna";
  const std::size_t n = std::string_view{line}.size();
  EXPECT_TRUE(parse_session_datagram(line, n).ok);
  expect_reject(parse_session_datagram(line, n - 1), reject_reason::oversize);
  EXPECT_TRUE(parse_task_datagram(reload_failed_line, reload_failed_line.size())
                .ok);
  expect_reject(parse_task_datagram(reload_failed_line,
                                    reload_failed_line.size() - 1),
                reject_reason::oversize);
  // The size counts the line end too, and wins over every other check.
  expect_reject(parse_task_datagram(reload_failed_line + "\n",
                                    reload_failed_line.size()),
                reject_reason::oversize);
  expect_reject(parse_task_datagram("\xFF\xFF", 1), reject_reason::oversize);
  std::string big(max_size + 1, 'x');
  expect_reject(task(big), reject_reason::oversize);
}

// -- field limits -------------------------------------------------------------

TEST(log_event_parser, cuts_fields_at_500_bytes) {
  auto r = task(std::string(600, 'h') + ";" + std::string(500, 't') + ";"
                + std::string(501, 'a') + ";u");
  ASSERT_TRUE(r.ok) << to_string(r.reason);
  EXPECT_EQ(r.event.host, std::string(500, 'h'));
  EXPECT_EQ(r.event.task_name, std::string(500, 't'));
  EXPECT_EQ(r.event.app_name, std::string(500, 'a'));
}

TEST(log_event_parser, cuts_fields_on_a_utf8_boundary) {
  // 499 ASCII bytes then "€" (3 bytes) crosses 500: the euro goes whole.
  auto name = std::string(499, 't') + "\xE2\x82\xAC" + "tail";
  auto r = task("h;" + name + ";a;u");
  ASSERT_TRUE(r.ok) << to_string(r.reason);
  EXPECT_EQ(r.event.task_name, std::string(499, 't'));
  // 497 + 3 ends exactly at 500: kept.
  auto fits = std::string(497, 't') + "\xE2\x82\xAC" + "tail";
  auto f = task("h;" + fits + ";a;u");
  ASSERT_TRUE(f.ok);
  EXPECT_EQ(f.event.task_name, std::string(497, 't') + "\xE2\x82\xAC");
  // A 4-byte character starting at 498.
  auto clef = std::string(498, 'a') + "\xF0\x9D\x84\x9E";
  auto c = task("h;t;" + clef + ";u");
  ASSERT_TRUE(c.ok);
  EXPECT_EQ(c.event.app_name, std::string(498, 'a'));
}

TEST(log_event_parser, cuts_the_log_message_at_4000_bytes) {
  auto long_message = std::string(3999, 'm') + "\xC3\xA9" + "more";
  auto r = task(scheduler_line("/scheduler-reload-failed/", "h", "t", "a", "u",
                               task_id, app_id, exec_id, long_message));
  ASSERT_TRUE(r.ok) << to_string(r.reason);
  EXPECT_EQ(r.event.log_message, std::string(3999, 'm'));
  auto exact = task(scheduler_line("/scheduler-reload-failed/", "h", "t", "a",
                                   "u", task_id, app_id, exec_id,
                                   std::string(4000, 'm')));
  ASSERT_TRUE(exact.ok);
  EXPECT_EQ(exact.event.log_message.size(), 4000u);
  // Other scheduler fields still stop at 500.
  auto host = task(scheduler_line("/scheduler-reload-failed/",
                                  std::string(700, 'h')));
  ASSERT_TRUE(host.ok);
  EXPECT_EQ(host.event.host.size(), 500u);
}

TEST(log_event_parser, cuts_the_user_after_undoubling_backslashes) {
  auto user = "CORP\\\\" + std::string(600, 'u');
  auto r = task(scheduler_line("/scheduler-reload-failed/", "h", "t", "a",
                               user));
  ASSERT_TRUE(r.ok) << to_string(r.reason);
  EXPECT_EQ(r.event.user, "CORP\\" + std::string(495, 'u'));
}

TEST(log_event_parser, cuts_session_fields_at_500_bytes) {
  auto r = session("h;Start session;" + std::string(501, 'd') + ";"
                   + std::string(800, 'u'));
  ASSERT_TRUE(r.ok) << to_string(r.reason);
  EXPECT_EQ(r.event.user_directory, std::string(500, 'd'));
  EXPECT_EQ(r.event.user_id, std::string(500, 'u'));
}

// -- helpers ------------------------------------------------------------------

TEST(log_event_parser, recognises_guids) {
  EXPECT_TRUE(is_guid("e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"));
  EXPECT_TRUE(is_guid("E3B27F50-B1C0-4879-88FC-C7CDD9C1CF3E"));
  EXPECT_TRUE(is_guid("00000000-0000-0000-0000-000000000000"));
  EXPECT_FALSE(is_guid(""));
  EXPECT_FALSE(is_guid("e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3"));
  EXPECT_FALSE(is_guid("e3b27f50-b1c0-4879-88fcc-7cdd9c1cf3e"));
  EXPECT_FALSE(is_guid("e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e "));
  EXPECT_FALSE(is_guid("e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3G"));
  EXPECT_FALSE(is_guid("e3b27f50:b1c0-4879-88fc-c7cdd9c1cf3e"));
  EXPECT_FALSE(is_guid("e3b27f50-b1c0-4879-88fc-c7cdd9c1cf-e"));
  EXPECT_FALSE(is_guid("e3b27f50e-b1c0-4879-88fc-c7cdd9c1cfe"));
}

TEST(log_event_parser, names_every_reject_reason) {
  const char* names[] = {
    "oversize",      "not_utf8",        "control_character",
    "field_count",   "unknown_type",    "bad_task_id",
    "bad_app_id",    "bad_execution_id", "missing_field",
    "unknown_command", "source_not_allowed", "duplicate",
    "rate_limited",
  };
  static_assert(sizeof(names) / sizeof(names[0]) == reject_reason_count);
  for (std::size_t i = 0; i < reject_reason_count; ++i)
    EXPECT_STREQ(to_string(static_cast<reject_reason>(i)), names[i]);
}

TEST(log_event_parser, measures_utf8_sequences) {
  EXPECT_EQ(utf8_sequence_length(""), 0u);
  EXPECT_EQ(utf8_sequence_length("a"), 1u);
  EXPECT_EQ(utf8_sequence_length("\xC3\xA9x"), 2u);
  EXPECT_EQ(utf8_sequence_length("\xE2\x82\xAC"), 3u);
  EXPECT_EQ(utf8_sequence_length("\xF0\x9D\x84\x9E"), 4u);
  EXPECT_EQ(utf8_sequence_length("\xF4\x8F\xBF\xBF"), 4u); // U+10FFFF
  EXPECT_EQ(utf8_sequence_length("\xEF\xBF\xBF"), 3u);     // U+FFFF
  EXPECT_EQ(utf8_sequence_length("\xED\x9F\xBF"), 3u);     // U+D7FF
  EXPECT_EQ(utf8_sequence_length("\xC3"), 0u);
  EXPECT_EQ(utf8_sequence_length("\xC3x"), 0u);
  EXPECT_EQ(utf8_sequence_length("\xED\xA0\x80"), 0u);
  EXPECT_EQ(utf8_sequence_length("\xF4\x90\x80\x80"), 0u);
  EXPECT_EQ(utf8_sequence_length("\xE0\x9F\xBF"), 0u);
  EXPECT_EQ(utf8_sequence_length("\x80"), 0u);
}
