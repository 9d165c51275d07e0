#pragma once

// An asynchronous HTTP(S) client on libcurl's multi interface, running on its
// own thread: submit() never blocks, completions come back through a
// callback on that thread. One multi handle keeps connections alive and
// reuses them. Used for Slack, Teams and webhooks, and later QRS (client
// certificates).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace butler::http {

struct outbound_request {
  std::string method = "POST";
  std::string url;
  /// Header lines to send, e.g. {"Content-Type", "application/json"}.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// Whole-transfer deadline.
  std::chrono::milliseconds timeout{10'000};
  /// Connect deadline (part of timeout).
  std::chrono::milliseconds connect_timeout{5'000};
  /// TLS: CA bundle (PEM; empty uses the system store), optional client
  /// certificate and key (PEM), and whether to verify the server.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool verify_peer = true;
  /// Sends the request on a connection of its own, closed afterwards. libcurl
  /// re-sends a request on a new connection when a kept-alive one closes
  /// before the answer, so a post that must never arrive twice (a Slack
  /// message, a task start) sets this, at the cost of a new connection.
  bool at_most_once = false;
};

struct outbound_response {
  /// HTTP status, or 0 when no response came (see error).
  long status = 0;
  /// Response header fields, names in lower case.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// libcurl's result code (0 = CURLE_OK) and its message.
  int curl_code = 0;
  std::string error;
  /// True when the whole request (headers and body) was handed to the
  /// network, so the peer may have acted on it even without a response.
  bool request_sent = false;
  std::chrono::milliseconds elapsed{0};

  /// Returns the value of header `name` (lower case), or "" if absent.
  std::string header(const std::string& name) const;
};

using completion = std::function<void(outbound_response)>;

struct client_options {
  /// Requests queued or in transfer; submit() refuses more.
  std::size_t max_pending = 1000;
  /// Transfers running at once.
  std::size_t max_concurrent = 16;
  /// Connections kept for reuse per host.
  std::size_t max_host_connections = 4;
  /// Response bodies are cut after this many bytes; the transfer stops there
  /// and the response says so in `error` (status and headers are kept).
  std::size_t max_response_body = 1024 * 1024;
};

struct client_stats {
  std::uint64_t submitted = 0;
  std::uint64_t completed = 0;    // a response came (any status)
  std::uint64_t failed = 0;       // no response (connect, TLS, timeout, ...)
  std::uint64_t refused = 0;      // submit() answered false
  std::size_t pending = 0;
};

class client {
public:
  virtual ~client();

  /// Queues `req`; `done` is called exactly once on the client thread, unless
  /// this returns false (queue full or stopped), in which case it is never
  /// called. Thread-safe, never blocks.
  virtual bool submit(outbound_request req, completion done) = 0;

  /// Stops taking requests, aborts transfers (their completions get an error
  /// with curl_code CURLE_ABORTED_BY_CALLBACK), joins the thread. Idempotent;
  /// the destructor calls it.
  virtual void stop() = 0;

  virtual client_stats stats() const = 0;
};

/// Starts a client and its thread.
std::unique_ptr<client> make_curl_client(client_options opts = {});

} // namespace butler::http
