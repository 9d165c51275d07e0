#include "config/logging.hpp"

#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
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

} // namespace

std::string setup_logging(const logging_config& cfg) {
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stdout_color_sink_mt>());
  std::string problem;
  if (cfg.file_logging) {
    try {
      std::filesystem::create_directories(cfg.directory);
      sinks.push_back(std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
        cfg.directory + "/butler.log", defaults::logging::file_size,
        defaults::logging::file_count));
    } catch (const std::exception& e) {
      problem = "cannot open log file in " + cfg.directory + ": " + e.what();
    }
  }
  auto logger = std::make_shared<spdlog::logger>("butler", sinks.begin(),
                                                 sinks.end());
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

} // namespace butler
