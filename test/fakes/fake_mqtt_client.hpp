#pragma once

// An in-process mqtt::client for actor tests: records what is published, and
// lets the test play the broker (deliver inbound messages, change the
// connection, fill the backlog).

#include "net/mqtt_client.hpp"

#include <chrono>
#include <mutex>
#include <vector>

namespace butler::test {

class fake_mqtt_client : public mqtt::client {
public:
  void start() override {
    started = true;
  }

  void bind(mqtt::callbacks cbs) override {
    std::lock_guard<std::mutex> guard{mtx_};
    ++binds;
    cbs_ = std::move(cbs);
  }

  mqtt::publish_result publish(mqtt::message msg) override {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopped)
      return mqtt::publish_result::stopped;
    if (held >= limit) {
      ++rejected;
      return mqtt::publish_result::backlog_full;
    }
    published.push_back(std::move(msg));
    return mqtt::publish_result::accepted;
  }

  bool flush(std::chrono::milliseconds) override {
    return held == 0;
  }

  void stop() override {
    stopped = true;
  }

  mqtt::client_stats stats() const override {
    std::lock_guard<std::mutex> guard{mtx_};
    mqtt::client_stats s;
    s.connected = connected;
    s.published = published.size();
    s.rejected_full = rejected;
    s.backlog = held;
    return s;
  }

  // -- playing the broker ---------------------------------------------------

  /// Delivers an inbound message through the bound callback, as Paho would.
  /// Returns false if no callback is bound.
  bool deliver(std::string topic, std::string payload) {
    std::function<void(std::string, std::string)> f;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      f = cbs_.on_message;
    }
    if (!f)
      return false;
    f(std::move(topic), std::move(payload));
    return true;
  }

  /// Reports a connection change through the bound callback.
  bool report(bool up, std::string detail) {
    std::function<void(bool, std::string)> f;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      connected = up;
      f = cbs_.on_connection;
    }
    if (!f)
      return false;
    f(up, std::move(detail));
    return true;
  }

  bool bound() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return static_cast<bool>(cbs_.on_message);
  }

  bool started = false;
  bool stopped = false;
  bool connected = false;
  int binds = 0;
  /// Messages held, as the backlog counter reports it.
  std::size_t held = 0;
  /// publish() answers backlog_full once held reaches this.
  std::size_t limit = 1000;
  std::size_t rejected = 0;
  std::vector<mqtt::message> published;

private:
  mutable std::mutex mtx_;
  mqtt::callbacks cbs_;
};

} // namespace butler::test
