#include "test/support/sense_fake.hpp"

#include "test/support/free_port.hpp"
#include "test/support/http_client.hpp"

#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace butler::test {

namespace {

/// Returns the fakes' directory, from BUTLER_TEST_DATA or this source file.
std::string fakes_dir() {
  if (auto* data = std::getenv("BUTLER_TEST_DATA"))
    return std::string{data} + "/fakes";
  std::string here = __FILE__;
  return here.substr(0, here.rfind("/support/")) + "/fakes";
}

} // namespace

sense_fake::sense_fake(std::string script) : script_(std::move(script)) {
  dir_ = make_temp_dir("butler-sense-fake");
}

sense_fake::~sense_fake() {
  stop();
  remove_tree(dir_);
}

bool sense_fake::start(const cert_files& certs,
                       std::chrono::milliseconds timeout) {
  auto port_file = dir_ + "/ports.json";
  auto log_file = dir_ + "/fake.log";
  auto path = fakes_dir() + "/" + script_;
  pid_ = ::fork();
  if (pid_ < 0) {
    error_ = "fork failed";
    return false;
  }
  if (pid_ == 0) {
    // The fake dies with the test, even if the test is killed.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    auto* log = std::freopen(log_file.c_str(), "w", stderr);
    (void)log;
    ::execlp("python3", "python3", path.c_str(), "--cert",
             certs.server_cert.c_str(), "--key", certs.server_key.c_str(),
             "--ca", certs.ca_cert.c_str(), "--port-file", port_file.c_str(),
             static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in{port_file};
    if (in) {
      auto ports = nlohmann::json::parse(in, nullptr, false);
      if (ports.is_object() && ports.contains("port")) {
        port_ = ports["port"].get<uint16_t>();
        control_port_ = ports["control_port"].get<uint16_t>();
        return true;
      }
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  std::ifstream log{log_file};
  std::stringstream text;
  text << log.rdbuf();
  error_ = script_ + " did not start: " + text.str();
  return false;
}

void sense_fake::stop() {
  if (pid_ <= 0)
    return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

nlohmann::json sense_fake::control_get(const std::string& path) {
  auto res = http_request(control_port_, "GET", path);
  if (res.status != 200)
    return nullptr;
  return nlohmann::json::parse(res.body, nullptr, false);
}

nlohmann::json sense_fake::calls() {
  return control_get("/calls");
}

bool sense_fake::script(const nlohmann::json& script) {
  return http_request(control_port_, "POST", "/script", script.dump()).status
         == 200;
}

bool sense_fake::reset() {
  return http_request(control_port_, "POST", "/reset").status == 200;
}

} // namespace butler::test
