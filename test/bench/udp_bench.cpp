// udp_bench: end-to-end benchmark of Butler's UDP -> MQTT path.
//
// Runs the real butler binary against a real mosquitto (test support broker,
// max_queued_messages 100000), sends N = rate x seconds valid
// `/scheduler-reload-failed/` datagrams per rate, paced with sendmmsg every
// ~100 us, and counts what arrives at an MQTT subscriber on
// qliksense/task_failure. Every datagram has a unique execution id (so
// dedup keeps it) and the task name `bench-<run>-<seq>-<steady ns>`, so the
// subscriber gets the send time back and computes the end-to-end latency on
// the same steady clock.
//
//     udp_bench --butler build/butler [--rates 10000,25000,50000,75000,100000]
//               [--seconds 5] [--runs 1] [--full] [--fresh] [--quiet-ms 1000]
//               [--baseline] [--timeline] [--no-echo] [--keep]
//
//   --butler    the butler binary (required)
//   --rates     target send rates, events/s
//   --seconds   seconds of sending per run (N = rate x seconds)
//   --runs      runs per rate; the summary row shows the median
//   --full      also enable taskFailureSendFull and count an event as
//               received only when both its messages arrived
//   --fresh     start a new butler for every run (default: one butler for
//               the whole benchmark, which also shows memory across it)
//   --quiet-ms  a run ends when nothing arrived for this long after sending
//   --baseline  before each butler run, run the same rate straight from this
//               program to the broker ("broker only" rows): what the broker
//               and subscriber manage on this machine at the moment, so that
//               a busy machine shows as such
//   --timeline  also print sent, lost and latency per second of each run
//   --no-echo   set subscriptionRootTopic to butler-bench/in/# (and
//               taskStartTopic under it): by default
//               (qliksense/#) butler subscribes to its own task failure
//               topic, so the broker sends every event back to butler too
//   --keep      keep the scratch directory (config, butler log)
//
// Prints per run: target and achieved send rate, received, lost, latency
// p50/p99/max, butler's RSS before, at the peak during (sampled every 100 ms)
// and after, and the CPU used per event by butler, mosquitto, and this
// program's sender and subscriber. Then the highest rate with zero loss, and
// at twice that rate the loss broken down into kernel drops at butler's
// socket (/proc/net/udp, exact), butler's shedding (from its log, which is
// throttled: a lower bound) and the rest (broker, subscriber, in flight).
//
// Not a ctest test: it takes minutes. Figures depend on the machine: this
// program, butler and mosquitto share its cores.

#include "test/support/free_port.hpp"
#include "test/support/http_client.hpp"
#include "test/support/mosquitto_broker.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace {

// The signal handler can only reach a global.
volatile std::sig_atomic_t interrupted = 0;

extern "C" void on_signal(int) {
  interrupted = 1;
}

using namespace std::chrono_literals;

constexpr const char* failure_topic = "qliksense/task_failure";
constexpr const char* full_topic = "qliksense/task_failure_full";
constexpr std::size_t max_batch = 64;
constexpr std::int64_t tick_ns = 100'000;

/// Returns CLOCK_MONOTONIC (= std::chrono::steady_clock) in nanoseconds.
std::int64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds{ms});
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what);
}

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

/// Returns the text of `path` from byte `offset` on, and moves `offset` to
/// its end.
std::string read_from(const std::string& path, std::size_t& offset) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return {};
  in.seekg(0, std::ios::end);
  auto size = static_cast<std::size_t>(in.tellg());
  if (size < offset)
    offset = 0; // truncated or a new file
  in.seekg(static_cast<std::streamoff>(offset));
  std::string text(size - offset, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  offset = size;
  return text;
}

std::string tail_lines(const std::string& text, std::size_t lines) {
  std::size_t pos = text.size();
  for (std::size_t i = 0; i <= lines && pos > 0; ++i) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) {
      pos = 0;
      break;
    }
  }
  return text.substr(pos);
}

// -- /proc readings -----------------------------------------------------------

/// Returns VmRSS of `pid` in KiB (0 if it is gone).
long rss_kib(int pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0)
      return std::strtol(line.c_str() + 6, nullptr, 10);
  return 0;
}

/// Returns user + system CPU time of `pid` in seconds (0 if it is gone).
double cpu_seconds(int pid) {
  auto text = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = text.rfind(')');
  if (close == std::string::npos)
    return 0;
  std::istringstream in{text.substr(close + 2)};
  // Fields after the command: state(3) ppid(4) ... utime(14) stime(15).
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14)
      utime = std::stoull(field);
    if (i == 15)
      stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime)
         / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

/// Returns this process's user + system CPU time in seconds.
double own_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6;
  };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

/// Returns the pid of a child of this process whose command is `comm`.
int find_child(const std::string& comm) {
  auto me = ::getpid();
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr)
    return -1;
  int found = -1;
  while (auto* ent = ::readdir(dir)) {
    int pid = std::atoi(ent->d_name);
    if (pid <= 0)
      continue;
    auto text = read_file("/proc/" + std::to_string(pid) + "/stat");
    auto open = text.find('(');
    auto close = text.rfind(')');
    if (open == std::string::npos || close == std::string::npos)
      continue;
    std::istringstream rest{text.substr(close + 2)};
    std::string state;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == me && text.substr(open + 1, close - open - 1) == comm) {
      found = pid;
      break;
    }
  }
  ::closedir(dir);
  return found;
}

/// Returns (steal, total) jiffies over all CPUs from /proc/stat.
std::pair<unsigned long long, unsigned long long> cpu_steal() {
  std::istringstream in{read_file("/proc/stat")};
  std::string cpu;
  in >> cpu;
  unsigned long long v = 0;
  unsigned long long total = 0;
  unsigned long long steal = 0;
  for (int i = 0; i < 8 && in >> v; ++i) {
    total += v;
    if (i == 7)
      steal = v;
  }
  return {steal, total};
}

double load_average() {
  double one = 0;
  std::istringstream{read_file("/proc/loadavg")} >> one;
  return one;
}

/// Returns the system-wide Udp RcvbufErrors counter from /proc/net/snmp.
unsigned long long udp_rcvbuf_errors() {
  std::istringstream in{read_file("/proc/net/snmp")};
  std::string header;
  std::string values;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Udp: ", 0) != 0)
      continue;
    if (header.empty()) {
      header = line;
    } else {
      values = line;
      break;
    }
  }
  std::istringstream h{header};
  std::istringstream v{values};
  std::string name;
  std::string value;
  while (h >> name && v >> value)
    if (name == "RcvbufErrors")
      return std::stoull(value);
  return 0;
}

/// Returns the kernel's drop counter of the UDP socket bound to
/// 127.0.0.1:`port` (last column of /proc/net/udp), if there is one.
std::optional<unsigned long long> socket_drops(uint16_t port) {
  char local[32];
  std::snprintf(local, sizeof(local), "0100007F:%04X", port);
  std::istringstream in{read_file("/proc/net/udp")};
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields{line};
    std::string sl;
    std::string addr;
    fields >> sl >> addr;
    if (addr != local)
      continue;
    std::string last;
    std::string f;
    while (fields >> f)
      last = f;
    return std::stoull(last);
  }
  return std::nullopt;
}

/// Returns two UDP ports on 127.0.0.1 that were free a moment ago.
std::pair<uint16_t, uint16_t> free_udp_ports() {
  int fds[2];
  uint16_t ports[2];
  for (int i = 0; i < 2; ++i) {
    fds[i] = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fds[i] < 0
        || ::bind(fds[i], reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0
        || ::getsockname(fds[i], reinterpret_cast<sockaddr*>(&addr), &len)
             != 0)
      fail(std::string{"cannot find a free UDP port: "} + std::strerror(errno));
    ports[i] = ntohs(addr.sin_port);
  }
  ::close(fds[0]);
  ::close(fds[1]);
  return {ports[0], ports[1]};
}

// -- butler process -------------------------------------------------------------

/// The butler binary, started with fork/exec from the main thread (so that
/// PR_SET_PDEATHSIG fires only when this program ends), output to a log.
class butler_process {
public:
  butler_process(std::string binary, std::string config, std::string dir)
    : binary_(std::move(binary)),
      config_(std::move(config)),
      dir_(std::move(dir)),
      log_(dir_ + "/butler.log") {
    // nop
  }

  ~butler_process() {
    stop();
  }

  butler_process(const butler_process&) = delete;
  butler_process& operator=(const butler_process&) = delete;

  /// Starts butler; does not wait for it to be ready.
  void start() {
    int out = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                     0600);
    if (out < 0)
      fail("cannot open " + log_ + ": " + std::strerror(errno));
    std::vector<char*> argv{const_cast<char*>(binary_.c_str()),
                            const_cast<char*>("--config"),
                            const_cast<char*>(config_.c_str()), nullptr};
    auto parent = ::getpid();
    auto pid = ::fork();
    if (pid < 0) {
      ::close(out);
      fail(std::string{"fork failed: "} + std::strerror(errno));
    }
    if (pid == 0) {
      ::dup2(out, STDOUT_FILENO);
      ::dup2(out, STDERR_FILENO);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent || ::chdir(dir_.c_str()) != 0)
        ::_exit(126);
      // Its own process group: a Ctrl-C goes to this program, which then
      // stops butler in order.
      ::setpgid(0, 0);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out);
    pid_ = pid;
    exit_status_.reset();
  }

  /// Returns whether butler still runs; reaps it if it ended.
  bool alive() {
    if (pid_ <= 0)
      return false;
    int status = 0;
    auto rc = ::waitpid(pid_, &status, WNOHANG);
    if (rc == pid_) {
      exit_status_ = status;
      pid_ = -1;
      return false;
    }
    return true;
  }

  /// Stops butler (SIGTERM, SIGKILL after `grace`); returns a description
  /// of how it ended and how long that took.
  std::string stop(std::chrono::seconds grace = 30s) {
    if (!alive())
      return describe_exit();
    auto start = now_ns();
    ::kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (alive()) {
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        exit_status_ = status;
        pid_ = -1;
        return "killed after not stopping within "
               + std::to_string(grace.count()) + " s";
      }
      sleep_ms(10);
    }
    char buf[64];
    std::snprintf(buf, sizeof(buf), " after %.2f s",
                  static_cast<double>(now_ns() - start) / 1e9);
    return describe_exit() + buf;
  }

  /// Describes how butler ended ("exit code 0", "killed by signal 11").
  std::string describe_exit() const {
    if (!exit_status_)
      return "not started";
    auto status = *exit_status_;
    if (WIFEXITED(status))
      return "exit code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status))
      return "killed by signal " + std::to_string(WTERMSIG(status)) + " ("
             + strsignal(WTERMSIG(status)) + ")";
    return "status " + std::to_string(status);
  }

  int pid() const {
    return pid_;
  }

  const std::string& log_path() const {
    return log_;
  }

private:
  std::string binary_;
  std::string config_;
  std::string dir_;
  std::string log_;
  int pid_ = -1;
  std::optional<int> exit_status_;
};

// -- MQTT subscriber ------------------------------------------------------------

/// What arrived for one run, indexed by sequence number.
struct run_record {
  int run_id = -1;
  std::uint64_t n = 0;
  std::vector<std::int64_t> send_ns;   // from the payload
  std::vector<std::int64_t> plain_ns;  // arrival on the task failure topic
  std::vector<std::int64_t> full_ns;   // arrival on the full topic
  std::uint64_t duplicates = 0;
  std::uint64_t stray = 0;     // from another run (late) or unparsable
};

/// A minimal MQTT 3.1.1 subscriber at QoS 0 on a plain TCP socket, reading
/// on its own thread. Hand-written rather than Paho, because on two shared
/// cores every microsecond per message the measuring side spends is taken
/// from butler and the broker (Paho MQTTClient costs 4-6 us per message).
class subscriber {
public:
  ~subscriber() {
    stop();
  }

  /// Connects to the broker, subscribes to `topics` and starts reading.
  void start(uint16_t port, const std::vector<std::string>& topics) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0)
      fail(std::string{"subscriber socket: "} + std::strerror(errno));
    int buf = 8 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
      fail(std::string{"subscriber connect: "} + std::strerror(errno));
    auto id = "udp-bench-" + std::to_string(::getpid());
    // CONNECT: protocol "MQTT" level 4, clean session, keep-alive 0 (off).
    std::string body{"\x00\x04MQTT\x04\x02\x00\x00", 10};
    append_string(body, id);
    send_packet(0x10, body);
    // SUBSCRIBE, packet id 1, QoS 0 for each topic.
    body.assign("\x00\x01", 2);
    for (auto& t : topics) {
      append_string(body, t);
      body.push_back('\0');
    }
    send_packet(0x82, body);
    thread_ = std::thread{[this] { run(); }};
  }

  void stop() {
    stopping_ = true;
    if (thread_.joinable())
      thread_.join();
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

  /// Returns true once the broker acknowledged the connect and subscription.
  bool ready() const {
    return connected_ && subscribed_;
  }

  /// Returns the reason the reader stopped early (empty while it runs).
  std::string error() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return error_;
  }

  /// Starts counting arrivals for run `run_id` with `n` events.
  void begin_run(int run_id, std::uint64_t n, bool full) {
    std::lock_guard<std::mutex> guard{mtx_};
    rec_ = run_record{};
    rec_.run_id = run_id;
    rec_.n = n;
    rec_.send_ns.assign(n, 0);
    rec_.plain_ns.assign(n, 0);
    if (full)
      rec_.full_ns.assign(n, 0);
    matched_ = 0;
    last_arrival_ = 0;
  }

  /// Ends the current run and returns what arrived for it.
  run_record end_run() {
    std::lock_guard<std::mutex> guard{mtx_};
    auto result = std::move(rec_);
    rec_ = run_record{};
    return result;
  }

  /// Messages of the current run so far (duplicates excluded).
  std::uint64_t matched() const {
    return matched_.load(std::memory_order_relaxed);
  }

  /// Steady time of the last message of the current run (0: none yet).
  std::int64_t last_arrival() const {
    return last_arrival_.load(std::memory_order_relaxed);
  }

  /// Returns the CPU time the reader thread used so far, in seconds.
  double cpu_seconds() const {
    clockid_t id;
    timespec ts{};
    if (!thread_.joinable()
        || ::pthread_getcpuclockid(
             const_cast<std::thread&>(thread_).native_handle(), &id)
             != 0
        || ::clock_gettime(id, &ts) != 0)
      return 0;
    return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
  }

  /// Messages from no current run (warm-up, late ones) since the start.
  std::uint64_t stray_total() const {
    return stray_total_.load(std::memory_order_relaxed);
  }

private:
  static void append_string(std::string& out, const std::string& s) {
    out.push_back(static_cast<char>(s.size() >> 8));
    out.push_back(static_cast<char>(s.size() & 0xff));
    out += s;
  }

  void send_packet(unsigned char type, const std::string& body) {
    std::string packet(1, static_cast<char>(type));
    auto len = body.size();
    do {
      unsigned char byte = len % 128;
      len /= 128;
      if (len > 0)
        byte |= 0x80;
      packet.push_back(static_cast<char>(byte));
    } while (len > 0);
    packet += body;
    if (::send(fd_, packet.data(), packet.size(), MSG_NOSIGNAL)
        != static_cast<ssize_t>(packet.size()))
      fail(std::string{"subscriber send: "} + std::strerror(errno));
  }

  void set_error(std::string what) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (error_.empty())
      error_ = std::move(what);
  }

  void run() {
    std::vector<char> buf(4 << 20);
    std::size_t have = 0;
    // A blocking recv with a timeout (to see stopping_) rather than poll +
    // recv: one system call per wake-up.
    timeval tv{0, 100'000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (!stopping_) {
      auto n = ::recv(fd_, buf.data() + have, buf.size() - have, 0);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        continue;
      if (n <= 0) {
        set_error(n == 0 ? "the broker closed the subscriber's connection"
                         : std::string{"subscriber recv: "}
                             + std::strerror(errno));
        return;
      }
      auto stamp = now_ns();
      have += static_cast<std::size_t>(n);
      std::size_t pos = 0;
      {
        std::lock_guard<std::mutex> guard{mtx_};
        while (true) {
          // Fixed header: type byte, then the remaining length (1-4 bytes).
          std::size_t len = 0;
          std::size_t i = pos + 1;
          unsigned shift = 0;
          bool complete = false;
          while (i < have && shift <= 21) {
            auto byte = static_cast<unsigned char>(buf[i++]);
            len |= static_cast<std::size_t>(byte & 0x7f) << shift;
            shift += 7;
            if ((byte & 0x80) == 0) {
              complete = true;
              break;
            }
          }
          if (!complete || have - i < len)
            break;
          handle(static_cast<unsigned char>(buf[pos]), buf.data() + i, len,
                 stamp);
          pos = i + len;
        }
      }
      std::memmove(buf.data(), buf.data() + pos, have - pos);
      have -= pos;
      if (have == buf.size()) {
        set_error("subscriber got a packet larger than its buffer");
        return;
      }
    }
  }

  /// Reads decimal digits and one following '-' or the end of `in`.
  static bool take_number(std::string_view& in, std::uint64_t& out) {
    std::size_t i = 0;
    out = 0;
    while (i < in.size() && in[i] >= '0' && in[i] <= '9')
      out = out * 10 + static_cast<std::uint64_t>(in[i++] - '0');
    if (i == 0 || i > 19)
      return false;
    if (i < in.size() && in[i] != '-' && in[i] != '"')
      return false;
    in.remove_prefix(std::min(in.size(), i + 1));
    return true;
  }

  /// Handles one packet (called with mtx_ held).
  void handle(unsigned char type, const char* body, std::size_t len,
              std::int64_t stamp) {
    switch (type >> 4) {
      case 2: // CONNACK
        if (len >= 2 && body[1] == 0)
          connected_ = true;
        else
          error_ = "the broker refused the subscriber's connect";
        return;
      case 9: // SUBACK
        for (std::size_t i = 2; i < len; ++i)
          if (static_cast<unsigned char>(body[i]) == 0x80)
            error_ = "the broker refused the subscription";
        subscribed_ = true;
        return;
      case 3: // PUBLISH
        break;
      default:
        return;
    }
    if (len < 2)
      return;
    std::size_t topic_len = (static_cast<unsigned char>(body[0]) << 8)
                            | static_cast<unsigned char>(body[1]);
    std::size_t off = 2 + topic_len + (((type >> 1) & 3) != 0 ? 2 : 0);
    if (off > len)
      return;
    std::string_view topic{body + 2, topic_len};
    std::string_view payload{body + off, len - off};
    bool full = topic == full_topic;
    if (full) {
      auto at = payload.find("\"taskName\":\"");
      payload = at == std::string_view::npos ? std::string_view{}
                                             : payload.substr(at + 12);
    }
    // bench-<run>-<seq>-<send ns>
    std::uint64_t run = 0;
    std::uint64_t seq = 0;
    std::uint64_t sent = 0;
    bool ok = payload.substr(0, 6) == "bench-";
    payload.remove_prefix(ok ? 6 : payload.size());
    ok = ok && take_number(payload, run) && take_number(payload, seq)
         && take_number(payload, sent);
    if (!ok || run != static_cast<std::uint64_t>(rec_.run_id)
        || seq >= rec_.n) {
      ++rec_.stray;
      stray_total_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (full && rec_.full_ns.empty())
      return;
    auto& slot = full ? rec_.full_ns[seq] : rec_.plain_ns[seq];
    if (slot != 0) {
      ++rec_.duplicates;
      return;
    }
    slot = stamp;
    rec_.send_ns[seq] = static_cast<std::int64_t>(sent);
    matched_.fetch_add(1, std::memory_order_relaxed);
    last_arrival_.store(stamp, std::memory_order_relaxed);
  }

  int fd_ = -1;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> connected_{false};
  std::atomic<bool> subscribed_{false};
  mutable std::mutex mtx_;
  std::string error_;
  run_record rec_;
  std::atomic<std::uint64_t> matched_{0};
  std::atomic<std::int64_t> last_arrival_{0};
  std::atomic<std::uint64_t> stray_total_{0};
};

// -- RSS sampler ----------------------------------------------------------------

/// Samples butler's RSS every 100 ms on its own thread.
class rss_sampler {
public:
  rss_sampler() : thread_([this] { run(); }) {
    // nop
  }

  ~rss_sampler() {
    stopping_ = true;
    thread_.join();
  }

  void watch(int pid) {
    pid_ = pid;
  }

  /// Returns the peak since the last reset and starts a new one at `start`.
  long reset_peak(long start) {
    return peak_.exchange(start);
  }

  long peak() const {
    return peak_.load();
  }

  /// Returns the highest sample since the start.
  long overall_peak() const {
    return overall_.load();
  }

private:
  void run() {
    while (!stopping_) {
      if (int pid = pid_.load(); pid > 0) {
        auto rss = rss_kib(pid);
        long cur = peak_.load();
        while (rss > cur && !peak_.compare_exchange_weak(cur, rss)) {
          // nop
        }
        cur = overall_.load();
        while (rss > cur && !overall_.compare_exchange_weak(cur, rss)) {
          // nop
        }
      }
      sleep_ms(100);
    }
  }

  std::atomic<int> pid_{-1};
  std::atomic<long> peak_{0};
  std::atomic<long> overall_{0};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// -- sender ---------------------------------------------------------------------

struct send_result {
  std::uint64_t sent = 0;
  std::int64_t start_ns = 0;
  std::int64_t end_ns = 0;
  std::uint64_t max_behind = 0; // most datagrams behind schedule at a tick
  std::uint64_t errors = 0;
  std::string first_error;
};

/// Sends valid task-failure datagrams to butler on 127.0.0.1:`port`, or
/// (for the broker-only baseline) publishes what butler would publish
/// straight to the broker on `port`, over MQTT at QoS 0.
class sender {
public:
  enum class mode { udp, mqtt };

  sender(uint16_t port, mode m) : mode_(m) {
    fd_ = ::socket(AF_INET,
                   (m == mode::udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC,
                   0);
    if (fd_ < 0)
      fail(std::string{"sender socket: "} + std::strerror(errno));
    int buf = 4 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
      fail(std::string{"sender connect: "} + std::strerror(errno));
    if (m == mode::mqtt)
      mqtt_connect();
    std::random_device rd;
    session_ = rd();
    bufs_.resize(max_batch * slot_size);
    iov_.resize(max_batch);
    msgs_.resize(max_batch);
  }

  ~sender() {
    ::close(fd_);
  }

  sender(const sender&) = delete;
  sender& operator=(const sender&) = delete;

  /// Sends `n` datagrams of run `run_id` at `rate` per second: every
  /// ~100 us it sends (in sendmmsg batches of up to 64) as many as are due
  /// by then, so a late wake-up is caught up at once.
  send_result send(int run_id, double rate, std::uint64_t n) {
    send_result res;
    res.start_ns = now_ns();
    auto next = res.start_ns;
    while (res.sent < n && !interrupted) {
      auto now = now_ns();
      auto due = std::min<std::uint64_t>(
        n, static_cast<std::uint64_t>(
             static_cast<double>(now - res.start_ns) * rate / 1e9)
             + 1);
      if (due > res.sent)
        res.max_behind = std::max(res.max_behind, due - res.sent);
      while (res.sent < due) {
        auto k = std::min<std::uint64_t>(due - res.sent, max_batch);
        send_batch(run_id, res.sent, k, res);
        res.sent += k;
      }
      res.end_ns = now_ns();
      if (res.sent >= n)
        break;
      next += tick_ns;
      if (next < now)
        next = now; // fell behind: no burst of ticks to catch up
      timespec ts{static_cast<time_t>(next / 1'000'000'000),
                  static_cast<long>(next % 1'000'000'000)};
      ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
    }
    return res;
  }

  /// Sends the one datagram `seq` of run `run_id` now.
  void send_one(int run_id, std::uint64_t seq) {
    send_result ignored;
    send_batch(run_id, seq, 1, ignored);
  }

private:
  static constexpr std::size_t slot_size = 384;

  /// Sends CONNECT (clean session, keep-alive off) and waits for CONNACK.
  void mqtt_connect() {
    auto id = "udp-bench-pub-" + std::to_string(::getpid());
    std::string packet{"\x10", 1};
    packet.push_back(static_cast<char>(12 + id.size()));
    packet.append("\x00\x04MQTT\x04\x02\x00\x00", 10);
    packet.push_back('\0');
    packet.push_back(static_cast<char>(id.size()));
    packet += id;
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char ack[4];
    if (::send(fd_, packet.data(), packet.size(), MSG_NOSIGNAL)
          != static_cast<ssize_t>(packet.size())
        || ::recv(fd_, ack, sizeof(ack), MSG_WAITALL) != 4 || ack[0] != 0x20
        || ack[3] != 0)
      fail("the baseline publisher cannot connect to the broker");
  }

  /// Publishes task names `first` ... `first + k - 1` in one send().
  void publish_batch(int run_id, std::uint64_t first, std::uint64_t k,
                     send_result& res) {
    auto stamp = now_ns();
    std::string out;
    out.reserve(k * 80);
    const std::string topic = failure_topic;
    for (std::uint64_t i = 0; i < k; ++i) {
      char name[64];
      int len = std::snprintf(name, sizeof(name), "bench-%d-%" PRIu64 "-%" PRId64,
                              run_id, first + i, stamp);
      auto rest = 2 + topic.size() + static_cast<std::size_t>(len);
      out.push_back('\x30');
      out.push_back(static_cast<char>(rest < 128 ? rest : (rest % 128) | 0x80));
      if (rest >= 128)
        out.push_back(static_cast<char>(rest / 128));
      out.push_back('\0');
      out.push_back(static_cast<char>(topic.size()));
      out += topic;
      out.append(name, static_cast<std::size_t>(len));
    }
    for (std::size_t done = 0; done < out.size();) {
      auto rc = ::send(fd_, out.data() + done, out.size() - done, MSG_NOSIGNAL);
      if (rc < 0 && errno == EINTR)
        continue;
      if (rc <= 0) {
        res.errors += k;
        if (res.first_error.empty())
          res.first_error = std::strerror(errno);
        return;
      }
      done += static_cast<std::size_t>(rc);
    }
  }

  void send_batch(int run_id, std::uint64_t first, std::uint64_t k,
                  send_result& res) {
    if (mode_ == mode::mqtt) {
      publish_batch(run_id, first, k, res);
      return;
    }
    auto stamp = now_ns();
    for (std::uint64_t i = 0; i < k; ++i) {
      auto seq = first + i;
      char* p = bufs_.data() + i * slot_size;
      int len = std::snprintf(
        p, slot_size,
        "/scheduler-reload-failed/;bench-host;bench-%d-%" PRIu64 "-%" PRId64
        ";Bench app;CORP\\sa_bench;e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e;"
        "7552d9fc-d1bb-4975-9a38-18357de531ea;2024-05-01 10:11:12,123;ERROR;"
        "%08x-%04x-4000-8000-%012" PRIx64 ";Max retries reached",
        run_id, seq, stamp, session_, static_cast<unsigned>(run_id & 0xffff),
        seq);
      iov_[i] = iovec{p, static_cast<std::size_t>(len)};
      msgs_[i] = mmsghdr{};
      msgs_[i].msg_hdr.msg_iov = &iov_[i];
      msgs_[i].msg_hdr.msg_iovlen = 1;
    }
    std::size_t done = 0;
    while (done < k) {
      auto rc = ::sendmmsg(fd_, msgs_.data() + done,
                           static_cast<unsigned>(k - done), 0);
      if (rc < 0) {
        if (errno == EINTR)
          continue;
        // ECONNREFUSED: butler's socket is gone; the datagram is lost.
        ++res.errors;
        if (res.first_error.empty())
          res.first_error = std::strerror(errno);
        ++done;
        continue;
      }
      done += static_cast<std::size_t>(rc);
    }
  }

  mode mode_;
  int fd_ = -1;
  unsigned session_ = 0;
  std::vector<char> bufs_;
  std::vector<iovec> iov_;
  std::vector<mmsghdr> msgs_;
};

// -- options ----------------------------------------------------------------------

struct options {
  std::string butler;
  std::vector<long> rates{10'000, 25'000, 50'000, 75'000, 100'000};
  double seconds = 5;
  int runs = 1;
  bool full = false;
  bool fresh = false;
  int quiet_ms = 1000;
  bool keep = false;
  bool baseline = false;
  bool timeline = false;
  bool no_echo = false;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "udp_bench: %s\n"
               "usage: udp_bench --butler PATH [--rates 10000,25000,...] "
               "[--seconds 5] [--runs 1] [--full] [--fresh] "
               "[--quiet-ms 1000] [--baseline] [--timeline] [--no-echo] "
               "[--keep]\n",
               why);
  std::exit(2);
}

options parse_options(int argc, char** argv) {
  options opts;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        usage((arg + " needs a value").c_str());
      return argv[++i];
    };
    try {
      if (arg == "--butler") {
        opts.butler = value();
      } else if (arg == "--rates") {
        opts.rates.clear();
        std::istringstream in{value()};
        std::string item;
        while (std::getline(in, item, ','))
          opts.rates.push_back(std::stol(item));
      } else if (arg == "--seconds") {
        opts.seconds = std::stod(value());
      } else if (arg == "--runs") {
        opts.runs = std::stoi(value());
      } else if (arg == "--quiet-ms") {
        opts.quiet_ms = std::stoi(value());
      } else if (arg == "--full") {
        opts.full = true;
      } else if (arg == "--fresh") {
        opts.fresh = true;
      } else if (arg == "--keep") {
        opts.keep = true;
      } else if (arg == "--baseline") {
        opts.baseline = true;
      } else if (arg == "--timeline") {
        opts.timeline = true;
      } else if (arg == "--no-echo") {
        opts.no_echo = true;
      } else if (arg == "--help" || arg == "-h") {
        usage("end-to-end benchmark of butler's UDP -> MQTT path");
      } else {
        usage(("unknown argument " + arg).c_str());
      }
    } catch (const std::logic_error&) {
      usage(("bad value for " + arg).c_str());
    }
  }
  if (opts.butler.empty())
    usage("--butler PATH is required");
  if (opts.rates.empty()
      || std::any_of(opts.rates.begin(), opts.rates.end(),
                     [](long r) { return r <= 0; }))
    usage("--rates needs positive numbers");
  if (opts.seconds <= 0 || opts.runs < 1 || opts.quiet_ms < 100)
    usage("--seconds > 0, --runs >= 1 and --quiet-ms >= 100 are required");
  return opts;
}

// -- one measurement ------------------------------------------------------------

struct run_result {
  long rate = 0;
  double achieved = 0;       // events/s sent
  std::uint64_t sent = 0;
  std::uint64_t received = 0; // events with all their messages
  std::uint64_t lost = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t late = 0; // arrived for this run after it ended (next run)
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
  long rss_before = 0; // KiB
  long rss_peak = 0;
  long rss_after = 0;
  double butler_us = 0; // CPU per event sent
  double broker_us = 0;
  double sender_us = 0;
  double subscriber_us = 0;
  double steal_pct = 0;
  double load = 0;
  double behind_ms = 0; // the sender's worst lag behind schedule
  double drain_ms = 0;  // last arrival after the last send
  std::uint64_t send_errors = 0;
  // Loss breakdown.
  std::uint64_t kernel_drops = 0;     // butler's task socket, exact
  std::uint64_t snmp_rcvbuf = 0;      // system-wide
  std::uint64_t ingest_shed_log = 0;  // udp-ingest "shed N events", summed
  std::uint64_t mqtt_shed_log = 0;    // growth of mqtt-link "N shed so far"
  std::uint64_t router_drop_lines = 0;
  std::uint64_t broker_drop_lines = 0; // mosquitto "being dropped" notices
  std::vector<std::string> butler_lines; // new warnings/errors (first few)
  std::uint64_t butler_line_count = 0;
  bool baseline = false; // straight to the broker, without butler
  std::vector<std::string> timeline;
};

std::string mib(long kib) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", static_cast<double>(kib) / 1024.0);
  return buf;
}

std::string thousands(double v) {
  auto n = static_cast<long long>(v + 0.5);
  auto s = std::to_string(n < 0 ? -n : n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<std::size_t>(i), ",");
  return (n < 0 ? "-" : "") + s;
}

/// Everything that lives for the whole benchmark.
class bench {
public:
  explicit bench(options opts) : opts_(std::move(opts)) {
    // nop
  }

  ~bench() {
    butler_.reset();
    sub_.stop();
    broker_.stop();
    if (!dir_.empty()) {
      if (opts_.keep)
        std::printf("scratch directory kept: %s\n", dir_.c_str());
      else
        butler::test::remove_tree(dir_);
    }
  }

  int run() {
    auto program = butler::test::find_program(opts_.butler);
    if (program.empty())
      fail("butler binary not found or not executable: " + opts_.butler);
    opts_.butler = program;
    if (butler::test::find_program("mosquitto").empty())
      fail("mosquitto not found (apt-get install mosquitto)");
    dir_ = butler::test::make_temp_dir("udp-bench-");
    if (!broker_.start())
      fail("cannot start mosquitto: " + broker_.last_error());
    broker_pid_ = find_child("mosquitto");
    std::vector<std::string> topics{failure_topic};
    if (opts_.full)
      topics.emplace_back(full_topic);
    sub_.start(broker_.port(), topics);
    wait_for([&] { return sub_.ready(); }, 10s,
             "the subscriber to connect and subscribe");
    rest_port_ = butler::test::free_tcp_port();
    std::tie(udp_port_, session_port_) = free_udp_ports();
    write_config();
    print_header();
    snmp_start_ = udp_rcvbuf_errors();
    if (!opts_.fresh)
      start_butler();
    std::vector<std::vector<run_result>> all;
    for (auto rate : opts_.rates) {
      all.push_back(measure_rate(rate));
      if (interrupted)
        break;
    }
    if (!interrupted)
      summarize(all);
    if (butler_) {
      auto how = butler_->stop();
      std::printf("butler stopped: %s\n", how.c_str());
      report_new_log_lines();
    }
    std::printf("system-wide Udp RcvbufErrors during the benchmark: %s "
                "(all sockets of the host, not only butler's)\n",
                thousands(static_cast<double>(udp_rcvbuf_errors()
                                              - snmp_start_))
                  .c_str());
    std::printf("load average at the end: %s\n",
                tail_lines(read_file("/proc/loadavg"), 1).c_str());
    return interrupted ? 130 : 0;
  }

private:
  template <class Pred>
  void wait_for(Pred pred, std::chrono::milliseconds timeout,
                const std::string& what) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (interrupted)
        fail("interrupted");
      if (auto err = sub_.error(); !err.empty())
        fail(err);
      if (butler_ && !butler_->alive())
        fail("butler ended (" + butler_->describe_exit() + ") while waiting for "
             + what + "; its log:\n"
             + tail_lines(read_file(butler_->log_path()), 30));
      if (std::chrono::steady_clock::now() >= deadline)
        fail("timed out waiting for " + what
             + (butler_ ? "; butler's log:\n"
                            + tail_lines(read_file(butler_->log_path()), 30)
                        : std::string{}));
      sleep_ms(10);
    }
  }

  void write_config() {
    config_ = dir_ + "/butler.json";
    std::ofstream out{config_};
    // JSON is YAML.
    out << "{\"Butler\": {\n"
        << "  \"logLevel\": \"warn\",\n"
        << "  \"restServerConfig\": {\"enable\": true, \"serverHost\": "
           "\"127.0.0.1\", \"serverPort\": "
        << rest_port_ << "},\n"
        << "  \"restServerEndpointsEnable\": {\"butlerping\": true},\n"
        << "  \"mqttConfig\": {\"enable\": true, \"brokerHost\": \"127.0.0.1\", "
           "\"brokerPort\": "
        << broker_.port()
        << ", \"reconnectMinMs\": 50, \"reconnectMaxMs\": 500, "
        << (opts_.no_echo
              ? "\"subscriptionRootTopic\": \"butler-bench/in/#\", "
                "\"taskStartTopic\": \"butler-bench/in/start_task\", "
              : "")
        << "\"taskFailureSendFull\": " << (opts_.full ? "true" : "false")
        << "},\n"
        << "  \"udpServerConfig\": {\"enable\": true, \"serverHost\": "
           "\"127.0.0.1\", \"portTaskFailure\": "
        << udp_port_ << ", \"portSessionConnectionEvents\": " << session_port_
        << "}\n"
        << "}}\n";
    if (!out)
      fail("cannot write " + config_);
  }

  void print_header() {
    auto rmem = tail_lines(read_file("/proc/sys/net/core/rmem_max"), 1);
    rmem.erase(std::remove(rmem.begin(), rmem.end(), '\n'), rmem.end());
    std::printf("udp_bench: butler %s\n", opts_.butler.c_str());
    std::printf("  %u cores, load average %.2f, net.core.rmem_max %s, "
                "running as uid %d\n",
                std::thread::hardware_concurrency(), load_average(),
                rmem.c_str(), static_cast<int>(::geteuid()));
    std::printf("  %g s per run, %d run(s) per rate, %s butler, "
                "taskFailureSendFull %s, a run ends %d ms after the last "
                "arrival\n",
                opts_.seconds, opts_.runs,
                opts_.fresh ? "a fresh" : "one", opts_.full ? "on" : "off",
                opts_.quiet_ms);
    std::printf("  subscriptionRootTopic %s\n",
                opts_.no_echo
                  ? "butler-bench/in/# (--no-echo: butler does not get its "
                    "own events back)"
                  : "qliksense/# (the default: butler also receives every "
                    "event it publishes)");
    if (opts_.baseline)
      std::printf("  \"broker only\" rows: this program publishes the same "
                  "rate straight to mosquitto (no butler)\n");
    std::printf("  mosquitto on :%u (max_queued_messages 100000), butler "
                "REST :%u, UDP :%u\n\n",
                broker_.port(), rest_port_, udp_port_);
    std::printf("%8s %9s %10s %8s %4s %7s %7s %8s %21s %21s %6s %5s\n",
                "rate/s", "sent/s", "received", "lost", "dup", "p50 ms",
                "p99 ms", "max ms", "RSS MiB before/peak/after",
                "CPU us/event b/m/s/r", "steal", "load");
    std::printf("  (CPU per event sent: butler / mosquitto / this program's "
                "sender / its subscriber)\n");
    std::fflush(stdout);
  }

  void start_butler() {
    butler_ = std::make_unique<butler_process>(opts_.butler, config_, dir_);
    butler_->start();
    auto t0 = now_ns();
    wait_for(
      [&] {
        return butler::test::http_request(rest_port_, "GET", "/v4/butlerping",
                                          {}, 1s)
                 .status
               == 200;
      },
      20s, "butler to answer GET /v4/butlerping");
    auto ping_ms = static_cast<double>(now_ns() - t0) / 1e6;
    // Warm-up: the first event through proves UDP and MQTT are both up.
    sender warm{udp_port_, sender::mode::udp};
    sub_.begin_run(0, 1000, opts_.full);
    auto deadline = now_ns() + 20'000'000'000LL;
    std::uint64_t sent = 0;
    while (sub_.matched() == 0) {
      if (interrupted)
        fail("interrupted");
      if (!butler_->alive())
        fail("butler ended (" + butler_->describe_exit()
             + ") during start-up; its log:\n"
             + tail_lines(read_file(butler_->log_path()), 30));
      if (now_ns() > deadline)
        fail("no event reached the subscriber within 20 s of butler's start;"
             " butler's log:\n"
             + tail_lines(read_file(butler_->log_path()), 30));
      // A new execution id each time: until UDP and MQTT are both up, a
      // datagram may be refused, or held in butler's MQTT backlog.
      if (sent < 1000)
        warm.send_one(0, sent++);
      sleep_ms(20);
    }
    auto ready_ms = static_cast<double>(now_ns() - t0) / 1e6;
    sub_.end_run();
    sleep_ms(300);
    rss_.watch(butler_->pid());
    idle_rss_ = rss_kib(butler_->pid());
    rss_.reset_peak(idle_rss_);
    std::printf("  butler pid %d answered ping after %.0f ms, first event at "
                "the subscriber after %.0f ms, RSS %s MiB\n",
                butler_->pid(), ping_ms, ready_ms, mib(idle_rss_).c_str());
    // Start-up warnings (the log level is warn), then only new lines.
    mqtt_shed_seen_ = 0;
    report_new_log_lines();
    std::fflush(stdout);
  }

  std::vector<run_result> measure_rate(long rate) {
    std::vector<run_result> results;
    for (int r = 0; r < opts_.runs && !interrupted; ++r) {
      if (opts_.baseline)
        print_row(measure(rate, true), "broker only");
      if (opts_.fresh)
        start_butler();
      results.push_back(measure(rate, false));
      print_row(results.back(),
                interrupted ? "interrupted: arrivals not waited for"
                            : opts_.runs > 1 ? "run" : "");
      if (opts_.fresh) {
        auto how = butler_->stop();
        if (how.rfind("exit code 0", 0) != 0)
          std::printf("  butler stopped: %s\n", how.c_str());
        butler_.reset();
        rss_.watch(-1);
      }
    }
    if (results.size() > 1)
      print_row(median(results), "median");
    return results;
  }

  /// Measures one run at `rate`: through butler, or with `baseline` straight
  /// from this program to the broker.
  run_result measure(long rate, bool baseline) {
    if (!baseline && !butler_->alive())
      fail("butler is gone (" + butler_->describe_exit() + "); its log:\n"
           + tail_lines(read_file(butler_->log_path()), 30));
    run_result res;
    res.rate = rate;
    res.baseline = baseline;
    int pid = baseline ? -1 : butler_->pid();
    auto n = static_cast<std::uint64_t>(static_cast<double>(rate)
                                        * opts_.seconds);
    int run_id = ++run_counter_;
    // Before.
    res.load = load_average();
    res.rss_before = baseline ? 0 : rss_kib(pid);
    rss_.reset_peak(res.rss_before);
    auto drops0 = socket_drops(udp_port_).value_or(0);
    auto snmp0 = udp_rcvbuf_errors();
    auto butler_cpu0 = baseline ? 0.0 : cpu_seconds(pid);
    auto broker_cpu0 = broker_pid_ > 0 ? cpu_seconds(broker_pid_) : 0.0;
    auto own_cpu0 = own_cpu_seconds();
    auto sub_cpu0 = sub_.cpu_seconds();
    auto steal0 = cpu_steal();
    auto stray0 = sub_.stray_total();
    // Send, then wait until arrivals stop.
    bool full = opts_.full && !baseline;
    sub_.begin_run(run_id, n, full);
    sender snd{baseline ? broker_.port() : udp_port_,
               baseline ? sender::mode::mqtt : sender::mode::udp};
    auto sres = snd.send(run_id, static_cast<double>(rate), n);
    std::uint64_t expected = n * (full ? 2 : 1);
    auto quiet = std::int64_t{opts_.quiet_ms} * 1'000'000;
    const std::int64_t max_wait = 60'000'000'000LL;
    while (!interrupted) {
      auto now = now_ns();
      if (sub_.matched() >= expected)
        break;
      auto last = std::max(sub_.last_arrival(), sres.end_ns);
      if (now - last >= quiet)
        break;
      if (now - sres.end_ns >= max_wait) {
        std::printf("  (still receiving 60 s after sending ended)\n");
        break;
      }
      if (!baseline && !butler_->alive())
        break;
      if (auto err = sub_.error(); !err.empty())
        fail(err);
      sleep_ms(10);
    }
    auto rec = sub_.end_run();
    auto butler_cpu1 = baseline ? 0.0 : cpu_seconds(pid);
    auto broker_cpu1 = broker_pid_ > 0 ? cpu_seconds(broker_pid_) : 0.0;
    auto own_cpu1 = own_cpu_seconds();
    auto sub_cpu1 = sub_.cpu_seconds();
    auto steal1 = cpu_steal();
    // Give butler a second to drain before the next run.
    for (int i = 0; i < 10 && !interrupted; ++i)
      sleep_ms(100);
    res.rss_after = baseline ? 0 : rss_kib(pid);
    res.rss_peak = baseline ? 0 : std::max(rss_.peak(), res.rss_after);
    res.kernel_drops = socket_drops(udp_port_).value_or(0) - drops0;
    res.snmp_rcvbuf = udp_rcvbuf_errors() - snmp0;
    late_total_ += sub_.stray_total() - stray0 - rec.stray;
    // Figures.
    res.sent = sres.sent;
    res.send_errors = sres.errors;
    if (!sres.first_error.empty())
      std::printf("  sender: %" PRIu64 " send errors, first: %s\n",
                  sres.errors, sres.first_error.c_str());
    auto span = static_cast<double>(sres.end_ns - sres.start_ns) / 1e9;
    res.achieved = span > 0 ? static_cast<double>(sres.sent) / span : 0;
    res.behind_ms = static_cast<double>(sres.max_behind) * 1e3
                    / static_cast<double>(rate);
    res.duplicates = rec.duplicates;
    res.late = rec.stray;
    std::vector<double> lat;
    lat.reserve(rec.n);
    std::int64_t last_arrival = 0;
    // Per second of the sending schedule, for --timeline.
    auto seconds = static_cast<std::size_t>(std::ceil(opts_.seconds));
    std::vector<std::vector<double>> per_second(seconds);
    std::vector<std::uint64_t> sent_per_second(seconds);
    for (std::uint64_t i = 0; i < rec.n && i < sres.sent; ++i) {
      auto second = std::min<std::size_t>(
        seconds - 1, static_cast<std::size_t>(i / static_cast<std::uint64_t>(
                                                     rate)));
      ++sent_per_second[second];
      auto arrived = rec.plain_ns[i];
      if (full)
        arrived = (arrived == 0 || rec.full_ns[i] == 0)
                    ? 0
                    : std::max(arrived, rec.full_ns[i]);
      if (arrived == 0)
        continue;
      last_arrival = std::max(last_arrival, arrived);
      lat.push_back(static_cast<double>(arrived - rec.send_ns[i]) / 1e6);
      if (opts_.timeline)
        per_second[second].push_back(lat.back());
    }
    for (std::size_t sec = 0; opts_.timeline && sec < seconds; ++sec) {
      auto& v = per_second[sec];
      std::sort(v.begin(), v.end());
      char line[200];
      std::snprintf(line, sizeof(line),
                    "second %zu: sent %s, lost %s, p50 %s ms, p99 %s ms, "
                    "max %s ms",
                    sec + 1,
                    thousands(static_cast<double>(sent_per_second[sec])).c_str(),
                    thousands(static_cast<double>(sent_per_second[sec]
                                                  - v.size()))
                      .c_str(),
                    fmt_ms(percentile(v, 0.50)).c_str(),
                    fmt_ms(percentile(v, 0.99)).c_str(),
                    fmt_ms(v.empty() ? 0 : v.back()).c_str());
      res.timeline.emplace_back(line);
    }
    res.received = lat.size();
    res.lost = res.sent - res.received;
    if (!lat.empty()) {
      std::sort(lat.begin(), lat.end());
      res.p50_ms = percentile(lat, 0.50);
      res.p99_ms = percentile(lat, 0.99);
      res.max_ms = lat.back();
      res.drain_ms = static_cast<double>(last_arrival - sres.end_ns) / 1e6;
    }
    auto sent_d = static_cast<double>(std::max<std::uint64_t>(res.sent, 1));
    res.butler_us = (butler_cpu1 - butler_cpu0) * 1e6 / sent_d;
    res.broker_us = (broker_cpu1 - broker_cpu0) * 1e6 / sent_d;
    res.subscriber_us = (sub_cpu1 - sub_cpu0) * 1e6 / sent_d;
    // The rest of this process: the sender and the RSS sampler.
    res.sender_us = (own_cpu1 - own_cpu0) * 1e6 / sent_d - res.subscriber_us;
    auto dtotal = steal1.second - steal0.second;
    res.steal_pct = dtotal > 0 ? 100.0
                                   * static_cast<double>(steal1.first
                                                         - steal0.first)
                                   / static_cast<double>(dtotal)
                               : 0;
    if (baseline)
      return res;
    scan_logs(res);
    if (!butler_->alive()) {
      print_row(res, "");
      fail("butler ended during the run (" + butler_->describe_exit()
           + "); its log:\n" + tail_lines(read_file(butler_->log_path()), 30));
    }
    return res;
  }

  /// Reads butler's and mosquitto's log lines written since the last scan.
  void scan_logs(run_result& res) {
    auto text = read_from(butler_->log_path(), log_offset_);
    std::istringstream in{text};
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty())
        continue;
      ++res.butler_line_count;
      if (res.butler_lines.size() < 6)
        res.butler_lines.push_back(line.substr(0, 220));
      if (auto at = line.find("udp-ingest shed "); at != std::string::npos)
        res.ingest_shed_log += std::strtoull(line.c_str() + at + 16, nullptr,
                                             10);
      if (auto at = line.find(" shed so far)"); at != std::string::npos
                                                && line.find("mqtt-link")
                                                     != std::string::npos) {
        auto open = line.rfind('(', at);
        auto total = std::strtoull(line.c_str() + open + 1, nullptr, 10);
        if (total > mqtt_shed_seen_) {
          res.mqtt_shed_log += total - mqtt_shed_seen_;
          mqtt_shed_seen_ = total;
        }
      }
      if (line.find("dropped held events") != std::string::npos)
        ++res.router_drop_lines;
    }
    auto broker_text = read_from(broker_.dir() + "/mosquitto.log",
                                 broker_log_offset_);
    std::size_t pos = 0;
    while ((pos = broker_text.find("being dropped", pos)) != std::string::npos) {
      ++res.broker_drop_lines;
      ++pos;
    }
  }

  /// Prints (the first few) butler log lines written since the last scan.
  void report_new_log_lines() {
    run_result dummy;
    if (butler_)
      scan_logs(dummy);
    for (auto& l : dummy.butler_lines)
      std::printf("    butler: %s\n", l.c_str());
    if (dummy.butler_line_count > dummy.butler_lines.size())
      std::printf("    butler: (%" PRIu64 " more lines)\n",
                  dummy.butler_line_count - dummy.butler_lines.size());
  }

  /// Returns the nearest-rank percentile `p` of the sorted `v` (0 if empty).
  static double percentile(const std::vector<double>& v, double p) {
    if (v.empty())
      return 0;
    auto idx = static_cast<std::size_t>(
      std::ceil(p * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, idx == 0 ? 0 : idx - 1)];
  }

  static std::string fmt_ms(double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), v < 10 ? "%.2f" : "%.1f", v);
    return buf;
  }

  void print_row(const run_result& r, const char* label) {
    char rss[64] = "-";
    if (!r.baseline)
      std::snprintf(rss, sizeof(rss), "%s/%s/%s", mib(r.rss_before).c_str(),
                    mib(r.rss_peak).c_str(), mib(r.rss_after).c_str());
    char cpu[64];
    if (r.baseline)
      std::snprintf(cpu, sizeof(cpu), "-/%.1f/%.1f/%.1f", r.broker_us,
                    r.sender_us, r.subscriber_us);
    else
      std::snprintf(cpu, sizeof(cpu), "%.1f/%.1f/%.1f/%.1f", r.butler_us,
                    r.broker_us, r.sender_us, r.subscriber_us);
    std::printf("%8s %9s %10s %8s %4s %7s %7s %8s %21s %21s %5.1f%% %5.2f%s%s\n",
                thousands(static_cast<double>(r.rate)).c_str(),
                thousands(r.achieved).c_str(),
                thousands(static_cast<double>(r.received)).c_str(),
                thousands(static_cast<double>(r.lost)).c_str(),
                thousands(static_cast<double>(r.duplicates)).c_str(),
                fmt_ms(r.p50_ms).c_str(), fmt_ms(r.p99_ms).c_str(),
                fmt_ms(r.max_ms).c_str(), rss, cpu, r.steal_pct, r.load,
                *label ? "  " : "", label);
    if (std::string{label} != "median") {
      std::printf("%8s sender at most %.1f ms behind schedule; last arrival "
                  "%.0f ms after the last send",
                  "", r.behind_ms, std::max(0.0, r.drain_ms));
      if (r.late > 0)
        std::printf("; %" PRIu64 " stray messages", r.late);
      std::printf("\n");
      for (auto& line : r.timeline)
        std::printf("%8s %s\n", "", line.c_str());
      if (r.lost > 0 && !r.baseline && !interrupted)
        print_breakdown(r, "        ");
      if (r.butler_line_count > 0) {
        std::printf("%8s butler logged %" PRIu64 " warning/error lines, "
                    "first ones:\n",
                    "", r.butler_line_count);
        for (auto& l : r.butler_lines)
          std::printf("           %s\n", l.c_str());
      }
    }
    std::fflush(stdout);
  }

  static void print_breakdown(const run_result& r, const char* indent) {
    auto explained = r.kernel_drops + r.ingest_shed_log + r.mqtt_shed_log;
    std::printf(
      "%sloss %s of %s (%.2f%%): kernel drops at butler's UDP socket %s "
      "(system-wide RcvbufErrors %s), udp-ingest shed %s (from its log, "
      "throttled to a line per 10 s: a lower bound), mqtt-link shed ~%s "
      "(from its log, 1 line per 1000), unexplained %s (broker queue, "
      "subscriber, unlogged shedding)%s%s\n",
      indent, thousands(static_cast<double>(r.lost)).c_str(),
      thousands(static_cast<double>(r.sent)).c_str(),
      100.0 * static_cast<double>(r.lost)
        / static_cast<double>(std::max<std::uint64_t>(r.sent, 1)),
      thousands(static_cast<double>(r.kernel_drops)).c_str(),
      thousands(static_cast<double>(r.snmp_rcvbuf)).c_str(),
      thousands(static_cast<double>(r.ingest_shed_log)).c_str(),
      thousands(static_cast<double>(r.mqtt_shed_log)).c_str(),
      thousands(r.lost > explained ? static_cast<double>(r.lost - explained)
                                   : 0.0)
        .c_str(),
      r.broker_drop_lines > 0 ? "; mosquitto logged dropping messages to a "
                                "client"
                              : "",
      r.router_drop_lines > 0 ? "; event-router dropped held events" : "");
  }

  template <class T, class F>
  static T median_of(const std::vector<run_result>& rs, F f) {
    std::vector<T> v;
    for (auto& r : rs)
      v.push_back(f(r));
    std::sort(v.begin(), v.end());
    auto mid = v.size() / 2;
    if (v.size() % 2 == 1)
      return v[mid];
    return static_cast<T>((v[mid - 1] + v[mid]) / 2);
  }

  static run_result median(const std::vector<run_result>& rs) {
    run_result m;
    m.rate = rs.front().rate;
#define BENCH_MEDIAN(field)                                                    \
  m.field = median_of<decltype(m.field)>(rs,                                   \
                                         [](const run_result& r) {             \
                                           return r.field;                     \
                                         })
    BENCH_MEDIAN(achieved);
    BENCH_MEDIAN(sent);
    BENCH_MEDIAN(received);
    BENCH_MEDIAN(lost);
    BENCH_MEDIAN(duplicates);
    BENCH_MEDIAN(p50_ms);
    BENCH_MEDIAN(p99_ms);
    BENCH_MEDIAN(max_ms);
    BENCH_MEDIAN(rss_before);
    BENCH_MEDIAN(rss_peak);
    BENCH_MEDIAN(rss_after);
    BENCH_MEDIAN(butler_us);
    BENCH_MEDIAN(broker_us);
    BENCH_MEDIAN(sender_us);
    BENCH_MEDIAN(subscriber_us);
    BENCH_MEDIAN(steal_pct);
    BENCH_MEDIAN(load);
    BENCH_MEDIAN(kernel_drops);
    BENCH_MEDIAN(snmp_rcvbuf);
    BENCH_MEDIAN(ingest_shed_log);
    BENCH_MEDIAN(mqtt_shed_log);
#undef BENCH_MEDIAN
    // Per-field medians need not add up; received follows from the others.
    m.received = m.sent > m.lost ? m.sent - m.lost : 0;
    return m;
  }

  void summarize(std::vector<std::vector<run_result>>& all) {
    std::printf("\n");
    long best = 0;
    const std::vector<run_result>* best_runs = nullptr;
    for (auto& runs : all) {
      bool clean = !runs.empty()
                   && std::all_of(runs.begin(), runs.end(),
                                  [](const run_result& r) {
                                    return r.lost == 0 && r.send_errors == 0;
                                  });
      if (clean && runs.front().rate > best) {
        best = runs.front().rate;
        best_runs = &runs;
      }
    }
    if (best_runs == nullptr) {
      std::printf("highest rate with zero loss: none of the rates tried\n");
    } else {
      auto m = median(*best_runs);
      std::printf("highest rate with zero loss: %s events/s (no loss in "
                  "%zu of %zu runs); there p50 %s ms, p99 %s ms, max %s ms%s\n",
                  thousands(static_cast<double>(best)).c_str(),
                  best_runs->size(), best_runs->size(),
                  fmt_ms(m.p50_ms).c_str(), fmt_ms(m.p99_ms).c_str(),
                  fmt_ms(m.max_ms).c_str(),
                  best_runs->size() > 1 ? " (medians)" : "");
      // Twice that rate: measured already, or measured now.
      auto twice = best * 2;
      std::vector<run_result> at_twice;
      for (auto& runs : all)
        if (!runs.empty() && runs.front().rate == twice)
          at_twice = runs;
      if (at_twice.empty() && !interrupted) {
        std::printf("measuring twice that rate:\n");
        at_twice = measure_rate(twice);
      }
      if (!at_twice.empty()) {
        auto t = median(at_twice);
        std::printf("at twice that rate (%s events/s%s): sent %s/s, "
                    "received %s, p50 %s ms, p99 %s ms, RSS before %s MiB, "
                    "peak %s MiB, after %s MiB\n",
                    thousands(static_cast<double>(twice)).c_str(),
                    at_twice.size() > 1 ? ", medians" : "",
                    thousands(t.achieved).c_str(),
                    thousands(static_cast<double>(t.received)).c_str(),
                    fmt_ms(t.p50_ms).c_str(), fmt_ms(t.p99_ms).c_str(),
                    mib(t.rss_before).c_str(), mib(t.rss_peak).c_str(),
                    mib(t.rss_after).c_str());
        if (t.lost > 0)
          print_breakdown(t, "  ");
        else
          std::printf("  no loss at twice that rate either\n");
      }
    }
    if (!opts_.fresh && butler_) {
      std::printf("butler RSS across the whole benchmark: idle %s MiB after "
                  "start, peak %s MiB, at the end %s MiB\n",
                  mib(idle_rss_).c_str(), mib(rss_.overall_peak()).c_str(),
                  mib(rss_kib(butler_->pid())).c_str());
    }
    if (late_total_ > 0)
      std::printf("%" PRIu64 " messages arrived after their run had ended "
                  "(counted as lost there)\n",
                  late_total_);
  }

  options opts_;
  std::string dir_;
  std::string config_;
  butler::test::mosquitto_broker broker_;
  int broker_pid_ = -1;
  subscriber sub_;
  rss_sampler rss_;
  std::unique_ptr<butler_process> butler_;
  uint16_t rest_port_ = 0;
  uint16_t udp_port_ = 0;
  uint16_t session_port_ = 0;
  int run_counter_ = 0;
  long idle_rss_ = 0;
  std::size_t log_offset_ = 0;
  std::size_t broker_log_offset_ = 0;
  unsigned long long mqtt_shed_seen_ = 0;
  unsigned long long snmp_start_ = 0;
  std::uint64_t late_total_ = 0;
};

} // namespace

int main(int argc, char** argv) {
  auto opts = parse_options(argc, argv);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  try {
    bench b{std::move(opts)};
    return b.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "udp_bench: %s\n", e.what());
    return 1;
  }
}
