#include "net/engine_client.hpp"
#include "net/io_runner.hpp"

#include <boost/asio/connect.hpp>
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
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

#include <openssl/ssl.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <type_traits>
#include <unordered_map>

namespace butler::engine {

client::~client() {
  // nop
}

const char* to_string(engine_error::kind x) {
  switch (x) {
    case engine_error::kind::unreachable:
      return "unreachable";
    case engine_error::kind::tls:
      return "tls";
    case engine_error::kind::upgrade_refused:
      return "upgrade_refused";
    case engine_error::kind::rpc:
      return "rpc";
    case engine_error::kind::not_found:
      return "not_found";
    case engine_error::kind::timeout:
      return "timeout";
    case engine_error::kind::protocol:
      return "protocol";
  }
  return "unknown";
}

namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace websocket = boost::beast::websocket;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using json = nlohmann::json;

// Concrete executor types, as in http_server.cpp: every completion of a
// session runs on its strand.
using strand_type = net::strand<net::io_context::executor_type>;
using socket_type = tcp::socket::rebind_executor<strand_type>::other;
using resolver_type = tcp::resolver::rebind_executor<strand_type>::other;
using timer_type = net::steady_timer::rebind_executor<strand_type>::other;
using tls_ws = websocket::stream<beast::ssl_stream<socket_type>>;
using plain_ws = websocket::stream<socket_type>;
using clock_type = std::chrono::steady_clock;
using kind = engine_error::kind;

/// Largest message accepted from the engine (a dump of a big app's sheet
/// with all its children comes in one message).
constexpr std::size_t max_message_size = 64 * 1024 * 1024;

/// Requests sent and not yet answered, per session; more wait in a queue.
/// Bounds what one dump of an app with thousands of objects puts on the
/// engine at once.
constexpr std::size_t max_in_flight = 32;

/// Bounds the closing handshake (close frame, TLS close_notify) after the
/// operation has its result.
constexpr auto max_close_time = std::chrono::milliseconds{2000};

/// How long stop() waits for aborted sessions to wind down before it stops
/// the I/O context hard.
constexpr auto max_stop_wait = std::chrono::seconds{5};

/// Engine error code for "App not found".
constexpr int app_not_found = 1003;

// -- helpers ------------------------------------------------------------------

/// Returns `host:port`, with brackets around an IPv6 literal.
std::string format_host_port(const std::string& host, uint16_t port) {
  auto h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so that an
/// app id cannot change the upgrade target.
std::string encode_path_segment(const std::string& x) {
  std::string result;
  for (unsigned char c : x) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      result += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      result += buf;
    }
  }
  return result;
}

/// Returns whether a request header can be sent as given (no injection).
bool valid_header(const std::string& name, const std::string& value) {
  if (name.empty())
    return false;
  for (unsigned char c : name)
    if (c <= ' ' || c == ':' || c >= 0x7f)
      return false;
  return value.find_first_of(std::string_view{"\r\n\0", 3})
         == std::string::npos;
}

/// Returns whether `ec` comes from OpenSSL or Asio's TLS stream.
bool is_tls_error(const beast::error_code& ec) {
  return ec.category() == net::error::get_ssl_category()
         || ec.category() == ssl::error::get_stream_category();
}

/// Returns the member `key` of `x` if `x` is an object that has it.
const json* member(const json& x, const char* key) {
  if (!x.is_object())
    return nullptr;
  auto i = x.find(key);
  return i == x.end() ? nullptr : &*i;
}

/// Returns the value at `path` below `x`, or nullptr.
const json* at_path(const json& x, std::initializer_list<const char*> path) {
  const json* cur = &x;
  for (auto* key : path)
    if (cur = member(*cur, key); cur == nullptr)
      return nullptr;
  return cur;
}

/// Returns the integer at `path`, if there is one.
std::optional<int> int_at(const json& x,
                          std::initializer_list<const char*> path) {
  auto* v = at_path(x, path);
  if (v == nullptr || !v->is_number_integer())
    return std::nullopt;
  return v->get<int>();
}

/// Returns the string at `path`, or nullptr.
const std::string* string_at(const json& x,
                             std::initializer_list<const char*> path) {
  auto* v = at_path(x, path);
  if (v == nullptr || !v->is_string())
    return nullptr;
  return v->get_ptr<const std::string*>();
}

// -- the view an operation has of its session ---------------------------------

/// Sends JSON-RPC calls for an operation and ends it.
class rpc_channel {
public:
  /// Receives the `result` member of a successful reply.
  using reply_handler = std::function<void(json& result)>;

  virtual ~rpc_channel() = default;

  /// Sends `method` on `handle`. `on_result` runs with the reply's result;
  /// an error reply fails the operation instead. No-op once it ended.
  virtual void call(int handle, std::string method, json params,
                    reply_handler on_result)
    = 0;

  /// Ends the operation; the operation holds its result.
  virtual void succeed() = 0;

  /// Ends the operation with an error.
  virtual void fail(engine_error err) = 0;

  /// Fails the operation because `method` answered without `what`.
  virtual void bad_reply(const std::string& method, const std::string& what)
    = 0;
};

// -- operations ---------------------------------------------------------------

/// One list, dump or reload: the calls it makes and the result it builds.
class operation {
public:
  virtual ~operation() = default;

  /// Returns the WebSocket target, e.g. "/app/engineData".
  virtual std::string target() const = 0;

  /// Returns a name for log lines and error messages.
  virtual std::string name() const = 0;

  /// Returns an error that fails the operation before connecting, if any.
  virtual std::optional<engine_error> check(const std::string&) const {
    return std::nullopt;
  }

  /// Sends the first calls; runs once the engine sent OnConnected.
  virtual void start(rpc_channel& ch) = 0;

  /// Hands the result, or `err`, to the user. Runs exactly once.
  virtual void deliver(const engine_error* err) = 0;
};

/// Lists the apps: GetDocList on the global handle.
class list_operation final : public operation {
public:
  explicit list_operation(client::list_callback cb) : cb_(std::move(cb)) {
    // nop
  }

  std::string target() const override {
    return "/app/engineData";
  }

  std::string name() const override {
    return "the app list";
  }

  void start(rpc_channel& ch) override {
    ch.call(-1, "GetDocList", json::array(), [this, &ch](json& r) {
      auto* list = member(r, "qDocList");
      if (list == nullptr || !list->is_array())
        return ch.bad_reply("GetDocList", "qDocList");
      for (auto& doc : *list) {
        auto* id = string_at(doc, {"qDocId"});
        auto* name = string_at(doc, {"qDocName"});
        if (id == nullptr || name == nullptr)
          return ch.bad_reply("GetDocList", "qDocId and qDocName in qDocList");
        apps_.push_back(app_entry{*id, *name});
      }
      ch.succeed();
    });
  }

  void deliver(const engine_error* err) override {
    if (err != nullptr)
      cb_(*err);
    else
      cb_(std::move(apps_));
  }

private:
  client::list_callback cb_;
  std::vector<app_entry> apps_;
};

/// The operations that open one app first.
class app_operation : public operation {
public:
  explicit app_operation(std::string app_id) : app_id_(std::move(app_id)) {
    // nop
  }

  std::string target() const override {
    return "/app/" + encode_path_segment(app_id_);
  }

  std::optional<engine_error> check(const std::string& where) const override {
    if (!app_id_.empty())
      return std::nullopt;
    return engine_error{kind::not_found, 0,
                        "no app id given for " + name() + " on the engine at "
                          + where};
  }

protected:
  /// Sends OpenDoc, then runs `next` with the Doc handle.
  void open_doc(rpc_channel& ch, bool no_data, std::function<void(int)> next) {
    json params{{"qDocName", app_id_}, {"qNoData", no_data}};
    ch.call(-1, "OpenDoc", std::move(params),
            [&ch, next = std::move(next)](json& r) {
              auto handle = int_at(r, {"qReturn", "qHandle"});
              if (!handle)
                return ch.bad_reply("OpenDoc", "qReturn.qHandle");
              next(*handle);
            });
  }

  std::string app_id_;
};

/// Describes one list in the dump: which session object lists it, and how
/// to fetch each item's properties (if at all).
struct list_spec {
  /// The dump's key.
  const char* key;
  /// qInfo.qType of the session object.
  const char* list_type;
  /// The list definition's member name and its value.
  const char* def_name;
  json def;
  /// Where the layout holds the items: qLayout.<layout_name>.qItems.
  const char* layout_name;
  /// Opens one item by qInfo.qId; nullptr takes the items as listed.
  const char* get_method;
  /// Reads the opened item, and the member of its reply to keep.
  const char* props_method;
  const char* props_key;
};

/// Returns the lists a dump holds, in the order they are requested.
std::vector<list_spec> dump_lists() {
  auto app_objects = [](const char* key, const char* list_type,
                        const char* type) {
    json def{{"qType", type},
             {"qData",
              {{"title", "/qMetaDef/title"},
               {"description", "/qMetaDef/description"}}}};
    return list_spec{key,          list_type,         "qAppObjectListDef",
                     std::move(def), "qAppObjectList", "GetObject",
                     "GetFullPropertyTree", "qPropEntry"};
  };
  auto meta = json{{"title", "/qMetaDef/title"}};
  std::vector<list_spec> result;
  result.push_back(app_objects("sheets", "SheetList", "sheet"));
  result.push_back(app_objects("stories", "StoryList", "story"));
  result.push_back(
    app_objects("masterobjects", "MasterObjectList", "masterobject"));
  result.push_back(app_objects("appprops", "AppPropsList", "appprops"));
  result.push_back(list_spec{"dimensions", "DimensionList",
                             "qDimensionListDef",
                             json{{"qType", "dimension"}, {"qData", meta}},
                             "qDimensionList", "GetDimension",
                             "GetProperties", "qProp"});
  result.push_back(list_spec{"measures", "MeasureList", "qMeasureListDef",
                             json{{"qType", "measure"}, {"qData", meta}},
                             "qMeasureList", "GetMeasure", "GetProperties",
                             "qProp"});
  result.push_back(list_spec{"bookmarks", "BookmarkList", "qBookmarkListDef",
                             json{{"qType", "bookmark"}, {"qData", meta}},
                             "qBookmarkList", "GetBookmark", "GetProperties",
                             "qProp"});
  result.push_back(list_spec{"snapshots", "SnapshotList", "qBookmarkListDef",
                             json{{"qType", "snapshot"}, {"qData", meta}},
                             "qBookmarkList", "GetBookmark", "GetProperties",
                             "qProp"});
  result.push_back(list_spec{"variables", "VariableList", "qVariableListDef",
                             json{{"qType", "variable"},
                                  {"qShowReserved", true},
                                  {"qShowConfig", true},
                                  {"qData", {{"tags", "/tags"}}}},
                             "qVariableList", nullptr, nullptr, nullptr});
  result.push_back(list_spec{"fields", "FieldList", "qFieldListDef",
                             json{{"qShowSystem", true},
                                  {"qShowHidden", true},
                                  {"qShowSrcTables", true},
                                  {"qShowSemantic", true}},
                             "qFieldList", nullptr, nullptr, nullptr});
  result.push_back(list_spec{"embeddedmedia", "MediaList", "qMediaListDef",
                             json::object(), "qMediaList", nullptr, nullptr,
                             nullptr});
  return result;
}

/// Dumps an app. After OpenDoc every independent call goes out at once
/// (GetAppProperties, GetScript, GetAllInfos, GetConnections, GetLineage and
/// one CreateSessionObject per list); each reply sends what depends on it
/// (GetLayout, then GetObject/GetDimension/... per item, then
/// GetFullPropertyTree/GetProperties), so the dump takes about as many round
/// trips as the deepest chain (five), not one per call. The session caps the
/// requests in flight (max_in_flight).
class dump_operation final : public app_operation {
public:
  dump_operation(std::string app_id, client::dump_callback cb)
    : app_operation(std::move(app_id)), cb_(std::move(cb)), lists_(dump_lists()) {
    items_.resize(lists_.size());
  }

  std::string name() const override {
    return "the dump of app " + app_id_;
  }

  void start(rpc_channel& ch) override {
    ch_ = &ch;
    open_doc(ch, true, [this](int doc) { on_open(doc); });
  }

  void deliver(const engine_error* err) override {
    if (err != nullptr)
      cb_(*err);
    else
      cb_(std::move(result_));
  }

private:
  /// Sends a call and counts it; the last answer ends the operation.
  void call(int handle, const char* method, json params,
            rpc_channel::reply_handler on_result) {
    ++outstanding_;
    ch_->call(handle, method, std::move(params),
              [this, f = std::move(on_result)](json& r) {
                f(r);
                if (--outstanding_ == 0)
                  finish();
              });
  }

  /// Stores `r[key]` in `dst`, or fails the operation.
  bool take(json& r, const char* method, const char* key, json& dst) {
    auto i = r.is_object() ? r.find(key) : r.end();
    if (!r.is_object() || i == r.end()) {
      ch_->bad_reply(method, key);
      return false;
    }
    dst = std::move(*i);
    return true;
  }

  void on_open(int doc) {
    doc_ = doc;
    result_ = json::object();
    result_["appId"] = app_id_;
    call(doc_, "GetAppProperties", json::array(), [this](json& r) {
      take(r, "GetAppProperties", "qProp", result_["properties"]);
    });
    call(doc_, "GetScript", json::array(), [this](json& r) {
      auto* script = string_at(r, {"qScript"});
      if (script == nullptr)
        return ch_->bad_reply("GetScript", "qScript");
      result_["loadScript"] = *script;
    });
    // Lists every object of the app; the dump holds the objects themselves
    // (through the lists below), so this only checks that the app answers
    // and logs how much there is.
    call(doc_, "GetAllInfos", json::array(), [this](json& r) {
      auto* infos = member(r, "qInfos");
      if (infos == nullptr || !infos->is_array())
        return ch_->bad_reply("GetAllInfos", "qInfos");
      spdlog::debug("engine-client app {} holds {} objects", app_id_,
                    infos->size());
    });
    call(doc_, "GetConnections", json::array(), [this](json& r) {
      json conns;
      if (!take(r, "GetConnections", "qConnections", conns))
        return;
      if (!conns.is_array())
        return ch_->bad_reply("GetConnections", "a qConnections array");
      result_["dataconnections"] = std::move(conns);
    });
    call(doc_, "GetLineage", json::array(), [this](json& r) {
      json lineage;
      if (!take(r, "GetLineage", "qLineage", lineage))
        return;
      if (!lineage.is_array())
        return ch_->bad_reply("GetLineage", "a qLineage array");
      result_["lineage"] = json{{"qLineage", std::move(lineage)}};
    });
    for (std::size_t i = 0; i < lists_.size(); ++i)
      request_list(i);
  }

  void request_list(std::size_t i) {
    auto& spec = lists_[i];
    json prop{{"qInfo", {{"qType", spec.list_type}}},
              {spec.def_name, spec.def}};
    call(doc_, "CreateSessionObject", json{{"qProp", std::move(prop)}},
         [this, i](json& r) {
           auto handle = int_at(r, {"qReturn", "qHandle"});
           if (!handle)
             return ch_->bad_reply("CreateSessionObject", "qReturn.qHandle");
           call(*handle, "GetLayout", json::array(),
                [this, i](json& layout) { on_list_layout(i, layout); });
         });
  }

  void on_list_layout(std::size_t i, json& r) {
    auto& spec = lists_[i];
    auto* items = at_path(r, {"qLayout", spec.layout_name, "qItems"});
    if (items == nullptr || !items->is_array())
      return ch_->bad_reply("GetLayout",
                            std::string{"qLayout."} + spec.layout_name
                              + ".qItems");
    auto& slots = items_[i];
    if (spec.get_method == nullptr) {
      slots = *items;
      return;
    }
    slots.resize(items->size());
    for (std::size_t j = 0; j < items->size(); ++j) {
      auto* id = string_at((*items)[j], {"qInfo", "qId"});
      if (id == nullptr)
        return ch_->bad_reply("GetLayout", "qInfo.qId in each list item");
      call(doc_, spec.get_method, json{{"qId", *id}}, [this, i, j](json& o) {
        auto& spec = lists_[i];
        // The engine answers qHandle null (no error) for an id it does not
        // know: the object went away since the list was made. Leave it out.
        if (auto* h = at_path(o, {"qReturn", "qHandle"}); h && h->is_null())
          return;
        auto handle = int_at(o, {"qReturn", "qHandle"});
        if (!handle)
          return ch_->bad_reply(spec.get_method, "qReturn.qHandle");
        call(*handle, spec.props_method, json::array(),
             [this, i, j](json& p) {
               auto& spec = lists_[i];
               take(p, spec.props_method, spec.props_key, items_[i][j]);
             });
      });
    }
  }

  /// Assembles the dump once every call has been answered.
  void finish() {
    for (std::size_t i = 0; i < lists_.size(); ++i) {
      auto list = json::array();
      for (auto& item : items_[i])
        if (!item.is_null()) // null: an object that went away (see above)
          list.push_back(std::move(item));
      result_[lists_[i].key] = std::move(list);
    }
    ch_->succeed();
  }

  client::dump_callback cb_;
  std::vector<list_spec> lists_;
  /// One slot per list item, filled as the replies come in (any order);
  /// null for an item the engine no longer knows.
  std::vector<std::vector<json>> items_;
  rpc_channel* ch_ = nullptr;
  int doc_ = -1;
  std::size_t outstanding_ = 0;
  json result_;
};

/// Reloads an app: OpenDoc, DoReload, then DoSave if the reload succeeded.
class reload_operation final : public app_operation {
public:
  reload_operation(std::string app_id, reload_options ropts,
                   client::reload_callback cb)
    : app_operation(std::move(app_id)), ropts_(ropts), cb_(std::move(cb)) {
    // nop
  }

  std::string name() const override {
    return "the reload of app " + app_id_;
  }

  void start(rpc_channel& ch) override {
    open_doc(ch, false, [this, &ch](int doc) {
      json params{{"qMode", ropts_.mode},
                  {"qPartial", ropts_.partial},
                  {"qDebug", false}};
      ch.call(doc, "DoReload", std::move(params), [this, &ch, doc](json& r) {
        auto* ok = at_path(r, {"qReturn"});
        if (ok == nullptr || !ok->is_boolean())
          return ch.bad_reply("DoReload", "a boolean qReturn");
        reloaded_ = ok->get<bool>();
        if (!reloaded_)
          return ch.succeed();
        ch.call(doc, "DoSave", json::object(), [&ch](json&) { ch.succeed(); });
      });
    });
  }

  void deliver(const engine_error* err) override {
    if (err != nullptr)
      cb_(*err);
    else
      cb_(reloaded_);
  }

private:
  reload_options ropts_;
  client::reload_callback cb_;
  bool reloaded_ = false;
};

// -- sessions -----------------------------------------------------------------

class session_base;

/// Holds what the client and its sessions share.
struct registry {
  std::mutex mtx;
  bool stopped = false;
  std::unordered_map<const session_base*, std::weak_ptr<session_base>>
    sessions;
};

/// The part of a session that the client needs.
class session_base : public std::enable_shared_from_this<session_base> {
public:
  virtual ~session_base() = default;

  /// Starts the session on its strand.
  virtual void start() = 0;

  /// Fails the operation at once and closes the connection, on the strand.
  virtual void abort() = 0;
};

/// One engine session running one operation: connect, TLS, upgrade, wait
/// for OnConnected, run the operation's calls, close cleanly, report.
template <class Stream>
class session final : public session_base, public rpc_channel {
public:
  static constexpr bool is_tls = std::is_same_v<Stream, tls_ws>;

  session(net::io_context& ioc, std::shared_ptr<registry> reg,
          engine_options opts, std::unique_ptr<operation> op)
    : reg_(std::move(reg)),
      opts_(std::move(opts)),
      op_(std::move(op)),
      where_(format_host_port(opts_.host, opts_.port)),
      strand_(net::make_strand(ioc)),
      resolver_(strand_),
      timer_(strand_) {
    // nop
  }

  ~session() override {
    if (!delivered_) {
      // Only when the I/O context was stopped with work left (stop() ran
      // out of time): the callback still fires exactly once.
      error_ = stopped_error();
      deliver();
    }
    std::lock_guard<std::mutex> guard{reg_->mtx};
    reg_->sessions.erase(this);
  }

  void start() override {
    net::dispatch(strand_, [self = self()] { self->on_start(); });
  }

  void abort() override {
    net::post(strand_, [self = self()] { self->on_abort(); });
  }

  // -- rpc_channel -----------------------------------------------------------

  void call(int handle, std::string method, json params,
            reply_handler on_result) override {
    if (done_)
      return;
    auto id = next_id_++;
    json req{{"jsonrpc", "2.0"},
             {"id", id},
             {"handle", handle},
             {"method", method},
             {"params", std::move(params)}};
    queued_call q{id, std::move(method), req.dump(), std::move(on_result)};
    // Through the queue whenever it is not empty, so that requests leave in
    // the order of their ids.
    if (backlog_.empty() && pending_.size() < max_in_flight)
      send(std::move(q));
    else
      backlog_.push_back(std::move(q));
  }

  void succeed() override {
    if (done_)
      return;
    done_ = true;
    spdlog::debug("engine-client finished {} on {}", op_->name(), where_);
    begin_close();
  }

  void fail(engine_error err) override {
    if (done_)
      return;
    done_ = true;
    spdlog::debug("engine-client failed {} on {}: {}", op_->name(), where_,
                  err.message);
    error_ = std::move(err);
    begin_close();
  }

  void bad_reply(const std::string& method, const std::string& what) override {
    fail(engine_error{kind::protocol, 0,
                      "the engine at " + where_ + " answered " + method
                        + " without " + what});
  }

private:
  /// How far the connection got; decides how to close it.
  enum class phase {
    idle,
    resolving,
    connecting,
    tls_handshake,
    upgrading,
    awaiting_connected,
    running,
    closing,
    finished,
  };

  struct queued_call {
    int id;
    std::string method;
    std::string text;
    reply_handler on_result;
  };

  struct pending_call {
    std::string method;
    reply_handler on_result;
  };

  std::shared_ptr<session> self() {
    return std::static_pointer_cast<session>(shared_from_this());
  }

  Stream& ws() {
    return *ws_;
  }

  socket_type& socket() {
    return beast::get_lowest_layer(*ws_);
  }

  // -- connecting ------------------------------------------------------------

  void on_start() {
    if (done_)
      return; // aborted before it started
    arm_timer(clock_type::now() + opts_.timeout);
    if (auto err = prepare()) {
      fail(std::move(*err));
      return;
    }
    phase_ = phase::resolving;
    resolver_.async_resolve(opts_.host, std::to_string(opts_.port),
                            tcp::resolver::numeric_service,
                            beast::bind_front_handler(&session::on_resolve,
                                                      self()));
  }

  /// Checks the options and builds the stream; returns what is wrong.
  std::optional<engine_error> prepare() {
    if (auto err = op_->check(where_))
      return err;
    if (opts_.host.empty())
      return engine_error{kind::unreachable, 0,
                          "cannot reach the engine for " + op_->name()
                            + ": no engine host configured"};
    for (auto& [name, value] : opts_.headers)
      if (!valid_header(name, value))
        return engine_error{kind::protocol, 0,
                            "cannot send header '" + name + "' to the engine at "
                              + where_
                              + ": the name or value holds forbidden characters"};
    if constexpr (is_tls) {
      std::string why;
      tls_ = make_tls_context(why);
      if (!tls_)
        return engine_error{kind::tls, 0,
                            "cannot set up TLS for the engine at " + where_
                              + ": " + why};
      ws_.emplace(strand_, *tls_);
    } else {
      ws_.emplace(strand_);
    }
    return std::nullopt;
  }

  /// Returns a TLS 1.2+ client context, or nullptr with `why` set.
  std::shared_ptr<ssl::context> make_tls_context(std::string& why) {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2
                     | ssl::context::no_sslv3 | ssl::context::no_tlsv1
                     | ssl::context::no_tlsv1_1);
    beast::error_code ec;
    if (!opts_.client_cert.empty()) {
      ctx->use_certificate_chain_file(opts_.client_cert, ec);
      if (ec) {
        why = "cannot load client certificate " + opts_.client_cert + ": "
              + ec.message();
        return nullptr;
      }
      auto key = opts_.client_key.empty() ? opts_.client_cert
                                          : opts_.client_key;
      ctx->use_private_key_file(key, ssl::context::pem, ec);
      if (ec) {
        why = "cannot load client key " + key + ": " + ec.message();
        return nullptr;
      }
      if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
        why = "client key " + key + " does not match certificate "
              + opts_.client_cert;
        return nullptr;
      }
    }
    if (!opts_.ca_file.empty()) {
      ctx->load_verify_file(opts_.ca_file, ec);
      if (ec) {
        why = "cannot load CA file " + opts_.ca_file + ": " + ec.message();
        return nullptr;
      }
    } else if (opts_.verify_peer) {
      ctx->set_default_verify_paths(ec);
      if (ec) {
        why = "cannot load the system's CA certificates: " + ec.message();
        return nullptr;
      }
    }
    ctx->set_verify_mode(opts_.verify_peer ? ssl::verify_peer
                                           : ssl::verify_none);
    return ctx;
  }

  void on_resolve(beast::error_code ec, tcp::resolver::results_type results) {
    if (done_)
      return;
    if (ec) {
      fail(engine_error{kind::unreachable, 0,
                        "cannot resolve the engine host " + opts_.host
                          + " for " + op_->name() + ": " + ec.message()});
      return;
    }
    phase_ = phase::connecting;
    net::async_connect(socket(), results,
                       beast::bind_front_handler(&session::on_connect,
                                                 self()));
  }

  void on_connect(beast::error_code ec, const tcp::endpoint&) {
    if (done_)
      return;
    if (ec) {
      fail(engine_error{kind::unreachable, 0,
                        "cannot connect to the engine at " + where_ + " for "
                          + op_->name() + ": " + ec.message()});
      return;
    }
    beast::error_code ignored;
    socket().set_option(tcp::no_delay(true), ignored);
    if constexpr (is_tls) {
      auto& tls = ws().next_layer();
      // SNI takes host names only, not address literals (RFC 6066).
      net::ip::make_address(opts_.host, ec);
      if (ec
          && SSL_set_tlsext_host_name(tls.native_handle(), opts_.host.c_str())
               != 1) {
        fail(engine_error{kind::tls, 0,
                          "cannot set the TLS server name for the engine at "
                            + where_});
        return;
      }
      if (opts_.verify_peer)
        tls.set_verify_callback(ssl::host_name_verification(opts_.host));
      phase_ = phase::tls_handshake;
      tls.async_handshake(ssl::stream_base::client,
                          beast::bind_front_handler(&session::on_tls_handshake,
                                                    self()));
    } else {
      do_upgrade();
    }
  }

  void on_tls_handshake(beast::error_code ec) {
    if (done_)
      return;
    if (ec) {
      fail(engine_error{kind::tls, 0,
                        "the TLS handshake with the engine at " + where_
                          + " failed: " + ec.message()});
      return;
    }
    tls_up_ = true;
    do_upgrade();
  }

  void do_upgrade() {
    phase_ = phase::upgrading;
    // The session's own timer bounds every phase, including the closing
    // handshake; Beast's timeouts stay off.
    ws().set_option(websocket::stream_base::timeout{
      websocket::stream_base::none(), websocket::stream_base::none(), false});
    ws().set_option(websocket::stream_base::decorator(
      [headers = opts_.headers](websocket::request_type& req) {
        req.set(bhttp::field::user_agent, "Butler");
        for (auto& [name, value] : headers)
          req.set(name, value);
      }));
    ws().read_message_max(max_message_size);
    upgrade_pending_ = true;
    ws().async_handshake(upgrade_res_, where_, op_->target(),
                         beast::bind_front_handler(&session::on_upgrade,
                                                   self()));
  }

  void on_upgrade(beast::error_code ec) {
    upgrade_pending_ = false;
    if (done_)
      return;
    if (ec == websocket::error::upgrade_declined) {
      fail(engine_error{kind::upgrade_refused, 0,
                        "the engine at " + where_
                          + " refused the WebSocket upgrade to "
                          + op_->target() + " with HTTP "
                          + std::to_string(upgrade_res_.result_int()) + " "
                          + std::string{upgrade_res_.reason()}});
      return;
    }
    if (ec) {
      // With TLS 1.3 a server that rejects the client certificate says so
      // only after the client's handshake finished, so it shows up here: as
      // a TLS alert, or, when the server's close overtakes the alert, as a
      // reset or end of stream right after the handshake.
      bool dropped = ec == net::error::connection_reset
                     || ec == net::error::eof
                     || ec == net::error::broken_pipe
                     || ec == bhttp::error::end_of_stream;
      if (is_tls_error(ec) || (is_tls && dropped)) {
        fail(engine_error{kind::tls, 0,
                          "the engine at " + where_
                            + " ended the TLS session before answering the "
                              "WebSocket upgrade to "
                            + op_->target()
                            + " (did it reject the client certificate?): "
                            + ec.message()});
        return;
      }
      fail(engine_error{kind::protocol, 0,
                        "the WebSocket upgrade to " + op_->target()
                          + " at the engine at " + where_
                          + " failed: " + ec.message()});
      return;
    }
    ws_up_ = true;
    phase_ = phase::awaiting_connected;
    do_read();
  }

  // -- reading and writing ---------------------------------------------------

  void do_read() {
    ws().async_read(buffer_,
                    beast::bind_front_handler(&session::on_read, self()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (done_)
      return; // the closing handshake reads the rest
    if (ec) {
      fail(read_error(ec));
      return;
    }
    auto text = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    on_message(text);
    if (!done_)
      do_read();
  }

  void on_message(const std::string& text) {
    auto msg = json::parse(text, nullptr, false);
    if (msg.is_discarded() || !msg.is_object()) {
      fail(engine_error{kind::protocol, 0,
                        "the engine at " + where_
                          + " sent a message that is not a JSON object"
                          + while_pending()});
      return;
    }
    auto id = int_at(msg, {"id"});
    if (!id) {
      // A notification.
      auto* method = string_at(msg, {"method"});
      if (method != nullptr && *method == "OnConnected")
        on_connected(msg);
      return;
    }
    auto i = pending_.find(*id);
    if (i == pending_.end()) {
      spdlog::debug("engine-client ignores a reply with unknown id {} from {}",
                    *id, where_);
      return;
    }
    auto call = std::move(i->second);
    pending_.erase(i);
    if (auto* err = member(msg, "error")) {
      fail(rpc_error(call.method, *err));
      return;
    }
    auto res = msg.find("result");
    if (res == msg.end()) {
      bad_reply(call.method, "result or error");
      return;
    }
    call.on_result(*res);
    send_backlog();
  }

  void on_connected(const json& msg) {
    if (phase_ != phase::awaiting_connected)
      return;
    if (auto* state = string_at(msg, {"params", "qSessionState"})) {
      if (state->find("ERROR") != std::string::npos
          || state->find("DENIED") != std::string::npos) {
        fail(engine_error{kind::protocol, 0,
                          "the engine at " + where_
                            + " did not open a session for " + op_->name()
                            + ": " + *state});
        return;
      }
    }
    phase_ = phase::running;
    op_->start(*this);
  }

  void send(queued_call&& q) {
    pending_.emplace(q.id, pending_call{std::move(q.method),
                                        std::move(q.on_result)});
    write_queue_.push_back(std::move(q.text));
    if (!writing_)
      do_write();
  }

  void send_backlog() {
    while (!done_ && !backlog_.empty() && pending_.size() < max_in_flight) {
      auto q = std::move(backlog_.front());
      backlog_.pop_front();
      send(std::move(q));
    }
  }

  void do_write() {
    writing_ = true;
    ws().text(true);
    ws().async_write(net::buffer(write_queue_.front()),
                     beast::bind_front_handler(&session::on_write, self()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    writing_ = false;
    if (done_)
      return;
    if (ec) {
      fail(read_error(ec));
      return;
    }
    write_queue_.pop_front();
    if (!write_queue_.empty())
      do_write();
  }

  // -- errors ----------------------------------------------------------------

  /// Returns " while GetScript was pending" for the oldest pending call.
  std::string while_pending() const {
    auto m = pending_method();
    return m.empty() ? std::string{} : " while " + m + " was pending";
  }

  std::string pending_method() const {
    const pending_call* oldest = nullptr;
    int oldest_id = 0;
    for (auto& [id, call] : pending_)
      if (oldest == nullptr || id < oldest_id) {
        oldest = &call;
        oldest_id = id;
      }
    return oldest == nullptr ? std::string{} : oldest->method;
  }

  engine_error read_error(const beast::error_code& ec) {
    std::string what;
    if (ec == websocket::error::closed) {
      auto reason = ws().reason();
      what = "closed the session (code " + std::to_string(reason.code)
             + (reason.reason.empty()
                  ? std::string{}
                  : ": " + std::string{reason.reason.data(),
                                       reason.reason.size()})
             + ")";
    } else {
      what = "dropped the connection (" + ec.message() + ")";
    }
    auto k = is_tls_error(ec) && phase_ == phase::awaiting_connected
               ? kind::tls
               : kind::protocol;
    return engine_error{k, 0,
                        "the engine at " + where_ + " " + what + " during "
                          + op_->name() + while_pending()};
  }

  engine_error rpc_error(const std::string& method, const json& err) {
    int code = int_at(err, {"code"}).value_or(0);
    std::string detail;
    if (auto* m = string_at(err, {"message"}))
      detail = *m;
    if (auto* p = string_at(err, {"parameter"}); p != nullptr && !p->empty())
      detail += detail.empty() ? *p : ": " + *p;
    auto text = "the engine at " + where_ + " answered " + method
                + " with error " + std::to_string(code);
    if (!detail.empty())
      text += " (" + detail + ")";
    return engine_error{code == app_not_found ? kind::not_found : kind::rpc,
                        code, std::move(text)};
  }

  engine_error timeout_error() {
    auto count = opts_.timeout.count();
    auto ms = count % 1000 == 0 ? std::to_string(count / 1000) + " s"
                                : std::to_string(count) + " ms";
    std::string text;
    switch (phase_) {
      case phase::resolving:
        text = "the engine host " + opts_.host + " did not resolve within "
               + ms;
        break;
      case phase::connecting:
        text = "the engine at " + where_
               + " did not accept a connection within " + ms;
        break;
      case phase::tls_handshake:
        text = "the TLS handshake with the engine at " + where_
               + " did not finish within " + ms;
        break;
      case phase::upgrading:
        text = "the engine at " + where_
               + " did not answer the WebSocket upgrade to " + op_->target()
               + " within " + ms;
        break;
      case phase::awaiting_connected:
        text = "the engine at " + where_ + " did not send OnConnected within "
               + ms;
        break;
      default: {
        auto m = pending_method();
        text = "the engine at " + where_ + " did not answer "
               + (m.empty() ? std::string{"in time"} : m) + " within " + ms;
        break;
      }
    }
    return engine_error{kind::timeout, 0, text + " (" + op_->name() + ")"};
  }

  engine_error stopped_error() {
    return engine_error{kind::unreachable, 0,
                        "the engine client stopped before " + op_->name()
                          + " on the engine at " + where_ + " finished"};
  }

  // -- the one timer ---------------------------------------------------------

  void arm_timer(clock_type::time_point when) {
    auto gen = ++timer_gen_;
    timer_.expires_at(when);
    timer_.async_wait([self = self(), gen](beast::error_code ec) {
      self->on_timer(gen, ec);
    });
  }

  void on_timer(unsigned gen, beast::error_code ec) {
    if (ec == net::error::operation_aborted || gen != timer_gen_)
      return; // superseded by a newer deadline, or cancelled
    if (phase_ == phase::closing) {
      spdlog::debug("engine-client closing handshake with {} timed out",
                    where_);
      close_now();
      deliver();
      return;
    }
    if (!done_)
      fail(timeout_error());
  }

  // -- closing ---------------------------------------------------------------

  /// Closes cleanly as far as the connection got: a close frame (then TLS
  /// close_notify and TCP teardown, which Beast does), or TLS shutdown only,
  /// bounded by max_close_time. Reports once that is over.
  void begin_close() {
    phase_ = phase::closing;
    backlog_.clear();
    resolver_.cancel();
    auto bound = std::min<std::chrono::milliseconds>(
      max_close_time, std::max(opts_.timeout, std::chrono::milliseconds{200}));
    if (ws_up_) {
      arm_timer(clock_type::now() + bound);
      ws().async_close(websocket::close_code::normal,
                       beast::bind_front_handler(&session::on_closed, self()));
      return;
    }
    if constexpr (is_tls) {
      // Not while the upgrade still reads: a TLS stream takes one read at a
      // time, and the shutdown reads the engine's close_notify.
      if (tls_up_ && !upgrade_pending_) {
        arm_timer(clock_type::now() + bound);
        ws().next_layer().async_shutdown(
          beast::bind_front_handler(&session::on_closed, self()));
        return;
      }
    }
    close_now();
    deliver();
  }

  void on_closed(beast::error_code) {
    // Errors here (the engine already gone) change nothing: the socket is
    // closed either way and the result stands.
    close_now();
    deliver();
  }

  void on_abort() {
    if (!done_) {
      done_ = true;
      error_ = stopped_error();
    }
    close_now();
    deliver();
  }

  /// Closes the socket at once; pending operations complete with errors that
  /// the handlers ignore.
  void close_now() {
    phase_ = phase::finished;
    ++timer_gen_;
    timer_.cancel();
    resolver_.cancel();
    if (ws_) {
      beast::error_code ignored;
      socket().close(ignored);
    }
  }

  void deliver() {
    if (delivered_)
      return;
    delivered_ = true;
    pending_.clear();
    try {
      op_->deliver(error_ ? &*error_ : nullptr);
    } catch (const std::exception& e) {
      spdlog::error("engine-client callback for {} threw: {}", op_->name(),
                    e.what());
    } catch (...) {
      spdlog::error("engine-client callback for {} threw", op_->name());
    }
  }

  std::shared_ptr<registry> reg_;
  engine_options opts_;
  std::unique_ptr<operation> op_;
  std::string where_;
  strand_type strand_;
  resolver_type resolver_;
  timer_type timer_;
  // Declared before the stream, which refers to it.
  std::shared_ptr<ssl::context> tls_;
  std::optional<Stream> ws_;
  beast::flat_buffer buffer_;
  websocket::response_type upgrade_res_;
  std::deque<std::string> write_queue_;
  std::unordered_map<int, pending_call> pending_;
  std::deque<queued_call> backlog_;
  std::optional<engine_error> error_;
  int next_id_ = 1;
  unsigned timer_gen_ = 0;
  phase phase_ = phase::idle;
  bool tls_up_ = false;
  bool ws_up_ = false;
  bool upgrade_pending_ = false;
  bool writing_ = false;
  bool done_ = false;
  bool delivered_ = false;
};

// -- client -------------------------------------------------------------------

class client_impl final : public client {
public:
  client_impl()
    : ioc_(std::make_shared<net::io_context>(1)),
      reg_(std::make_shared<registry>()) {
    work_.emplace(ioc_->get_executor());
    auto exited = std::make_shared<std::promise<void>>();
    exited_ = exited->get_future();
    thread_ = std::thread([ioc = ioc_, exited] {
      net_io::run_io(*ioc, "engine-client");
      exited->set_value();
    });
  }

  ~client_impl() override {
    stop();
  }

  void list_apps(const engine_options& opts, list_callback cb) override {
    start(opts, std::make_unique<list_operation>(std::move(cb)));
  }

  void dump_app(const engine_options& opts, std::string app_id,
                dump_callback cb) override {
    start(opts,
          std::make_unique<dump_operation>(std::move(app_id), std::move(cb)));
  }

  void reload_app(const engine_options& opts, std::string app_id,
                  reload_options ropts, reload_callback cb) override {
    start(opts, std::make_unique<reload_operation>(std::move(app_id), ropts,
                                                   std::move(cb)));
  }

  void stop() override {
    std::lock_guard<std::mutex> guard{stop_mtx_};
    if (stopped_)
      return;
    stopped_ = true;
    std::vector<std::shared_ptr<session_base>> live;
    {
      std::lock_guard<std::mutex> reg_guard{reg_->mtx};
      reg_->stopped = true;
      for (auto& entry : reg_->sessions)
        if (auto s = entry.second.lock())
          live.push_back(std::move(s));
    }
    for (auto& s : live)
      s->abort();
    // Outside the lock: dropping a last reference runs ~session, which takes
    // the lock itself.
    live.clear();
    // Without work guard, run() returns once the aborted sessions wound down.
    work_.reset();
    if (std::this_thread::get_id() == thread_.get_id()) {
      spdlog::error("engine-client stopped from its own i/o thread");
      thread_.detach();
      return;
    }
    if (exited_.wait_for(max_stop_wait) != std::future_status::ready) {
      spdlog::warn("engine-client sessions did not wind down within {} s",
                   max_stop_wait.count());
      ioc_->stop();
    }
    thread_.join();
    spdlog::debug("engine-client stopped");
  }

private:
  void start(const engine_options& opts, std::unique_ptr<operation> op) {
    std::shared_ptr<session_base> s;
    {
      std::lock_guard<std::mutex> guard{reg_->mtx};
      if (!reg_->stopped) {
        if (opts.use_ssl)
          s = std::make_shared<session<tls_ws>>(*ioc_, reg_, opts,
                                                std::move(op));
        else
          s = std::make_shared<session<plain_ws>>(*ioc_, reg_, opts,
                                                  std::move(op));
        reg_->sessions.emplace(s.get(), s);
      }
    }
    if (s) {
      s->start();
      return;
    }
    // Stopped: nothing runs the I/O context any more.
    engine_error err{kind::unreachable, 0,
                     "the engine client is stopped; cannot start "
                       + op->name() + " on the engine at "
                       + format_host_port(opts.host, opts.port)};
    op->deliver(&err);
  }

  // Declared first so it is destroyed last, after every session.
  std::shared_ptr<net::io_context> ioc_;
  std::shared_ptr<registry> reg_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>>
    work_;
  std::thread thread_;
  std::future<void> exited_;
  std::mutex stop_mtx_;
  bool stopped_ = false;
};

} // namespace

std::unique_ptr<client> make_client() {
  return std::make_unique<client_impl>();
}

} // namespace butler::engine
