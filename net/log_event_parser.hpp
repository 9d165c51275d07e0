#pragma once

// Parsing of the UDP datagrams Sense's log4net appenders send
// (reference/log-events.md): pure functions, no sockets, no actors.

#include "messages/log_event.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace butler::events {

/// Why a datagram was not accepted. The ingest pipeline adds the last three.
enum class reject_reason : uint8_t {
  /// Longer than udpServerConfig.maxMessageSize.
  oversize,
  /// Not well-formed UTF-8.
  not_utf8,
  /// A control character (0x00-0x1F, 0x7F) other than one trailing CR/LF.
  control_character,
  /// Too few or too many fields for its type.
  field_count,
  /// A task-port message whose first field is neither a known /type/ nor
  /// part of a 4-field legacy message.
  unknown_type,
  /// Task id missing or not a GUID.
  bad_task_id,
  /// App id present but not a GUID (or missing where required).
  bad_app_id,
  /// Execution id missing or not a GUID.
  bad_execution_id,
  /// A required field (host, task name, user id, ...) is empty.
  missing_field,
  /// A session-port message whose command is not one of the four.
  unknown_command,
  /// The sender is not in udpServerConfig.allowedSources.
  source_not_allowed,
  /// The same type and execution id was seen within the dedup window.
  duplicate,
  /// Over udpServerConfig.rateLimit.maxMessagesPerMinute.
  rate_limited,
};

/// Number of reject_reason values, for counter arrays.
constexpr std::size_t reject_reason_count = 13;

/// Returns the reason's name, e.g. "bad_task_id" (used in logs and metrics).
const char* to_string(reject_reason reason);

/// A parsed event or the reason it was rejected.
struct parse_result {
  bool ok = false;
  log_event event;
  reject_reason reason = reject_reason::field_count;
};

/// Parses a datagram from the task port (udpServerConfig.portTaskFailure):
/// today's typed scheduler/engine messages and Butler 2's 4-field task
/// failure. `max_size` is udpServerConfig.maxMessageSize. The event's id and
/// source are left for the caller.
parse_result parse_task_datagram(std::string_view data, std::size_t max_size);

/// Parses a datagram from the session port
/// (udpServerConfig.portSessionConnectionEvents): host;Command;Dir;User.
parse_result parse_session_datagram(std::string_view data,
                                    std::size_t max_size);

/// Returns whether `text` is a GUID, 8-4-4-4-12 hex digits (any case).
bool is_guid(std::string_view text);

/// Most bytes the parser keeps of a field (cut on a UTF-8 boundary).
constexpr std::size_t max_field_bytes = 500;

/// Most bytes the parser keeps of the log message (cut on a UTF-8 boundary).
constexpr std::size_t max_log_message_bytes = 4000;

/// Returns the length of the well-formed UTF-8 sequence at the start of
/// `text` (1 to 4), or 0 if `text` is empty or does not start with one
/// (overlong forms, surrogates and code points past U+10FFFF are not
/// well-formed).
std::size_t utf8_sequence_length(std::string_view text);

} // namespace butler::events
