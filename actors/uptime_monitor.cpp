#include "actors/uptime_monitor.hpp"

#include "actors/actor_common.hpp"
#include "config/logging.hpp"
#include "net/metrics.hpp"

#include <caf/event_based_actor.hpp>

#include <charconv>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace butler {

namespace {

using self_ptr = uptime_monitor_actor::stateful_pointer<uptime_monitor_state>;

/// How long the supervisor may take to gather every actor's metrics (it
/// gives each actor a second).
constexpr auto gather_timeout = std::chrono::seconds{5};

/// Returns the value in kB of the /proc/self/status field `key` ("VmRSS:"),
/// in bytes.
std::optional<std::uint64_t> status_field(std::string_view text,
                                          std::string_view key) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto end = text.find('\n', pos);
    if (end == std::string_view::npos)
      end = text.size();
    auto line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.substr(0, key.size()) != key)
      continue;
    auto digits = line.find_first_of("0123456789", key.size());
    if (digits == std::string_view::npos)
      return std::nullopt;
    std::uint64_t kb = 0;
    auto [ptr, ec] = std::from_chars(line.data() + digits,
                                     line.data() + line.size(), kb);
    if (ec != std::errc{})
      return std::nullopt;
    return kb * 1024;
  }
  return std::nullopt;
}

/// Reads /proc/self/status. A procfs file is produced by the kernel on the
/// read and never waits on a device, so this is safe on an actor thread.
std::optional<process_memory> read_memory() {
  std::ifstream in{"/proc/self/status"};
  std::ostringstream text;
  text << in.rdbuf();
  return parse_proc_status(text.str());
}

/// Returns the process's uptime, as /metrics reports it.
std::chrono::seconds process_uptime() {
  for (auto& s : metrics::process_samples().samples)
    if (s.name == "butler_process_uptime_seconds")
      return std::chrono::seconds{static_cast<long long>(s.value)};
  return std::chrono::seconds{0};
}

/// Returns the sum of the samples called `name`, or nothing if none is.
std::optional<std::uint64_t> total(const metric_set& m,
                                   const std::string& name) {
  std::optional<std::uint64_t> sum;
  for (auto& s : m.samples)
    if (s.name == name)
      sum = sum.value_or(0) + static_cast<std::uint64_t>(s.value);
  return sum;
}

void write_line(self_ptr self, const uptime_figures& figures) {
  auto& st = self->state;
  ++st.lines;
  spdlog::log(spdlog_level(st.cfg.log_level), "{} {}", self->name(),
              uptime_text(figures));
}

/// Gathers the figures and logs the line, unless the logger would drop it.
void report(self_ptr self) {
  auto& st = self->state;
  if (!spdlog::default_logger()->should_log(spdlog_level(st.cfg.log_level)))
    return;
  if (st.gathering)
    return; // the line before is still waiting for the supervisor
  uptime_figures figures;
  figures.uptime = process_uptime();
  figures.memory = read_memory();
  if (!st.supervisor) {
    figures.counts_problem = "the supervisor is not known yet";
    write_line(self, figures);
    return;
  }
  st.gathering = true;
  self->request(st.supervisor, gather_timeout, atom::metrics_v)
    .then(
      [=](metric_set& m) mutable {
        self->state.gathering = false;
        figures.udp_accepted = total(m, "butler_udp_datagrams_accepted_total");
        figures.mqtt_published = total(m, "butler_mqtt_publishes_total");
        write_line(self, figures);
      },
      [=](caf::error& err) mutable {
        self->state.gathering = false;
        figures.counts_problem = "the supervisor did not answer: "
                                 + error_text(err);
        write_line(self, figures);
      });
}

std::string mib(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f MiB",
                static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

std::string count_text(const std::optional<std::uint64_t>& count) {
  return count ? std::to_string(*count) : std::string{"n/a"};
}

} // namespace

std::optional<process_memory> parse_proc_status(std::string_view text) {
  auto rss = status_field(text, "VmRSS:");
  auto heap = status_field(text, "RssAnon:");
  if (!rss || !heap)
    return std::nullopt;
  return process_memory{*rss, *heap};
}

std::string format_uptime(std::chrono::seconds uptime) {
  auto total = uptime.count() < 0 ? 0 : uptime.count();
  auto days = total / 86400;
  auto rest = total % 86400;
  char clock[16];
  std::snprintf(clock, sizeof(clock), "%02d:%02d:%02d",
                static_cast<int>(rest / 3600), static_cast<int>(rest / 60 % 60),
                static_cast<int>(rest % 60));
  return std::to_string(days) + (days == 1 ? " day " : " days ") + clock;
}

std::string uptime_text(const uptime_figures& f) {
  std::string out = "reports Butler up " + format_uptime(f.uptime);
  if (f.memory)
    out += ", rss " + mib(f.memory->rss) + ", heap " + mib(f.memory->heap);
  else
    out += ", memory n/a";
  if (!f.counts_problem.empty())
    return out + ", event counts n/a (" + f.counts_problem + ")";
  return out + ", UDP events accepted " + count_text(f.udp_accepted)
         + ", MQTT messages published " + count_text(f.mqtt_published);
}

uptime_monitor_actor::behavior_type
uptime_monitor(uptime_monitor_actor::stateful_pointer<uptime_monitor_state> self,
               uptime_monitor_config cfg) {
  install_common_handlers(self);
  self->state.cfg = std::move(cfg);
  spdlog::info("{} logs uptime, memory and event counts every {} s at level "
               "{}",
               self->name(), self->state.cfg.frequency.count(),
               self->state.cfg.log_level);
  self->delayed_send(self, self->state.cfg.frequency, atom::tick_v);
  return {
    [=](atom::tick) {
      self->delayed_send(self, self->state.cfg.frequency, atom::tick_v);
      report(self);
    },
    [=](atom::status) {
      return counters_status{{{"lines", self->state.lines}}};
    },
    [=](atom::drain, caf::timespan) { return true; },
    [=](peer_up& peer) {
      if (peer.name == "supervisor")
        self->state.supervisor
          = caf::actor_cast<supervisor_actor>(peer.handle);
    },
  };
}

} // namespace butler
