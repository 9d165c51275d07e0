#include "net/udp_receiver.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "test/support/eventually.hpp"
#include "test/support/free_port.hpp"

using namespace butler::net;
using butler::test::eventually;

namespace {

// -- helpers ------------------------------------------------------------------

/// Returns the number of open file descriptors of this process.
std::size_t open_fds() {
  std::size_t n = 0;
  for ([[maybe_unused]] auto& entry :
       std::filesystem::directory_iterator{"/proc/self/fd"})
    ++n;
  return n;
}

/// A UDP socket bound to a loopback address and an ephemeral port.
class sender {
public:
  explicit sender(int family = AF_INET) : family_(family) {
    fd_ = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
      throw std::runtime_error("socket failed");
    sockaddr_storage addr = loopback(0);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), addr_len()) != 0)
      throw std::runtime_error(std::string{"bind failed: "} + strerror(errno));
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = family == AF_INET
              ? ntohs(reinterpret_cast<sockaddr_in&>(bound).sin_port)
              : ntohs(reinterpret_cast<sockaddr_in6&>(bound).sin6_port);
  }

  sender(const sender&) = delete;
  sender& operator=(const sender&) = delete;

  ~sender() {
    ::close(fd_);
  }

  uint16_t port() const {
    return port_;
  }

  /// Sends `data` to the loopback address at `port`; returns true on success.
  bool send(uint16_t port, const std::string& data) {
    auto addr = loopback(port);
    auto n = ::sendto(fd_, data.data(), data.size(), 0,
                      reinterpret_cast<sockaddr*>(&addr), addr_len());
    return n == static_cast<ssize_t>(data.size());
  }

private:
  sockaddr_storage loopback(uint16_t port) const {
    sockaddr_storage ss{};
    if (family_ == AF_INET) {
      auto& in = reinterpret_cast<sockaddr_in&>(ss);
      in.sin_family = AF_INET;
      in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      in.sin_port = htons(port);
    } else {
      auto& in6 = reinterpret_cast<sockaddr_in6&>(ss);
      in6.sin6_family = AF_INET6;
      in6.sin6_addr = in6addr_loopback;
      in6.sin6_port = htons(port);
    }
    return ss;
  }

  socklen_t addr_len() const {
    return family_ == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  }

  int family_;
  int fd_ = -1;
  uint16_t port_ = 0;
};

/// A copy of one datagram, taken in the handler.
struct received {
  std::size_t index;
  std::string data;
  bool truncated;
  std::string source_ip;
  uint16_t source_port;
};

/// Collects everything the receiver delivers; thread-safe.
class collector {
public:
  batch_handler handler() {
    return [this](std::size_t index, const datagram* first, std::size_t n) {
      std::lock_guard<std::mutex> guard{mtx_};
      batch_sizes_.push_back(n);
      for (std::size_t i = 0; i < n; ++i)
        items_.push_back(received{index, std::string{first[i].data},
                                  first[i].truncated,
                                  std::string{first[i].source_ip},
                                  first[i].source_port});
    };
  }

  std::size_t size() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return items_.size();
  }

  std::vector<received> items() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return items_;
  }

  std::vector<std::size_t> batch_sizes() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return batch_sizes_;
  }

private:
  mutable std::mutex mtx_;
  std::vector<received> items_;
  std::vector<std::size_t> batch_sizes_;
};

/// A one-shot gate: wait() blocks until open() is called.
class latch {
public:
  void open() {
    std::lock_guard<std::mutex> guard{mtx_};
    open_ = true;
    cv_.notify_all();
  }

  void wait() {
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait(guard, [this] { return open_; });
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  bool open_ = false;
};

/// Captures what is written to stdout (where spdlog's default logger writes)
/// while it lives.
class stdout_capture {
public:
  stdout_capture() {
    std::fflush(stdout);
    path_ = butler::test::make_temp_dir("udp-receiver-log") + "/stdout.txt";
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                    0600);
    saved_ = ::dup(STDOUT_FILENO);
    ::dup2(fd, STDOUT_FILENO);
    ::close(fd);
  }

  stdout_capture(const stdout_capture&) = delete;
  stdout_capture& operator=(const stdout_capture&) = delete;

  ~stdout_capture() {
    restore();
    butler::test::remove_tree(
      std::filesystem::path{path_}.parent_path().string());
  }

  /// Restores stdout and returns what was captured.
  std::string text() {
    restore();
    std::ifstream in{path_};
    return std::string{std::istreambuf_iterator<char>{in}, {}};
  }

private:
  void restore() {
    if (saved_ < 0)
      return;
    std::fflush(stdout);
    ::dup2(saved_, STDOUT_FILENO);
    ::close(saved_);
    saved_ = -1;
  }

  std::string path_;
  int saved_ = -1;
};

/// Drops CAP_NET_ADMIN from the calling thread's effective set (capabilities
/// are per thread on Linux), so that SO_RCVBUFFORCE fails with EPERM.
void drop_net_admin_in_this_thread() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &hdr, data) != 0)
    return;
  data[CAP_NET_ADMIN / 32].effective &= ~(1u << (CAP_NET_ADMIN % 32));
  ::syscall(SYS_capset, &hdr, data);
}

std::size_t read_rmem_max() {
  std::ifstream in{"/proc/sys/net/core/rmem_max"};
  std::size_t n = 0;
  in >> n;
  return n;
}

udp_receiver_options loopback_options(std::vector<uint16_t> ports) {
  udp_receiver_options opts;
  opts.host = "127.0.0.1";
  opts.ports = std::move(ports);
  return opts;
}

/// Returns "seq-<i>" padded to `size` bytes.
std::string numbered(std::size_t i, std::size_t size = 0) {
  auto s = "seq-" + std::to_string(i);
  if (s.size() < size)
    s.append(size - s.size(), 'x');
  return s;
}

// -- delivery -----------------------------------------------------------------

TEST(udp_receiver, delivers_from_two_ports_with_index_and_source) {
  collector got;
  std::string error;
  auto rx = start_udp_receiver(loopback_options({0, 0}), got.handler(), error);
  ASSERT_NE(rx, nullptr) << error;
  auto ports = rx->ports();
  ASSERT_EQ(ports.size(), 2u);
  EXPECT_NE(ports[0], 0);
  EXPECT_NE(ports[1], 0);
  EXPECT_NE(ports[0], ports[1]);
  sender tx;
  ASSERT_TRUE(tx.send(ports[0], "to-first"));
  ASSERT_TRUE(tx.send(ports[1], "to-second"));
  ASSERT_TRUE(eventually([&] { return got.size() == 2; }));
  auto items = got.items();
  // The two sockets are independent: order between them is not defined.
  if (items[0].index == 1)
    std::swap(items[0], items[1]);
  EXPECT_EQ(items[0].index, 0u);
  EXPECT_EQ(items[0].data, "to-first");
  EXPECT_EQ(items[1].index, 1u);
  EXPECT_EQ(items[1].data, "to-second");
  for (auto& item : items) {
    EXPECT_FALSE(item.truncated);
    EXPECT_EQ(item.source_ip, "127.0.0.1");
    EXPECT_EQ(item.source_port, tx.port());
  }
  auto st = rx->stats();
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st[0].port, ports[0]);
  EXPECT_EQ(st[0].datagrams, 1u);
  EXPECT_EQ(st[0].bytes, 8u);
  EXPECT_EQ(st[1].port, ports[1]);
  EXPECT_EQ(st[1].datagrams, 1u);
  EXPECT_EQ(st[1].bytes, 9u);
  EXPECT_EQ(st[0].kernel_drops, 0u);
  EXPECT_EQ(st[0].truncated, 0u);
}

TEST(udp_receiver, delivers_a_burst_in_batches_and_in_order) {
  // The handler blocks on the first call, so the burst queues up in the
  // socket and must come out of recvmmsg in batches.
  collector got;
  auto inner = got.handler();
  latch gate;
  std::atomic<bool> entered{false};
  std::string error;
  auto opts = loopback_options({0, 0});
  auto rx = start_udp_receiver(
    opts,
    [&](std::size_t index, const datagram* first, std::size_t n) {
      entered = true;
      gate.wait();
      inner(index, first, n);
    },
    error);
  ASSERT_NE(rx, nullptr) << error;
  auto ports = rx->ports();
  sender tx;
  ASSERT_TRUE(tx.send(ports[0], "first"));
  ASSERT_TRUE(eventually([&] { return entered.load(); }));
  constexpr std::size_t burst = 500;
  for (std::size_t i = 0; i < burst; ++i) {
    ASSERT_TRUE(tx.send(ports[0], numbered(i)));
    ASSERT_TRUE(tx.send(ports[1], numbered(i)));
  }
  gate.open();
  ASSERT_TRUE(eventually([&] { return got.size() == 2 * burst + 1; }))
    << "got " << got.size();
  std::size_t sum = 0;
  std::size_t largest = 0;
  for (auto n : got.batch_sizes()) {
    sum += n;
    largest = std::max(largest, n);
  }
  EXPECT_EQ(sum, 2 * burst + 1);
  EXPECT_GT(largest, 1u);
  EXPECT_LE(largest, opts.batch);
  std::size_t next[2] = {0, 0};
  auto items = got.items();
  EXPECT_EQ(items[0].data, "first");
  for (std::size_t i = 1; i < items.size(); ++i) {
    auto& item = items[i];
    ASSERT_LT(item.index, 2u);
    EXPECT_EQ(item.data, numbered(next[item.index]));
    ++next[item.index];
  }
  EXPECT_EQ(next[0], burst);
  EXPECT_EQ(next[1], burst);
  auto st = rx->stats();
  EXPECT_EQ(st[0].datagrams, burst + 1);
  EXPECT_EQ(st[1].datagrams, burst);
  EXPECT_EQ(st[0].kernel_drops, 0u);
  EXPECT_EQ(st[1].kernel_drops, 0u);
}

TEST(udp_receiver, truncates_datagrams_longer_than_max_datagram) {
  collector got;
  std::string error;
  auto opts = loopback_options({0});
  opts.max_datagram = 100;
  auto rx = start_udp_receiver(opts, got.handler(), error);
  ASSERT_NE(rx, nullptr) << error;
  sender tx;
  auto long_one = std::string(150, 'L');
  auto exact_one = std::string(100, 'E');
  auto short_one = std::string(99, 'S');
  ASSERT_TRUE(tx.send(rx->ports()[0], long_one));
  ASSERT_TRUE(tx.send(rx->ports()[0], exact_one));
  ASSERT_TRUE(tx.send(rx->ports()[0], short_one));
  ASSERT_TRUE(eventually([&] { return got.size() == 3; }));
  auto items = got.items();
  EXPECT_TRUE(items[0].truncated);
  EXPECT_EQ(items[0].data, std::string(100, 'L'));
  EXPECT_FALSE(items[1].truncated);
  EXPECT_EQ(items[1].data, exact_one);
  EXPECT_FALSE(items[2].truncated);
  EXPECT_EQ(items[2].data, short_one);
  auto st = rx->stats();
  EXPECT_EQ(st[0].datagrams, 3u);
  EXPECT_EQ(st[0].truncated, 1u);
  EXPECT_EQ(st[0].bytes, 299u);
}

TEST(udp_receiver, delivers_a_datagram_of_the_largest_size_whole) {
  collector got;
  std::string error;
  auto rx = start_udp_receiver(loopback_options({0}), got.handler(), error);
  ASSERT_NE(rx, nullptr) << error;
  sender tx;
  std::string big(65507, 'B');
  big.front() = '<';
  big.back() = '>';
  ASSERT_TRUE(tx.send(rx->ports()[0], big));
  ASSERT_TRUE(eventually([&] { return got.size() == 1; }));
  auto items = got.items();
  EXPECT_FALSE(items[0].truncated);
  EXPECT_EQ(items[0].data, big);
}

TEST(udp_receiver, delivers_an_empty_datagram_as_empty_data) {
  collector got;
  std::string error;
  auto rx = start_udp_receiver(loopback_options({0}), got.handler(), error);
  ASSERT_NE(rx, nullptr) << error;
  sender tx;
  ASSERT_TRUE(tx.send(rx->ports()[0], ""));
  ASSERT_TRUE(tx.send(rx->ports()[0], "after"));
  ASSERT_TRUE(eventually([&] { return got.size() == 2; }));
  auto items = got.items();
  EXPECT_TRUE(items[0].data.empty());
  EXPECT_FALSE(items[0].truncated);
  EXPECT_EQ(items[0].source_ip, "127.0.0.1");
  EXPECT_EQ(items[1].data, "after");
  EXPECT_EQ(rx->stats()[0].datagrams, 2u);
}

TEST(udp_receiver, resolves_a_host_name) {
  collector got;
  std::string error;
  auto opts = loopback_options({0});
  opts.host = "localhost";
  auto rx = start_udp_receiver(opts, got.handler(), error);
  ASSERT_NE(rx, nullptr) << error;
  // "localhost" may resolve to ::1 or 127.0.0.1; send to whichever it bound.
  sender tx4;
  std::unique_ptr<sender> tx6;
  try {
    tx6 = std::make_unique<sender>(AF_INET6);
  } catch (const std::exception&) {
    // no IPv6 on this machine
  }
  ASSERT_TRUE(tx4.send(rx->ports()[0], "v4"));
  if (tx6)
    tx6->send(rx->ports()[0], "v6");
  ASSERT_TRUE(eventually([&] { return got.size() >= 1; }));
  auto item = got.items()[0];
  EXPECT_TRUE(item.source_ip == "127.0.0.1" || item.source_ip == "::1")
    << item.source_ip;
}

TEST(udp_receiver, delivers_over_ipv6_loopback) {
  std::unique_ptr<sender> tx;
  try {
    tx = std::make_unique<sender>(AF_INET6);
  } catch (const std::exception& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  collector got;
  std::string error;
  auto opts = loopback_options({0});
  opts.host = "::1";
  auto rx = start_udp_receiver(opts, got.handler(), error);
  ASSERT_NE(rx, nullptr) << error;
  ASSERT_TRUE(tx->send(rx->ports()[0], "over v6"));
  ASSERT_TRUE(eventually([&] { return got.size() == 1; }));
  auto item = got.items()[0];
  EXPECT_EQ(item.data, "over v6");
  EXPECT_EQ(item.source_ip, "::1");
  EXPECT_EQ(item.source_port, tx->port());
}

// -- receive buffer and kernel drops ------------------------------------------

TEST(udp_receiver, reports_and_logs_the_effective_receive_buffer) {
  collector got;
  std::string error;
  auto opts = loopback_options({0});
  opts.receive_buffer = 1024 * 1024;
  std::unique_ptr<udp_receiver> rx;
  std::string log;
  {
    stdout_capture capture;
    rx = start_udp_receiver(opts, got.handler(), error);
    log = capture.text();
  }
  ASSERT_NE(rx, nullptr) << error;
  auto st = rx->stats();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_GT(st[0].receive_buffer, 0u);
  auto port = std::to_string(rx->ports()[0]);
  EXPECT_NE(log.find("udp-receiver listens on 127.0.0.1:" + port
                     + " (receive buffer "),
            std::string::npos)
    << log;
}

TEST(udp_receiver, warns_when_the_kernel_clamps_the_receive_buffer) {
  auto rmem_max = read_rmem_max();
  if (rmem_max == 0 || rmem_max > 256u * 1024 * 1024)
    GTEST_SKIP() << "cannot read a usable net.core.rmem_max";
  // Without CAP_NET_ADMIN the request is clamped to rmem_max (then doubled),
  // so four times rmem_max cannot be granted.
  auto opts = loopback_options({0});
  opts.receive_buffer = 4 * rmem_max;
  collector got;
  std::string error;
  std::unique_ptr<udp_receiver> rx;
  std::string log;
  std::thread worker{[&] {
    drop_net_admin_in_this_thread();
    stdout_capture capture;
    rx = start_udp_receiver(opts, got.handler(), error);
    log = capture.text();
  }};
  worker.join();
  ASSERT_NE(rx, nullptr) << error;
  auto st = rx->stats();
  EXPECT_EQ(st[0].receive_buffer, 2 * rmem_max);
  EXPECT_NE(log.find("less than the"), std::string::npos) << log;
  EXPECT_NE(log.find("raise net.core.rmem_max"), std::string::npos) << log;
  EXPECT_NE(log.find("[warning]"), std::string::npos) << log;
}

TEST(udp_receiver, counts_kernel_drops_when_the_buffer_overflows) {
  collector got;
  auto inner = got.handler();
  latch gate;
  std::atomic<bool> entered{false};
  std::string error;
  auto opts = loopback_options({0});
  opts.receive_buffer = 4 * 1024;
  auto rx = start_udp_receiver(
    opts,
    [&](std::size_t index, const datagram* first, std::size_t n) {
      entered = true;
      gate.wait();
      inner(index, first, n);
    },
    error);
  ASSERT_NE(rx, nullptr) << error;
  auto port = rx->ports()[0];
  sender tx;
  ASSERT_TRUE(tx.send(port, "first"));
  ASSERT_TRUE(eventually([&] { return entered.load(); }));
  // The receive thread is stuck in the handler: the tiny buffer fills up and
  // the kernel drops the rest.
  constexpr std::uint64_t burst = 3000;
  for (std::uint64_t i = 0; i < burst; ++i)
    ASSERT_TRUE(tx.send(port, numbered(i, 200)));
  gate.open();
  constexpr std::uint64_t sent = burst + 1;
  // The kernel counts every datagram it could not queue, so once the socket
  // is drained the two numbers add up to what was sent exactly.
  auto settled = [&] {
    auto st = rx->stats()[0];
    return st.datagrams + st.kernel_drops == sent;
  };
  EXPECT_TRUE(eventually(settled));
  auto st = rx->stats()[0];
  EXPECT_GT(st.kernel_drops, 0u);
  EXPECT_GT(st.datagrams, 1u);
  EXPECT_EQ(st.datagrams + st.kernel_drops, sent)
    << "datagrams " << st.datagrams << ", kernel_drops " << st.kernel_drops;
  EXPECT_EQ(got.size(), st.datagrams);
  // Later datagrams do not count old drops again.
  ASSERT_TRUE(tx.send(port, "later"));
  ASSERT_TRUE(eventually([&] { return got.size() == st.datagrams + 1; }));
  auto after = rx->stats()[0];
  EXPECT_EQ(after.kernel_drops, st.kernel_drops);
  EXPECT_EQ(after.datagrams, st.datagrams + 1);
}

// -- errors and bad input -----------------------------------------------------

TEST(udp_receiver, fails_on_a_port_in_use_and_leaks_no_fds) {
  sender taken; // holds 127.0.0.1:<port> without SO_REUSEADDR
  auto before = open_fds();
  collector got;
  std::string error;
  // The first socket opens fine and must be closed again.
  auto rx = start_udp_receiver(loopback_options({0, taken.port()}),
                               got.handler(), error);
  EXPECT_EQ(rx, nullptr);
  EXPECT_EQ(error, "cannot bind UDP 127.0.0.1:" + std::to_string(taken.port())
                     + ": Address already in use");
  EXPECT_EQ(open_fds(), before);
}

TEST(udp_receiver, refuses_to_share_a_port_with_another_receiver) {
  // Two Butlers on one port must not silently split the datagrams.
  collector got;
  std::string error;
  auto first = start_udp_receiver(loopback_options({0}), got.handler(), error);
  ASSERT_NE(first, nullptr) << error;
  auto port = first->ports()[0];
  auto second = start_udp_receiver(loopback_options({port}), got.handler(),
                                   error);
  EXPECT_EQ(second, nullptr);
  EXPECT_NE(error.find("cannot bind UDP 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
    << error;
  sender tx;
  ASSERT_TRUE(tx.send(port, "still mine"));
  ASSERT_TRUE(eventually([&] { return got.size() == 1; }));
}

TEST(udp_receiver, fails_on_an_address_not_on_this_machine) {
  auto before = open_fds();
  collector got;
  std::string error;
  auto opts = loopback_options({0});
  opts.host = "192.0.2.1"; // TEST-NET-1, never local
  EXPECT_EQ(start_udp_receiver(opts, got.handler(), error), nullptr);
  EXPECT_EQ(error, "cannot bind UDP 192.0.2.1:0: Cannot assign requested address");
  EXPECT_EQ(open_fds(), before);
}

TEST(udp_receiver, fails_on_a_host_that_does_not_resolve) {
  collector got;
  std::string error;
  auto opts = loopback_options({0});
  opts.host = "no-such-host.invalid";
  EXPECT_EQ(start_udp_receiver(opts, got.handler(), error), nullptr);
  EXPECT_NE(error.find("cannot resolve UDP host no-such-host.invalid"),
            std::string::npos)
    << error;
}

TEST(udp_receiver, rejects_bad_options) {
  collector got;
  auto check = [&](udp_receiver_options opts, batch_handler handler,
                   const std::string& expected) {
    std::string error;
    auto before = open_fds();
    EXPECT_EQ(start_udp_receiver(opts, std::move(handler), error), nullptr)
      << expected;
    EXPECT_NE(error.find(expected), std::string::npos)
      << "error: " << error << ", expected: " << expected;
    EXPECT_EQ(open_fds(), before);
  };
  check(loopback_options({}), got.handler(), "at least one port");
  check(loopback_options({0}), batch_handler{}, "needs a handler");
  auto opts = loopback_options({0});
  opts.batch = 0;
  check(opts, got.handler(), "batch must be 1-1024, not 0");
  opts.batch = 1025;
  check(opts, got.handler(), "batch must be 1-1024, not 1025");
  opts = loopback_options({0});
  opts.max_datagram = 0;
  check(opts, got.handler(), "max_datagram must be 1-65535, not 0");
  opts.max_datagram = 65536;
  check(opts, got.handler(), "max_datagram must be 1-65535, not 65536");
  opts = loopback_options({0});
  opts.host = "";
  check(opts, got.handler(), "needs a host");
}

TEST(udp_receiver, works_with_a_batch_of_one_and_the_kernel_default_buffer) {
  collector got;
  std::string error;
  auto opts = loopback_options({0});
  opts.batch = 1;
  opts.receive_buffer = 0;
  auto rx = start_udp_receiver(opts, got.handler(), error);
  ASSERT_NE(rx, nullptr) << error;
  EXPECT_GT(rx->stats()[0].receive_buffer, 0u);
  sender tx;
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(tx.send(rx->ports()[0], numbered(i)));
  ASSERT_TRUE(eventually([&] { return got.size() == 10; }));
  for (auto n : got.batch_sizes())
    EXPECT_EQ(n, 1u);
  auto items = got.items();
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(items[i].data, numbered(i));
}

// -- lifecycle ----------------------------------------------------------------

TEST(udp_receiver, stops_while_idle_and_twice_and_closes_its_fds) {
  auto before = open_fds();
  collector got;
  std::string error;
  auto rx = start_udp_receiver(loopback_options({0, 0}), got.handler(), error);
  ASSERT_NE(rx, nullptr) << error;
  // two sockets and the eventfd
  EXPECT_EQ(open_fds(), before + 3);
  auto port = rx->ports()[0];
  rx->stop();
  EXPECT_EQ(open_fds(), before);
  rx->stop();
  EXPECT_EQ(open_fds(), before);
  // The port is free again and stats still work after stop.
  EXPECT_EQ(rx->stats().size(), 2u);
  auto again = start_udp_receiver(loopback_options({port}), got.handler(),
                                  error);
  EXPECT_NE(again, nullptr) << error;
  again.reset();
  rx.reset();
  EXPECT_EQ(open_fds(), before);
}

TEST(udp_receiver, keeps_receiving_after_the_handler_throws) {
  collector got;
  auto inner = got.handler();
  std::atomic<int> calls{0};
  std::string error;
  std::unique_ptr<udp_receiver> rx;
  std::string log;
  stdout_capture capture;
  rx = start_udp_receiver(
    loopback_options({0}),
    [&](std::size_t index, const datagram* first, std::size_t n) {
      if (calls++ == 0)
        throw std::runtime_error("boom");
      inner(index, first, n);
    },
    error);
  ASSERT_NE(rx, nullptr) << error;
  sender tx;
  ASSERT_TRUE(tx.send(rx->ports()[0], "lost"));
  // The error is logged before it is counted.
  ASSERT_TRUE(eventually([&] { return rx->stats()[0].handler_errors == 1; }));
  log = capture.text();
  ASSERT_TRUE(tx.send(rx->ports()[0], "kept"));
  ASSERT_TRUE(eventually([&] { return got.size() == 1; }));
  EXPECT_EQ(got.items()[0].data, "kept");
  auto st = rx->stats()[0];
  EXPECT_EQ(st.handler_errors, 1u);
  EXPECT_EQ(st.datagrams, 2u);
  EXPECT_EQ(calls.load(), 2);
  EXPECT_NE(log.find("udp-receiver handler failed on a batch from 127.0.0.1:"),
            std::string::npos)
    << log;
  EXPECT_NE(log.find("boom"), std::string::npos) << log;
}

TEST(udp_receiver, survives_stop_called_from_its_own_handler) {
  std::atomic<int> calls{0};
  std::string error;
  std::unique_ptr<udp_receiver> rx;
  std::atomic<udp_receiver*> raw{nullptr};
  stdout_capture capture; // the misuse is logged at error
  rx = start_udp_receiver(
    loopback_options({0}),
    [&](std::size_t, const datagram*, std::size_t) {
      raw.load()->stop();
      ++calls;
    },
    error);
  ASSERT_NE(rx, nullptr) << error;
  raw = rx.get();
  sender tx;
  ASSERT_TRUE(tx.send(rx->ports()[0], "one"));
  ASSERT_TRUE(eventually([&] { return calls.load() == 1; }));
  // The thread ends after that batch; stop() from here joins it.
  rx->stop();
  EXPECT_EQ(calls.load(), 1);
  EXPECT_NE(capture.text().find("stop() called from its own handler"),
            std::string::npos);
}

} // namespace

// -- the flush hook -----------------------------------------------------------

TEST(udp_receiver, flush_runs_after_each_round_and_again_while_holding) {
  collector got;
  auto opts = loopback_options({0});
  std::atomic<int> flushes{0};
  std::atomic<int> hold_for{0};
  opts.linger = std::chrono::milliseconds{5};
  // Says "still holding" for a few calls after a datagram, like a handler
  // collecting events that must go out at the latest `linger` later.
  opts.flush = [&] {
    ++flushes;
    return hold_for.fetch_sub(1) > 0;
  };
  std::string error;
  auto rx = start_udp_receiver(opts, got.handler(), error);
  ASSERT_NE(rx, nullptr) << error;
  // Idle: nothing received, no flush call.
  std::this_thread::sleep_for(std::chrono::milliseconds{30});
  EXPECT_EQ(flushes.load(), 0);
  hold_for = 3;
  sender tx;
  ASSERT_TRUE(tx.send(rx->ports()[0], "one"));
  // One call after the round that received it, then three more at linger
  // intervals while it returns true, then none.
  ASSERT_TRUE(eventually([&] { return flushes.load() == 4; }));
  std::this_thread::sleep_for(std::chrono::milliseconds{50});
  EXPECT_EQ(flushes.load(), 4);
  EXPECT_EQ(got.size(), 1u);
}

TEST(udp_receiver, a_throwing_flush_hook_is_counted_and_receiving_goes_on) {
  collector got;
  auto opts = loopback_options({0});
  opts.flush = []() -> bool { throw std::runtime_error("flush broke"); };
  std::string error;
  auto rx = start_udp_receiver(opts, got.handler(), error);
  ASSERT_NE(rx, nullptr) << error;
  sender tx;
  ASSERT_TRUE(tx.send(rx->ports()[0], "a"));
  ASSERT_TRUE(tx.send(rx->ports()[0], "b"));
  ASSERT_TRUE(eventually([&] { return got.size() == 2; }));
  EXPECT_GE(rx->stats()[0].handler_errors, 1u);
}
