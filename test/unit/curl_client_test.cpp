#include "net/curl_client.hpp"

#include "net/http_server.hpp"
#include "test/support/eventually.hpp"
#include "test/support/free_port.hpp"
#include "test/support/test_certs.hpp"

#include <gtest/gtest.h>

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
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

// -- collecting completions ---------------------------------------------------

/// Records every completion by request id, with the thread it ran on.
class collector {
public:
  /// Returns a completion that records its response under `id`.
  completion callback(int id) {
    return [this, id](outbound_response res) {
      std::lock_guard<std::mutex> guard{mtx_};
      responses_[id].push_back(std::move(res));
      threads_.push_back(std::this_thread::get_id());
    };
  }

  /// Waits until `n` completions came in.
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout = 5s) {
    return eventually([&] { return total() >= n; }, timeout);
  }

  std::size_t total() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return threads_.size();
  }

  /// Returns how often the completion for `id` ran.
  std::size_t calls(int id) const {
    std::lock_guard<std::mutex> guard{mtx_};
    auto i = responses_.find(id);
    return i == responses_.end() ? 0 : i->second.size();
  }

  /// Returns the first response for `id` (throws if there is none).
  outbound_response at(int id) const {
    std::lock_guard<std::mutex> guard{mtx_};
    auto i = responses_.find(id);
    if (i == responses_.end() || i->second.empty())
      throw std::runtime_error("no response for id " + std::to_string(id));
    return i->second.front();
  }

  /// Returns whether no completion ran on thread `id`.
  bool none_on(std::thread::id id) const {
    std::lock_guard<std::mutex> guard{mtx_};
    return std::none_of(threads_.begin(), threads_.end(),
                        [&](auto t) { return t == id; });
  }

private:
  mutable std::mutex mtx_;
  std::map<int, std::vector<outbound_response>> responses_;
  std::vector<std::thread::id> threads_;
};

/// Returns the response that `c` receives for one request, or a response
/// with curl_code -1 when none came in time.
outbound_response fetch(client& c, outbound_request req) {
  collector col;
  if (!c.submit(std::move(req), col.callback(0))) {
    outbound_response res;
    res.curl_code = -1;
    res.error = "refused";
    return res;
  }
  if (!col.wait_for(1, 10s)) {
    outbound_response res;
    res.curl_code = -1;
    res.error = "no completion";
    return res;
  }
  return col.at(0);
}

// -- servers ------------------------------------------------------------------

server_options local_options() {
  server_options opts;
  opts.host = "127.0.0.1";
  opts.port = 0;
  return opts;
}

/// Starts a server or fails the test.
std::unique_ptr<server> start(const server_options& opts, handler h) {
  std::string error;
  auto srv = start_server(opts, std::move(h), error);
  EXPECT_NE(srv, nullptr) << error;
  return srv;
}

std::string url_of(const server& srv, const std::string& target,
                   const std::string& scheme = "http") {
  return scheme + "://127.0.0.1:" + std::to_string(srv.port()) + target;
}

/// Answers every request with `status` and a short body.
handler answer_with(unsigned status,
                    std::vector<std::pair<std::string, std::string>> headers
                    = {}) {
  return [status, headers](request&&, responder reply) {
    response res;
    res.status = status;
    res.body = "status " + std::to_string(status);
    res.headers = headers;
    reply(std::move(res));
  };
}

/// Keeps every request and its responder without answering, until told.
class held_requests {
public:
  handler make_handler() {
    return [this](request&& req, responder reply) {
      std::lock_guard<std::mutex> guard{mtx_};
      requests_.push_back(std::move(req));
      responders_.push_back(std::move(reply));
      in_flight_ = responders_.size();
      peak_ = std::max(peak_, in_flight_);
    };
  }

  std::size_t waiting() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return responders_.size();
  }

  std::size_t received() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return requests_.size();
  }

  std::size_t peak() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return peak_;
  }

  std::vector<request> requests() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return requests_;
  }

  /// Answers every waiting request with 200. The count drops before the
  /// answers go out, so a follow-up request never meets a stale count.
  std::size_t answer_all() {
    std::vector<responder> batch;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      batch.swap(responders_);
      in_flight_ = 0;
    }
    for (auto& reply : batch) {
      response res;
      res.body = "answered";
      reply(std::move(res));
    }
    return batch.size();
  }

  /// Drops every responder (the server then answers 503 by itself).
  void release() {
    std::lock_guard<std::mutex> guard{mtx_};
    responders_.clear();
  }

private:
  mutable std::mutex mtx_;
  std::vector<request> requests_;
  std::vector<responder> responders_;
  std::size_t in_flight_ = 0;
  std::size_t peak_ = 0;
};

outbound_request get(const std::string& url) {
  outbound_request req;
  req.method = "GET";
  req.url = url;
  req.timeout = 5s;
  req.connect_timeout = 2s;
  return req;
}

std::string header_of(const request& req, const std::string& name) {
  return std::string{req.header(name)};
}

bool has_header(const request& req, const std::string& name) {
  return std::any_of(req.headers.begin(), req.headers.end(),
                     [&](auto& field) { return field.first == name; });
}

// -- fixture ------------------------------------------------------------------

class curl_client_test : public ::testing::Test {
protected:
  void SetUp() override {
    // libcurl honours proxy variables; loopback tests must not go through
    // whatever proxy the machine running them has configured.
    for (auto* name : {"http_proxy", "https_proxy", "all_proxy", "ALL_PROXY",
                       "HTTPS_PROXY", "HTTP_PROXY"})
      ::unsetenv(name);
  }
};

// -- requests and responses -----------------------------------------------------

TEST_F(curl_client_test, posts_headers_and_body_and_reads_the_response) {
  std::mutex mtx;
  request seen;
  auto srv = start(local_options(), [&](request&& req, responder reply) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      seen = req;
    }
    response res;
    res.status = 201;
    res.body = R"({"ok":true})";
    res.headers = {{"X-Reply-Token", "Yes Indeed"}};
    reply(std::move(res));
  });
  ASSERT_NE(srv, nullptr);
  auto c = make_curl_client();
  outbound_request req;
  req.method = "POST";
  req.url = url_of(*srv, "/hooks/abc?x=1");
  req.headers = {{"Content-Type", "application/json"},
                 {"X-Custom", "abc def"},
                 {"X-Empty", ""}};
  req.body = R"({"text":"task failed"})";
  auto res = fetch(*c, req);
  EXPECT_EQ(res.curl_code, CURLE_OK) << res.error;
  EXPECT_EQ(res.error, "");
  EXPECT_EQ(res.status, 201);
  EXPECT_EQ(res.body, R"({"ok":true})");
  EXPECT_TRUE(res.request_sent);
  EXPECT_GE(res.elapsed.count(), 0);
  EXPECT_EQ(res.header("x-reply-token"), "Yes Indeed");
  EXPECT_EQ(res.header("X-Reply-Token"), "Yes Indeed");
  EXPECT_EQ(res.header("content-type"), "application/json; charset=utf-8");
  EXPECT_EQ(res.header("no-such-header"), "");
  for (auto& [name, value] : res.headers)
    EXPECT_TRUE(std::none_of(name.begin(), name.end(),
                             [](char ch) { return std::isupper(ch); }))
      << name;
  std::lock_guard<std::mutex> guard{mtx};
  EXPECT_EQ(seen.method, "POST");
  EXPECT_EQ(seen.target, "/hooks/abc?x=1");
  EXPECT_EQ(header_of(seen, "content-type"), "application/json");
  EXPECT_EQ(header_of(seen, "x-custom"), "abc def");
  EXPECT_TRUE(has_header(seen, "x-empty"));
  EXPECT_EQ(header_of(seen, "x-empty"), "");
  EXPECT_FALSE(has_header(seen, "expect"));
  EXPECT_EQ(seen.body, R"({"text":"task failed"})");
  auto st = c->stats();
  EXPECT_EQ(st.submitted, 1u);
  EXPECT_EQ(st.completed, 1u);
  EXPECT_EQ(st.failed, 0u);
  EXPECT_EQ(st.pending, 0u);
}

TEST_F(curl_client_test, sends_get_put_patch_delete_and_head) {
  std::mutex mtx;
  std::vector<request> seen;
  auto srv = start(local_options(), [&](request&& req, responder reply) {
    response res;
    res.body = req.method + ":" + req.body;
    {
      std::lock_guard<std::mutex> guard{mtx};
      seen.push_back(std::move(req));
    }
    reply(std::move(res));
  });
  ASSERT_NE(srv, nullptr);
  auto c = make_curl_client();
  struct step {
    std::string method;
    std::string body;
    std::string expected;
  };
  std::vector<step> steps{{"GET", "", "GET:"},
                          {"PUT", "put-body", "PUT:put-body"},
                          {"PATCH", "patch-body", "PATCH:patch-body"},
                          {"DELETE", "", "DELETE:"},
                          {"HEAD", "", ""}};
  for (auto& s : steps) {
    auto req = get(url_of(*srv, "/items/7"));
    req.method = s.method;
    req.body = s.body;
    auto res = fetch(*c, req);
    EXPECT_EQ(res.curl_code, CURLE_OK) << s.method << ": " << res.error;
    EXPECT_EQ(res.status, 200) << s.method;
    EXPECT_EQ(res.body, s.expected) << s.method;
    EXPECT_TRUE(res.request_sent) << s.method;
  }
  std::lock_guard<std::mutex> guard{mtx};
  ASSERT_EQ(seen.size(), steps.size());
  for (std::size_t i = 0; i < steps.size(); ++i) {
    EXPECT_EQ(seen[i].method, steps[i].method);
    EXPECT_EQ(seen[i].target, "/items/7");
    EXPECT_EQ(seen[i].body, steps[i].body);
  }
  // GET and DELETE without a body send no Content-Length at all.
  EXPECT_FALSE(has_header(seen[0], "content-length"));
  EXPECT_FALSE(has_header(seen[3], "content-length"));
}

TEST_F(curl_client_test, sends_a_large_body_without_waiting_for_100_continue) {
  std::mutex mtx;
  request seen;
  auto opts = local_options();
  opts.body_limit = 4 * 1024 * 1024;
  auto srv = start(opts, [&](request&& req, responder reply) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      seen = std::move(req);
    }
    reply(response{});
  });
  ASSERT_NE(srv, nullptr);
  auto c = make_curl_client();
  auto req = get(url_of(*srv, "/big"));
  req.method = "POST";
  req.headers = {{"Content-Type", "application/octet-stream"}};
  // libcurl 7.88 adds "Expect: 100-continue" above 1 MiB.
  req.body.assign(3 * 512 * 1024, 'b');
  auto res = fetch(*c, req);
  EXPECT_EQ(res.curl_code, CURLE_OK) << res.error;
  EXPECT_EQ(res.status, 200);
  EXPECT_TRUE(res.request_sent);
  std::lock_guard<std::mutex> guard{mtx};
  EXPECT_FALSE(has_header(seen, "expect"));
  EXPECT_EQ(seen.body.size(), req.body.size());
}

TEST_F(curl_client_test, error_statuses_are_responses) {
  auto failing = start(local_options(), answer_with(500));
  auto limited = start(local_options(),
                       answer_with(429, {{"Retry-After", "7"}}));
  ASSERT_NE(failing, nullptr);
  ASSERT_NE(limited, nullptr);
  auto c = make_curl_client();
  auto res = fetch(*c, get(url_of(*failing, "/")));
  EXPECT_EQ(res.curl_code, CURLE_OK) << res.error;
  EXPECT_EQ(res.status, 500);
  EXPECT_EQ(res.body, "status 500");
  EXPECT_EQ(res.error, "");
  res = fetch(*c, get(url_of(*limited, "/")));
  EXPECT_EQ(res.curl_code, CURLE_OK) << res.error;
  EXPECT_EQ(res.status, 429);
  EXPECT_EQ(res.header("retry-after"), "7");
  EXPECT_EQ(res.header("Retry-After"), "7");
  auto st = c->stats();
  EXPECT_EQ(st.completed, 2u);
  EXPECT_EQ(st.failed, 0u);
}

TEST_F(curl_client_test, header_lookup_ignores_case_and_takes_the_first) {
  outbound_response res;
  res.headers = {{"set-cookie", "a=1"}, {"set-cookie", "b=2"}, {"x", ""}};
  EXPECT_EQ(res.header("set-cookie"), "a=1");
  EXPECT_EQ(res.header("Set-Cookie"), "a=1");
  EXPECT_EQ(res.header("x"), "");
  EXPECT_EQ(res.header("missing"), "");
  EXPECT_EQ(res.header(""), "");
}

// -- failures -------------------------------------------------------------------

TEST_F(curl_client_test, unanswered_request_times_out_after_being_sent) {
  held_requests held;
  auto srv = start(local_options(), held.make_handler());
  ASSERT_NE(srv, nullptr);
  auto c = make_curl_client();
  auto req = get(url_of(*srv, "/slow"));
  req.method = "POST";
  req.body = "payload";
  req.timeout = 300ms;
  auto res = fetch(*c, req);
  EXPECT_EQ(res.curl_code, CURLE_OPERATION_TIMEDOUT) << res.error;
  EXPECT_NE(res.error, "");
  EXPECT_EQ(res.status, 0);
  EXPECT_TRUE(res.request_sent);
  EXPECT_GE(res.elapsed.count(), 250);
  EXPECT_EQ(held.received(), 1u);
  auto st = c->stats();
  EXPECT_EQ(st.failed, 1u);
  EXPECT_EQ(st.completed, 0u);
  c->stop();
  held.release();
}

TEST_F(curl_client_test, refused_connection_is_an_error_and_not_sent) {
  auto port = butler::test::free_tcp_port();
  ASSERT_NE(port, 0);
  auto c = make_curl_client();
  auto req = get("http://127.0.0.1:" + std::to_string(port) + "/");
  req.method = "POST";
  req.body = "payload";
  auto res = fetch(*c, req);
  EXPECT_EQ(res.curl_code, CURLE_COULDNT_CONNECT) << res.error;
  EXPECT_NE(res.error, "");
  EXPECT_EQ(res.status, 0);
  EXPECT_FALSE(res.request_sent);
  EXPECT_EQ(c->stats().failed, 1u);
}

TEST_F(curl_client_test, rejects_bad_requests_without_sending_them) {
  auto srv = start(local_options(), answer_with(200));
  ASSERT_NE(srv, nullptr);
  auto c = make_curl_client();
  auto url = url_of(*srv, "/");
  struct bad_case {
    std::string what;
    outbound_request req;
    int code;
  };
  std::vector<bad_case> cases;
  auto add = [&](std::string what, int code, auto change) {
    auto req = get(url);
    change(req);
    cases.push_back({std::move(what), std::move(req), code});
  };
  add("empty url", CURLE_URL_MALFORMAT, [](auto& r) { r.url.clear(); });
  add("ftp url", CURLE_UNSUPPORTED_PROTOCOL,
      [](auto& r) { r.url = "ftp://127.0.0.1/x"; });
  add("file url", CURLE_UNSUPPORTED_PROTOCOL,
      [](auto& r) { r.url = "file:///etc/hostname"; });
  add("url with a line break", CURLE_URL_MALFORMAT,
      [&](auto& r) { r.url = url + "x\r\nX-Injected: 1"; });
  add("url with NUL", CURLE_BAD_FUNCTION_ARGUMENT,
      [&](auto& r) { r.url = url + std::string(1, '\0') + "x"; });
  add("empty method", CURLE_BAD_FUNCTION_ARGUMENT,
      [](auto& r) { r.method.clear(); });
  add("method with a space", CURLE_BAD_FUNCTION_ARGUMENT,
      [](auto& r) { r.method = "GET / HTTP/1.0\r\n"; });
  add("header name with a space", CURLE_BAD_FUNCTION_ARGUMENT,
      [](auto& r) { r.headers = {{"Bad Name", "v"}}; });
  add("empty header name", CURLE_BAD_FUNCTION_ARGUMENT,
      [](auto& r) { r.headers = {{"", "v"}}; });
  add("header value with a line break", CURLE_BAD_FUNCTION_ARGUMENT,
      [](auto& r) { r.headers = {{"X-Ok", "v\r\nX-Injected: 1"}}; });
  add("zero timeout", CURLE_BAD_FUNCTION_ARGUMENT,
      [](auto& r) { r.timeout = 0ms; });
  add("negative timeout", CURLE_BAD_FUNCTION_ARGUMENT,
      [](auto& r) { r.timeout = -5ms; });
  add("zero connect timeout", CURLE_BAD_FUNCTION_ARGUMENT,
      [](auto& r) { r.connect_timeout = 0ms; });
  collector col;
  for (std::size_t i = 0; i < cases.size(); ++i)
    ASSERT_TRUE(c->submit(cases[i].req, col.callback(static_cast<int>(i))))
      << cases[i].what;
  ASSERT_TRUE(col.wait_for(cases.size()));
  for (std::size_t i = 0; i < cases.size(); ++i) {
    auto res = col.at(static_cast<int>(i));
    EXPECT_EQ(col.calls(static_cast<int>(i)), 1u) << cases[i].what;
    EXPECT_EQ(res.curl_code, cases[i].code) << cases[i].what << ": "
                                            << res.error;
    EXPECT_NE(res.error, "") << cases[i].what;
    EXPECT_EQ(res.status, 0) << cases[i].what;
    EXPECT_FALSE(res.request_sent) << cases[i].what;
  }
  EXPECT_EQ(srv->stats().requests, 0u);
  EXPECT_EQ(c->stats().failed, cases.size());
  // The client still works afterwards.
  auto res = fetch(*c, get(url));
  EXPECT_EQ(res.curl_code, CURLE_OK) << res.error;
  EXPECT_EQ(res.status, 200);
}

TEST_F(curl_client_test, survives_empty_and_throwing_completions) {
  auto srv = start(local_options(), answer_with(200));
  ASSERT_NE(srv, nullptr);
  auto c = make_curl_client();
  EXPECT_TRUE(c->submit(get(url_of(*srv, "/")), completion{}));
  std::atomic<int> threw{0};
  EXPECT_TRUE(c->submit(get(url_of(*srv, "/")), [&](outbound_response) {
    ++threw;
    throw std::runtime_error("boom");
  }));
  ASSERT_TRUE(eventually([&] { return c->stats().completed == 2; }));
  EXPECT_EQ(threw.load(), 1);
  auto res = fetch(*c, get(url_of(*srv, "/")));
  EXPECT_EQ(res.curl_code, CURLE_OK) << res.error;
  EXPECT_EQ(res.status, 200);
}

// -- connections and concurrency --------------------------------------------------

TEST_F(curl_client_test, sequential_requests_reuse_the_connection) {
  auto srv = start(local_options(), answer_with(200));
  ASSERT_NE(srv, nullptr);
  client_options opts;
  opts.max_host_connections = 2;
  auto c = make_curl_client(opts);
  for (int i = 0; i < 20; ++i) {
    auto res = fetch(*c, get(url_of(*srv, "/n/" + std::to_string(i))));
    ASSERT_EQ(res.curl_code, CURLE_OK) << i << ": " << res.error;
    ASSERT_EQ(res.status, 200) << i;
  }
  EXPECT_EQ(srv->stats().requests, 20u);
  EXPECT_GE(srv->stats().connections_accepted, 1u);
  EXPECT_LE(srv->stats().connections_accepted, 2u);
}

/// Submits 50 requests at once to a server that holds them, answers them in
/// batches, and returns the largest number the server held at once.
void run_bounded(client_options opts, std::size_t expected_peak) {
  held_requests held;
  auto srv = start(local_options(), held.make_handler());
  ASSERT_NE(srv, nullptr);
  auto c = make_curl_client(opts);
  collector col;
  constexpr int total = 50;
  for (int i = 0; i < total; ++i)
    ASSERT_TRUE(c->submit(get(url_of(*srv, "/r/" + std::to_string(i))),
                          col.callback(i)));
  std::size_t answered = 0;
  while (answered < total) {
    auto batch = std::min<std::size_t>(expected_peak, total - answered);
    ASSERT_TRUE(eventually([&] { return held.waiting() >= batch; }))
      << "the server holds " << held.waiting() << " of " << batch
      << " expected after " << answered << " answers";
    answered += held.answer_all();
  }
  ASSERT_TRUE(col.wait_for(total));
  EXPECT_EQ(held.peak(), expected_peak);
  EXPECT_EQ(held.received(), static_cast<std::size_t>(total));
  for (int i = 0; i < total; ++i) {
    EXPECT_EQ(col.calls(i), 1u) << i;
    auto res = col.at(i);
    EXPECT_EQ(res.curl_code, CURLE_OK) << i << ": " << res.error;
    EXPECT_EQ(res.status, 200) << i;
  }
  EXPECT_TRUE(col.none_on(std::this_thread::get_id()));
  EXPECT_LE(srv->stats().connections_accepted, expected_peak);
  auto st = c->stats();
  EXPECT_EQ(st.completed, static_cast<std::uint64_t>(total));
  EXPECT_EQ(st.pending, 0u);
}

TEST_F(curl_client_test, runs_at_most_max_concurrent_transfers) {
  client_options opts;
  opts.max_concurrent = 3;
  opts.max_host_connections = 8;
  run_bounded(opts, 3);
}

TEST_F(curl_client_test, runs_at_most_max_host_connections_to_one_host) {
  client_options opts;
  opts.max_concurrent = 16;
  opts.max_host_connections = 2;
  run_bounded(opts, 2);
}

TEST_F(curl_client_test, raises_a_zero_max_concurrent_to_one) {
  client_options opts;
  opts.max_concurrent = 0;
  opts.max_host_connections = 0;
  run_bounded(opts, 1);
}

TEST_F(curl_client_test, refuses_submissions_beyond_max_pending) {
  held_requests held;
  auto srv = start(local_options(), held.make_handler());
  ASSERT_NE(srv, nullptr);
  client_options opts;
  opts.max_pending = 3;
  opts.max_concurrent = 1;
  auto c = make_curl_client(opts);
  collector col;
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(c->submit(get(url_of(*srv, "/")), col.callback(i))) << i;
  EXPECT_FALSE(c->submit(get(url_of(*srv, "/")), col.callback(3)));
  ASSERT_TRUE(eventually([&] { return held.waiting() == 1; }));
  EXPECT_FALSE(c->submit(get(url_of(*srv, "/")), col.callback(4)));
  auto st = c->stats();
  EXPECT_EQ(st.submitted, 3u);
  EXPECT_EQ(st.refused, 2u);
  EXPECT_EQ(st.pending, 3u);
  c->stop();
  EXPECT_EQ(col.total(), 3u);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(col.calls(i), 1u) << i;
  EXPECT_EQ(col.calls(3), 0u);
  EXPECT_EQ(col.calls(4), 0u);
  held.release();
}

TEST_F(curl_client_test, zero_max_pending_refuses_everything) {
  client_options opts;
  opts.max_pending = 0;
  auto c = make_curl_client(opts);
  collector col;
  EXPECT_FALSE(c->submit(get("http://127.0.0.1:1/"), col.callback(0)));
  c->stop();
  EXPECT_EQ(col.total(), 0u);
  EXPECT_EQ(c->stats().refused, 1u);
  EXPECT_EQ(c->stats().submitted, 0u);
}

TEST_F(curl_client_test, completions_may_submit_again) {
  auto srv = start(local_options(), answer_with(200));
  ASSERT_NE(srv, nullptr);
  client_options opts;
  // The follow-up only fits if the finished request left the count first.
  opts.max_pending = 1;
  auto c = make_curl_client(opts);
  collector col;
  auto follow_up = col.callback(1);
  std::atomic<bool> accepted{false};
  ASSERT_TRUE(c->submit(get(url_of(*srv, "/first")),
                        [&](outbound_response res) {
                          accepted = c->submit(get(url_of(*srv, "/second")),
                                               follow_up);
                          col.callback(0)(std::move(res));
                        }));
  ASSERT_TRUE(col.wait_for(2));
  EXPECT_TRUE(accepted.load());
  EXPECT_EQ(col.at(0).status, 200);
  EXPECT_EQ(col.at(1).status, 200);
  EXPECT_EQ(srv->stats().requests, 2u);
}

// -- stopping -------------------------------------------------------------------

TEST_F(curl_client_test, stop_aborts_running_and_queued_transfers) {
  held_requests held;
  auto srv = start(local_options(), held.make_handler());
  ASSERT_NE(srv, nullptr);
  client_options opts;
  opts.max_concurrent = 2;
  auto c = make_curl_client(opts);
  collector col;
  for (int i = 0; i < 5; ++i) {
    auto req = get(url_of(*srv, "/"));
    req.timeout = 30s;
    ASSERT_TRUE(c->submit(req, col.callback(i)));
  }
  ASSERT_TRUE(eventually([&] { return held.waiting() == 2; }));
  c->stop();
  // stop() joins the thread, so every completion ran already.
  ASSERT_EQ(col.total(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(col.calls(i), 1u) << i;
    auto res = col.at(i);
    EXPECT_EQ(res.curl_code, CURLE_ABORTED_BY_CALLBACK) << i;
    EXPECT_NE(res.error, "") << i;
    EXPECT_EQ(res.status, 0) << i;
    // The first two were at the server, the rest still queued.
    EXPECT_EQ(res.request_sent, i < 2) << i;
  }
  EXPECT_TRUE(col.none_on(std::this_thread::get_id()));
  EXPECT_FALSE(c->submit(get(url_of(*srv, "/")), col.callback(9)));
  c->stop();
  auto st = c->stats();
  EXPECT_EQ(st.failed, 5u);
  EXPECT_EQ(st.refused, 1u);
  EXPECT_EQ(st.pending, 0u);
  EXPECT_EQ(col.calls(9), 0u);
  held.release();
}

TEST_F(curl_client_test, destructor_stops_without_an_explicit_stop) {
  held_requests held;
  auto srv = start(local_options(), held.make_handler());
  ASSERT_NE(srv, nullptr);
  collector col;
  {
    auto c = make_curl_client();
    auto req = get(url_of(*srv, "/"));
    req.timeout = 30s;
    ASSERT_TRUE(c->submit(req, col.callback(0)));
    ASSERT_TRUE(eventually([&] { return held.waiting() == 1; }));
  }
  ASSERT_EQ(col.total(), 1u);
  EXPECT_EQ(col.at(0).curl_code, CURLE_ABORTED_BY_CALLBACK);
  EXPECT_TRUE(col.at(0).request_sent);
  held.release();
}

TEST_F(curl_client_test, idle_client_stops_and_destroys_cleanly) {
  auto c = make_curl_client();
  c->stop();
  c->stop();
  EXPECT_FALSE(c->submit(get("http://127.0.0.1:1/"), completion{}));
  c.reset();
  auto other = make_curl_client();
  other.reset();
}

TEST_F(curl_client_test, stop_from_a_completion_does_not_deadlock) {
  auto srv = start(local_options(), answer_with(200));
  ASSERT_NE(srv, nullptr);
  auto c = make_curl_client();
  std::atomic<bool> returned{false};
  std::atomic<bool> resubmitted{true};
  ASSERT_TRUE(c->submit(get(url_of(*srv, "/")), [&](outbound_response) {
    c->stop();
    resubmitted = c->submit(get(url_of(*srv, "/")), completion{});
    returned = true;
  }));
  ASSERT_TRUE(eventually([&] { return returned.load(); }));
  EXPECT_FALSE(resubmitted.load());
  c->stop();
  EXPECT_EQ(c->stats().completed, 1u);
  EXPECT_EQ(c->stats().refused, 1u);
}

// -- response body cap --------------------------------------------------------------

TEST_F(curl_client_test, cuts_large_response_bodies_at_the_cap) {
  std::string big(2 * 1024 * 1024, 'x');
  for (std::size_t i = 0; i < big.size(); i += 997)
    big[i] = static_cast<char>('a' + (i % 26));
  auto srv = start(local_options(), [&](request&&, responder reply) {
    response res;
    res.status = 202;
    res.body = big;
    res.headers = {{"X-Big", "1"}};
    reply(std::move(res));
  });
  ASSERT_NE(srv, nullptr);
  auto c = make_curl_client();
  auto res = fetch(*c, get(url_of(*srv, "/big")));
  constexpr std::size_t cap = 1024 * 1024;
  EXPECT_EQ(res.curl_code, CURLE_OK) << res.error;
  EXPECT_EQ(res.status, 202);
  EXPECT_EQ(res.header("x-big"), "1");
  ASSERT_EQ(res.body.size(), cap);
  EXPECT_EQ(res.body, big.substr(0, cap));
  EXPECT_NE(res.error.find("truncated"), std::string::npos) << res.error;
  EXPECT_EQ(c->stats().completed, 1u);
  // The client goes on working after the cut connection.
  auto small = fetch(*c, get(url_of(*srv, "/big")));
  EXPECT_EQ(small.status, 202);
}

TEST_F(curl_client_test, keeps_bodies_up_to_a_configured_cap) {
  auto srv = start(local_options(), [](request&& req, responder reply) {
    response res;
    res.body = std::string(std::stoul(req.target.substr(1)), 'y');
    reply(std::move(res));
  });
  ASSERT_NE(srv, nullptr);
  client_options opts;
  opts.max_response_body = 10;
  auto c = make_curl_client(opts);
  auto exact = fetch(*c, get(url_of(*srv, "/10")));
  EXPECT_EQ(exact.curl_code, CURLE_OK) << exact.error;
  EXPECT_EQ(exact.body, std::string(10, 'y'));
  EXPECT_EQ(exact.error, "");
  auto over = fetch(*c, get(url_of(*srv, "/11")));
  EXPECT_EQ(over.curl_code, CURLE_OK) << over.error;
  EXPECT_EQ(over.status, 200);
  EXPECT_EQ(over.body, std::string(10, 'y'));
  EXPECT_NE(over.error.find("truncated at 10 bytes"), std::string::npos)
    << over.error;
}

// -- HTTPS ------------------------------------------------------------------------

class curl_client_tls : public curl_client_test {
public:
  static void SetUpTestSuite() {
    dir_ = butler::test::make_temp_dir("butler-curl-certs-");
    try {
      certs_ = butler::test::make_test_certs(dir_);
    } catch (const std::exception& ex) {
      error_ = ex.what();
    }
  }

  static void TearDownTestSuite() {
    butler::test::remove_tree(dir_);
  }

protected:
  void SetUp() override {
    curl_client_test::SetUp();
    ASSERT_EQ(error_, "");
    auto opts = local_options();
    opts.tls = true;
    opts.cert_file = certs_.server_cert;
    opts.key_file = certs_.server_key;
    srv_ = start(opts, answer_with(200));
    ASSERT_NE(srv_, nullptr);
    client_ = make_curl_client();
  }

  outbound_request tls_get() const {
    return get(url_of(*srv_, "/secure", "https"));
  }

  static inline std::string dir_;
  static inline std::string error_;
  static inline butler::test::cert_files certs_;
  std::unique_ptr<server> srv_;
  std::unique_ptr<client> client_;
};

TEST_F(curl_client_tls, verifies_the_server_with_the_given_ca) {
  auto req = tls_get();
  req.ca_file = certs_.ca_cert;
  auto res = fetch(*client_, req);
  EXPECT_EQ(res.curl_code, CURLE_OK) << res.error;
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "status 200");
}

TEST_F(curl_client_tls, rejects_the_server_without_its_ca) {
  auto res = fetch(*client_, tls_get());
  EXPECT_EQ(res.curl_code, CURLE_PEER_FAILED_VERIFICATION) << res.error;
  EXPECT_NE(res.error, "");
  EXPECT_EQ(res.status, 0);
  EXPECT_FALSE(res.request_sent);
  EXPECT_EQ(srv_->stats().requests, 0u);
}

TEST_F(curl_client_tls, accepts_any_server_when_verification_is_off) {
  auto req = tls_get();
  req.verify_peer = false;
  auto res = fetch(*client_, req);
  EXPECT_EQ(res.curl_code, CURLE_OK) << res.error;
  EXPECT_EQ(res.status, 200);
}

TEST_F(curl_client_tls, presents_a_client_certificate) {
  auto req = tls_get();
  req.ca_file = certs_.ca_cert;
  req.cert_file = certs_.client_cert;
  req.key_file = certs_.client_key;
  auto res = fetch(*client_, req);
  EXPECT_EQ(res.curl_code, CURLE_OK) << res.error;
  EXPECT_EQ(res.status, 200);
}

TEST_F(curl_client_tls, reports_bad_tls_files) {
  auto missing_ca = tls_get();
  missing_ca.ca_file = dir_ + "/no-such-ca.pem";
  auto res = fetch(*client_, missing_ca);
  EXPECT_EQ(res.curl_code, CURLE_SSL_CACERT_BADFILE) << res.error;
  EXPECT_FALSE(res.request_sent);

  auto missing_cert = tls_get();
  missing_cert.ca_file = certs_.ca_cert;
  missing_cert.cert_file = dir_ + "/no-such-cert.pem";
  missing_cert.key_file = certs_.client_key;
  res = fetch(*client_, missing_cert);
  EXPECT_EQ(res.curl_code, CURLE_SSL_CERTPROBLEM) << res.error;
  EXPECT_FALSE(res.request_sent);

  auto wrong_key = tls_get();
  wrong_key.ca_file = certs_.ca_cert;
  wrong_key.cert_file = certs_.client_cert;
  wrong_key.key_file = certs_.server_key;
  res = fetch(*client_, wrong_key);
  EXPECT_EQ(res.curl_code, CURLE_SSL_CERTPROBLEM) << res.error;
  EXPECT_FALSE(res.request_sent);

  EXPECT_EQ(srv_->stats().requests, 0u);
  EXPECT_EQ(client_->stats().failed, 3u);
}

} // namespace
