#pragma once

// A blocking one-shot HTTP/1.1 client for tests: one request per connection
// (Connection: close), plain TCP on 127.0.0.1.

#include <chrono>
#include <cstdint>
#include <string>

namespace butler::test {

struct http_result {
  /// The status code, or 0 if the connection failed or no response came.
  unsigned status = 0;
  std::string body;
  /// Why status is 0.
  std::string error;
};

/// Sends one request to 127.0.0.1:`port` and reads the whole response.
http_result http_request(uint16_t port, const std::string& method,
                         const std::string& target,
                         const std::string& body = {},
                         std::chrono::milliseconds timeout
                         = std::chrono::seconds{5});

} // namespace butler::test
