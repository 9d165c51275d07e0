#include "config/logging.hpp"

#include <nlohmann/json.hpp>

#include <spdlog/formatter.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <time.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

namespace butler {

namespace {

bool to_spdlog_level(const std::string& name, spdlog::level::level_enum& out) {
  if (name == "silly")
    out = spdlog::level::trace;
  else if (name == "debug" || name == "verbose")
    out = spdlog::level::debug;
  else if (name == "info")
    out = spdlog::level::info;
  else if (name == "warn")
    out = spdlog::level::warn;
  else if (name == "error")
    out = spdlog::level::err;
  else
    return false;
  return true;
}

/// Returns `text` as a JSON string, quotes included.
std::string json_string(std::string_view text) {
  // The JSON library does the escaping (quotes, backslashes, control
  // characters) and replaces invalid UTF-8 instead of throwing.
  return nlohmann::json(std::string{text})
    .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

/// Returns `time` as ISO 8601 UTC with milliseconds.
std::string iso_utc(std::chrono::system_clock::time_point time) {
  using namespace std::chrono;
  auto ms = duration_cast<milliseconds>(time.time_since_epoch()).count();
  auto secs = ms / 1000;
  auto frac = ms % 1000;
  if (frac < 0) {
    frac += 1000;
    --secs;
  }
  auto t = static_cast<time_t>(secs);
  tm parts{};
  ::gmtime_r(&t, &parts);
  char buf[96]; // room for any year tm can hold
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                parts.tm_hour, parts.tm_min, parts.tm_sec,
                static_cast<int>(frac));
  return buf;
}

/// Writes every entry as a JSON line (logFormat: json). A formatter of its
/// own rather than a pattern with custom flags: the whole line is built here,
/// so it is valid JSON whatever the message holds.
class json_formatter final : public spdlog::formatter {
public:
  void format(const spdlog::details::log_msg& msg,
              spdlog::memory_buf_t& dest) override {
    auto level = spdlog::level::to_string_view(msg.level);
    auto line = json_log_line(msg.time, {level.data(), level.size()},
                              {msg.payload.data(), msg.payload.size()});
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_formatter>();
  }
};

} // namespace

std::string json_log_line(std::chrono::system_clock::time_point time,
                          std::string_view level, std::string_view text) {
  std::string_view actor;
  std::string_view message = text;
  if (auto space = text.find(' ');
      space != std::string_view::npos && space > 0) {
    actor = text.substr(0, space);
    message = text.substr(space + 1);
  }
  std::string line = "{\"time\":\"" + iso_utc(time) + "\",\"level\":";
  line += json_string(level);
  line += ",\"actor\":";
  line += json_string(actor);
  line += ",\"message\":";
  line += json_string(message);
  line += "}\n";
  return line;
}

std::string setup_logging(const logging_config& cfg) {
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stdout_color_sink_mt>());
  std::string problem;
  if (cfg.file_logging) {
    try {
      std::filesystem::create_directories(cfg.directory);
      // spdlog counts the rotated files next to the one being written;
      // logFileMaxFiles counts them all.
      sinks.push_back(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
        cfg.directory + "/butler.log", cfg.file_max_size_mb * 1024 * 1024,
        cfg.file_max_files > 0 ? cfg.file_max_files - 1 : 0));
    } catch (const std::exception& e) {
      problem = "cannot open log file in " + cfg.directory + ": " + e.what();
    }
  }
  auto logger = std::make_shared<spdlog::logger>("butler", sinks.begin(),
                                                 sinks.end());
  if (cfg.format == "json")
    logger->set_formatter(std::make_unique<json_formatter>());
  else
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %v");
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  set_log_level(cfg.level);
  spdlog::flush_every(std::chrono::seconds{1});
  return problem;
}

void set_log_level(const std::string& level) {
  spdlog::level::level_enum lvl;
  if (to_spdlog_level(level, lvl))
    spdlog::set_level(lvl);
}

spdlog::level::level_enum spdlog_level(const std::string& level) {
  auto lvl = spdlog::level::info;
  to_spdlog_level(level, lvl);
  return lvl;
}

} // namespace butler
