#include "net/http_server.hpp"

#include "test/support/eventually.hpp"
#include "test/support/test_certs.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using namespace butler::http;

namespace {

/// Polls `pred` for up to 5 s (see test/support/eventually.hpp).
template <class Predicate>
bool eventually(Predicate pred, std::chrono::milliseconds timeout = 5s) {
  return butler::test::eventually(pred, timeout);
}

// -- waiting ------------------------------------------------------------------

// -- a small blocking HTTP client ---------------------------------------------

struct reply {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  /// Returns the first value of header `name` (lower case), or "".
  std::string header(const std::string& name) const {
    for (auto& [key, value] : headers)
      if (key == name)
        return value;
    return {};
  }

  std::size_t count(const std::string& name) const {
    std::size_t n = 0;
    for (auto& entry : headers)
      if (entry.first == name)
        ++n;
    return n;
  }

  nlohmann::json json() const {
    return nlohmann::json::parse(body, nullptr, false);
  }
};

/// Returns a connected TCP socket to 127.0.0.1:`port`, or -1 (errno set).
int connect_tcp(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  // Every read in these tests gives up after 5 s instead of hanging.
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

/// Returns whether a connection to `port` is refused right now.
bool refused(uint16_t port) {
  int fd = connect_tcp(port);
  if (fd >= 0) {
    ::close(fd);
    return false;
  }
  return errno == ECONNREFUSED;
}

class client {
public:
  explicit client(int fd, SSL* ssl = nullptr) : fd_(fd), ssl_(ssl) {
    // nop
  }

  client(const client&) = delete;
  client& operator=(const client&) = delete;

  ~client() {
    if (ssl_ != nullptr)
      SSL_free(ssl_);
    ::close(fd_);
  }

  bool send(std::string_view data) {
    while (!data.empty()) {
      long n = ssl_ != nullptr
                 ? SSL_write(ssl_, data.data(), static_cast<int>(data.size()))
                 : ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0)
        return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  /// Reads one response; nullopt on EOF, error or timeout. With `head`, the
  /// response has a Content-Length but no body.
  std::optional<reply> read_reply(bool head = false) {
    std::size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill())
        return std::nullopt;
    reply r;
    auto head_block = buf_.substr(0, end);
    auto line_end = head_block.find("\r\n");
    auto status_line = head_block.substr(0, line_end);
    if (status_line.compare(0, 5, "HTTP/") != 0 || status_line.size() < 12)
      return std::nullopt;
    r.status = std::atoi(status_line.c_str() + 9);
    std::size_t pos = line_end;
    while (pos != std::string::npos && pos < head_block.size()) {
      auto start = pos + 2;
      auto next = head_block.find("\r\n", start);
      auto line = head_block.substr(start, next == std::string::npos
                                             ? std::string::npos
                                             : next - start);
      auto colon = line.find(':');
      if (colon != std::string::npos) {
        auto name = line.substr(0, colon);
        for (auto& c : name)
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        auto value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(' '));
        r.headers.emplace_back(std::move(name), std::move(value));
      }
      pos = next;
    }
    std::size_t length = 0;
    if (!head && !r.header("content-length").empty())
      length = std::stoul(r.header("content-length"));
    while (buf_.size() < end + 4 + length)
      if (!fill())
        return std::nullopt;
    r.body = buf_.substr(end + 4, length);
    buf_.erase(0, end + 4 + length);
    return r;
  }

  /// Returns true when the server closes the connection (EOF or reset)
  /// within the receive timeout and sends nothing more before that.
  bool closed_by_server() {
    if (!buf_.empty())
      return false;
    char c;
    auto n = recv_some(&c, 1);
    return n == 0 || n == -1;
  }

  /// Reads and discards until the server closes; false on timeout.
  bool drained_until_closed() {
    buf_.clear();
    char tmp[4096];
    for (;;) {
      auto n = recv_some(tmp, sizeof(tmp));
      if (n == 0 || n == -1)
        return true;
      if (n == -2)
        return false;
    }
  }

  uint16_t local_port() const {
    sockaddr_in addr{};
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    return ntohs(addr.sin_port);
  }

  SSL* ssl() const {
    return ssl_;
  }

private:
  /// Returns bytes read, 0 on EOF, -1 on error or reset, -2 on timeout.
  long recv_some(char* p, std::size_t n) {
    if (ssl_ != nullptr) {
      int r = SSL_read(ssl_, p, static_cast<int>(n));
      if (r > 0)
        return r;
      int err = SSL_get_error(ssl_, r);
      ERR_clear_error();
      if (err == SSL_ERROR_ZERO_RETURN)
        return 0;
      if (err == SSL_ERROR_WANT_READ)
        return -2;
      return -1;
    }
    auto r = ::recv(fd_, p, n, 0);
    if (r >= 0)
      return r;
    return errno == EAGAIN || errno == EWOULDBLOCK ? -2 : -1;
  }

  bool fill() {
    char tmp[16384];
    auto n = recv_some(tmp, sizeof(tmp));
    if (n <= 0)
      return false;
    buf_.append(tmp, static_cast<std::size_t>(n));
    return true;
  }

  int fd_;
  SSL* ssl_;
  std::string buf_;
};

std::unique_ptr<client> connect_plain(uint16_t port) {
  int fd = connect_tcp(port);
  if (fd < 0)
    return nullptr;
  return std::make_unique<client>(fd);
}

/// Connects with TLS, verifying the server against `ca_file` and 127.0.0.1.
/// A non-zero `max_version` allows only old protocol versions up to it.
std::unique_ptr<client> connect_tls(uint16_t port, const std::string& ca_file,
                                    std::string& error, int max_version = 0) {
  int fd = connect_tcp(port);
  if (fd < 0) {
    error = "connect failed";
    return nullptr;
  }
  auto* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (max_version != 0) {
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx, max_version);
  }
  auto* ssl = SSL_new(ctx);
  SSL_CTX_free(ctx); // the SSL object holds its own reference
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
  SSL_set_fd(ssl, fd);
  if (SSL_connect(ssl) != 1) {
    char buf[256] = "handshake failed";
    if (auto code = ERR_get_error())
      ERR_error_string_n(code, buf, sizeof(buf));
    ERR_clear_error();
    error = buf;
    SSL_free(ssl);
    ::close(fd);
    return nullptr;
  }
  return std::make_unique<client>(fd, ssl);
}

std::string get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: localhost\r\n" + extra
         + "\r\n";
}

// -- server helpers -----------------------------------------------------------

/// Answers "<method> <target>" as text/plain at once.
void echo(request&& req, responder reply) {
  response res;
  res.content_type = "text/plain";
  res.body = req.method + " " + req.target;
  reply(std::move(res));
}

response text(std::string body) {
  response res;
  res.content_type = "text/plain";
  res.body = std::move(body);
  return res;
}

server_options local_options() {
  server_options opts;
  opts.host = "127.0.0.1";
  opts.port = 0;
  return opts;
}

std::unique_ptr<server> start(const server_options& opts, handler h) {
  std::string error;
  auto srv = start_server(opts, std::move(h), error);
  if (!srv)
    ADD_FAILURE() << "start_server failed: " << error;
  else if (!error.empty())
    ADD_FAILURE() << "error set on success: " << error;
  return srv;
}

/// Threads started by handlers; joined before the test's locals go away.
class background {
public:
  ~background() {
    join();
  }

  template <class F>
  void run(F f) {
    std::lock_guard<std::mutex> guard{mtx_};
    threads_.emplace_back(std::move(f));
  }

  void join() {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      threads.swap(threads_);
    }
    for (auto& t : threads)
      t.join();
  }

private:
  std::mutex mtx_;
  std::vector<std::thread> threads_;
};

/// Responders kept by a handler that does not answer yet.
class held_replies {
public:
  void add(responder r) {
    std::lock_guard<std::mutex> guard{mtx_};
    replies_.push_back(std::move(r));
  }

  std::size_t size() {
    std::lock_guard<std::mutex> guard{mtx_};
    return replies_.size();
  }

  void answer_all(const response& res) {
    std::vector<responder> replies;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      replies.swap(replies_);
    }
    for (auto& r : replies)
      r(res);
  }

private:
  std::mutex mtx_;
  std::vector<responder> replies_;
};

/// Checks a JSON error body: statusCode, error and (part of) the message.
void expect_json_error(const reply& r, unsigned status,
                       const std::string& message_part) {
  EXPECT_EQ(r.status, static_cast<int>(status));
  EXPECT_EQ(r.header("content-type"), "application/json; charset=utf-8");
  EXPECT_EQ(r.header("content-length"), std::to_string(r.body.size()));
  auto j = r.json();
  ASSERT_TRUE(j.is_object()) << r.body;
  EXPECT_EQ(j.value("statusCode", 0u), status) << r.body;
  EXPECT_EQ(j.value("error", ""), std::string{reason(status)}) << r.body;
  EXPECT_NE(j.value("message", "").find(message_part), std::string::npos)
    << r.body;
}

/// Checks that the server still answers a GET on a new connection; with
/// `body`, also the body it answers.
void expect_still_serving(uint16_t port,
                          std::optional<std::string> body = "GET /alive") {
  auto c = connect_plain(port);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(get("/alive")));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  if (body) {
    EXPECT_EQ(r->body, *body);
  }
}

// -- plain HTTP ---------------------------------------------------------------

TEST(http_server, answers_a_get) {
  auto srv = start(local_options(), echo);
  ASSERT_TRUE(srv);
  EXPECT_NE(srv->port(), 0);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(get("/v4/butlerping")));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /v4/butlerping");
  EXPECT_EQ(r->header("content-type"), "text/plain");
  EXPECT_EQ(r->header("content-length"), "18");
  EXPECT_EQ(r->header("server"), "butler");
  EXPECT_EQ(r->count("connection"), 0u); // HTTP/1.1 keeps alive by default
  auto s = srv->stats();
  EXPECT_EQ(s.connections_accepted, 1u);
  EXPECT_EQ(s.requests, 1u);
  EXPECT_EQ(s.bad_requests, 0u);
}

TEST(http_server, default_content_type_is_json) {
  auto srv = start(local_options(), [](request&&, responder reply) {
    response res;
    res.body = R"({"response":"Butler reporting for duty"})";
    reply(std::move(res));
  });
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(get("/")));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header("content-type"), "application/json; charset=utf-8");
  EXPECT_EQ(r->json().value("response", ""), "Butler reporting for duty");
}

TEST(http_server, handler_sees_the_request_fields) {
  std::mutex mtx;
  std::optional<request> seen;
  auto srv = start(local_options(), [&](request&& req, responder reply) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      seen = req;
    }
    reply(text("ok"));
  });
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send("POST /v4/scheduler/start?taskId=abc&x=1 HTTP/1.1\r\n"
                      "Host: localhost\r\n"
                      "X-Custom-Header: Some Value\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: 13\r\n"
                      "\r\n"
                      "{\"hello\":123}"));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  std::lock_guard<std::mutex> guard{mtx};
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->method, "POST");
  EXPECT_EQ(seen->target, "/v4/scheduler/start?taskId=abc&x=1");
  EXPECT_EQ(seen->header("x-custom-header"), "Some Value");
  EXPECT_EQ(seen->header("host"), "localhost");
  EXPECT_EQ(seen->header("content-type"), "application/json");
  EXPECT_EQ(seen->header("content-length"), "13");
  EXPECT_EQ(seen->headers.size(), 4u);
  for (auto& [name, value] : seen->headers)
    for (char ch : name)
      EXPECT_FALSE(ch >= 'A' && ch <= 'Z') << name;
  EXPECT_EQ(seen->body, "{\"hello\":123}");
  EXPECT_EQ(seen->peer, "127.0.0.1:" + std::to_string(c->local_port()));
}

TEST(http_server, keeps_alive_for_three_requests) {
  auto srv = start(local_options(), echo);
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  for (int i = 0; i < 3; ++i) {
    auto target = "/r" + std::to_string(i);
    ASSERT_TRUE(c->send(get(target)));
    auto r = c->read_reply();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body, "GET " + target);
    EXPECT_NE(r->header("connection"), "close");
  }
  auto s = srv->stats();
  EXPECT_EQ(s.connections_accepted, 1u);
  EXPECT_EQ(s.connections_active, 1u);
  EXPECT_EQ(s.requests, 3u);
}

TEST(http_server, http10_without_keep_alive_closes) {
  auto srv = start(local_options(), echo);
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send("GET /old HTTP/1.0\r\n\r\n"));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /old");
  EXPECT_TRUE(c->closed_by_server());
  c.reset();
  EXPECT_TRUE(eventually([&] { return srv->stats().connections_active == 0; }));
}

TEST(http_server, http10_with_keep_alive_stays_open) {
  auto srv = start(local_options(), echo);
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(c->send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    auto r = c->read_reply();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->body, "GET /old");
    EXPECT_EQ(r->header("connection"), "keep-alive");
  }
}

TEST(http_server, honours_connection_close) {
  auto srv = start(local_options(), echo);
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(get("/bye", "Connection: close\r\n")));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c->closed_by_server());
}

TEST(http_server, answers_pipelined_requests_in_order) {
  std::mutex mtx;
  std::vector<std::string> events;
  auto record = [&](std::string what) {
    std::lock_guard<std::mutex> guard{mtx};
    events.push_back(std::move(what));
  };
  background bg;
  auto srv = start(local_options(), [&](request&& req, responder reply) {
    record("call " + req.target);
    if (req.target == "/slow") {
      // Answers later from another thread; the second request must wait.
      bg.run([&, reply] {
        std::this_thread::sleep_for(100ms);
        record("answer /slow");
        reply(text("slow"));
      });
      return;
    }
    reply(text("fast"));
  });
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(get("/slow") + get("/fast")));
  auto first = c->read_reply();
  auto second = c->read_reply();
  ASSERT_TRUE(first);
  ASSERT_TRUE(second);
  EXPECT_EQ(first->body, "slow");
  EXPECT_EQ(second->body, "fast");
  bg.join();
  std::lock_guard<std::mutex> guard{mtx};
  EXPECT_EQ(events, (std::vector<std::string>{"call /slow", "answer /slow",
                                              "call /fast"}));
}

TEST(http_server, async_reply_from_another_thread) {
  background bg;
  std::atomic<bool> answered_elsewhere{false};
  auto srv = start(local_options(), [&](request&& req, responder reply) {
    bg.run([&, reply, target = req.target] {
      std::this_thread::sleep_for(50ms);
      answered_elsewhere = true;
      reply(text("late " + target));
    });
  });
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(get("/later")));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "late /later");
  EXPECT_TRUE(answered_elsewhere);
  EXPECT_TRUE(eventually([&] { return srv->stats().requests_in_flight == 0; }));
}

TEST(http_server, dropped_responder_gets_503) {
  background bg;
  auto srv = start(local_options(), [&](request&& req, responder reply) {
    if (req.target == "/drop-later")
      bg.run([reply]() mutable {
        std::this_thread::sleep_for(20ms);
        reply = responder{}; // the last copy goes away unanswered
      });
    // "/drop-now": the responder dies when the handler returns.
  });
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  for (auto target : {"/drop-now", "/drop-later"}) {
    SCOPED_TRACE(target);
    ASSERT_TRUE(c->send(get(target)));
    auto r = c->read_reply();
    ASSERT_TRUE(r);
    expect_json_error(*r, 503, "request was dropped before it was answered");
  }
  EXPECT_TRUE(eventually([&] { return srv->stats().requests_in_flight == 0; }));
}

TEST(http_server, answering_twice_sends_only_the_first) {
  background bg;
  auto srv = start(local_options(), [&](request&& req, responder reply) {
    if (req.target == "/twice") {
      auto copy = reply;
      reply(text("first"));
      copy(text("second"));
      bg.run([copy] { copy(text("third")); });
      return;
    }
    reply(text("next"));
  });
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(get("/twice")));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "first");
  bg.join();
  // Had "second" or "third" been written, it would be read here instead.
  ASSERT_TRUE(c->send(get("/next")));
  r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "next");
  EXPECT_EQ(srv->stats().requests, 2u);
}

TEST(http_server, handler_exception_gets_500) {
  auto srv = start(local_options(), [](request&& req, responder reply) {
    if (req.target == "/throw")
      throw std::runtime_error("boom");
    reply(text("fine"));
  });
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(get("/throw")));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  expect_json_error(*r, 500, "internal server error");
  ASSERT_TRUE(c->send(get("/ok")));
  r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "fine");
}

TEST(http_server, head_gets_length_without_body) {
  auto srv = start(local_options(), echo);
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c->read_reply(true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("content-length"), "7"); // "HEAD /h"
  // A body after the HEAD response would corrupt this next response.
  ASSERT_TRUE(c->send(get("/g")));
  r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "GET /g");
}

TEST(http_server, writes_extra_headers_and_drops_unsafe_ones) {
  auto srv = start(local_options(), [](request&& req, responder reply) {
    if (req.target == "/empty") {
      response res;
      res.status = 204;
      reply(std::move(res));
      return;
    }
    auto res = text("body");
    res.status = 201;
    res.headers = {{"X-Test", "1"},
                   {"Set-Cookie", "a=1"},
                   {"Set-Cookie", "b=2"},
                   {"X-Bad", "a\r\nInjected: yes"},
                   {"Content-Length", "999"},
                   {"Connection", "upgrade"}};
    reply(std::move(res));
  });
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(get("/h")));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->header("x-test"), "1");
  EXPECT_EQ(r->count("set-cookie"), 2u);
  EXPECT_EQ(r->count("x-bad"), 0u);
  EXPECT_EQ(r->count("injected"), 0u);
  EXPECT_EQ(r->count("content-length"), 1u);
  EXPECT_EQ(r->header("content-length"), "4");
  EXPECT_EQ(r->count("connection"), 0u);
  EXPECT_EQ(r->body, "body");
  ASSERT_TRUE(c->send(get("/empty")));
  r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->count("content-length"), 0u);
  ASSERT_TRUE(c->send(get("/after")));
  r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201);
}

// -- limits and bad input -----------------------------------------------------

TEST(http_server, body_over_limit_by_content_length_gets_413) {
  auto opts = local_options();
  opts.body_limit = 1024;
  auto srv = start(opts, [](request&& req, responder reply) {
    reply(text(std::to_string(req.body.size())));
  });
  ASSERT_TRUE(srv);
  {
    // Exactly at the limit is fine.
    auto c = connect_plain(srv->port());
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->send("PUT /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1024\r\n\r\n"
                        + std::string(1024, 'a')));
    auto r = c->read_reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "1024");
  }
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send("PUT /p HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n"
                      + std::string(200000, 'a')));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  expect_json_error(*r, 413, "1024");
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c->closed_by_server());
  EXPECT_EQ(srv->stats().bad_requests, 1u);
  EXPECT_EQ(srv->stats().requests, 1u);
  expect_still_serving(srv->port(), "0");
}

TEST(http_server, chunked_body_over_limit_gets_413) {
  auto opts = local_options();
  opts.body_limit = 1024;
  auto srv = start(opts, [](request&& req, responder reply) {
    reply(text(req.body));
  });
  ASSERT_TRUE(srv);
  auto chunk = [](std::size_t n, char ch) {
    char size[16];
    std::snprintf(size, sizeof(size), "%zx", n);
    return std::string{size} + "\r\n" + std::string(n, ch) + "\r\n";
  };
  auto head = std::string{"POST /c HTTP/1.1\r\nHost: x\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n"};
  {
    auto c = connect_plain(srv->port());
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->send(head + chunk(3, 'a') + chunk(2, 'b') + "0\r\n\r\n"));
    auto r = c->read_reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "aaabb");
  }
  // Each chunk is under the limit; together they are not.
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(head + chunk(600, 'a') + chunk(600, 'b')
                      + chunk(600, 'c') + "0\r\n\r\n"));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  expect_json_error(*r, 413, "1024");
  EXPECT_TRUE(c->closed_by_server());
  EXPECT_EQ(srv->stats().bad_requests, 1u);
  expect_still_serving(srv->port(), "");
}

TEST(http_server, expect_100_continue_is_answered) {
  auto opts = local_options();
  opts.body_limit = 1024;
  auto srv = start(opts, [](request&& req, responder reply) {
    reply(text(req.method + " " + req.body));
  });
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send("PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                      "Content-Length: 5\r\n\r\n"));
  auto r = c->read_reply(true);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 100);
  ASSERT_TRUE(c->send("hello"));
  r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "PUT hello");
  // Too large: refused at once, without inviting the body.
  ASSERT_TRUE(c->send("PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                      "Content-Length: 5000\r\n\r\n"));
  r = c->read_reply();
  ASSERT_TRUE(r);
  expect_json_error(*r, 413, "1024");
  EXPECT_TRUE(c->closed_by_server());
}

TEST(http_server, header_over_limit_gets_431) {
  auto opts = local_options();
  opts.header_limit = 1024;
  auto srv = start(opts, echo);
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(get("/big", "X-Big: " + std::string(4096, 'h') + "\r\n")));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  expect_json_error(*r, 431, "1024");
  EXPECT_TRUE(c->closed_by_server());
  EXPECT_EQ(srv->stats().bad_requests, 1u);
  EXPECT_EQ(srv->stats().requests, 0u);
  expect_still_serving(srv->port());
}

TEST(http_server, malformed_requests_get_400) {
  auto srv = start(local_options(), echo);
  ASSERT_TRUE(srv);
  const std::vector<std::string> inputs{
    std::string{"\x01\x02\x03 garbage \xff\r\n\r\n"},
    "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nno colon in this line\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "GET / XTTP/1.1\r\n\r\n",
  };
  std::uint64_t n = 0;
  for (auto& input : inputs) {
    SCOPED_TRACE(input);
    auto c = connect_plain(srv->port());
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->send(input));
    auto r = c->read_reply();
    ASSERT_TRUE(r);
    expect_json_error(*r, 400, "malformed request");
    EXPECT_TRUE(c->closed_by_server());
    EXPECT_EQ(srv->stats().bad_requests, ++n);
  }
  EXPECT_EQ(srv->stats().requests, 0u);
  expect_still_serving(srv->port());
}

TEST(http_server, read_timeout_closes_an_idle_connection) {
  auto opts = local_options();
  opts.read_timeout = 200ms;
  auto srv = start(opts, echo);
  ASSERT_TRUE(srv);
  {
    // Nothing sent at all: closed without a response.
    auto c = connect_plain(srv->port());
    ASSERT_TRUE(c);
    EXPECT_TRUE(c->closed_by_server());
    EXPECT_TRUE(eventually([&] { return srv->stats().timeouts == 1; }));
  }
  {
    // Idle after one answered request: closed without a response.
    auto c = connect_plain(srv->port());
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->send(get("/once")));
    auto r = c->read_reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(c->closed_by_server());
    EXPECT_TRUE(eventually([&] { return srv->stats().timeouts == 2; }));
  }
  EXPECT_TRUE(eventually([&] { return srv->stats().connections_active == 0; }));
  expect_still_serving(srv->port());
}

TEST(http_server, read_timeout_on_a_partial_request_gets_408) {
  auto opts = local_options();
  opts.read_timeout = 200ms;
  auto srv = start(opts, echo);
  ASSERT_TRUE(srv);
  for (auto partial : {"GET /slow HTTP/1.1\r\nHost: x\r\n",
                       "PUT /slow HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"}) {
    SCOPED_TRACE(partial);
    auto before = srv->stats().timeouts;
    auto c = connect_plain(srv->port());
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->send(partial));
    auto r = c->read_reply();
    ASSERT_TRUE(r);
    expect_json_error(*r, 408, "read timeout");
    EXPECT_TRUE(c->closed_by_server());
    EXPECT_EQ(srv->stats().timeouts, before + 1);
  }
  EXPECT_EQ(srv->stats().requests, 0u);
}

TEST(http_server, rejects_connections_over_the_limit) {
  auto opts = local_options();
  opts.max_connections = 2;
  auto srv = start(opts, echo);
  ASSERT_TRUE(srv);
  auto c1 = connect_plain(srv->port());
  auto c2 = connect_plain(srv->port());
  ASSERT_TRUE(c1);
  ASSERT_TRUE(c2);
  for (auto* c : {c1.get(), c2.get()}) {
    ASSERT_TRUE(c->send(get("/in")));
    auto r = c->read_reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_EQ(srv->stats().connections_active, 2u);
  auto c3 = connect_plain(srv->port());
  ASSERT_TRUE(c3);
  ASSERT_TRUE(c3->send(get("/over")));
  auto r = c3->read_reply();
  ASSERT_TRUE(r);
  expect_json_error(*r, 503, "too many connections");
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c3->closed_by_server());
  auto s = srv->stats();
  EXPECT_EQ(s.connections_rejected, 1u);
  EXPECT_EQ(s.connections_accepted, 2u);
  EXPECT_EQ(s.requests, 2u);
  // Once one closes, a new connection is served again.
  c1.reset();
  ASSERT_TRUE(eventually([&] { return srv->stats().connections_active == 1; }));
  expect_still_serving(srv->port());
  EXPECT_EQ(srv->stats().connections_rejected, 1u);
}

// -- shutdown -----------------------------------------------------------------

TEST(http_server, stop_accepting_and_drain_finish_the_request_in_flight) {
  held_replies held;
  background bg;
  auto srv = start(local_options(), [&](request&&, responder reply) {
    held.add(std::move(reply));
  });
  ASSERT_TRUE(srv);
  auto port = srv->port();
  auto c = connect_plain(port);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(get("/hold")));
  ASSERT_TRUE(eventually([&] { return held.size() == 1; }));
  EXPECT_EQ(srv->stats().requests_in_flight, 1u);
  srv->stop_accepting();
  EXPECT_TRUE(eventually([&] { return refused(port); }));
  EXPECT_FALSE(srv->drain(50ms));
  bg.run([&] {
    std::this_thread::sleep_for(100ms);
    held.answer_all(text("finished"));
  });
  EXPECT_TRUE(srv->drain(5s));
  EXPECT_EQ(srv->stats().requests_in_flight, 0u);
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "finished");
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c->closed_by_server());
}

TEST(http_server, drain_returns_false_past_its_deadline) {
  held_replies held;
  auto srv = start(local_options(), [&](request&&, responder reply) {
    held.add(std::move(reply));
  });
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(get("/hold")));
  ASSERT_TRUE(eventually([&] { return held.size() == 1; }));
  EXPECT_TRUE(srv->drain(0ms) == false);
  EXPECT_FALSE(srv->drain(100ms));
  EXPECT_EQ(srv->stats().requests_in_flight, 1u);
  held.answer_all(text("done"));
  EXPECT_TRUE(srv->drain(5s));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "done");
}

TEST(http_server, stop_is_idempotent_and_closes_connections) {
  auto srv = start(local_options(), echo);
  ASSERT_TRUE(srv);
  auto port = srv->port();
  auto c = connect_plain(port);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(get("/x")));
  ASSERT_TRUE(c->read_reply());
  srv->stop();
  EXPECT_TRUE(c->closed_by_server());
  EXPECT_TRUE(refused(port));
  srv->stop();
  srv->stop_accepting();
  EXPECT_TRUE(srv->drain(0ms));
  auto s = srv->stats();
  EXPECT_EQ(s.requests, 1u);
  EXPECT_EQ(s.connections_active, 0u);
  srv.reset(); // the destructor stops once more
}

TEST(http_server, responder_outliving_the_server_is_harmless) {
  held_replies held;
  auto srv = start(local_options(), [&](request&&, responder reply) {
    held.add(std::move(reply));
    held.add(responder{}); // an empty responder ignores calls
  });
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->send(get("/hold")));
  ASSERT_TRUE(eventually([&] { return held.size() == 2; }));
  srv.reset();
  EXPECT_TRUE(c->closed_by_server());
  // Answering, then dropping, after the server is gone must not crash.
  held.answer_all(text("too late"));
}

// -- start-up errors ----------------------------------------------------------

TEST(http_server, port_in_use_is_an_error) {
  auto first = start(local_options(), echo);
  ASSERT_TRUE(first);
  auto opts = local_options();
  opts.port = first->port();
  std::string error;
  auto second = start_server(opts, echo, error);
  EXPECT_FALSE(second);
  EXPECT_NE(error.find("cannot listen on 127.0.0.1:"
                       + std::to_string(first->port())),
            std::string::npos)
    << error;
  EXPECT_NE(error.find("in use"), std::string::npos) << error;
  expect_still_serving(first->port());
}

TEST(http_server, address_not_on_this_host_is_an_error) {
  auto opts = local_options();
  opts.host = "192.0.2.1"; // TEST-NET-1, never local
  std::string error;
  EXPECT_FALSE(start_server(opts, echo, error));
  EXPECT_NE(error.find("cannot listen on 192.0.2.1:0"), std::string::npos)
    << error;
}

TEST(http_server, missing_handler_or_threads_is_an_error) {
  std::string error;
  EXPECT_FALSE(start_server(local_options(), handler{}, error));
  EXPECT_NE(error.find("handler"), std::string::npos) << error;
  auto opts = local_options();
  opts.threads = 0;
  EXPECT_FALSE(start_server(opts, echo, error));
  EXPECT_NE(error.find("threads"), std::string::npos) << error;
}

TEST(http_server, two_threads_serve_concurrent_clients) {
  auto opts = local_options();
  opts.threads = 2;
  auto srv = start(opts, echo);
  ASSERT_TRUE(srv);
  constexpr int clients = 6;
  constexpr int per_client = 25;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i)
    threads.emplace_back([&, i] {
      auto c = connect_plain(srv->port());
      if (!c)
        return;
      for (int j = 0; j < per_client; ++j) {
        auto target = "/c" + std::to_string(i) + "/" + std::to_string(j);
        if (!c->send(get(target)))
          return;
        auto r = c->read_reply();
        if (r && r->status == 200 && r->body == "GET " + target)
          ++ok;
      }
    });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(ok, clients * per_client);
  EXPECT_EQ(srv->stats().requests,
            static_cast<std::uint64_t>(clients * per_client));
  EXPECT_EQ(srv->stats().connections_accepted,
            static_cast<std::uint64_t>(clients));
}

// -- HTTPS --------------------------------------------------------------------

class https_server : public ::testing::Test {
public:
  static void SetUpTestSuite() {
    std::string tmpl = (std::getenv("TMPDIR") ? std::getenv("TMPDIR")
                                              : "/tmp");
    tmpl += "/butler-http-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr)
      return;
    dir_ = tmpl;
    certs_ = butler::test::make_test_certs(dir_);
  }

  static void TearDownTestSuite() {
    std::error_code ec;
    if (!dir_.empty())
      std::filesystem::remove_all(dir_, ec);
  }

protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.empty()) << "mkdtemp failed";
  }

  server_options tls_options() const {
    auto opts = local_options();
    opts.tls = true;
    opts.cert_file = certs_.server_cert;
    opts.key_file = certs_.server_key;
    opts.ca_file = certs_.ca_cert;
    return opts;
  }

  static inline std::string dir_;
  static inline butler::test::cert_files certs_;
};

TEST_F(https_server, answers_a_verified_tls_client) {
  auto srv = start(tls_options(), echo);
  ASSERT_TRUE(srv);
  std::string error;
  auto c = connect_tls(srv->port(), certs_.ca_cert, error);
  ASSERT_TRUE(c) << error;
  EXPECT_GE(SSL_version(c->ssl()), TLS1_2_VERSION);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(c->send(get("/secure")));
    auto r = c->read_reply();
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "GET /secure");
  }
  EXPECT_EQ(srv->stats().requests, 2u);
  EXPECT_EQ(srv->stats().bad_requests, 0u);
}

TEST_F(https_server, works_without_a_ca_file) {
  auto opts = tls_options();
  opts.ca_file.clear();
  auto srv = start(opts, echo);
  ASSERT_TRUE(srv);
  std::string error;
  auto c = connect_tls(srv->port(), certs_.ca_cert, error);
  ASSERT_TRUE(c) << error;
  ASSERT_TRUE(c->send(get("/s", "Connection: close\r\n")));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "GET /s");
  EXPECT_TRUE(c->closed_by_server());
}

TEST_F(https_server, refuses_tls_older_than_1_2) {
  auto srv = start(tls_options(), echo);
  ASSERT_TRUE(srv);
  std::string error;
  EXPECT_FALSE(connect_tls(srv->port(), certs_.ca_cert, error, TLS1_1_VERSION));
  EXPECT_TRUE(eventually([&] { return srv->stats().bad_requests == 1; }));
  auto c = connect_tls(srv->port(), certs_.ca_cert, error);
  EXPECT_TRUE(c) << error;
}

TEST_F(https_server, plain_http_on_the_tls_port_is_counted_and_survived) {
  auto srv = start(tls_options(), echo);
  ASSERT_TRUE(srv);
  auto plain = connect_plain(srv->port());
  ASSERT_TRUE(plain);
  ASSERT_TRUE(plain->send(get("/plain")));
  EXPECT_TRUE(plain->drained_until_closed());
  EXPECT_TRUE(eventually([&] { return srv->stats().bad_requests == 1; }));
  EXPECT_EQ(srv->stats().requests, 0u);
  std::string error;
  auto c = connect_tls(srv->port(), certs_.ca_cert, error);
  ASSERT_TRUE(c) << error;
  ASSERT_TRUE(c->send(get("/after")));
  auto r = c->read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "GET /after");
}

TEST_F(https_server, silent_client_times_out_in_the_handshake) {
  auto opts = tls_options();
  opts.read_timeout = 200ms;
  auto srv = start(opts, echo);
  ASSERT_TRUE(srv);
  auto c = connect_plain(srv->port());
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->drained_until_closed());
  EXPECT_TRUE(eventually([&] { return srv->stats().timeouts == 1; }));
  EXPECT_EQ(srv->stats().bad_requests, 0u);
}

TEST_F(https_server, rejects_connections_over_the_limit_after_handshake) {
  auto opts = tls_options();
  opts.max_connections = 1;
  auto srv = start(opts, echo);
  ASSERT_TRUE(srv);
  std::string error;
  auto c1 = connect_tls(srv->port(), certs_.ca_cert, error);
  ASSERT_TRUE(c1) << error;
  ASSERT_TRUE(c1->send(get("/in")));
  ASSERT_TRUE(c1->read_reply());
  auto c2 = connect_tls(srv->port(), certs_.ca_cert, error);
  ASSERT_TRUE(c2) << error;
  auto r = c2->read_reply();
  ASSERT_TRUE(r);
  expect_json_error(*r, 503, "too many connections");
  EXPECT_EQ(srv->stats().connections_rejected, 1u);
}

TEST_F(https_server, missing_certificate_is_an_error_naming_the_file) {
  auto opts = tls_options();
  opts.cert_file = dir_ + "/no-such-cert.pem";
  std::string error;
  EXPECT_FALSE(start_server(opts, echo, error));
  EXPECT_NE(error.find("cannot load TLS certificate " + opts.cert_file),
            std::string::npos)
    << error;
  EXPECT_NE(error.find("No such file"), std::string::npos) << error;
}

TEST_F(https_server, bad_key_or_ca_file_is_an_error_naming_the_file) {
  std::string error;
  {
    auto opts = tls_options();
    opts.key_file = dir_ + "/no-such-key.pem";
    EXPECT_FALSE(start_server(opts, echo, error));
    EXPECT_NE(error.find(opts.key_file), std::string::npos) << error;
  }
  {
    // The client's key does not belong to the server certificate.
    auto opts = tls_options();
    opts.key_file = certs_.client_key;
    EXPECT_FALSE(start_server(opts, echo, error));
    EXPECT_NE(error.find(opts.key_file), std::string::npos) << error;
    EXPECT_NE(error.find("mismatch"), std::string::npos) << error;
  }
  {
    // A key is not a certificate.
    auto opts = tls_options();
    opts.cert_file = certs_.server_key;
    EXPECT_FALSE(start_server(opts, echo, error));
    EXPECT_NE(error.find(opts.cert_file), std::string::npos) << error;
  }
  {
    auto opts = tls_options();
    opts.ca_file = certs_.server_key; // no certificate in it
    EXPECT_FALSE(start_server(opts, echo, error));
    EXPECT_NE(error.find("cannot load TLS CA file " + opts.ca_file),
              std::string::npos)
      << error;
  }
}

} // namespace
