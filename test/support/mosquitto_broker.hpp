#pragma once

// A real mosquitto broker for tests: its own config file in a temp directory,
// listening on 127.0.0.1 on a free port, started and stopped by the test.

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace butler::test {

/// What a test broker offers beyond a plain anonymous TCP listener.
struct broker_options {
  /// With cert_file and key_file set the listener speaks TLS 1.2+ (only).
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  /// Makes TLS clients present a certificate signed by ca_file.
  bool require_certificate = false;
  /// User names and passwords for a password file made with
  /// `mosquitto_passwd -b`; when set, anonymous clients are refused.
  std::vector<std::pair<std::string, std::string>> users;
};

class mosquitto_broker {
public:
  /// Picks a free port; nothing runs before start().
  mosquitto_broker();

  /// Same, with TLS and/or a password file.
  explicit mosquitto_broker(broker_options opts);

  /// Stops the broker and removes its directory.
  ~mosquitto_broker();

  mosquitto_broker(const mosquitto_broker&) = delete;
  mosquitto_broker& operator=(const mosquitto_broker&) = delete;

  /// Starts mosquitto and waits until it accepts TCP connections on port().
  /// Returns false (with the reason in last_error()) if it did not within
  /// `timeout`. Calling start() again after stop() reuses the same port.
  bool start(std::chrono::milliseconds timeout = std::chrono::seconds{10});

  /// Stops the broker (SIGTERM, then SIGKILL after 2 s) and waits for it.
  void stop();

  bool running() const;
  uint16_t port() const;
  const std::string& last_error() const;

  /// Returns the broker's directory (config, log, password file).
  const std::string& dir() const;

private:
  /// Writes mosquitto.conf (and the password file); false on failure.
  bool write_config();

  /// Returns the last lines of the broker's log and output.
  std::string log_tail() const;

  broker_options opts_;
  uint16_t port_;
  int pid_ = -1;
  std::string dir_;
  std::string error_;
};

} // namespace butler::test
