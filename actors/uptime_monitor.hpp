#pragma once

// uptime_monitor writes one log line on Butler.uptimeMonitor's schedule:
// how long Butler has been up, its resident memory and heap (from
// /proc/self/status) and what it has handled (UDP events accepted, MQTT
// messages published: it asks the supervisor for every actor's metrics).
// The line goes out at uptimeMonitor.logLevel; while the logger would drop
// it, nothing is gathered.

#include "config/butler_config.hpp"
#include "messages/actors.hpp"

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace butler {

/// The process's memory as /proc/self/status gives it, in bytes.
struct process_memory {
  /// VmRSS: resident memory.
  std::uint64_t rss = 0;
  /// RssAnon: resident anonymous memory, which is the heap (malloc'd
  /// memory) and the threads' stacks.
  std::uint64_t heap = 0;
};

/// What one uptime line reports; a count is empty when no running actor
/// reports it.
struct uptime_figures {
  std::chrono::seconds uptime{0};
  std::optional<process_memory> memory;
  std::optional<std::uint64_t> udp_accepted;
  std::optional<std::uint64_t> mqtt_published;
  /// Why the counts are missing ("" when they were asked for and came).
  std::string counts_problem;
};

/// Returns VmRSS and RssAnon from the text of /proc/self/status, or nothing
/// when either is missing.
std::optional<process_memory> parse_proc_status(std::string_view text);

/// Returns `uptime` as "2 days 03:04:05".
std::string format_uptime(std::chrono::seconds uptime);

/// Returns the uptime line's text after the actor name.
std::string uptime_text(const uptime_figures& figures);

struct uptime_monitor_state {
  static constexpr const char* name = "uptime-monitor";

  uptime_monitor_config cfg;
  /// Asked for every actor's metrics.
  supervisor_actor supervisor;
  /// A line waits for the supervisor's answer.
  bool gathering = false;
  std::uint64_t lines = 0;
};

/// Logs the uptime line on a schedule.
/// @param cfg Butler.uptimeMonitor (enabled).
uptime_monitor_actor::behavior_type
uptime_monitor(uptime_monitor_actor::stateful_pointer<uptime_monitor_state> self,
               uptime_monitor_config cfg);

} // namespace butler
