#pragma once

// spdlog set-up from Butler.logLevel, Butler.fileLogging, Butler.logDirectory,
// Butler.logFileMaxSizeMB, Butler.logFileMaxFiles and Butler.logFormat.

#include "config/butler_config.hpp"

#include <spdlog/common.h>

#include <chrono>
#include <string>
#include <string_view>

namespace butler {

/// Installs the default logger: console, plus a rotating file
/// <logDirectory>/butler.log when fileLogging is on (rotated at
/// logFileMaxSizeMB, keeping logFileMaxFiles files: butler.log,
/// butler.1.log, ...), both as text lines or JSON lines (logFormat). Returns
/// an empty string on success, otherwise why the file sink could not be
/// opened (the console sink is installed either way).
std::string setup_logging(const logging_config& cfg);

/// Returns one log entry as a JSON object on one line, ending in "\n":
/// {"time":"2024-05-01T10:11:12.123Z","level":"info","actor":"mqtt-link",
/// "message":"is up"}. `time` is UTC with milliseconds; `actor` is the first
/// word of `text`, which by convention names the actor that wrote the line,
/// and `message` the rest (a text without a space has an empty actor and is
/// all message). Invalid UTF-8 is replaced by U+FFFD.
std::string json_log_line(std::chrono::system_clock::time_point time,
                          std::string_view level, std::string_view text);

/// Applies Butler's level name (silly, debug, verbose, info, warn, error) to
/// the default logger; unknown names leave the level unchanged.
void set_log_level(const std::string& level);

/// Returns the spdlog level of Butler's level name (silly is trace, verbose
/// is debug); info for an unknown name.
spdlog::level::level_enum spdlog_level(const std::string& level);

} // namespace butler
