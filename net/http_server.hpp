#pragma once

// HTTP/1.1 and HTTPS server on Boost.Beast, shaped like Beast 1.81's advanced
// server: a listener and one session per connection, do_/on_ pairs, keep-alive,
// limits and timeouts. No Beast in this header; it hands each request to a
// `handler` and writes whatever the handler's responder is given, from any
// thread. The REST layer and the actors live elsewhere.

#include "net/http_types.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace butler::http {

/// Receives every well-formed request. Runs on an I/O thread: it must not
/// block. It answers through `reply`, now or later, from any thread.
using handler = std::function<void(request&& req, responder reply)>;

struct server_options {
  std::string host = "127.0.0.1";
  /// 0 picks a free port; server::port() tells which.
  uint16_t port = 0;
  /// HTTPS when true: PEM files; ca_file is an optional chain.
  bool tls = false;
  std::string cert_file;
  std::string key_file;
  std::string ca_file;
  /// Largest body accepted; a larger one gets 413 and the connection closes.
  std::size_t body_limit = 1024 * 1024;
  /// Largest header block accepted; a larger one gets 431.
  std::size_t header_limit = 16 * 1024;
  /// Time to receive one whole request, and the keep-alive idle time.
  std::chrono::milliseconds read_timeout{30'000};
  /// Time to send one response.
  std::chrono::milliseconds write_timeout{30'000};
  /// Connections served at once; one more is answered 503 and closed.
  std::size_t max_connections = 1024;
  /// Threads running the I/O context.
  int threads = 1;
};

/// Counters, readable from any thread.
struct server_stats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_rejected = 0; // over max_connections
  std::uint64_t connections_active = 0;
  std::uint64_t requests = 0;             // handed to the handler
  std::uint64_t requests_in_flight = 0;   // handed over, not yet answered
  std::uint64_t bad_requests = 0;         // malformed, too large, TLS failures
  std::uint64_t timeouts = 0;             // read or write deadline passed
};

class server {
public:
  virtual ~server();

  /// Returns the port the listener is bound to.
  virtual uint16_t port() const = 0;

  /// Closes the listening socket; open connections finish their current
  /// request, then close instead of keeping alive.
  virtual void stop_accepting() = 0;

  /// Waits until no request is in flight or `deadline` passes. Returns true
  /// when nothing is left in flight.
  virtual bool drain(std::chrono::milliseconds deadline) = 0;

  /// Closes every connection, stops and joins the I/O threads. Idempotent;
  /// the destructor calls it.
  virtual void stop() = 0;

  virtual server_stats stats() const = 0;
};

/// Binds, listens and starts the I/O threads. On failure (address in use,
/// unreadable certificate, ...) returns nullptr and sets `error` to a message
/// naming the problem.
std::unique_ptr<server> start_server(const server_options& opts, handler h,
                                     std::string& error);

} // namespace butler::http
