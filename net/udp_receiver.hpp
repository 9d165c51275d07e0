#pragma once

// UDP sockets on their own thread: binds the given ports, receives with
// recvmmsg in batches, and hands each batch to a callback on that thread.
// Large receive buffers (SO_RCVBUF) because the VM can wake a thread 5-12 ms
// late; kernel drops are read back with SO_RXQ_OVFL and counted.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace butler::net {

/// One received datagram; the views are valid only during the callback.
struct datagram {
  std::string_view data;
  /// True if the datagram was longer than the receive slot and cut.
  bool truncated = false;
  /// Sender address, numeric ("10.0.0.5" or "::1"), and port.
  std::string_view source_ip;
  uint16_t source_port = 0;
};

struct udp_receiver_options {
  /// Address to bind (IPv4/IPv6 literal or host name).
  std::string host = "127.0.0.1";
  /// Ports to bind, one socket each; 0 picks a free port.
  std::vector<uint16_t> ports;
  /// Requested SO_RCVBUF per socket, bytes (the kernel may clamp it; the
  /// effective value is logged and reported). 0 keeps the kernel default.
  std::size_t receive_buffer = 8 * 1024 * 1024;
  /// Datagrams taken per recvmmsg call.
  std::size_t batch = 64;
  /// Largest datagram kept whole; longer ones arrive with truncated = true.
  std::size_t max_datagram = 65507;
  /// Called on the receive thread after every round of receiving, and again
  /// `linger` later while it returns true ("I still hold data"). Lets the
  /// handler collect datagrams into larger batches and send them on at the
  /// latest `linger` after the first, instead of waking its consumers for
  /// every datagram. Empty: not called.
  std::function<bool()> flush;
  std::chrono::milliseconds linger{1};
};

/// Counters per socket, readable from any thread.
struct udp_socket_stats {
  uint16_t port = 0;
  std::size_t receive_buffer = 0; // effective SO_RCVBUF
  std::uint64_t datagrams = 0;
  std::uint64_t bytes = 0;
  std::uint64_t truncated = 0;
  /// Datagrams the kernel dropped because the socket buffer was full.
  std::uint64_t kernel_drops = 0;
  /// Handler calls that threw (for the whole receiver, not per socket).
  std::uint64_t handler_errors = 0;
};

/// Receives a batch from socket `index` (position in options.ports).
using batch_handler
  = std::function<void(std::size_t index, const datagram* first, std::size_t n)>;

class udp_receiver {
public:
  virtual ~udp_receiver();

  /// Returns the bound ports, in options.ports order.
  virtual std::vector<uint16_t> ports() const = 0;

  virtual std::vector<udp_socket_stats> stats() const = 0;

  /// Stops and joins the thread, closes the sockets. Idempotent; the
  /// destructor calls it. Must not be called from the callback.
  virtual void stop() = 0;
};

/// Binds every port and starts the receive thread. On failure (address in
/// use, bad host) returns nullptr and sets `error` naming the address.
std::unique_ptr<udp_receiver> start_udp_receiver(const udp_receiver_options& opts,
                                                 batch_handler handler,
                                                 std::string& error);

} // namespace butler::net
