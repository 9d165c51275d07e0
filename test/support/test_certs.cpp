#include "test/support/test_certs.hpp"

#include <array>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>

namespace butler::test {

namespace {

/// Runs `cmd` through the shell and throws with its output if it fails.
void run(const std::string& cmd) {
  std::string output;
  auto* pipe = ::popen((cmd + " 2>&1").c_str(), "r");
  if (pipe == nullptr)
    throw std::runtime_error("cannot run: " + cmd);
  std::array<char, 512> buf{};
  while (auto n = std::fread(buf.data(), 1, buf.size(), pipe))
    output.append(buf.data(), n);
  if (::pclose(pipe) != 0)
    throw std::runtime_error("failed: " + cmd + "\n" + output);
}

/// Signs a key pair for `cn` with the CA in `dir`, with the given extensions.
void issue(const std::string& dir, const std::string& name,
           const std::string& cn, const std::string& extensions) {
  auto base = dir + "/" + name;
  std::ofstream{base + ".ext"} << extensions << "\n";
  run("openssl req -newkey rsa:2048 -nodes -keyout " + base + "-key.pem -out "
      + base + ".csr -subj '/CN=" + cn + "'");
  run("openssl x509 -req -in " + base + ".csr -CA " + dir + "/ca.pem -CAkey "
      + dir + "/ca-key.pem -CAcreateserial -days 2 -sha256 -out " + base
      + ".pem -extfile " + base + ".ext");
}

} // namespace

cert_files make_test_certs(const std::string& dir) {
  run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -sha256 -keyout "
      + dir + "/ca-key.pem -out " + dir + "/ca.pem -subj '/CN=Butler test CA'"
      + " -addext basicConstraints=critical,CA:TRUE"
      + " -addext keyUsage=critical,keyCertSign,cRLSign");
  issue(dir, "server", "localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "extendedKeyUsage=serverAuth");
  issue(dir, "client", "butler-test-client", "extendedKeyUsage=clientAuth");
  return cert_files{dir + "/ca.pem",     dir + "/ca-key.pem",
                    dir + "/server.pem", dir + "/server-key.pem",
                    dir + "/client.pem", dir + "/client-key.pem"};
}

} // namespace butler::test
