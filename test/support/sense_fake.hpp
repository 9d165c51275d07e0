#pragma once

// Runs one of the fake Qlik Sense servers (test/fakes/fake_qrs.py,
// test/fakes/fake_engine.py) as a child process for C++ tests, and talks to
// its plain-HTTP control API. See /test/fakes for what the fakes do.

#include "test/support/test_certs.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace butler::test {

class sense_fake {
public:
  /// `script` is "fake_qrs.py" or "fake_engine.py"; nothing runs before
  /// start(). Makes a temp directory for the port file.
  explicit sense_fake(std::string script);

  /// Stops the fake (SIGTERM, then SIGKILL) and removes its directory.
  ~sense_fake();

  sense_fake(const sense_fake&) = delete;
  sense_fake& operator=(const sense_fake&) = delete;

  /// Starts the fake with the server certificate of `certs` (requiring client
  /// certificates signed by certs.ca_cert) and waits for its port file.
  /// Returns false with the reason in last_error() if it did not come up.
  bool start(const cert_files& certs,
             std::chrono::milliseconds timeout = std::chrono::seconds{15});

  void stop();

  /// The TLS service port and the control port.
  uint16_t port() const {
    return port_;
  }
  uint16_t control_port() const {
    return control_port_;
  }

  /// GET /calls on the control API.
  nlohmann::json calls();

  /// POST /script with `script` (see the fakes' control API).
  bool script(const nlohmann::json& script);

  /// POST /reset.
  bool reset();

  /// GET `path` on the control API, parsed as JSON (null on failure).
  nlohmann::json control_get(const std::string& path);

  const std::string& last_error() const {
    return error_;
  }

private:
  std::string script_;
  std::string dir_;
  int pid_ = -1;
  uint16_t port_ = 0;
  uint16_t control_port_ = 0;
  std::string error_;
};

} // namespace butler::test
