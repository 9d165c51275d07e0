#pragma once

// Client for the Qlik Sense Engine: JSON-RPC 2.0 over a (TLS) WebSocket with
// client certificates, on Boost.Beast. No Beast in this header. Each
// operation opens its own engine session (connect, TLS, upgrade, wait for
// OnConnected, calls, clean close) on the client's own I/O thread, and
// reports exactly once through its callback, on that thread.

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace butler::engine {

/// Where and how to reach the engine (Butler.configEngine.*, Butler.cert.*).
struct engine_options {
  std::string host;
  uint16_t port = 4747;
  /// wss:// when true, ws:// otherwise.
  bool use_ssl = true;
  /// PEM files; an empty client_cert sends no client certificate and an
  /// empty ca_file uses the system's trust store when verify_peer is set.
  std::string client_cert;
  std::string client_key;
  std::string ca_file;
  /// Checks the engine's certificate and host name (rejectUnauthorized).
  bool verify_peer = false;
  /// Sent with the WebSocket upgrade, e.g. X-Qlik-User.
  std::vector<std::pair<std::string, std::string>> headers;
  /// Bounds the whole operation, from connecting to the last answer. The
  /// closing handshake afterwards has its own short bound.
  std::chrono::milliseconds timeout{60'000};
};

struct engine_error {
  enum class kind {
    /// Cannot resolve or connect; also used when the client stops while
    /// the operation runs.
    unreachable,
    /// TLS failed: handshake, certificate files, peer verification, or the
    /// engine rejecting the client certificate.
    tls,
    /// The engine answered the WebSocket upgrade with an HTTP error.
    upgrade_refused,
    /// The engine answered a call with a JSON-RPC error (rpc_code).
    rpc,
    /// The engine answered with error 1003 (App not found).
    not_found,
    /// The operation did not finish within engine_options::timeout.
    timeout,
    /// The engine broke the exchange: closed the session, sent something
    /// that is not JSON or a reply without the expected fields; also bad
    /// options (a header with CR/LF).
    protocol,
  };
  kind what = kind::protocol;
  /// The JSON-RPC error code for rpc and not_found.
  int rpc_code = 0;
  /// Names the engine (host:port) and the method or phase, e.g. "the engine
  /// at sense1:4747 answered OpenDoc with error 1003 (App not found: ...)".
  std::string message;
};

/// Returns the kind's name ("not_found").
const char* to_string(engine_error::kind x);

struct app_entry {
  std::string id;
  std::string name;
};

struct reload_options {
  /// qMode: 0 fail on script errors, 1 ignore and continue, 2 ignore and
  /// abort.
  int mode = 0;
  bool partial = false;
};

class client {
public:
  using list_callback
    = std::function<void(std::variant<std::vector<app_entry>, engine_error>)>;
  using dump_callback
    = std::function<void(std::variant<nlohmann::json, engine_error>)>;
  using reload_callback = std::function<void(std::variant<bool, engine_error>)>;

  virtual ~client();

  /// Lists the apps (GetDocList on /app/engineData).
  virtual void list_apps(const engine_options& opts, list_callback cb) = 0;

  /// Dumps an app: one JSON object with the keys appId, properties,
  /// loadScript, lineage, sheets, stories, masterobjects, appprops,
  /// dataconnections, dimensions, bookmarks, embeddedmedia, snapshots,
  /// fields, variables and measures. Independent calls are pipelined: after
  /// OpenDoc everything that needs only the Doc handle goes out at once, and
  /// each reply sends the calls that depend on it (at most 32 unanswered).
  virtual void dump_app(const engine_options& opts, std::string app_id,
                        dump_callback cb)
    = 0;

  /// Reloads an app (DoReload) and saves it (DoSave) if the reload
  /// succeeded. The result is DoReload's qReturn.
  virtual void reload_app(const engine_options& opts, std::string app_id,
                          reload_options ropts, reload_callback cb)
    = 0;

  /// Aborts running operations (their callbacks get an error), then stops
  /// and joins the I/O thread. Operations started afterwards fail at once,
  /// on the calling thread. Idempotent; the destructor calls it. Must not be
  /// called from a callback (it then cannot join and detaches the thread).
  virtual void stop() = 0;
};

/// Starts a client with its I/O thread.
std::unique_ptr<client> make_client();

} // namespace butler::engine
