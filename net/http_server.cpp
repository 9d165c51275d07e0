#include "net/http_server.hpp"
#include "net/io_runner.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace butler::http {

server::~server() {
  // nop
}

namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

// Concrete executor types instead of any_io_executor: every completion on a
// session goes through its strand, and the type-erased executor would add an
// indirection (and sometimes an allocation) to each of them.
using strand_type = net::strand<net::io_context::executor_type>;
using socket_type = tcp::socket::rebind_executor<strand_type>::other;
using acceptor_type = tcp::acceptor::rebind_executor<strand_type>::other;
using timer_type = net::steady_timer::rebind_executor<strand_type>::other;
using plain_stream = socket_type;
using tls_stream = beast::ssl_stream<socket_type>;
using clock_type = std::chrono::steady_clock;
using beast_response = bhttp::response<bhttp::string_body>;
using request_parser = bhttp::request_parser<bhttp::string_body>;

/// Bounds the lingering read after an error response on plain HTTP, so the
/// client sees the response instead of a reset from unread request bytes.
constexpr auto max_linger = std::chrono::seconds{2};
constexpr std::size_t max_linger_bytes = 1024 * 1024;

constexpr std::string_view continue_response = "HTTP/1.1 100 Continue\r\n\r\n";

class session_base;

/// Holds the counters behind server_stats.
struct counters {
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> rejected{0};
  std::atomic<std::uint64_t> active{0};
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> in_flight{0};
  std::atomic<std::uint64_t> bad_requests{0};
  std::atomic<std::uint64_t> timeouts{0};
};

/// Holds what the server, the listener and every session share.
struct shared_state {
  server_options opts;
  handler on_request;
  std::shared_ptr<ssl::context> tls;
  // Weak, because the context's queued handlers keep sessions alive and
  // sessions keep this state alive; a strong pointer would be a cycle.
  std::weak_ptr<net::io_context> ioc;
  std::atomic<bool> accepting{true};
  counters stats;
  std::mutex drain_mtx;
  std::condition_variable drain_cv;
  std::mutex sessions_mtx;
  std::unordered_map<const session_base*, std::weak_ptr<session_base>> sessions;

  /// Marks one in-flight request as answered and wakes drain().
  void request_done() {
    if (stats.in_flight.fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> guard{drain_mtx};
      drain_cv.notify_all();
    }
  }
};

/// Returns "ip:port", "[ip6]:port" for IPv6, plain IPv4 for mapped addresses.
std::string format_endpoint(const tcp::endpoint& ep) {
  auto addr = ep.address();
  if (addr.is_v6() && addr.to_v6().is_v4_mapped())
    addr = net::ip::make_address_v4(net::ip::v4_mapped, addr.to_v6());
  std::string result;
  if (addr.is_v6())
    result = "[" + addr.to_string() + "]";
  else
    result = addr.to_string();
  result += ':';
  result += std::to_string(ep.port());
  return result;
}

/// Returns `host:port`, with brackets around an IPv6 literal.
std::string format_host_port(const std::string& host, uint16_t port) {
  auto h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

/// Returns whether a response header can be written as given: no CR, LF or
/// NUL anywhere (header injection) and a non-empty name without ':'.
bool valid_header(const std::string& name, const std::string& value) {
  if (name.empty() || name.find_first_of(":\r\n", 0, 3) != std::string::npos
      || name.find('\0') != std::string::npos)
    return false;
  return value.find_first_of("\r\n", 0, 2) == std::string::npos
         && value.find('\0') == std::string::npos;
}

std::string to_std_string(beast::string_view sv) {
  return std::string{sv.data(), sv.size()};
}

bool is_http_parse_error(const beast::error_code& ec) {
  static const auto& category
    = bhttp::make_error_code(bhttp::error::bad_method).category();
  return ec.category() == category;
}

// -- session base and the reply sink ------------------------------------------

/// The part of a session that the reply sink and stop() need.
class session_base : public std::enable_shared_from_this<session_base> {
public:
  explicit session_base(strand_type strand) : strand_(std::move(strand)) {
    // nop
  }

  virtual ~session_base() = default;

  const strand_type& strand() const {
    return strand_;
  }

  /// Writes `res` as the answer to the current request. Runs on the strand.
  virtual void on_response(response&& res) = 0;

  /// Closes the connection at once. Runs only while no I/O thread runs.
  virtual void close_now() = 0;

protected:
  strand_type strand_;
};

/// Answers one request: posts the response onto the session's strand, once.
class session_sink final : public reply_sink {
public:
  session_sink(std::shared_ptr<net::io_context> ioc,
               std::shared_ptr<session_base> session)
    : ioc_(std::move(ioc)), session_(std::move(session)) {
    // nop
  }

  ~session_sink() override {
    if (answered_.load(std::memory_order_acquire) || !session_)
      return;
    try {
      post(error_response(503, "request was dropped before it was answered"));
    } catch (const std::exception& e) {
      spdlog::error("http-server cannot answer a dropped request: {}",
                    e.what());
    }
  }

  void send(response res) override {
    if (answered_.exchange(true, std::memory_order_acq_rel))
      return;
    post(std::move(res));
  }

private:
  void post(response&& res) {
    auto session = std::move(session_);
    auto strand = session->strand();
    net::post(strand, [s = std::move(session), r = std::move(res)]() mutable {
      s->on_response(std::move(r));
    });
  }

  // Declared first so it is released last: the session's socket and timer
  // belong to this context, which must outlive them even when a responder
  // outlives the server.
  std::shared_ptr<net::io_context> ioc_;
  std::shared_ptr<session_base> session_;
  std::atomic<bool> answered_{false};
};

// -- session ------------------------------------------------------------------

/// Serves one connection: read a request, hand it to the handler, wait for
/// the responder, write the response, read the next one.
template <class Stream>
class session final : public session_base {
public:
  static constexpr bool is_tls = std::is_same_v<Stream, tls_stream>;

  /// `reject` makes the session answer 503 at once and close.
  template <class... Ts>
  session(std::shared_ptr<shared_state> state, bool reject,
          socket_type&& socket, Ts&&... xs)
    : session_base(socket.get_executor()),
      state_(std::move(state)),
      stream_(std::move(socket), std::forward<Ts>(xs)...),
      timer_(strand_),
      reject_(reject),
      counted_(!reject) {
    // nop
  }

  ~session() override {
    finish_request();
    release_slot();
    std::lock_guard<std::mutex> guard{state_->sessions_mtx};
    state_->sessions.erase(this);
  }

  /// Registers the session and starts it on its strand.
  void start() {
    {
      std::lock_guard<std::mutex> guard{state_->sessions_mtx};
      state_->sessions.emplace(this, weak_from_this());
    }
    beast::error_code ec;
    auto ep = beast::get_lowest_layer(stream_).remote_endpoint(ec);
    peer_ = ec ? std::string{"unknown"} : format_endpoint(ep);
    net::dispatch(strand_,
                  beast::bind_front_handler(&session::on_start, self()));
  }

  void on_response(response&& res) override {
    if (closed_ || phase_ != phase::handling) {
      finish_request();
      return;
    }
    bool keep_alive
      = keep_alive_ && state_->accepting.load(std::memory_order_relaxed);
    write_response(std::move(res), keep_alive);
  }

  void close_now() override {
    finish_request();
    close_socket();
  }

private:
  enum class phase { handshake, reading, handling, writing, closing };

  std::shared_ptr<session> self() {
    return std::static_pointer_cast<session>(shared_from_this());
  }

  // -- start and TLS handshake ----------------------------------------------

  void on_start() {
    if (closed_)
      return;
    if constexpr (is_tls) {
      set_deadline(state_->opts.read_timeout, phase::handshake);
      stream_.async_handshake(
        ssl::stream_base::server,
        beast::bind_front_handler(&session::on_handshake, self()));
    } else {
      begin();
    }
  }

  void on_handshake(beast::error_code ec) {
    if (closed_)
      return;
    if (ec) {
      // A client that connects and leaves (a port probe) is no bad request.
      if (ec != net::error::eof && ec != net::error::connection_reset) {
        state_->stats.bad_requests.fetch_add(1, std::memory_order_relaxed);
        spdlog::debug("http-server TLS handshake with {} failed: {}", peer_,
                      ec.message());
      }
      close_socket();
      return;
    }
    begin();
  }

  void begin() {
    if (reject_)
      send_error(503, "too many connections");
    else
      do_read();
  }

  // -- reading ---------------------------------------------------------------

  void do_read() {
    auto& parser = parser_.emplace();
    parser.body_limit(static_cast<std::uint64_t>(state_->opts.body_limit));
    auto header_limit = std::min<std::size_t>(
      state_->opts.header_limit, std::numeric_limits<std::uint32_t>::max());
    parser.header_limit(static_cast<std::uint32_t>(header_limit));
    set_deadline(state_->opts.read_timeout, phase::reading);
    // The header first, so that "Expect: 100-continue" can be answered; a
    // request without a body is complete after this one read.
    bhttp::async_read_header(stream_, buffer_, parser,
                             beast::bind_front_handler(&session::on_header,
                                                       self()));
  }

  void on_header(beast::error_code ec, std::size_t) {
    if (closed_)
      return;
    if (ec) {
      on_read_error(ec);
      return;
    }
    if (parser_->is_done()) {
      handle_request();
      return;
    }
    auto& msg = parser_->get();
    // curl and others wait up to a second for this before sending a body.
    if (msg.version() >= 11
        && beast::iequals(msg[bhttp::field::expect], "100-continue")) {
      net::async_write(stream_, net::buffer(continue_response),
                       beast::bind_front_handler(&session::on_continue,
                                                 self()));
      return;
    }
    read_body();
  }

  void on_continue(beast::error_code ec, std::size_t) {
    if (closed_)
      return;
    if (ec) {
      on_read_error(ec);
      return;
    }
    read_body();
  }

  void read_body() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      beast::bind_front_handler(&session::on_read, self()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (closed_)
      return;
    if (ec) {
      on_read_error(ec);
      return;
    }
    handle_request();
  }

  /// Hands the parsed request to the handler with a fresh responder.
  void handle_request() {
    phase_ = phase::handling;
    deadline_ = clock_type::time_point::max();
    auto msg = parser_->release();
    parser_.reset();
    version_ = msg.version();
    keep_alive_ = msg.keep_alive();
    head_ = msg.method() == bhttp::verb::head;
    request req;
    req.method = to_std_string(msg.method_string());
    req.target = to_std_string(msg.target());
    req.headers.reserve(
      static_cast<std::size_t>(std::distance(msg.begin(), msg.end())));
    for (auto& field : msg) {
      auto name = to_std_string(field.name_string());
      for (auto& c : name)
        if (c >= 'A' && c <= 'Z')
          c = static_cast<char>(c - 'A' + 'a');
      req.headers.emplace_back(std::move(name), to_std_string(field.value()));
    }
    req.body = std::move(msg.body());
    req.peer = peer_;
    state_->stats.requests.fetch_add(1, std::memory_order_relaxed);
    state_->stats.in_flight.fetch_add(1);
    in_flight_ = true;
    responder reply{
      std::make_shared<session_sink>(state_->ioc.lock(), shared_from_this())};
    try {
      state_->on_request(std::move(req), reply);
    } catch (const std::exception& e) {
      spdlog::error("http-server request handler threw: {}", e.what());
      reply(error_response(500, "internal server error"));
    } catch (...) {
      spdlog::error("http-server request handler threw a non-exception");
      reply(error_response(500, "internal server error"));
    }
  }

  void on_read_error(const beast::error_code& ec) {
    if (timed_out_) {
      state_->stats.timeouts.fetch_add(1, std::memory_order_relaxed);
      // Part of a request arrived: say why we hang up. An idle keep-alive
      // connection is closed without a word.
      if (buffer_.size() > 0 || (parser_ && parser_->got_some()))
        send_error(408, "request not received within the read timeout");
      else
        close_socket();
      return;
    }
    if (ec == bhttp::error::end_of_stream) {
      if constexpr (is_tls)
        do_close();
      else
        close_socket();
      return;
    }
    if (ec == bhttp::error::body_limit) {
      state_->stats.bad_requests.fetch_add(1, std::memory_order_relaxed);
      send_error(413, "request body exceeds "
                        + std::to_string(state_->opts.body_limit) + " bytes");
      return;
    }
    if (ec == bhttp::error::header_limit) {
      state_->stats.bad_requests.fetch_add(1, std::memory_order_relaxed);
      send_error(431, "request header exceeds "
                        + std::to_string(state_->opts.header_limit)
                        + " bytes");
      return;
    }
    if (is_http_parse_error(ec) && ec != bhttp::error::partial_message) {
      state_->stats.bad_requests.fetch_add(1, std::memory_order_relaxed);
      send_error(400, "malformed request: " + ec.message());
      return;
    }
    // Connection reset, EOF inside a message, TLS errors: nobody to answer.
    spdlog::debug("http-server read from {} failed: {}", peer_, ec.message());
    close_socket();
  }

  // -- writing ---------------------------------------------------------------

  void send_error(unsigned status, const std::string& message) {
    version_ = 11;
    head_ = false;
    parser_.reset();
    write_response(error_response(status, message), false);
  }

  void write_response(response&& r, bool keep_alive) {
    if (r.status < 200 || r.status > 999) {
      spdlog::error("http-server handler answered with invalid status {}",
                    r.status);
      r = error_response(500, "handler answered with an invalid status");
    }
    phase_ = phase::writing;
    auto& m = res_.emplace();
    m.version(version_);
    m.result(r.status);
    m.set(bhttp::field::server, "butler");
    // 204 and 304 carry neither a body nor a Content-Length.
    bool no_body = r.status == 204 || r.status == 304;
    if (!r.content_type.empty() && r.status != 204)
      m.set(bhttp::field::content_type, r.content_type);
    for (auto& [name, value] : r.headers) {
      if (!valid_header(name, value)) {
        spdlog::warn("http-server dropped a response header with an empty "
                     "name or CR, LF or NUL in it");
        continue;
      }
      auto f = bhttp::string_to_field(name);
      // Framing is ours: the handler cannot override it.
      if (f == bhttp::field::content_length
          || f == bhttp::field::transfer_encoding
          || f == bhttp::field::connection)
        continue;
      m.insert(f, name, value);
    }
    m.keep_alive(keep_alive);
    if (!no_body) {
      m.content_length(r.body.size());
      if (!head_)
        m.body() = std::move(r.body);
    }
    close_after_write_ = !keep_alive;
    set_deadline(state_->opts.write_timeout, phase::writing);
    bhttp::async_write(stream_, m,
                       beast::bind_front_handler(&session::on_write, self()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    finish_request();
    res_.reset();
    if (closed_)
      return;
    if (ec) {
      spdlog::debug("http-server write to {} failed: {}", peer_,
                    ec.message());
      close_socket();
      return;
    }
    if (close_after_write_)
      do_close();
    else
      do_read();
  }

  // -- closing ---------------------------------------------------------------

  void do_close() {
    if constexpr (is_tls) {
      set_deadline(state_->opts.write_timeout, phase::closing);
      stream_.async_shutdown(
        beast::bind_front_handler(&session::on_shutdown, self()));
    } else {
      // Half-close, then read and discard until the client closes too: a
      // close with unread request bytes sends a reset, and the client may
      // lose the response we just wrote.
      beast::error_code ec;
      stream_.shutdown(tcp::socket::shutdown_send, ec);
      if (ec) {
        close_socket();
        return;
      }
      set_deadline(std::min<clock_type::duration>(state_->opts.read_timeout,
                                                  max_linger),
                   phase::closing);
      do_linger();
    }
  }

  void on_shutdown(beast::error_code) {
    close_socket();
  }

  void do_linger() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(4096),
                            beast::bind_front_handler(&session::on_linger,
                                                      self()));
  }

  void on_linger(beast::error_code ec, std::size_t n) {
    if (closed_)
      return;
    linger_bytes_ += n;
    if (ec || linger_bytes_ > max_linger_bytes)
      close_socket();
    else
      do_linger();
  }

  void close_socket() {
    if (closed_)
      return;
    closed_ = true;
    phase_ = phase::closing;
    deadline_ = clock_type::time_point::max();
    timer_.cancel();
    beast::error_code ec;
    beast::get_lowest_layer(stream_).close(ec);
    release_slot();
  }

  // -- deadlines -------------------------------------------------------------

  // One timer per session, moved lazily: a later deadline is only a store,
  // and the timer wakes at most once per timeout period to check it. Only an
  // earlier deadline (the linger after an error) re-arms it. This keeps timer
  // cancellations off the per-request path.

  void set_deadline(std::chrono::milliseconds timeout, phase p) {
    set_deadline(std::chrono::duration_cast<clock_type::duration>(timeout), p);
  }

  void set_deadline(clock_type::duration timeout, phase p) {
    phase_ = p;
    timed_out_ = false;
    deadline_ = clock_type::now() + timeout;
    if (!timer_armed_ || deadline_ < timer_expiry_)
      arm_timer();
  }

  void arm_timer() {
    timer_armed_ = true;
    timer_expiry_ = deadline_;
    // Cancels a pending wait, whose handler then sees operation_aborted.
    timer_.expires_at(deadline_);
    timer_.async_wait(beast::bind_front_handler(&session::on_timer, self()));
  }

  void on_timer(beast::error_code ec) {
    if (ec == net::error::operation_aborted)
      return; // superseded by a newer wait, or closed
    timer_armed_ = false;
    if (ec || closed_ || phase_ == phase::handling
        || deadline_ == clock_type::time_point::max())
      return;
    if (clock_type::now() < deadline_) {
      arm_timer();
      return;
    }
    switch (phase_) {
      case phase::reading: {
        // Cancel rather than close, so a 408 can still be written.
        timed_out_ = true;
        beast::error_code ignored;
        beast::get_lowest_layer(stream_).cancel(ignored);
        break;
      }
      case phase::handshake:
      case phase::writing:
        state_->stats.timeouts.fetch_add(1, std::memory_order_relaxed);
        spdlog::debug("http-server connection from {} timed out", peer_);
        close_socket();
        break;
      case phase::closing:
        close_socket();
        break;
      case phase::handling:
        break;
    }
  }

  // -- bookkeeping -----------------------------------------------------------

  void finish_request() {
    if (in_flight_) {
      in_flight_ = false;
      state_->request_done();
    }
  }

  void release_slot() {
    if (counted_) {
      counted_ = false;
      state_->stats.active.fetch_sub(1, std::memory_order_relaxed);
    }
  }

  std::shared_ptr<shared_state> state_;
  Stream stream_;
  timer_type timer_;
  beast::flat_buffer buffer_;
  std::optional<request_parser> parser_;
  std::optional<beast_response> res_;
  std::string peer_;
  clock_type::time_point deadline_ = clock_type::time_point::max();
  clock_type::time_point timer_expiry_ = clock_type::time_point::max();
  std::size_t linger_bytes_ = 0;
  phase phase_ = phase::handshake;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool head_ = false;
  bool close_after_write_ = false;
  bool reject_;
  bool counted_;
  bool in_flight_ = false;
  bool timer_armed_ = false;
  bool timed_out_ = false;
  bool closed_ = false;
};

// -- listener -----------------------------------------------------------------

/// Accepts connections on its own strand and starts a session for each.
class listener : public std::enable_shared_from_this<listener> {
public:
  listener(net::io_context& ioc, std::shared_ptr<shared_state> state)
    : ioc_(ioc),
      state_(std::move(state)),
      acceptor_(net::make_strand(ioc)),
      retry_timer_(acceptor_.get_executor()) {
    // nop
  }

  /// Opens, binds and listens on `ep`. Returns false and sets `ec` on error.
  bool listen(const tcp::endpoint& ep, beast::error_code& ec) {
    beast::error_code ignored;
    acceptor_.close(ignored);
    acceptor_.open(ep.protocol(), ec);
    if (!ec)
      acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec)
      acceptor_.bind(ep, ec);
    if (!ec)
      acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      acceptor_.close(ignored);
      return false;
    }
    return true;
  }

  uint16_t local_port() {
    beast::error_code ec;
    return acceptor_.local_endpoint(ec).port();
  }

  void run() {
    net::dispatch(acceptor_.get_executor(),
                  beast::bind_front_handler(&listener::do_accept,
                                            shared_from_this()));
  }

  /// Closes the listening socket on its strand.
  void close() {
    net::post(acceptor_.get_executor(), [self = shared_from_this()] {
      self->close_now();
    });
  }

  /// Closes the listening socket; on the strand or with no I/O thread running.
  void close_now() {
    beast::error_code ignored;
    acceptor_.close(ignored);
    retry_timer_.cancel();
  }

private:
  void do_accept() {
    if (!acceptor_.is_open())
      return;
    acceptor_.async_accept(net::make_strand(ioc_),
                           beast::bind_front_handler(&listener::on_accept,
                                                     shared_from_this()));
  }

  void on_accept(beast::error_code ec, socket_type socket) {
    if (!acceptor_.is_open())
      return;
    if (ec) {
      if (ec == net::error::operation_aborted)
        return;
      if (ec == net::error::connection_aborted) {
        do_accept();
        return;
      }
      // EMFILE and friends fail again at once: pause instead of spinning.
      spdlog::warn("http-server cannot accept a connection: {}", ec.message());
      retry_timer_.expires_after(std::chrono::milliseconds{100});
      retry_timer_.async_wait(
        [self = shared_from_this()](beast::error_code wait_ec) {
          if (!wait_ec)
            self->do_accept();
        });
      return;
    }
    start_session(std::move(socket));
    do_accept();
  }

  void start_session(socket_type&& socket) {
    auto& stats = state_->stats;
    bool reject = stats.active.load(std::memory_order_relaxed)
                  >= state_->opts.max_connections;
    if (reject) {
      stats.rejected.fetch_add(1, std::memory_order_relaxed);
      spdlog::debug("http-server rejected a connection: {} are open",
                    state_->opts.max_connections);
    } else {
      stats.accepted.fetch_add(1, std::memory_order_relaxed);
      stats.active.fetch_add(1, std::memory_order_relaxed);
    }
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    if (state_->tls)
      std::make_shared<session<tls_stream>>(state_, reject, std::move(socket),
                                            *state_->tls)
        ->start();
    else
      std::make_shared<session<plain_stream>>(state_, reject,
                                              std::move(socket))
        ->start();
  }

  net::io_context& ioc_;
  std::shared_ptr<shared_state> state_;
  acceptor_type acceptor_;
  timer_type retry_timer_;
};

// -- server -------------------------------------------------------------------

class server_impl final : public server {
public:
  server_impl(std::shared_ptr<net::io_context> ioc,
              std::shared_ptr<shared_state> state,
              std::shared_ptr<listener> l, uint16_t port)
    : ioc_(std::move(ioc)),
      state_(std::move(state)),
      listener_(std::move(l)),
      port_(port) {
    // nop
  }

  ~server_impl() override {
    stop();
  }

  /// Starts accepting and the I/O threads.
  void start(int threads) {
    work_.emplace(ioc_->get_executor());
    listener_->run();
    threads_.reserve(static_cast<std::size_t>(threads));
    for (int i = 0; i < threads; ++i)
      threads_.emplace_back(
        [ioc = ioc_.get()] { net_io::run_io(*ioc, "http-server"); });
  }

  uint16_t port() const override {
    return port_;
  }

  void stop_accepting() override {
    // No lock: a handler may call this while stop() joins its thread. After
    // stop() the post only queues onto the stopped context.
    state_->accepting.store(false);
    listener_->close();
  }

  bool drain(std::chrono::milliseconds deadline) override {
    std::unique_lock<std::mutex> lock{state_->drain_mtx};
    return state_->drain_cv.wait_for(lock, deadline, [this] {
      return state_->stats.in_flight.load() == 0;
    });
  }

  void stop() override {
    std::lock_guard<std::mutex> guard{stop_mtx_};
    if (stopped_)
      return;
    stopped_ = true;
    state_->accepting.store(false);
    work_.reset();
    ioc_->stop();
    for (auto& t : threads_)
      if (t.joinable())
        t.join();
    // No I/O thread runs any more, so closing from this thread cannot race
    // with a handler. Responders answered later only queue onto the stopped
    // context.
    listener_->close_now();
    std::vector<std::shared_ptr<session_base>> live;
    {
      std::lock_guard<std::mutex> sessions_guard{state_->sessions_mtx};
      live.reserve(state_->sessions.size());
      for (auto& entry : state_->sessions)
        if (auto s = entry.second.lock())
          live.push_back(std::move(s));
    }
    // Outside the lock: dropping the last reference runs ~session, which
    // takes the lock itself.
    for (auto& s : live)
      s->close_now();
    live.clear();
    spdlog::info("http-server on port {} stopped", port_);
  }

  server_stats stats() const override {
    auto& c = state_->stats;
    server_stats s;
    s.connections_accepted = c.accepted.load(std::memory_order_relaxed);
    s.connections_rejected = c.rejected.load(std::memory_order_relaxed);
    s.connections_active = c.active.load(std::memory_order_relaxed);
    s.requests = c.requests.load(std::memory_order_relaxed);
    s.requests_in_flight = c.in_flight.load(std::memory_order_relaxed);
    s.bad_requests = c.bad_requests.load(std::memory_order_relaxed);
    s.timeouts = c.timeouts.load(std::memory_order_relaxed);
    return s;
  }

private:
  // Declared first so it is destroyed last, after the listener.
  std::shared_ptr<net::io_context> ioc_;
  std::shared_ptr<shared_state> state_;
  std::shared_ptr<listener> listener_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>>
    work_;
  std::vector<std::thread> threads_;
  std::mutex stop_mtx_;
  bool stopped_ = false;
  uint16_t port_;
};

// -- set-up -------------------------------------------------------------------

/// Returns "" if `path` can be opened for reading, else the reason.
std::string unreadable(const std::string& path) {
  if (path.empty())
    return "no file name given";
  auto* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr)
    return std::strerror(errno);
  std::fclose(f);
  return {};
}

/// Returns OpenSSL's last error as text and clears the queue.
std::string openssl_error() {
  auto code = ERR_get_error();
  ERR_clear_error();
  if (code == 0)
    return "unknown error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

/// Adds every certificate in `path` to the chain sent with the server cert.
bool add_chain_file(ssl::context& ctx, const std::string& path,
                    std::string& error) {
  auto* bio = BIO_new_file(path.c_str(), "r");
  if (bio == nullptr) {
    error = "cannot load TLS CA file " + path + ": " + openssl_error();
    return false;
  }
  int added = 0;
  while (auto* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    auto ok = SSL_CTX_add1_chain_cert(ctx.native_handle(), cert);
    X509_free(cert);
    if (ok != 1) {
      BIO_free(bio);
      error = "cannot load TLS CA file " + path + ": " + openssl_error();
      return false;
    }
    ++added;
  }
  // PEM_read_bio_X509 ends the loop with a "no start line" error.
  ERR_clear_error();
  BIO_free(bio);
  if (added == 0) {
    error = "cannot load TLS CA file " + path + ": no PEM certificate in it";
    return false;
  }
  return true;
}

/// Returns a TLS 1.2+ server context, or nullptr with `error` set.
std::shared_ptr<ssl::context> make_tls_context(const server_options& opts,
                                               std::string& error) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2
                   | ssl::context::no_sslv3 | ssl::context::no_tlsv1
                   | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  beast::error_code ec;
  if (auto why = unreadable(opts.cert_file); !why.empty()) {
    error = "cannot load TLS certificate " + opts.cert_file + ": " + why;
    return nullptr;
  }
  ctx->use_certificate_chain_file(opts.cert_file, ec);
  if (ec) {
    error = "cannot load TLS certificate " + opts.cert_file + ": "
            + ec.message();
    return nullptr;
  }
  if (auto why = unreadable(opts.key_file); !why.empty()) {
    error = "cannot load TLS key " + opts.key_file + ": " + why;
    return nullptr;
  }
  ctx->use_private_key_file(opts.key_file, ssl::context::pem, ec);
  if (ec) {
    error = "cannot load TLS key " + opts.key_file + ": " + ec.message();
    return nullptr;
  }
  if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
    error = "TLS key " + opts.key_file + " does not match certificate "
            + opts.cert_file + ": " + openssl_error();
    return nullptr;
  }
  if (!opts.ca_file.empty() && !add_chain_file(*ctx, opts.ca_file, error))
    return nullptr;
  return ctx;
}

std::unique_ptr<server> start(const server_options& opts, handler h,
                              std::string& error) {
  if (!h) {
    error = "cannot start the http server: no request handler";
    return nullptr;
  }
  if (opts.threads < 1) {
    error = "cannot start the http server: threads must be at least 1";
    return nullptr;
  }
  auto where = format_host_port(opts.host, opts.port);
  auto state = std::make_shared<shared_state>();
  state->opts = opts;
  state->on_request = std::move(h);
  if (opts.tls) {
    state->tls = make_tls_context(opts, error);
    if (!state->tls)
      return nullptr;
  }
  auto ioc = std::make_shared<net::io_context>(opts.threads);
  state->ioc = ioc;
  beast::error_code ec;
  tcp::resolver resolver{*ioc};
  auto endpoints = resolver.resolve(opts.host, std::to_string(opts.port),
                                    tcp::resolver::passive
                                      | tcp::resolver::numeric_service,
                                    ec);
  if (ec) {
    error = "cannot listen on " + where + ": " + ec.message();
    return nullptr;
  }
  auto l = std::make_shared<listener>(*ioc, state);
  bool listening = false;
  for (auto& entry : endpoints)
    if ((listening = l->listen(entry.endpoint(), ec)))
      break;
  if (!listening) {
    error = "cannot listen on " + where + ": "
            + (ec ? ec.message() : std::string{"no address"});
    return nullptr;
  }
  auto port = l->local_port();
  auto result = std::make_unique<server_impl>(ioc, state, std::move(l), port);
  result->start(opts.threads);
  spdlog::info("http-server listening on {} ({}, {} thread{})",
               format_host_port(opts.host, port),
               opts.tls ? "https" : "http", opts.threads,
               opts.threads == 1 ? "" : "s");
  return result;
}

} // namespace

std::unique_ptr<server> start_server(const server_options& opts, handler h,
                                     std::string& error) {
  error.clear();
  try {
    return start(opts, std::move(h), error);
  } catch (const std::exception& e) {
    error = std::string{"cannot start the http server: "} + e.what();
    return nullptr;
  }
}

} // namespace butler::http
