#include "test/support/mosquitto_broker.hpp"

#include "test/support/free_port.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace butler::test {

namespace {

constexpr auto poll_interval = std::chrono::milliseconds{10};
constexpr auto term_grace = std::chrono::seconds{2};

/// Returns whether a TCP connect to 127.0.0.1:`port` succeeds.
bool accepts_connections(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
            == 0;
  ::close(fd);
  return ok;
}

/// Returns the last `max` bytes of the file at `path` (empty if unreadable).
std::string file_tail(const std::string& path, std::size_t max = 2000) {
  std::ifstream in{path};
  std::stringstream buf;
  buf << in.rdbuf();
  auto text = buf.str();
  if (text.size() > max)
    text = "..." + text.substr(text.size() - max);
  return text;
}

/// Reaps `pid` if it has exited; returns true then.
bool reaped(int pid) {
  int status = 0;
  auto rc = ::waitpid(pid, &status, WNOHANG);
  return rc == pid || (rc < 0 && errno == ECHILD);
}

} // namespace

mosquitto_broker::mosquitto_broker() : mosquitto_broker(broker_options{}) {
  // nop
}

mosquitto_broker::mosquitto_broker(broker_options opts)
  : opts_(std::move(opts)),
    port_(free_tcp_port()),
    dir_(make_temp_dir("butler-mosquitto-")) {
  // nop
}

mosquitto_broker::~mosquitto_broker() {
  stop();
  remove_tree(dir_);
}

bool mosquitto_broker::write_config() {
  std::ofstream conf{dir_ + "/mosquitto.conf", std::ios::trunc};
  conf << "listener " << port_ << " 127.0.0.1\n";
  if (!opts_.cert_file.empty()) {
    if (!opts_.ca_file.empty())
      conf << "cafile " << opts_.ca_file << "\n";
    conf << "certfile " << opts_.cert_file << "\n"
         << "keyfile " << opts_.key_file << "\n"
         << "tls_version tlsv1.2\n"
         << "require_certificate "
         << (opts_.require_certificate ? "true" : "false") << "\n";
  }
  if (opts_.users.empty()) {
    conf << "allow_anonymous true\n";
  } else {
    auto password_file = dir_ + "/passwords";
    if (::access(password_file.c_str(), F_OK) != 0) {
      bool first = true;
      for (const auto& [user, password] : opts_.users) {
        std::vector<std::string> argv{"mosquitto_passwd"};
        if (first)
          argv.emplace_back("-c"); // creates the file
        argv.insert(argv.end(), {"-b", password_file, user, password});
        auto res = run_command(argv);
        if (res.exit_code != 0) {
          error_ = "mosquitto_passwd failed: " + res.output;
          return false;
        }
        first = false;
      }
    }
    conf << "allow_anonymous false\n"
         << "password_file " << password_file << "\n";
  }
  conf << "persistence false\n"
       << "log_dest file " << dir_ << "/mosquitto.log\n"
       // The default of 1000 silently drops QoS 1 messages to a subscriber
       // that falls behind a fast publisher.
       << "max_queued_messages 100000\n";
  // As root, mosquitto would switch to the `mosquitto` user, which cannot
  // read this root-owned (0700) directory.
  if (::geteuid() == 0)
    conf << "user root\n";
  conf.flush();
  if (!conf) {
    error_ = "cannot write " + dir_ + "/mosquitto.conf";
    return false;
  }
  return true;
}

bool mosquitto_broker::start(std::chrono::milliseconds timeout) {
  if (running())
    return true;
  error_.clear();
  if (!write_config())
    return false;
  auto program = find_program("mosquitto");
  if (program.empty()) {
    error_ = "mosquitto not found in PATH or /usr/sbin";
    return false;
  }
  auto conf = dir_ + "/mosquitto.conf";
  auto out_path = dir_ + "/mosquitto.out";
  std::vector<char*> argv{const_cast<char*>(program.c_str()),
                          const_cast<char*>("-c"),
                          const_cast<char*>(conf.c_str()), nullptr};
  // Opened here because the child of a threaded process may only make
  // async-signal-safe calls between fork() and exec().
  int out = ::open(out_path.c_str(),
                   O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (out < 0) {
    error_ = "cannot open " + out_path + ": " + std::strerror(errno);
    return false;
  }
  auto parent = ::getpid();
  auto pid = ::fork();
  if (pid < 0) {
    error_ = std::string{"fork failed: "} + std::strerror(errno);
    ::close(out);
    return false;
  }
  if (pid == 0) {
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    // A test that crashes must not leave brokers behind. (The signal comes
    // when the forking *thread* ends: start brokers from the test's thread.)
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent)
      ::_exit(1);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(out);
  pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (reaped(pid_)) {
      pid_ = -1;
      error_ = "mosquitto exited during start-up\n" + log_tail();
      return false;
    }
    if (accepts_connections(port_))
      return true;
    if (std::chrono::steady_clock::now() >= deadline) {
      stop();
      error_ = "mosquitto did not accept connections on port "
               + std::to_string(port_) + " in time\n" + log_tail();
      return false;
    }
    std::this_thread::sleep_for(poll_interval);
  }
}

void mosquitto_broker::stop() {
  if (pid_ <= 0)
    return;
  ::kill(pid_, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + term_grace;
  while (!reaped(pid_)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        // nop
      }
      break;
    }
    std::this_thread::sleep_for(poll_interval);
  }
  pid_ = -1;
}

bool mosquitto_broker::running() const {
  return pid_ > 0;
}

uint16_t mosquitto_broker::port() const {
  return port_;
}

const std::string& mosquitto_broker::last_error() const {
  return error_;
}

const std::string& mosquitto_broker::dir() const {
  return dir_;
}

std::string mosquitto_broker::log_tail() const {
  return "--- mosquitto.log:\n" + file_tail(dir_ + "/mosquitto.log")
         + "\n--- mosquitto output:\n" + file_tail(dir_ + "/mosquitto.out");
}

} // namespace butler::test
