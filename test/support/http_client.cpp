#include "test/support/http_client.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace butler::test {

namespace {

/// Closes a file descriptor when it goes out of scope.
struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0)
      ::close(fd);
  }
};

} // namespace

http_result http_request(uint16_t port, const std::string& method,
                         const std::string& target, const std::string& body,
                         std::chrono::milliseconds timeout) {
  http_result result;
  fd_guard sock{::socket(AF_INET, SOCK_STREAM, 0)};
  if (sock.fd < 0) {
    result.error = std::strerror(errno);
    return result;
  }
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(sock.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(sock.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(sock.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
      != 0) {
    result.error = std::string{"connect: "} + std::strerror(errno);
    return result;
  }
  std::string request = method + " " + target + " HTTP/1.1\r\n"
                        + "Host: 127.0.0.1\r\nConnection: close\r\n"
                        + "Content-Type: application/json\r\n"
                        + "Content-Length: " + std::to_string(body.size())
                        + "\r\n\r\n" + body;
  for (std::size_t sent = 0; sent < request.size();) {
    auto n = ::send(sock.fd, request.data() + sent, request.size() - sent,
                    MSG_NOSIGNAL);
    if (n <= 0) {
      result.error = std::string{"send: "} + std::strerror(errno);
      return result;
    }
    sent += static_cast<std::size_t>(n);
  }
  std::string response;
  char buf[4096];
  while (true) {
    auto n = ::recv(sock.fd, buf, sizeof(buf), 0);
    if (n < 0) {
      result.error = std::string{"recv: "} + std::strerror(errno);
      break;
    }
    if (n == 0)
      break;
    response.append(buf, static_cast<std::size_t>(n));
  }
  // "HTTP/1.1 200 OK\r\n...\r\n\r\n<body>"
  if (response.compare(0, 9, "HTTP/1.1 ") != 0 || response.size() < 12) {
    if (result.error.empty())
      result.error = "no HTTP response";
    return result;
  }
  result.status = static_cast<unsigned>(std::stoi(response.substr(9, 3)));
  auto head_end = response.find("\r\n\r\n");
  if (head_end != std::string::npos)
    result.body = response.substr(head_end + 4);
  result.error.clear();
  return result;
}

} // namespace butler::test
