#pragma once

// Plain HTTP request and response values shared by the Beast server
// (net/http_server) and the REST layer (net/rest_api). No Beast in here.

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace butler::http {

/// One HTTP request as the REST layer sees it.
struct request {
  /// Method as sent, upper case ("GET", "PUT", ...).
  std::string method;
  /// Request target: path plus optional "?query".
  std::string target;
  /// Header fields, names in lower case.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// Peer address, "ip:port".
  std::string peer;

  /// Returns the value of header `name` (lower case), or "" if absent.
  std::string_view header(std::string_view name) const;
};

/// One HTTP response.
struct response {
  unsigned status = 200;
  std::string content_type = "application/json; charset=utf-8";
  std::string body;
  /// Extra header fields.
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Returns the reason phrase for `status` ("Bad Request" for 400).
std::string_view reason(unsigned status);

/// Returns a JSON error response:
/// `{"statusCode":400,"error":"Bad Request","message":"..."}`.
response error_response(unsigned status, std::string_view message);

/// Receives the one response to a request. Implemented by the server.
class reply_sink {
public:
  virtual ~reply_sink();
  /// Sends `res`; called at most once, from any thread.
  virtual void send(response res) = 0;
};

/// Answers one request exactly once, from any thread. Copies share one
/// answer: the first call wins, later calls are ignored. When the last copy
/// is destroyed unanswered, the server answers 503 itself, so a request never
/// goes unanswered.
class responder {
public:
  responder() = default;
  explicit responder(std::shared_ptr<reply_sink> sink);

  void operator()(response res) const;

  explicit operator bool() const {
    return static_cast<bool>(sink_);
  }

private:
  std::shared_ptr<reply_sink> sink_;
};

} // namespace butler::http
