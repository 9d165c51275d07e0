#include "net/curl_client.hpp"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <deque>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>

// Notes on libcurl behaviour this file relies on (Debian's 7.88.1):
// - Proxies: libcurl's defaults are kept, so http_proxy, https_proxy,
//   ALL_PROXY and NO_PROXY from the environment apply (HTTP_PROXY in upper
//   case is ignored by libcurl on purpose). Set NO_PROXY for local peers.
// - Redirects are not followed (CURLOPT_FOLLOWLOCATION stays off): a 3xx comes
//   back as a response.
// - Only http and https are allowed, so a URL can never read a local file.
// - A body sent without a Content-Type header goes out as libcurl's default,
//   application/x-www-form-urlencoded; callers set their own.

namespace butler::http {

client::~client() = default;

namespace {

// -- helpers ------------------------------------------------------------------

/// Upper bound for one curl_multi_poll; curl_multi_wakeup ends it early, and
/// libcurl shortens it to its own next timeout.
constexpr int poll_timeout_ms = 1000;

/// Returns `text` in lower case (ASCII).
std::string to_lower(std::string_view text) {
  std::string result{text};
  for (auto& c : result)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return result;
}

/// Returns `text` without leading and trailing blanks (and CR/LF).
std::string_view trim(std::string_view text) {
  auto blank = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
  };
  while (!text.empty() && blank(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && blank(text.back()))
    text.remove_suffix(1);
  return text;
}

/// Returns whether `text` is an HTTP token (RFC 9110 tchar+), as method names
/// and header field names must be.
bool is_token(std::string_view text) {
  if (text.empty())
    return false;
  constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
  return std::all_of(text.begin(), text.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0
           || extra.find(c) != std::string_view::npos;
  });
}

/// Returns `url` cut to scheme and host for logging: paths and queries carry
/// secrets (a Slack webhook URL is its own credential), and so does userinfo.
std::string url_for_log(const std::string& url) {
  auto scheme_end = url.find("://");
  auto host_begin = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  auto host_end = url.find_first_of("/?#", host_begin);
  auto authority = url.substr(host_begin, host_end == std::string::npos
                                            ? std::string::npos
                                            : host_end - host_begin);
  if (auto at = authority.rfind('@'); at != std::string::npos)
    authority.erase(0, at + 1);
  auto result = url.substr(0, host_begin) + authority;
  if (host_end != std::string::npos)
    result += "/...";
  return result;
}

/// Returns why `req` cannot be sent as given, or "" when it can. libcurl
/// checks the URL itself; these are the inputs it would pass on verbatim.
std::string request_problem(const outbound_request& req) {
  if (!is_token(req.method))
    return "the method '" + req.method + "' is not an HTTP token";
  if (req.url.find('\0') != std::string::npos)
    return "the URL contains a NUL byte";
  for (auto& [name, value] : req.headers) {
    if (!is_token(name))
      return "the header name '" + name + "' is not an HTTP token";
    if (value.find_first_of(std::string_view{"\r\n\0", 3})
        != std::string::npos)
      return "the value of header '" + name
             + "' contains a line break or NUL byte";
  }
  if (req.timeout.count() <= 0)
    return "the timeout must be positive";
  if (req.connect_timeout.count() <= 0)
    return "the connect timeout must be positive";
  for (auto* file : {&req.ca_file, &req.cert_file, &req.key_file})
    if (file->find('\0') != std::string::npos)
      return "a TLS file name contains a NUL byte";
  return {};
}

/// Initializes libcurl once per process, before the first handle.
void init_curl_once() {
  // A function-local static because the C library demands one global init
  // before any handle exists; C++ makes the first call thread-safe.
  static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (rc != CURLE_OK)
    throw std::runtime_error(std::string{"curl_global_init failed: "}
                             + curl_easy_strerror(rc));
}

// -- one request --------------------------------------------------------------

/// A submitted request with everything libcurl points into while it runs.
struct job {
  outbound_request req;
  completion done;
  outbound_response res;
  CURL* easy = nullptr;
  curl_slist* header_list = nullptr;
  std::size_t body_cap = 0;
  bool truncated = false;
  bool sends_body = false;
  char error_buffer[CURL_ERROR_SIZE] = {};

  job() = default;
  job(const job&) = delete;
  job& operator=(const job&) = delete;

  // The easy handle must be out of the multi handle by now.
  ~job() {
    if (easy != nullptr)
      curl_easy_cleanup(easy);
    curl_slist_free_all(header_list);
  }
};

/// Collects the response body up to the cap.
size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* j = static_cast<job*>(user);
  auto n = size * count;
  auto room = j->body_cap - j->res.body.size();
  if (n > room) {
    // Stop the transfer instead of reading on: nobody wants the rest, and a
    // huge body must not keep the connection busy until the timeout.
    j->res.body.append(data, room);
    j->truncated = true;
    return 0;
  }
  j->res.body.append(data, n);
  return n;
}

/// Collects header fields, names in lower case, of the final response.
size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* j = static_cast<job*>(user);
  auto n = size * count;
  std::string_view line{data, n};
  auto& headers = j->res.headers;
  if (line.substr(0, 5) == "HTTP/") {
    // A status line starts a new response (after 1xx): drop older fields.
    headers.clear();
    return n;
  }
  if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
    // Obsolete line folding continues the previous field.
    if (auto rest = trim(line); !headers.empty() && !rest.empty())
      headers.back().second.append(" ").append(rest);
    return n;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos)
    return n; // the blank line that ends the block
  headers.emplace_back(to_lower(trim(line.substr(0, colon))),
                       std::string{trim(line.substr(colon + 1))});
  return n;
}

/// Sets every libcurl option for `j` on its easy handle.
CURLcode configure(job& j) {
  auto* e = j.easy;
  auto& req = j.req;
  CURLcode rc = CURLE_OK;
  auto set = [&](CURLoption opt, auto value) {
    if (rc == CURLE_OK)
      rc = curl_easy_setopt(e, opt, value);
  };
  set(CURLOPT_PRIVATE, static_cast<void*>(&j));
  set(CURLOPT_ERRORBUFFER, static_cast<char*>(j.error_buffer));
  set(CURLOPT_NOSIGNAL, 1L);
  set(CURLOPT_URL, req.url.c_str());
  set(CURLOPT_PROTOCOLS_STR, "http,https");
  set(CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeout.count()));
  set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(req.connect_timeout.count()));
  set(CURLOPT_TCP_KEEPALIVE, 1L);
  if (req.at_most_once) {
    // libcurl silently re-sends a request whose reused connection closed
    // before the answer, which could deliver it twice; a connection of its
    // own is never re-sent.
    set(CURLOPT_FRESH_CONNECT, 1L);
    set(CURLOPT_FORBID_REUSE, 1L);
  }
  set(CURLOPT_WRITEFUNCTION, &on_body);
  set(CURLOPT_WRITEDATA, static_cast<void*>(&j));
  set(CURLOPT_HEADERFUNCTION, &on_header);
  set(CURLOPT_HEADERDATA, static_cast<void*>(&j));
  // Method and body. libcurl sends POSTFIELDS with any custom method, so PUT,
  // PATCH and DELETE-with-body all take the same path as POST.
  const auto& method = req.method;
  if (method == "HEAD") {
    set(CURLOPT_NOBODY, 1L);
  } else {
    j.sends_body = method == "POST" || method == "PUT" || method == "PATCH"
                   || !req.body.empty();
    if (method == "GET" && !j.sends_body)
      set(CURLOPT_HTTPGET, 1L);
    else if (method == "POST")
      set(CURLOPT_POST, 1L);
    else
      set(CURLOPT_CUSTOMREQUEST, method.c_str());
    if (j.sends_body) {
      set(CURLOPT_POSTFIELDSIZE_LARGE,
          static_cast<curl_off_t>(req.body.size()));
      set(CURLOPT_POSTFIELDS, req.body.data());
    }
  }
  // Header fields. "Name;" is libcurl's way to send an empty value ("Name:"
  // would remove the field), and "Expect:" turns off the 100-continue wait
  // that libcurl adds for large bodies.
  bool has_expect = false;
  for (auto& [name, value] : req.headers) {
    has_expect = has_expect || to_lower(name) == "expect";
    auto line = value.empty() ? name + ";" : name + ": " + value;
    auto* list = curl_slist_append(j.header_list, line.c_str());
    if (list == nullptr)
      return CURLE_OUT_OF_MEMORY;
    j.header_list = list;
  }
  if (!has_expect) {
    auto* list = curl_slist_append(j.header_list, "Expect:");
    if (list == nullptr)
      return CURLE_OUT_OF_MEMORY;
    j.header_list = list;
  }
  set(CURLOPT_HTTPHEADER, j.header_list);
  // TLS.
  if (!req.ca_file.empty())
    set(CURLOPT_CAINFO, req.ca_file.c_str());
  if (!req.cert_file.empty())
    set(CURLOPT_SSLCERT, req.cert_file.c_str());
  if (!req.key_file.empty())
    set(CURLOPT_SSLKEY, req.key_file.c_str());
  set(CURLOPT_SSL_VERIFYPEER, req.verify_peer ? 1L : 0L);
  set(CURLOPT_SSL_VERIFYHOST, req.verify_peer ? 2L : 0L);
  return rc;
}

/// Fills `j.res` from its finished (or aborted) easy handle.
void fill_response(job& j, CURLcode rc, std::string error = {}) {
  auto& res = j.res;
  long status = 0;
  curl_easy_getinfo(j.easy, CURLINFO_RESPONSE_CODE, &status);
  res.status = status;
  curl_off_t total_us = 0;
  curl_easy_getinfo(j.easy, CURLINFO_TOTAL_TIME_T, &total_us);
  res.elapsed = std::chrono::milliseconds{total_us / 1000};
  // REQUEST_SIZE counts bytes of the first write (header plus what body fit
  // in); the upload counter counts body bytes only. Both together say the
  // whole request went out.
  long request_size = 0;
  curl_easy_getinfo(j.easy, CURLINFO_REQUEST_SIZE, &request_size);
  curl_off_t uploaded = 0;
  curl_easy_getinfo(j.easy, CURLINFO_SIZE_UPLOAD_T, &uploaded);
  res.request_sent
    = request_size > 0
      && (!j.sends_body
          || uploaded >= static_cast<curl_off_t>(j.req.body.size()));
  if (rc == CURLE_WRITE_ERROR && j.truncated) {
    // We stopped reading on purpose: the response itself is fine.
    rc = CURLE_OK;
    res.error = "response body truncated at " + std::to_string(j.body_cap)
                + " bytes";
  } else if (!error.empty()) {
    res.error = std::move(error);
  } else if (rc != CURLE_OK) {
    res.error = j.error_buffer[0] != '\0' ? std::string{j.error_buffer}
                                          : curl_easy_strerror(rc);
  }
  res.curl_code = static_cast<int>(rc);
}

// -- the client -----------------------------------------------------------------

class curl_client final : public client {
public:
  explicit curl_client(client_options opts) : opts_(opts) {
    init_curl_once();
    multi_ = curl_multi_init();
    if (multi_ == nullptr)
      throw std::runtime_error("curl-client cannot create a multi handle");
    auto total = static_cast<long>(opts_.max_concurrent);
    curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, total);
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                      static_cast<long>(opts_.max_host_connections));
    // The cache of idle connections: libcurl's default (4 per added easy
    // handle) shrinks when transfers are few, which would close connections
    // we want to reuse.
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS,
                      std::max(total, static_cast<long>(
                                        opts_.max_host_connections)));
    // TLS sessions are shared by every transfer, so a fresh connection to a
    // peer seen before (each at-most-once request has one) resumes its
    // session instead of paying a full handshake with the client
    // certificate. Only the client's thread uses the share: no locks.
    share_ = curl_share_init();
    if (share_ != nullptr)
      curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    thread_ = std::thread{[this] { run(); }};
    thread_id_ = thread_.get_id();
    spdlog::debug("curl-client started (max_concurrent {}, max_pending {})",
                  opts_.max_concurrent, opts_.max_pending);
  }

  ~curl_client() override {
    // Destroying the client from its own completion cannot join the thread
    // that runs the destructor; std::thread terminates in that case.
    stop();
  }

  bool submit(outbound_request req, completion done) override {
    auto j = std::make_unique<job>();
    j->req = std::move(req);
    j->done = std::move(done);
    j->body_cap = opts_.max_response_body;
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopping_ || stats_.pending >= opts_.max_pending) {
      ++stats_.refused;
      spdlog::debug("curl-client refused {} {}: {}", j->req.method,
                    url_for_log(j->req.url),
                    stopping_ ? "stopped" : "queue full");
      return false;
    }
    queue_.push_back(std::move(j));
    ++stats_.submitted;
    ++stats_.pending;
    // Under the lock: stop() cleans up the multi handle only after setting
    // stopping_, so the handle is alive here.
    curl_multi_wakeup(multi_);
    return true;
  }

  void stop() override {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (!stopping_) {
        stopping_ = true;
        curl_multi_wakeup(multi_);
      }
    }
    // Called from a completion: the loop aborts the rest once the callback
    // returns; a later stop() from another thread joins.
    if (std::this_thread::get_id() == thread_id_)
      return;
    std::lock_guard<std::mutex> guard{join_mtx_};
    if (thread_.joinable()) {
      thread_.join();
      curl_multi_cleanup(multi_);
      if (share_ != nullptr)
        curl_share_cleanup(share_);
      spdlog::debug("curl-client stopped");
    }
  }

  client_stats stats() const override {
    std::lock_guard<std::mutex> guard{mtx_};
    return stats_;
  }

private:
  // -- the client thread --------------------------------------------------------

  void run() {
    CURLMcode last_error = CURLM_OK;
    for (;;) {
      if (stop_requested())
        break;
      start_queued();
      int still_running = 0;
      auto mc = curl_multi_perform(multi_, &still_running);
      if (mc != CURLM_OK)
        warn_once(last_error, mc, "curl_multi_perform");
      // Finished transfers free slots: start queued ones before waiting.
      if (collect_finished())
        continue;
      mc = curl_multi_poll(multi_, nullptr, 0, poll_timeout_ms, nullptr);
      if (mc != CURLM_OK)
        warn_once(last_error, mc, "curl_multi_poll");
    }
    abort_all();
  }

  bool stop_requested() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return stopping_;
  }

  /// Logs an unexpected multi error, once per distinct code in a row.
  static void warn_once(CURLMcode& last, CURLMcode mc, const char* what) {
    if (mc != last)
      spdlog::warn("curl-client {} failed: {}", what, curl_multi_strerror(mc));
    last = mc;
  }

  /// Moves queued jobs into the multi handle while slots are free.
  void start_queued() {
    std::vector<std::unique_ptr<job>> batch;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      while (!queue_.empty()
             && running_.size() + batch.size() < opts_.max_concurrent) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    for (auto& j : batch)
      start(std::move(j));
  }

  void start(std::unique_ptr<job> j) {
    if (auto problem = request_problem(j->req); !problem.empty()) {
      fail_early(std::move(j), CURLE_BAD_FUNCTION_ARGUMENT, problem);
      return;
    }
    j->easy = curl_easy_init();
    if (j->easy == nullptr) {
      spdlog::warn("curl-client cannot create an easy handle");
      fail_early(std::move(j), CURLE_FAILED_INIT, "cannot create a handle");
      return;
    }
    if (share_ != nullptr)
      curl_easy_setopt(j->easy, CURLOPT_SHARE, share_);
    if (auto rc = configure(*j); rc != CURLE_OK) {
      auto text = j->error_buffer[0] != '\0' ? std::string{j->error_buffer}
                                             : curl_easy_strerror(rc);
      fail_early(std::move(j), rc, "cannot set up the request: " + text);
      return;
    }
    if (auto mc = curl_multi_add_handle(multi_, j->easy); mc != CURLM_OK) {
      spdlog::warn("curl-client curl_multi_add_handle failed: {}",
                   curl_multi_strerror(mc));
      fail_early(std::move(j), CURLE_FAILED_INIT,
                 std::string{"cannot start the transfer: "}
                   + curl_multi_strerror(mc));
      return;
    }
    running_.push_back(std::move(j));
  }

  /// Completes a job that never reached the network.
  void fail_early(std::unique_ptr<job> j, CURLcode rc, std::string error) {
    j->res.curl_code = static_cast<int>(rc);
    j->res.error = std::move(error);
    complete(std::move(j));
  }

  /// Completes every finished transfer; returns whether there was one.
  bool collect_finished() {
    bool any = false;
    int left = 0;
    while (auto* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE)
        continue;
      // The message dies with remove_handle: copy what we need first.
      auto* easy = msg->easy_handle;
      auto rc = msg->data.result;
      curl_multi_remove_handle(multi_, easy);
      auto j = take_running(easy);
      if (j == nullptr) {
        spdlog::warn("curl-client got a finished transfer it does not know");
        continue;
      }
      fill_response(*j, rc);
      complete(std::move(j));
      any = true;
    }
    return any;
  }

  std::unique_ptr<job> take_running(CURL* easy) {
    auto i = std::find_if(running_.begin(), running_.end(),
                          [&](const auto& j) { return j->easy == easy; });
    if (i == running_.end())
      return nullptr;
    auto j = std::move(*i);
    running_.erase(i);
    return j;
  }

  /// Completes everything still running or queued after stop().
  void abort_all() {
    auto running = std::move(running_);
    running_.clear();
    std::deque<std::unique_ptr<job>> queued;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      queued.swap(queue_);
    }
    for (auto& j : running) {
      curl_multi_remove_handle(multi_, j->easy);
      fill_response(*j, CURLE_ABORTED_BY_CALLBACK,
                    "aborted: the client stopped during the transfer");
      complete(std::move(j));
    }
    for (auto& j : queued)
      fail_early(std::move(j), CURLE_ABORTED_BY_CALLBACK,
                 "aborted: the client stopped before the transfer started");
  }

  /// Counts the outcome, releases the handles and runs the completion.
  void complete(std::unique_ptr<job> j) {
    auto res = std::move(j->res);
    auto done = std::move(j->done);
    if (res.curl_code == CURLE_OK)
      spdlog::debug("curl-client {} {} answered {} in {} ms", j->req.method,
                    url_for_log(j->req.url), res.status, res.elapsed.count());
    else
      spdlog::debug("curl-client {} {} failed ({}): {}", j->req.method,
                    url_for_log(j->req.url), res.curl_code, res.error);
    j.reset();
    {
      // Before the callback, so that it may submit into the freed room.
      std::lock_guard<std::mutex> guard{mtx_};
      --stats_.pending;
      if (res.curl_code == CURLE_OK)
        ++stats_.completed;
      else
        ++stats_.failed;
    }
    if (!done)
      return;
    try {
      done(std::move(res));
    } catch (const std::exception& ex) {
      spdlog::warn("curl-client completion threw: {}", ex.what());
    } catch (...) {
      spdlog::warn("curl-client completion threw a non-exception");
    }
  }

  // -- state --------------------------------------------------------------------

  const client_options opts_;
  CURLM* multi_ = nullptr;
  CURLSH* share_ = nullptr;

  /// Guards queue_, stopping_ and stats_.
  mutable std::mutex mtx_;
  std::deque<std::unique_ptr<job>> queue_;
  bool stopping_ = false;
  client_stats stats_;

  /// Transfers in the multi handle; only the client thread touches it.
  std::vector<std::unique_ptr<job>> running_;

  /// Serializes joining in concurrent stop() calls.
  std::mutex join_mtx_;
  std::thread thread_;
  std::thread::id thread_id_;
};

} // namespace

std::string outbound_response::header(const std::string& name) const {
  auto key = to_lower(name);
  for (auto& [field, value] : headers)
    if (field == key)
      return value;
  return {};
}

std::unique_ptr<client> make_curl_client(client_options opts) {
  if (opts.max_concurrent == 0) {
    spdlog::warn("curl-client max_concurrent 0 raised to 1");
    opts.max_concurrent = 1;
  }
  if (opts.max_host_connections == 0) {
    // libcurl reads 0 as "no limit"; the option means "at most".
    spdlog::warn("curl-client max_host_connections 0 raised to 1");
    opts.max_host_connections = 1;
  }
  return std::make_unique<curl_client>(opts);
}

} // namespace butler::http
