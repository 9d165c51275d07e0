#include "actors/config_reload.hpp"

#include "config/logging.hpp"
#include "net/systemd_notify.hpp"

#include <spdlog/spdlog.h>

#include <time.h>

#include <cstdint>
#include <exception>
#include <string>
#include <utility>

namespace butler {

namespace {

constexpr const char* root_prefix = "Butler.";

/// RELOADING=1 with the time it began, which systemd asks for with it.
std::string reloading_line() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  auto usec = static_cast<std::uint64_t>(now.tv_sec) * 1000000u
              + static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
  return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
}

/// Returns the key path without "Butler.", as in "applied logLevel".
std::string short_key(const std::string& key) {
  if (key.rfind(root_prefix, 0) == 0)
    return key.substr(std::char_traits<char>::length(root_prefix));
  return key;
}

std::string values(const config_change& c) {
  return "(" + c.before + " -> " + c.after + ")";
}

/// Returns whether Butler's log level `a` writes less than `b` (silly,
/// debug and verbose, info, warn, error: each writes less than the one
/// before).
bool quieter(const std::string& a, const std::string& b) {
  auto rank = [](const std::string& level) {
    if (level == "silly")
      return 0;
    if (level == "debug" || level == "verbose")
      return 1;
    if (level == "warn")
      return 3;
    if (level == "error")
      return 4;
    return 2; // info
  };
  return rank(a) > rank(b);
}

/// Copies one live setting from `loaded` into `running`; returns whether
/// the running Butler now uses it.
bool take_live(const config_change& c, const butler_config& loaded,
               butler_config& running) {
  auto under = [&](const char* prefix) { return c.key.rfind(prefix, 0) == 0; };
  if (c.key == "Butler.logLevel") {
    running.logging.level = loaded.logging.level;
    return true;
  }
  if (under("Butler.slackNotification.") || under("Butler.slackConfig.")) {
    // Every Slack setting but backlogSize, which is not live.
    auto backlog = running.slack.backlog_size;
    running.slack = loaded.slack;
    running.slack.backlog_size = backlog;
    return true;
  }
  if (c.key == "Butler.udpServerConfig.enableSourceValidation"
      || c.key == "Butler.udpServerConfig.allowedSources"
      || under("Butler.udpServerConfig.rateLimit.")) {
    running.udp.source_validation = loaded.udp.source_validation;
    running.udp.allowed_sources = loaded.udp.allowed_sources;
    running.udp.rate_limit_enable = loaded.udp.rate_limit_enable;
    running.udp.rate_limit_per_minute = loaded.udp.rate_limit_per_minute;
    return true;
  }
  if (under("Butler.startTaskFilter.")) {
    running.start_task_filter = loaded.start_task_filter;
    return true;
  }
  return false;
}

/// Logs what a valid file changed: the applied settings on one line, then
/// one line per setting that needs a restart.
void log_changes(const std::string& path,
                 const std::vector<config_change>& changes) {
  if (changes.empty()) {
    spdlog::info("butler reloaded {}: nothing changed", path);
    return;
  }
  std::string applied;
  std::size_t waiting = 0;
  for (auto& c : changes) {
    if (c.kind == change_kind::live)
      applied += (applied.empty() ? "" : ", ") + short_key(c.key) + " "
                 + values(c);
    else
      ++waiting;
  }
  if (!applied.empty())
    spdlog::info("butler reloaded {}: applied {}", path, applied);
  else
    spdlog::info("butler reloaded {}: nothing to apply now; {} changed "
                 "setting(s) need a restart",
                 path, waiting);
  for (auto& c : changes) {
    if (c.kind != change_kind::restart)
      continue;
    if (c.secret)
      spdlog::warn("butler: {} changed; restart Butler to apply it", c.key);
    else
      spdlog::warn("butler: {} changed {}; restart Butler to apply it", c.key,
                   values(c));
  }
}

void reload(const std::string& path, const environment& env,
            butler_config& running, reload_result& result) {
  auto loaded = load_config_file(path, env);
  for (auto& w : loaded.warnings)
    spdlog::warn("config {}", w);
  if (!loaded.ok()) {
    for (auto& e : loaded.errors)
      spdlog::error("config {}", e);
    spdlog::error("butler keeps its running config: {} problem(s) in {}",
                  loaded.errors.size(), path);
    result.errors = std::move(loaded.errors);
    return;
  }
  result.valid = true;
  auto old_level = running.logging.level;
  result.changes = diff(running, loaded.config);
  for (auto& c : result.changes)
    if (c.kind == change_kind::live && !take_live(c, loaded.config, running))
      c.kind = change_kind::restart; // a live key this function lacks
  // The report goes out under the more verbose of the old and the new log
  // level, so that it shows whichever way the level moved.
  if (quieter(running.logging.level, old_level)) {
    log_changes(path, result.changes);
    set_log_level(running.logging.level);
  } else {
    set_log_level(running.logging.level);
    log_changes(path, result.changes);
  }
}

} // namespace

reload_result reload_config(const std::string& path, const environment& env,
                            butler_config& running,
                            const state_notifier& notify) {
  if (notify)
    notify(reloading_line());
  reload_result result;
  try {
    reload(path, env, running, result);
  } catch (const std::exception& e) {
    // Not expected: loading and comparing report problems, they do not throw.
    spdlog::error("butler cannot reload {}: {}; it keeps its running config",
                  path, e.what());
  }
  if (notify)
    notify("READY=1");
  return result;
}

reload_result reload_config(const std::string& path, const environment& env,
                            butler_config& running) {
  return reload_config(path, env, running, [](const std::string& state) {
    systemd::notify(state);
  });
}

} // namespace butler
