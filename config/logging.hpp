#pragma once

// spdlog set-up from Butler.logLevel, Butler.fileLogging, Butler.logDirectory.

#include "config/butler_config.hpp"

#include <string>

namespace butler {

/// Installs the default logger: console, plus a rotating file
/// <logDirectory>/butler.log when fileLogging is on. Returns an empty string
/// on success, otherwise why the file sink could not be opened (the console
/// sink is installed either way).
std::string setup_logging(const logging_config& cfg);

/// Applies Butler's level name (silly, debug, verbose, info, warn, error) to
/// the default logger; unknown names leave the level unchanged.
void set_log_level(const std::string& level);

} // namespace butler
