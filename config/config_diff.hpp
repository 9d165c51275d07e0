#pragma once

// Compares two configs setting by setting, for a config reload (SIGHUP):
// which keys changed, and whether the running Butler can apply each change
// or only a restart does.

#include "config/butler_config.hpp"

#include <string>
#include <vector>

namespace butler {

/// How a changed setting takes effect.
enum class change_kind {
  /// Applied to the running Butler on reload: logLevel, the Slack
  /// notification settings (all but backlogSize), the UDP allow-list and
  /// rate limit, startTaskFilter.
  live,
  /// Takes effect only when Butler is restarted (everything else).
  restart,
};

/// Returns "live" or "restart".
const char* to_string(change_kind kind);

/// One setting whose value differs between two configs.
struct config_change {
  /// Butler's key path, e.g. "Butler.restServerConfig.serverPort".
  std::string key;
  change_kind kind = change_kind::restart;
  /// The running and the loaded value as text, in the key's unit ("8080",
  /// "true", "30" for a ...Seconds key, "[a, b]" for a list, "" quoted when
  /// empty). Both are empty for a secret.
  std::string before;
  std::string after;
  /// A password, webhook URL or HTTP header: its values are not given, so
  /// that they never reach the log.
  bool secret = false;
};

/// Returns every setting of `loaded` that differs from `running`, in the
/// order of butler_config's fields. source_file (the file's name, not a
/// setting) is not compared. Endpoint flags are compared by name.
std::vector<config_change> diff(const butler_config& running,
                                const butler_config& loaded);

} // namespace butler
