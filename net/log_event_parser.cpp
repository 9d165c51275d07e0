#include "net/log_event_parser.hpp"

#include <array>
#include <string>

namespace butler::events {

namespace {

// Fields of a scheduler message; the last one (the log message) takes the
// rest of the datagram, ';' included.
constexpr std::size_t scheduler_field_count = 11;

// The engine message has exactly this many fields.
constexpr std::size_t engine_field_count = 9;

// Butler 2's task failure and the session events have exactly four.
constexpr std::size_t short_field_count = 4;

/// The fields of a datagram as views into it.
struct fields {
  std::array<std::string_view, scheduler_field_count> at;
  /// Number of fields, at most scheduler_field_count: the last one holds
  /// everything after the 10th ';'. Below that cap it is the exact count.
  std::size_t size = 0;
};

/// Splits `text` on ';' into at most scheduler_field_count fields.
void split(std::string_view text, fields& out) {
  std::size_t pos = 0;
  std::size_t n = 0;
  while (n + 1 < scheduler_field_count) {
    auto semi = text.find(';', pos);
    if (semi == std::string_view::npos)
      break;
    out.at[n++] = text.substr(pos, semi - pos);
    pos = semi + 1;
  }
  out.at[n++] = text.substr(pos);
  out.size = n;
}

enum class text_check { ok, not_utf8, control_character };

/// Checks well-formed UTF-8 and control characters in one pass; invalid
/// UTF-8 wins over a control character wherever each occurs.
text_check check_text(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  bool control = false;
  while (p < end) {
    unsigned c = *p;
    if (c < 0x80) {
      control |= (c < 0x20) || (c == 0x7F);
      ++p;
      continue;
    }
    auto len = utf8_sequence_length(
      std::string_view{reinterpret_cast<const char*>(p),
                       static_cast<std::size_t>(end - p)});
    if (len == 0)
      return text_check::not_utf8;
    p += len;
  }
  return control ? text_check::control_character : text_check::ok;
}

/// Returns at most `limit` bytes of the well-formed `text`, never ending in
/// the middle of a UTF-8 sequence.
std::string_view cut(std::string_view text, std::size_t limit) {
  if (text.size() <= limit)
    return text;
  auto n = limit;
  // Step back over continuation bytes to the start of the cut sequence.
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80)
    --n;
  return text.substr(0, n);
}

std::string field(std::string_view text) {
  return std::string{cut(text, max_field_bytes)};
}

/// Returns `text` with each doubled backslash made single ("DIR\\user" as
/// some appenders send it becomes "DIR\user"), cut to max_field_bytes.
std::string user_field(std::string_view text) {
  if (text.find("\\\\") == std::string_view::npos)
    return field(text);
  std::string result;
  result.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    result += text[i];
    if (text[i] == '\\' && i + 1 < text.size() && text[i + 1] == '\\')
      ++i;
  }
  result.resize(cut(result, max_field_bytes).size());
  return result;
}

/// Returns `text` without leading and trailing spaces.
std::string_view trim_spaces(std::string_view text) {
  auto first = text.find_first_not_of(' ');
  if (first == std::string_view::npos)
    return {};
  auto last = text.find_last_not_of(' ');
  return text.substr(first, last - first + 1);
}

enum class message_type {
  none,
  unknown,
  reload_failed,
  reload_aborted,
  reload_success,
  distribute,
  engine_reload_failed,
};

/// Maps the first field of a task-port message to its type: `none` when it
/// does not look like "/.../".
message_type classify(std::string_view first) {
  auto type = trim_spaces(first);
  if (type.size() < 2 || type.front() != '/' || type.back() != '/')
    return message_type::none;
  struct alias {
    std::string_view name;
    message_type type;
  };
  static constexpr alias aliases[] = {
    {"/scheduler-reload-failed/", message_type::reload_failed},
    {"/scheduler-task-failed/", message_type::reload_failed},
    {"/scheduler-reloadtask-failed/", message_type::reload_failed},
    {"/scheduler-reload-aborted/", message_type::reload_aborted},
    {"/scheduler-task-aborted/", message_type::reload_aborted},
    {"/scheduler-reloadtask-success/", message_type::reload_success},
    {"/scheduler-task-success/", message_type::reload_success},
    // The appender XML Butler 16 ships has the doubled slash.
    {"/scheduler-task-success//", message_type::reload_success},
    {"/scheduler-distribute/", message_type::distribute},
    {"/engine-reload-failed/", message_type::engine_reload_failed},
  };
  for (const auto& a : aliases)
    if (a.name == type)
      return a.type;
  return message_type::unknown;
}

parse_result reject(reject_reason reason) {
  parse_result result;
  result.reason = reason;
  return result;
}

/// Applies the checks every datagram gets and splits it; returns false with
/// `reason` set if it fails one.
bool prepare(std::string_view data, std::size_t max_size, fields& out,
             reject_reason& reason) {
  if (data.size() > max_size) {
    reason = reject_reason::oversize;
    return false;
  }
  // log4net's %newline: one trailing LF or CRLF.
  if (!data.empty() && data.back() == '\n') {
    data.remove_suffix(1);
    if (!data.empty() && data.back() == '\r')
      data.remove_suffix(1);
  }
  switch (check_text(data)) {
    case text_check::ok:
      break;
    case text_check::not_utf8:
      reason = reject_reason::not_utf8;
      return false;
    case text_check::control_character:
      reason = reject_reason::control_character;
      return false;
  }
  split(data, out);
  return true;
}

parse_result parse_scheduler(const fields& f, log_event_kind kind) {
  if (f.size < scheduler_field_count)
    return reject(reject_reason::field_count);
  if (!is_guid(f.at[5]))
    return reject(reject_reason::bad_task_id);
  if (!f.at[6].empty() && !is_guid(f.at[6]))
    return reject(reject_reason::bad_app_id);
  if (!is_guid(f.at[9]))
    return reject(reject_reason::bad_execution_id);
  if (f.at[1].empty() || f.at[2].empty())
    return reject(reject_reason::missing_field);
  parse_result result;
  result.ok = true;
  auto& ev = result.event;
  ev.kind = kind;
  ev.host = field(f.at[1]);
  ev.task_name = field(f.at[2]);
  ev.app_name = field(f.at[3]);
  ev.user = user_field(f.at[4]);
  ev.task_id = std::string{f.at[5]};
  ev.app_id = std::string{f.at[6]};
  ev.log_timestamp = field(f.at[7]);
  ev.log_level = field(f.at[8]);
  ev.execution_id = std::string{f.at[9]};
  ev.log_message = std::string{cut(f.at[10], max_log_message_bytes)};
  return result;
}

parse_result parse_engine(const fields& f) {
  if (f.size != engine_field_count)
    return reject(reject_reason::field_count);
  if (!is_guid(f.at[2]))
    return reject(reject_reason::bad_app_id);
  if (f.at[1].empty())
    return reject(reject_reason::missing_field);
  parse_result result;
  result.ok = true;
  auto& ev = result.event;
  ev.kind = log_event_kind::engine_reload_failed;
  ev.host = field(f.at[1]);
  ev.app_id = std::string{f.at[2]};
  // Field 3 is not documented by Sense; it is not kept.
  ev.user_directory = field(f.at[4]);
  ev.user_id = field(f.at[5]);
  if (ev.user_directory.empty()) {
    ev.user = ev.user_id;
  } else {
    ev.user.reserve(ev.user_directory.size() + 1 + ev.user_id.size());
    ev.user += ev.user_directory;
    ev.user += '\\';
    ev.user += ev.user_id;
  }
  ev.log_timestamp = field(f.at[6]);
  ev.log_level = field(f.at[7]);
  ev.log_message = std::string{cut(f.at[8], max_log_message_bytes)};
  return result;
}

parse_result parse_legacy(const fields& f) {
  if (f.size != short_field_count)
    return reject(reject_reason::field_count);
  if (f.at[0].empty() || f.at[1].empty())
    return reject(reject_reason::missing_field);
  parse_result result;
  result.ok = true;
  auto& ev = result.event;
  ev.kind = log_event_kind::task_failure_legacy;
  ev.host = field(f.at[0]);
  ev.task_name = field(f.at[1]);
  ev.app_name = field(f.at[2]);
  ev.user = field(f.at[3]);
  return result;
}

} // namespace

const char* to_string(reject_reason reason) {
  switch (reason) {
    case reject_reason::oversize: return "oversize";
    case reject_reason::not_utf8: return "not_utf8";
    case reject_reason::control_character: return "control_character";
    case reject_reason::field_count: return "field_count";
    case reject_reason::unknown_type: return "unknown_type";
    case reject_reason::bad_task_id: return "bad_task_id";
    case reject_reason::bad_app_id: return "bad_app_id";
    case reject_reason::bad_execution_id: return "bad_execution_id";
    case reject_reason::missing_field: return "missing_field";
    case reject_reason::unknown_command: return "unknown_command";
    case reject_reason::source_not_allowed: return "source_not_allowed";
    case reject_reason::duplicate: return "duplicate";
    case reject_reason::rate_limited: return "rate_limited";
  }
  return "unknown";
}

parse_result parse_task_datagram(std::string_view data, std::size_t max_size) {
  fields f;
  reject_reason reason{};
  if (!prepare(data, max_size, f, reason))
    return reject(reason);
  switch (classify(f.at[0])) {
    case message_type::none:
      return parse_legacy(f);
    case message_type::unknown:
      return reject(reject_reason::unknown_type);
    case message_type::reload_failed:
      return parse_scheduler(f, log_event_kind::reload_failed);
    case message_type::reload_aborted:
      return parse_scheduler(f, log_event_kind::reload_aborted);
    case message_type::reload_success:
      return parse_scheduler(f, log_event_kind::reload_success);
    case message_type::distribute:
      return parse_scheduler(f, log_event_kind::distribute);
    case message_type::engine_reload_failed:
      return parse_engine(f);
  }
  return reject(reject_reason::unknown_type);
}

parse_result parse_session_datagram(std::string_view data,
                                    std::size_t max_size) {
  fields f;
  reject_reason reason{};
  if (!prepare(data, max_size, f, reason))
    return reject(reason);
  if (f.size != short_field_count)
    return reject(reject_reason::field_count);
  log_event_kind kind;
  const auto command = f.at[1];
  if (command == "Start session")
    kind = log_event_kind::session_start;
  else if (command == "Stop session")
    kind = log_event_kind::session_stop;
  else if (command == "Open connection")
    kind = log_event_kind::connection_open;
  else if (command == "Close connection")
    kind = log_event_kind::connection_close;
  else
    return reject(reject_reason::unknown_command);
  if (f.at[0].empty() || f.at[3].empty())
    return reject(reject_reason::missing_field);
  parse_result result;
  result.ok = true;
  auto& ev = result.event;
  ev.kind = kind;
  ev.host = field(f.at[0]);
  ev.user_directory = field(f.at[2]);
  ev.user_id = field(f.at[3]);
  return result;
}

bool is_guid(std::string_view text) {
  if (text.size() != 36)
    return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-')
        return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
                 || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

std::size_t utf8_sequence_length(std::string_view text) {
  if (text.empty())
    return 0;
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  auto n = text.size();
  unsigned c = p[0];
  if (c < 0x80)
    return 1;
  auto cont = [&](std::size_t i, unsigned lo = 0x80, unsigned hi = 0xBF) {
    return i < n && p[i] >= lo && p[i] <= hi;
  };
  // Table 3-7 of the Unicode standard: the second byte's range depends on
  // the first, which rules out overlong forms, surrogates and > U+10FFFF.
  if (c >= 0xC2 && c <= 0xDF)
    return cont(1) ? 2 : 0;
  if (c == 0xE0)
    return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
    return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xED)
    return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (c == 0xF0)
    return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3)
    return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4)
    return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

} // namespace butler::events
