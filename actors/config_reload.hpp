#pragma once

// Config reload on SIGHUP: re-reads the file Butler was started with and
// takes what can change while Butler runs (logLevel, applied here; the Slack
// notification settings, the UDP allow-list and rate limit, startTaskFilter,
// which the caller hands to the supervisor); every other changed setting is
// logged as needing a restart. An invalid file changes nothing. systemd
// hears RELOADING=1 before and READY=1 after.

#include "config/butler_config.hpp"
#include "config/config_diff.hpp"
#include "config/config_loader.hpp"

#include <functional>
#include <string>
#include <vector>

namespace butler {

/// What one reload found.
struct reload_result {
  /// The file was valid (its live settings are applied).
  bool valid = false;
  /// The file's problems, each "<key path>: <problem>"; empty when valid.
  std::vector<std::string> errors;
  /// Every setting of the file that differs from the running config, the
  /// applied ones (live) and those waiting for a restart; empty when invalid.
  std::vector<config_change> changes;
};

/// Where service state lines go ("RELOADING=1", "READY=1").
using state_notifier = std::function<void(const std::string&)>;

/// Re-reads and validates the config file at `path` with the environment
/// overrides `env` (as at start) and logs the outcome.
///
/// An invalid file changes nothing: each problem is logged naming its key,
/// then "butler keeps its running config: N problem(s) in FILE". A valid
/// file's live settings are applied (the log level on spdlog's loggers) and
/// copied into `running`; every other change is logged as needing a restart
/// and left out of `running`, which therefore keeps describing what Butler
/// runs with. `notify` gets RELOADING=1 first and READY=1 last, whatever
/// the outcome. Never throws.
reload_result reload_config(const std::string& path, const environment& env,
                            butler_config& running,
                            const state_notifier& notify);

/// The same, telling systemd (sd_notify; nothing when not run by systemd).
reload_result reload_config(const std::string& path, const environment& env,
                            butler_config& running);

} // namespace butler
