#include "net/udp_receiver.hpp"

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/sock_diag.h> // SK_MEMINFO_DROPS

#include <spdlog/spdlog.h>

namespace butler::net {

udp_receiver::~udp_receiver() {
  // nop
}

namespace {

// recvmmsg takes at most UIO_MAXIOV messages per call.
constexpr std::size_t max_batch = 1024;

// The largest UDP payload (IPv6 without jumbograms: 65535 - 8).
constexpr std::size_t max_datagram_limit = 65535;

// A socket stays readable under a flood; after this many recvmmsg calls in a
// row the loop goes back to poll() so that the other sockets and the stop
// signal get their turn.
constexpr int max_batches_per_wakeup = 64;

// Room for one SO_RXQ_OVFL control message (a uint32_t counter).
constexpr std::size_t control_size = CMSG_SPACE(sizeof(uint32_t));

std::string errno_text(int err) {
  return std::strerror(err);
}

/// Returns "127.0.0.1:9998" or "[::1]:9998".
std::string format_endpoint(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos)
    return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

/// Returns a byte count as "16 MiB", "416 KiB", "1.5 MiB" or "2304 bytes".
std::string format_size(std::size_t n) {
  constexpr std::size_t kib = 1024;
  constexpr std::size_t mib = 1024 * 1024;
  if (n >= mib)
    return n % mib == 0 ? fmt::format("{} MiB", n / mib)
                        : fmt::format("{:.1f} MiB", static_cast<double>(n) / mib);
  if (n >= kib)
    return n % kib == 0 ? fmt::format("{} KiB", n / kib)
                        : fmt::format("{:.1f} KiB", static_cast<double>(n) / kib);
  return fmt::format("{} bytes", n);
}

/// Writes the numeric address of `sa` into `buf`; returns the port.
uint16_t format_source(const sockaddr_storage& sa, socklen_t len, char* buf,
                       std::size_t buf_size) {
  if (sa.ss_family == AF_INET && len >= sizeof(sockaddr_in)) {
    auto& in = reinterpret_cast<const sockaddr_in&>(sa);
    if (::inet_ntop(AF_INET, &in.sin_addr, buf, buf_size) == nullptr)
      buf[0] = '\0';
    return ntohs(in.sin_port);
  }
  if (sa.ss_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    auto& in6 = reinterpret_cast<const sockaddr_in6&>(sa);
    if (::inet_ntop(AF_INET6, &in6.sin6_addr, buf, buf_size) == nullptr)
      buf[0] = '\0';
    return ntohs(in6.sin6_port);
  }
  buf[0] = '\0';
  return 0;
}

/// Returns the port in a bound socket address.
uint16_t port_of(const sockaddr_storage& sa) {
  if (sa.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6&>(sa).sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in&>(sa).sin_port);
}

void set_port(sockaddr_storage& sa, uint16_t port) {
  if (sa.ss_family == AF_INET6)
    reinterpret_cast<sockaddr_in6&>(sa).sin6_port = htons(port);
  else
    reinterpret_cast<sockaddr_in&>(sa).sin_port = htons(port);
}

/// One bound socket and its counters.
struct udp_socket {
  udp_socket() = default;
  udp_socket(const udp_socket&) = delete;
  udp_socket& operator=(const udp_socket&) = delete;
  ~udp_socket() {
    if (fd >= 0)
      ::close(fd);
  }

  int fd = -1;
  uint16_t port = 0;
  std::size_t receive_buffer = 0;
  std::string endpoint; // for log lines
  // Written by the receive thread only; read by stats() from any thread.
  std::atomic<std::uint64_t> datagrams{0};
  std::atomic<std::uint64_t> bytes{0};
  std::atomic<std::uint64_t> truncated{0};
  std::atomic<std::uint64_t> kernel_drops{0};
  // The kernel's cumulative drop counter (sk_drops) as last seen; receive
  // thread only.
  uint32_t last_drop_counter = 0;
  bool meminfo_works = true;
};

/// Per-slot storage for one recvmmsg entry besides its data buffer.
struct slot_extra {
  sockaddr_storage source;
  alignas(cmsghdr) char control[control_size];
  char ip[INET6_ADDRSTRLEN];
};

class udp_receiver_impl final : public udp_receiver {
public:
  udp_receiver_impl(std::vector<std::unique_ptr<udp_socket>> sockets,
                    std::size_t batch, std::size_t max_datagram,
                    batch_handler handler, std::function<bool()> flush,
                    std::chrono::milliseconds linger)
    : sockets_(std::move(sockets)),
      batch_(batch),
      slot_size_(max_datagram + 1),
      max_datagram_(max_datagram),
      handler_(std::move(handler)),
      flush_(std::move(flush)),
      linger_ms_(static_cast<int>(std::max<std::int64_t>(1, linger.count()))) {
    // Allocated once and reused. `new char[]` leaves the memory untouched, so
    // pages the kernel never writes into do not count towards RSS.
    data_.reset(new char[batch_ * slot_size_]);
    extra_.reset(new slot_extra[batch_]);
    msgs_.resize(batch_);
    iovs_.resize(batch_);
    out_.resize(batch_);
    for (std::size_t i = 0; i < batch_; ++i) {
      iovs_[i].iov_base = data_.get() + i * slot_size_;
      iovs_[i].iov_len = max_datagram_;
      auto& hdr = msgs_[i].msg_hdr;
      hdr.msg_iov = &iovs_[i];
      hdr.msg_iovlen = 1;
      hdr.msg_name = &extra_[i].source;
      hdr.msg_control = extra_[i].control;
    }
  }

  ~udp_receiver_impl() override {
    stop();
  }

  /// Starts the receive thread; returns an error text if it cannot.
  std::string start() {
    stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0)
      return fmt::format("udp-receiver cannot create an eventfd: {}",
                         errno_text(errno));
    try {
      thread_ = std::thread{[this] { run(); }};
    } catch (const std::system_error& e) {
      return fmt::format("udp-receiver cannot start its thread: {}", e.what());
    }
    return {};
  }

  std::vector<uint16_t> ports() const override {
    std::vector<uint16_t> result;
    result.reserve(sockets_.size());
    for (auto& s : sockets_)
      result.push_back(s->port);
    return result;
  }

  std::vector<udp_socket_stats> stats() const override {
    std::vector<udp_socket_stats> result;
    result.reserve(sockets_.size());
    for (auto& s : sockets_) {
      udp_socket_stats st;
      st.port = s->port;
      st.receive_buffer = s->receive_buffer;
      st.datagrams = s->datagrams.load(std::memory_order_relaxed);
      st.bytes = s->bytes.load(std::memory_order_relaxed);
      st.truncated = s->truncated.load(std::memory_order_relaxed);
      st.kernel_drops = s->kernel_drops.load(std::memory_order_relaxed);
      st.handler_errors = handler_errors_.load(std::memory_order_acquire);
      result.push_back(st);
    }
    return result;
  }

  void stop() override {
    if (receive_thread_id_.load() == std::this_thread::get_id()) {
      // Called from the handler (a misuse): joining would deadlock and taking
      // the lock could too, if another thread is joining. The thread ends
      // after this batch; a stop() from another thread joins it.
      spdlog::error("udp-receiver stop() called from its own handler");
      signal_stop();
      return;
    }
    std::lock_guard<std::mutex> guard{stop_mtx_};
    if (stopped_)
      return;
    if (thread_.joinable()) {
      signal_stop();
      thread_.join();
    }
    for (auto& s : sockets_) {
      ::close(s->fd);
      s->fd = -1;
    }
    if (stop_fd_ >= 0) {
      ::close(stop_fd_);
      stop_fd_ = -1;
    }
    stopped_ = true;
  }

private:
  void signal_stop() {
    uint64_t one = 1;
    // An eventfd write only fails when the counter would overflow, which a
    // few writes cannot cause.
    [[maybe_unused]] auto res = ::write(stop_fd_, &one, sizeof(one));
  }

  void run() {
    receive_thread_id_ = std::this_thread::get_id();
    std::vector<pollfd> fds(sockets_.size() + 1);
    for (std::size_t i = 0; i < sockets_.size(); ++i)
      fds[i] = pollfd{sockets_[i]->fd, POLLIN, 0};
    fds.back() = pollfd{stop_fd_, POLLIN, 0};
    bool holding = false;
    for (;;) {
      auto rc = ::poll(fds.data(), fds.size(), holding ? linger_ms_ : -1);
      if (rc < 0) {
        if (errno == EINTR)
          continue;
        // poll() only fails on bad arguments or lack of memory; neither goes
        // away by retrying in a tight loop.
        spdlog::critical("udp-receiver stops receiving: poll failed: {}",
                         errno_text(errno));
        return;
      }
      if (rc > 0 && fds.back().revents != 0)
        return;
      if (rc > 0)
        for (std::size_t i = 0; i < sockets_.size(); ++i)
          if (fds[i].revents != 0)
            drain(i);
      if (flush_)
        holding = call_flush();
    }
  }

  /// Runs the flush hook; an exception counts as a handler error and drops
  /// nothing held by the hook's owner from our side.
  bool call_flush() {
    try {
      return flush_();
    } catch (const std::exception& e) {
      log_throttled(last_handler_error_log_, suppressed_handler_errors_,
                    "udp-receiver flush hook failed: {}", e.what());
    } catch (...) {
      log_throttled(last_handler_error_log_, suppressed_handler_errors_,
                    "udp-receiver flush hook failed: {}",
                    "unknown exception");
    }
    handler_errors_.fetch_add(1, std::memory_order_release);
    return false;
  }

  /// Receives from socket `index` until EAGAIN (or a fairness limit).
  void drain(std::size_t index) {
    auto& sock = *sockets_[index];
    for (int round = 0; round < max_batches_per_wakeup; ++round) {
      // recvmmsg overwrites these lengths; reset them before each call.
      for (std::size_t i = 0; i < batch_; ++i) {
        auto& hdr = msgs_[i].msg_hdr;
        hdr.msg_namelen = sizeof(sockaddr_storage);
        hdr.msg_controllen = control_size;
        hdr.msg_flags = 0;
      }
      auto n = ::recvmmsg(sock.fd, msgs_.data(), static_cast<unsigned>(batch_),
                          MSG_DONTWAIT, nullptr);
      if (n < 0) {
        auto err = errno;
        if (err == EINTR)
          continue;
        if (err != EAGAIN && err != EWOULDBLOCK)
          log_throttled(last_recv_error_log_, suppressed_recv_errors_,
                        "udp-receiver recvmmsg on {} failed: {}", sock.endpoint,
                        errno_text(err));
        break;
      }
      if (n == 0)
        break;
      deliver(index, sock, static_cast<std::size_t>(n));
      if (static_cast<std::size_t>(n) < batch_)
        break; // the queue was empty at the time of the call
    }
    read_drop_counter(sock);
  }

  /// Fills `out_` from the first `n` slots and calls the handler.
  void deliver(std::size_t index, udp_socket& sock, std::size_t n) {
    std::uint64_t bytes = 0;
    std::uint64_t truncated = 0;
    for (std::size_t i = 0; i < n; ++i) {
      auto& msg = msgs_[i];
      auto& extra = extra_[i];
      auto* data = static_cast<char*>(iovs_[i].iov_base);
      std::size_t len = msg.msg_len;
      // A NUL after the data (the slot has one spare byte) so that C parsers
      // can use it; it is not part of the view.
      data[len] = '\0';
      auto& d = out_[i];
      d.data = std::string_view{data, len};
      d.truncated = (msg.msg_hdr.msg_flags & MSG_TRUNC) != 0;
      d.source_port = format_source(extra.source, msg.msg_hdr.msg_namelen,
                                    extra.ip, sizeof(extra.ip));
      d.source_ip = std::string_view{extra.ip};
      bytes += len;
      truncated += d.truncated ? 1 : 0;
      for (auto* c = CMSG_FIRSTHDR(&msg.msg_hdr); c != nullptr;
           c = CMSG_NXTHDR(&msg.msg_hdr, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL
            && c->cmsg_len >= CMSG_LEN(sizeof(uint32_t))) {
          uint32_t counter;
          std::memcpy(&counter, CMSG_DATA(c), sizeof(counter));
          note_drop_counter(sock, counter);
        }
    }
    sock.datagrams.fetch_add(n, std::memory_order_relaxed);
    sock.bytes.fetch_add(bytes, std::memory_order_relaxed);
    if (truncated > 0)
      sock.truncated.fetch_add(truncated, std::memory_order_relaxed);
    try {
      handler_(index, out_.data(), n);
    } catch (const std::exception& e) {
      log_throttled(last_handler_error_log_, suppressed_handler_errors_,
                    "udp-receiver handler failed on a batch from {}: {}",
                    sock.endpoint, e.what());
      handler_errors_.fetch_add(1, std::memory_order_release);
    } catch (...) {
      log_throttled(last_handler_error_log_, suppressed_handler_errors_,
                    "udp-receiver handler failed on a batch from {}: {}",
                    sock.endpoint, "unknown exception");
      handler_errors_.fetch_add(1, std::memory_order_release);
    }
  }

  /// Reads the socket's drop counter directly. SO_RXQ_OVFL only reports it
  /// with the next datagram that gets queued, so drops at the end of a burst
  /// would stay invisible until more traffic arrives.
  void read_drop_counter(udp_socket& sock) {
    if (!sock.meminfo_works)
      return;
    uint32_t info[SK_MEMINFO_VARS] = {};
    socklen_t len = sizeof(info);
    if (::getsockopt(sock.fd, SOL_SOCKET, SO_MEMINFO, info, &len) != 0
        || len < sizeof(uint32_t) * (SK_MEMINFO_DROPS + 1)) {
      sock.meminfo_works = false;
      return;
    }
    note_drop_counter(sock, info[SK_MEMINFO_DROPS]);
  }

  /// Adds the growth of the kernel's cumulative counter to kernel_drops.
  static void note_drop_counter(udp_socket& sock, uint32_t counter) {
    // The counter is 32 bits and wraps; SO_RXQ_OVFL values come from the
    // time each datagram was queued, so an older (smaller) one can arrive
    // after a newer reading and must not count as a wrap.
    auto delta = static_cast<int32_t>(counter - sock.last_drop_counter);
    if (delta <= 0)
      return;
    sock.last_drop_counter = counter;
    sock.kernel_drops.fetch_add(static_cast<uint32_t>(delta),
                                std::memory_order_relaxed);
  }

  /// Logs at error at most once per second, counting what it left out.
  template <class... Ts>
  static void log_throttled(std::chrono::steady_clock::time_point& last,
                            std::uint64_t& suppressed,
                            fmt::format_string<Ts...> fmt_str, Ts&&... xs) {
    auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::seconds{1}) {
      ++suppressed;
      return;
    }
    last = now;
    auto text = fmt::format(fmt_str, std::forward<Ts>(xs)...);
    if (suppressed > 0)
      spdlog::error("{} ({} more like it not logged)", text, suppressed);
    else
      spdlog::error("{}", text);
    suppressed = 0;
  }

  std::vector<std::unique_ptr<udp_socket>> sockets_;
  int stop_fd_ = -1;
  std::size_t batch_;
  std::size_t slot_size_;
  std::size_t max_datagram_;
  batch_handler handler_;
  std::function<bool()> flush_;
  int linger_ms_;

  // Receive buffers, allocated once (receive thread only).
  std::unique_ptr<char[]> data_;
  std::unique_ptr<slot_extra[]> extra_;
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iovs_;
  std::vector<datagram> out_;

  std::atomic<std::uint64_t> handler_errors_{0};
  std::chrono::steady_clock::time_point last_handler_error_log_{};
  std::uint64_t suppressed_handler_errors_ = 0;
  std::chrono::steady_clock::time_point last_recv_error_log_{};
  std::uint64_t suppressed_recv_errors_ = 0;

  std::thread thread_;
  std::atomic<std::thread::id> receive_thread_id_{};
  std::mutex stop_mtx_;
  bool stopped_ = false;
};

/// Opens, sizes and binds one socket; on failure returns an error text.
std::string open_socket(const sockaddr_storage& addr, socklen_t addr_len,
                        const std::string& host, uint16_t port,
                        std::size_t receive_buffer, udp_socket& out) {
  auto endpoint = format_endpoint(host, port);
  int fd = ::socket(addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return fmt::format("cannot open UDP socket for {}: {}", endpoint,
                       errno_text(errno));
  out.fd = fd;
  // No SO_REUSEADDR: on Linux two UDP sockets that both set it may bind the
  // same address and port, and the later one silently takes the datagrams.
  // Two Butlers must not share a port; UDP has no TIME_WAIT to get around.
  if (receive_buffer > 0) {
    int req = receive_buffer > static_cast<std::size_t>(INT_MAX)
                ? INT_MAX
                : static_cast<int>(receive_buffer);
    // SO_RCVBUFFORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN.
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &req, sizeof(req)) != 0
        && ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &req, sizeof(req)) != 0)
      return fmt::format("cannot set the receive buffer of UDP {}: {}",
                         endpoint, errno_text(errno));
  }
  int effective = 0;
  socklen_t len = sizeof(effective);
  if (::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &effective, &len) == 0)
    out.receive_buffer = static_cast<std::size_t>(effective);
  int on = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof(on)) != 0)
    spdlog::warn("udp-receiver cannot enable SO_RXQ_OVFL on {}: {}", endpoint,
                 errno_text(errno));
  auto bind_addr = addr;
  set_port(bind_addr, port);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&bind_addr), addr_len) != 0)
    return fmt::format("cannot bind UDP {}: {}", endpoint, errno_text(errno));
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof(bound);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_len) != 0)
    return fmt::format("cannot read the address of UDP {}: {}", endpoint,
                       errno_text(errno));
  out.port = port_of(bound);
  out.endpoint = format_endpoint(host, out.port);
  return {};
}

} // namespace

std::unique_ptr<udp_receiver> start_udp_receiver(const udp_receiver_options& opts,
                                                 batch_handler handler,
                                                 std::string& error) {
  if (!handler) {
    error = "udp-receiver needs a handler";
    return nullptr;
  }
  if (opts.ports.empty()) {
    error = "udp-receiver needs at least one port";
    return nullptr;
  }
  if (opts.batch == 0 || opts.batch > max_batch) {
    error = fmt::format("udp-receiver batch must be 1-{}, not {}", max_batch,
                        opts.batch);
    return nullptr;
  }
  if (opts.max_datagram == 0 || opts.max_datagram > max_datagram_limit) {
    error = fmt::format("udp-receiver max_datagram must be 1-{}, not {}",
                        max_datagram_limit, opts.max_datagram);
    return nullptr;
  }
  if (opts.host.empty()) {
    error = "udp-receiver needs a host to bind (e.g. 0.0.0.0 or ::)";
    return nullptr;
  }
  // Resolve once; every port binds the same address.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (auto rc = ::getaddrinfo(opts.host.c_str(), "0", &hints, &res); rc != 0) {
    error = fmt::format("cannot resolve UDP host {}: {}", opts.host,
                        rc == EAI_SYSTEM ? errno_text(errno) : gai_strerror(rc));
    return nullptr;
  }
  sockaddr_storage addr{};
  auto addr_len = static_cast<socklen_t>(res->ai_addrlen);
  std::memcpy(&addr, res->ai_addr, res->ai_addrlen);
  ::freeaddrinfo(res);
  // Log the numeric address we actually bind (a name may have several).
  char numeric[INET6_ADDRSTRLEN];
  format_source(addr, addr_len, numeric, sizeof(numeric));
  std::string host = numeric;
  std::vector<std::unique_ptr<udp_socket>> sockets;
  for (auto port : opts.ports) {
    sockets.push_back(std::make_unique<udp_socket>());
    auto err = open_socket(addr, addr_len, host, port, opts.receive_buffer,
                           *sockets.back());
    if (!err.empty()) {
      sockets.clear(); // closes the sockets opened so far
      error = std::move(err);
      return nullptr;
    }
  }
  for (auto& s : sockets) {
    if (opts.receive_buffer > 0 && s->receive_buffer < opts.receive_buffer)
      spdlog::warn("udp-receiver listens on {} (receive buffer {}, less than "
                   "the {} asked for; raise net.core.rmem_max)",
                   s->endpoint, format_size(s->receive_buffer),
                   format_size(opts.receive_buffer));
    else
      spdlog::info("udp-receiver listens on {} (receive buffer {})",
                   s->endpoint, format_size(s->receive_buffer));
  }
  std::unique_ptr<udp_receiver_impl> result;
  try {
    result = std::make_unique<udp_receiver_impl>(
      std::move(sockets), opts.batch, opts.max_datagram, std::move(handler),
      opts.flush, opts.linger);
  } catch (const std::bad_alloc&) {
    // `sockets` was moved into the constructor; its members close them.
    error = "udp-receiver cannot allocate its receive buffers";
    return nullptr;
  }
  if (auto err = result->start(); !err.empty()) {
    error = std::move(err);
    return nullptr; // the destructor closes the sockets
  }
  return result;
}

} // namespace butler::net
