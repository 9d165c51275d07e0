#pragma once

// Certificates made at test time with the openssl command-line tool.

#include <string>

namespace butler::test {

struct cert_files {
  std::string ca_cert;     // self-signed CA (PEM)
  std::string ca_key;
  std::string server_cert; // signed by the CA, CN and SAN 127.0.0.1/localhost
  std::string server_key;
  std::string client_cert; // signed by the CA, for client-certificate tests
  std::string client_key;
};

/// Creates a CA, a server and a client certificate in `dir` (which must
/// exist). Throws std::runtime_error with openssl's output on failure.
cert_files make_test_certs(const std::string& dir);

} // namespace butler::test
