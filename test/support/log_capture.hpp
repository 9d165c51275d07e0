#pragma once

// Captures what the code under test logs through spdlog's default logger,
// for tests that check a log line was (or was not) written.

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace butler::test {

/// Installs itself as the default logger (all levels) for its lifetime.
class log_capture {
public:
  log_capture() : sink_(std::make_shared<sink>()) {
    previous_ = spdlog::default_logger();
    auto logger = std::make_shared<spdlog::logger>("test", sink_);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }

  ~log_capture() {
    spdlog::set_default_logger(previous_);
  }

  log_capture(const log_capture&) = delete;
  log_capture& operator=(const log_capture&) = delete;

  /// Returns the lines logged so far (message text only).
  std::vector<std::string> lines() const {
    return sink_->lines();
  }

  /// Returns how many lines contain `text`.
  std::size_t count(const std::string& text) const {
    return matching(text).size();
  }

  /// Returns the lines that contain `text`.
  std::vector<std::string> matching(const std::string& text) const {
    std::vector<std::string> result;
    for (auto& line : lines())
      if (line.find(text) != std::string::npos)
        result.push_back(line);
    return result;
  }

private:
  class sink : public spdlog::sinks::base_sink<std::mutex> {
  public:
    std::vector<std::string> lines() {
      std::lock_guard<std::mutex> guard{mutex_};
      return lines_;
    }

  protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
      lines_.emplace_back(msg.payload.data(), msg.payload.size());
    }

    void flush_() override {
      // nop
    }

  private:
    std::vector<std::string> lines_;
  };

  std::shared_ptr<sink> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

} // namespace butler::test
