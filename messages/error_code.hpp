#pragma once

// Butler's error codes, without CAF, so that protocol code (net/) can map them
// to HTTP statuses. messages/error.hpp makes them CAF error codes.

#include <cstdint>
#include <string>

namespace butler {

enum class ec : uint8_t {
  /// Not an error.
  none = 0,
  /// A request parameter is missing, empty or malformed.
  invalid_argument,
  /// The requested resource does not exist.
  not_found,
  /// The receiver's bounded backlog is full; nothing was taken.
  backlog_full,
  /// A peer (actor, broker, service) is unavailable or disabled in config.
  unavailable,
  /// The request did not complete in time.
  timeout,
  /// A path leaves its approved root.
  path_escape,
  /// An actor failed with an exception.
  unhandled_exception,
  /// A service Butler calls (QRS, the Engine, Slack) failed or refused.
  bad_gateway,
  /// The request is not allowed (e.g. a task outside startTaskFilter).
  forbidden,
  /// The request names something that does not exist in Qlik Sense (an app).
  unprocessable,
  /// Anything else that went wrong inside Butler.
  internal,
};

/// Returns the code's name, e.g. "backlog_full".
std::string to_string(ec code);

} // namespace butler
