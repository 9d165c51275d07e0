// Fuzz target for the log-event parsers and the ingest pipeline: every input
// goes through both parsers and a pipeline, and each result is checked
// against the invariants the rest of Butler relies on. A failed check aborts,
// which libFuzzer reports as a crash and the replay test as a failure.

#include "net/log_event_parser.hpp"
#include "net/log_ingest.hpp"
#include "net/mqtt_topic.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace butler;
using namespace butler::events;

namespace {

constexpr std::size_t max_size = 65507;

[[noreturn]] void fail(const char* what, int line, std::string_view data) {
  std::fprintf(stderr, "fuzz_log_event_parser.cpp:%d: check failed: %s\n",
               line, what);
  std::fprintf(stderr, "input (%zu bytes): ", data.size());
  for (auto c : data)
    std::fprintf(stderr, "%02x", static_cast<unsigned char>(c));
  std::fprintf(stderr, "\n");
  std::abort();
}

// A macro for the line number and the text of the failed condition.
#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond))                                                               \
      fail(#cond, __LINE__, data);                                             \
  } while (false)

bool has_control(std::string_view text) {
  for (auto c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F)
      return true;
  }
  return false;
}

/// Checks one output field: within `limit`, well-formed UTF-8 (cut on a
/// sequence boundary), no control character.
bool clean_field(std::string_view text, std::size_t limit) {
  return text.size() <= limit && (text.empty() || mqtt::is_mqtt_utf8(text))
         && !has_control(text);
}

bool is_scheduler(log_event_kind kind) {
  return kind == log_event_kind::reload_failed
         || kind == log_event_kind::reload_aborted
         || kind == log_event_kind::reload_success
         || kind == log_event_kind::distribute;
}

bool same_event(const log_event& a, const log_event& b) {
  return a.kind == b.kind && a.host == b.host && a.task_name == b.task_name
         && a.app_name == b.app_name && a.user == b.user
         && a.task_id == b.task_id && a.app_id == b.app_id
         && a.log_timestamp == b.log_timestamp && a.log_level == b.log_level
         && a.execution_id == b.execution_id
         && a.log_message == b.log_message
         && a.user_directory == b.user_directory && a.user_id == b.user_id;
}

void check_event(const parse_result& r, bool session_port,
                 std::string_view data) {
  const auto& ev = r.event;
  FUZZ_CHECK(ev.id == 0 && ev.source.empty());
  FUZZ_CHECK(is_user_event(ev.kind) == session_port);
  for (const auto* f : {&ev.host, &ev.task_name, &ev.app_name, &ev.user,
                        &ev.task_id, &ev.app_id, &ev.log_timestamp,
                        &ev.log_level, &ev.execution_id, &ev.user_directory,
                        &ev.user_id})
    FUZZ_CHECK(clean_field(*f, max_field_bytes));
  FUZZ_CHECK(clean_field(ev.log_message, max_log_message_bytes));
  FUZZ_CHECK(!ev.host.empty());
  if (is_scheduler(ev.kind)) {
    FUZZ_CHECK(is_guid(ev.task_id));
    FUZZ_CHECK(is_guid(ev.execution_id));
    FUZZ_CHECK(ev.app_id.empty() || is_guid(ev.app_id));
    FUZZ_CHECK(!ev.task_name.empty());
  } else if (ev.kind == log_event_kind::engine_reload_failed) {
    FUZZ_CHECK(is_guid(ev.app_id));
  } else if (ev.kind == log_event_kind::task_failure_legacy) {
    FUZZ_CHECK(!ev.task_name.empty());
  } else {
    FUZZ_CHECK(!ev.user_id.empty());
  }
}

/// Checks what both parsers must agree on: the checks before splitting.
bool byte_level(reject_reason reason) {
  return reason == reject_reason::oversize
         || reason == reject_reason::not_utf8
         || reason == reject_reason::control_character;
}

/// Checks that `kept` is what a cut of `sent` at `limit` bytes keeps: a
/// prefix, within the limit, short of it only by a partial UTF-8 sequence.
bool cut_of(std::string_view kept, std::string_view sent, std::size_t limit) {
  if (sent.size() <= limit)
    return kept == sent;
  return kept.size() <= limit && kept.size() + 3 >= limit
         && sent.substr(0, kept.size()) == kept;
}

/// Long fields are rare in mutated inputs: places the input's text (without
/// ';', CR and LF) so that its first multi-byte character straddles the
/// 500- and 4,000-byte cuts.
void check_cuts(std::string_view data) {
  std::string text;
  text.reserve(data.size());
  // Without separators and line ends (a trailing one would be trimmed).
  for (auto c : data)
    if (c != ';' && c != '\n' && c != '\r')
      text += c;
  auto first = std::find_if(text.begin(), text.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x80;
  });
  auto offset = static_cast<std::size_t>(first - text.begin());
  const std::string guid = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e";
  for (std::size_t back = 1; back <= 3; ++back) {
    auto pad = [&](std::size_t limit) {
      return std::string(limit > offset + back ? limit - offset - back : 0,
                         'p');
    };
    auto name = pad(max_field_bytes) + text;
    auto legacy = parse_task_datagram("h;" + name + ";a;u", max_size);
    if (legacy.ok) {
      check_event(legacy, false, data);
      FUZZ_CHECK(cut_of(legacy.event.task_name, name, max_field_bytes));
    }
    auto message = pad(max_log_message_bytes) + text;
    auto failed = parse_task_datagram("/scheduler-reload-failed/;h;t;a;u;"
                                        + guid + ";;ts;ERROR;" + guid + ";"
                                        + message,
                                      max_size);
    if (failed.ok) {
      check_event(failed, false, data);
      FUZZ_CHECK(cut_of(failed.event.log_message, message,
                        max_log_message_bytes));
    }
  }
}

void check_pipeline(std::string_view data, const parse_result& task_result,
                    const parse_result& session_result) {
  ingest_options opts;
  opts.max_message_size = max_size;
  opts.source_validation = true;
  opts.allowed_addresses = {"10.0.0.5", "::1"};
  opts.rate_limit_enable = true;
  opts.rate_limit_per_minute = 2;
  opts.log_interval = std::chrono::seconds{10};
  ingest_pipeline p{opts, make_memory_expiring_set(16)};
  auto now = std::chrono::steady_clock::time_point{} + std::chrono::hours{1};

  FUZZ_CHECK(!p.process(port_kind::task, data, "10.0.0.6", 1, now));
  auto first = p.process(port_kind::task, data, "10.0.0.5", 9998, now);
  FUZZ_CHECK(first.has_value() == task_result.ok);
  if (first) {
    FUZZ_CHECK(first->id == 1);
    FUZZ_CHECK(first->source == "10.0.0.5:9998");
    FUZZ_CHECK(same_event(*first, task_result.event));
  }
  auto second = p.process(port_kind::task, data, "::1", 9998, now);
  if (first && is_scheduler(first->kind))
    FUZZ_CHECK(!second); // duplicate
  else if (first)
    FUZZ_CHECK(second && second->id == 2 && second->source == "[::1]:9998");
  else
    FUZZ_CHECK(!second);
  auto user = p.process(port_kind::session, data, "::ffff:10.0.0.5", 9997,
                        now + std::chrono::minutes{1});
  FUZZ_CHECK(user.has_value() == session_result.ok);

  auto s = p.stats();
  std::uint64_t rejected = 0;
  for (auto n : s.rejected)
    rejected += n;
  FUZZ_CHECK(s.received == 4);
  FUZZ_CHECK(s.accepted + rejected == s.received);
  FUZZ_CHECK(s.rejected[static_cast<std::size_t>(
               reject_reason::source_not_allowed)]
             == 1);
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Rejections are logged: format them, but write them nowhere.
  auto logger = std::make_shared<spdlog::logger>(
    "fuzz", std::make_shared<spdlog::sinks::null_sink_mt>());
  logger->set_level(spdlog::level::trace);
  spdlog::set_default_logger(logger);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes,
                                      std::size_t size) {
  std::string_view data{reinterpret_cast<const char*>(bytes), size};

  auto task_result = parse_task_datagram(data, max_size);
  auto session_result = parse_session_datagram(data, max_size);
  if (task_result.ok)
    check_event(task_result, false, data);
  if (session_result.ok)
    check_event(session_result, true, data);

  // Both parsers run the same byte checks first.
  if (!task_result.ok && byte_level(task_result.reason))
    FUZZ_CHECK(!session_result.ok
               && session_result.reason == task_result.reason);
  if (!session_result.ok && byte_level(session_result.reason))
    FUZZ_CHECK(!task_result.ok && task_result.reason == session_result.reason);

  // Differential check against the MQTT layer's UTF-8 checker (which also
  // refuses NUL, so only inputs without one).
  if (data.find('\0') == std::string_view::npos) {
    bool not_utf8 = !task_result.ok
                    && task_result.reason == reject_reason::not_utf8;
    FUZZ_CHECK(not_utf8 == !mqtt::is_mqtt_utf8(data));
  }

  // The size limit is inclusive, and checked before anything else.
  auto exact = parse_task_datagram(data, size);
  FUZZ_CHECK(exact.ok || exact.reason != reject_reason::oversize);
  if (size > 0) {
    auto small = parse_session_datagram(data, size - 1);
    FUZZ_CHECK(!small.ok && small.reason == reject_reason::oversize);
  }

  // Parsing is deterministic.
  auto again = parse_task_datagram(data, max_size);
  FUZZ_CHECK(again.ok == task_result.ok);
  FUZZ_CHECK(again.ok ? same_event(again.event, task_result.event)
                      : again.reason == task_result.reason);

  check_pipeline(data, task_result, session_result);
  check_cuts(data);
  return 0;
}
