#pragma once

// Notifications to systemd for a Type=notify service (sd_notify from
// libsystemd): READY=1, WATCHDOG=1, STOPPING=1, RELOADING=1. Without
// $NOTIFY_SOCKET (not run by systemd) they do nothing.

#include <chrono>
#include <string>

namespace butler::systemd {

/// Sends one state line such as "READY=1"; returns false when it could not
/// be sent (logged) or systemd does not listen.
bool notify(const std::string& state);

/// Returns the watchdog period systemd expects pings within
/// ($WATCHDOG_USEC for this process), or 0 when no watchdog is set.
std::chrono::microseconds watchdog_period();

} // namespace butler::systemd
