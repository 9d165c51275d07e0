#include "config/logging.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

using namespace butler;
using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

/// 2024-05-01T10:11:12.123Z
const auto may_first = std::chrono::system_clock::time_point{1714558272123ms};

/// A fresh directory under the system temp dir, removed at scope exit.
class temp_dir {
public:
  temp_dir() {
    auto pattern = (fs::temp_directory_path() / "butler-logging-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      ADD_FAILURE() << "mkdtemp failed";
    path_ = pattern;
  }

  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const fs::path& path() const {
    return path_;
  }

private:
  fs::path path_;
};

std::vector<std::string> lines_of(const fs::path& file) {
  std::ifstream in{file};
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

/// Drops the console sink that setup_logging() installed first, so that a
/// test writing megabytes of lines does not print them.
void quiet_console() {
  auto& sinks = spdlog::default_logger()->sinks();
  ASSERT_EQ(sinks.size(), 2u) << "console and file";
  sinks.erase(sinks.begin());
}

/// Puts back a plain console logger, so that one test's files are closed
/// before the next starts.
struct logging_test : ::testing::Test {
  ~logging_test() override {
    spdlog::default_logger()->flush();
    logging_config plain;
    setup_logging(plain);
  }
};

} // namespace

// -- one JSON line --------------------------------------------------------------

TEST(json_log_line, has_time_level_actor_and_message_in_that_order) {
  EXPECT_EQ(json_log_line(may_first, "info", "mqtt-link is up"),
            R"({"time":"2024-05-01T10:11:12.123Z","level":"info",)"
            R"("actor":"mqtt-link","message":"is up"})"
            "\n");
}

TEST(json_log_line, time_is_utc_with_milliseconds) {
  auto on_the_second = std::chrono::system_clock::time_point{1714558272000ms};
  auto line = json_log_line(on_the_second, "warning", "a b");
  EXPECT_EQ(json::parse(line)["time"], "2024-05-01T10:11:12.000Z");
  auto epoch = std::chrono::system_clock::time_point{};
  EXPECT_EQ(json::parse(json_log_line(epoch, "info", "a b"))["time"],
            "1970-01-01T00:00:00.000Z");
}

TEST(json_log_line, escapes_whatever_the_message_holds) {
  const std::string tricky = "quote \" backslash \\ newline \n tab \t bell \x07 "
                             "nul-free ctrl \x1f unicode \xc3\xbc \xe2\x82\xac {\"a\":1}";
  auto line = json_log_line(may_first, "error", "udp-ingest " + tricky);
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line per entry";
  auto parsed = json::parse(line);
  EXPECT_EQ(parsed["level"], "error");
  EXPECT_EQ(parsed["actor"], "udp-ingest");
  EXPECT_EQ(parsed["message"], tricky);
  EXPECT_EQ(parsed.size(), 4u);
}

TEST(json_log_line, replaces_invalid_utf8_and_stays_valid_json) {
  auto line = json_log_line(may_first, "info", "udp-ingest bad \xff\xfe bytes");
  auto parsed = json::parse(line);
  EXPECT_EQ(parsed["message"], "bad \xef\xbf\xbd\xef\xbf\xbd bytes");
  auto in_actor = json::parse(json_log_line(may_first, "info", "\xc3( x"));
  EXPECT_EQ(in_actor["actor"], "\xef\xbf\xbd(");
}

TEST(json_log_line, a_line_without_an_actor_word_is_all_message) {
  auto one_word = json::parse(json_log_line(may_first, "info", "starting"));
  EXPECT_EQ(one_word["actor"], "");
  EXPECT_EQ(one_word["message"], "starting");
  auto leading = json::parse(json_log_line(may_first, "info", " indented"));
  EXPECT_EQ(leading["actor"], "");
  EXPECT_EQ(leading["message"], " indented");
  auto empty = json::parse(json_log_line(may_first, "info", ""));
  EXPECT_EQ(empty["actor"], "");
  EXPECT_EQ(empty["message"], "");
  auto trailing = json::parse(json_log_line(may_first, "info", "supervisor "));
  EXPECT_EQ(trailing["actor"], "supervisor");
  EXPECT_EQ(trailing["message"], "");
}

// -- the installed logger ---------------------------------------------------------

TEST_F(logging_test, json_format_writes_json_lines_to_the_file) {
  temp_dir dir;
  logging_config cfg;
  cfg.file_logging = true;
  cfg.directory = (dir.path() / "logs").string();
  cfg.format = "json";
  cfg.level = "debug";
  ASSERT_EQ(setup_logging(cfg), "");
  spdlog::info("mqtt-link is up");
  spdlog::debug("http-ingress answers {} with \"{}\"", "r1", 201);
  spdlog::default_logger()->flush();
  auto lines = lines_of(dir.path() / "logs" / "butler.log");
  ASSERT_EQ(lines.size(), 2u);
  auto first = json::parse(lines[0]);
  EXPECT_EQ(first["level"], "info");
  EXPECT_EQ(first["actor"], "mqtt-link");
  EXPECT_EQ(first["message"], "is up");
  EXPECT_TRUE(std::regex_match(first["time"].get<std::string>(),
                               std::regex{R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"}));
  auto second = json::parse(lines[1]);
  EXPECT_EQ(second["level"], "debug");
  EXPECT_EQ(second["actor"], "http-ingress");
  EXPECT_EQ(second["message"], "answers r1 with \"201\"");
}

TEST_F(logging_test, text_format_keeps_the_readable_line) {
  temp_dir dir;
  logging_config cfg;
  cfg.file_logging = true;
  cfg.directory = dir.path().string();
  ASSERT_EQ(setup_logging(cfg), "");
  spdlog::info("mqtt-link is up");
  spdlog::default_logger()->flush();
  auto lines = lines_of(dir.path() / "butler.log");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(std::regex_match(
    lines[0], std::regex{R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} info  mqtt-link is up)"}))
    << lines[0];
}

TEST_F(logging_test, files_rotate_at_the_size_and_keep_at_most_max_files) {
  temp_dir dir;
  logging_config cfg;
  cfg.file_logging = true;
  cfg.directory = dir.path().string();
  cfg.file_max_size_mb = 1;
  cfg.file_max_files = 3;
  ASSERT_EQ(setup_logging(cfg), "");
  quiet_console();
  // About 5 MiB in 200-byte lines.
  const std::string filler(170, 'x');
  for (int i = 0; i < 26'000; ++i)
    spdlog::info("test line {} {}", i, filler);
  spdlog::info("test last line");
  spdlog::default_logger()->flush();
  std::vector<std::string> names;
  for (auto& entry : fs::directory_iterator{dir.path()}) {
    names.push_back(entry.path().filename().string());
    EXPECT_LE(fs::file_size(entry.path()), 1024u * 1024u) << names.back();
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"butler.1.log", "butler.2.log",
                                             "butler.log"}));
  auto current = lines_of(dir.path() / "butler.log");
  ASSERT_FALSE(current.empty());
  EXPECT_NE(current.back().find("test last line"), std::string::npos);
}

TEST_F(logging_test, one_file_only_is_kept_when_max_files_is_one) {
  temp_dir dir;
  logging_config cfg;
  cfg.file_logging = true;
  cfg.directory = dir.path().string();
  cfg.file_max_size_mb = 1;
  cfg.file_max_files = 1;
  cfg.format = "json";
  ASSERT_EQ(setup_logging(cfg), "");
  quiet_console();
  const std::string filler(170, 'y');
  for (int i = 0; i < 12'000; ++i)
    spdlog::info("test line {} {}", i, filler);
  spdlog::default_logger()->flush();
  std::vector<std::string> names;
  for (auto& entry : fs::directory_iterator{dir.path()})
    names.push_back(entry.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"butler.log"});
  EXPECT_LE(fs::file_size(dir.path() / "butler.log"), 1024u * 1024u);
  for (auto& line : lines_of(dir.path() / "butler.log"))
    EXPECT_EQ(json::parse(line)["actor"], "test");
}

TEST_F(logging_test, an_unusable_directory_is_reported_and_the_console_stays) {
  temp_dir dir;
  std::ofstream{dir.path() / "file"} << "not a directory\n";
  logging_config cfg;
  cfg.file_logging = true;
  cfg.directory = (dir.path() / "file" / "log").string();
  cfg.format = "json";
  auto problem = setup_logging(cfg);
  EXPECT_NE(problem.find("cannot open log file in"), std::string::npos)
    << problem;
  EXPECT_EQ(spdlog::default_logger()->sinks().size(), 1u);
}

TEST(log_levels, butler_names_map_to_spdlog_levels) {
  EXPECT_EQ(spdlog_level("silly"), spdlog::level::trace);
  EXPECT_EQ(spdlog_level("debug"), spdlog::level::debug);
  EXPECT_EQ(spdlog_level("verbose"), spdlog::level::debug);
  EXPECT_EQ(spdlog_level("info"), spdlog::level::info);
  EXPECT_EQ(spdlog_level("warn"), spdlog::level::warn);
  EXPECT_EQ(spdlog_level("error"), spdlog::level::err);
  EXPECT_EQ(spdlog_level("loud"), spdlog::level::info);
}
