#pragma once

// Reads Butler's YAML config file into butler_config, validates every key and
// applies environment overrides. Errors and warnings name the full key path,
// e.g. `Butler.mqttConfig.brokerPort: expected an integer 1-65535, got "abc"`.

#include "config/butler_config.hpp"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace butler {

/// (name, value) pairs of environment variables.
using environment = std::vector<std::pair<std::string, std::string>>;

/// The outcome of reading one config file.
struct load_result {
  /// The config; meaningful only when errors is empty.
  butler_config config;
  /// One line per problem, each "<key path>: <problem>". Start-up stops when
  /// this is not empty.
  std::vector<std::string> errors;
  /// One line per unknown or ignored key, each "<key path>: <note>".
  std::vector<std::string> warnings;

  bool ok() const {
    return errors.empty();
  }
};

/// Returns the environment of this process.
environment process_environment();

/// Parses `yaml` (named `source` in messages), applies overrides from `env`
/// and validates. An environment variable named after a key path with "__"
/// between the parts (`Butler__mqttConfig__brokerPort=1884`) overrides that
/// key; its value is read as a YAML scalar.
load_result load_config_string(std::string_view yaml, const std::string& source,
                               const environment& env = {});

/// Reads and parses the file at `path`; see load_config_string.
load_result load_config_file(const std::string& path,
                             const environment& env = {});

/// Returns the names of all endpoint flags under
/// Butler.restServerEndpointsEnable, nested groups flattened to leaf names,
/// in a fixed order.
const std::vector<std::string>& known_endpoint_flags();

} // namespace butler
