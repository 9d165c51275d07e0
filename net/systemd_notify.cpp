#include "net/systemd_notify.hpp"

#include <spdlog/spdlog.h>

#include <systemd/sd-daemon.h>

#include <cstdint>
#include <cstring>

namespace butler::systemd {

bool notify(const std::string& state) {
  auto rc = sd_notify(0, state.c_str());
  if (rc < 0) {
    spdlog::warn("systemd notification {} failed: {}", state,
                 std::strerror(-rc));
    return false;
  }
  return rc > 0;
}

std::chrono::microseconds watchdog_period() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) > 0)
    return std::chrono::microseconds{usec};
  return std::chrono::microseconds{0};
}

} // namespace butler::systemd
