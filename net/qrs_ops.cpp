#include "net/qrs_ops.hpp"

#include "net/log_event_parser.hpp"

#include <curl/curl.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <memory>
#include <mutex>
#include <optional>
#include <utility>

namespace butler::qrs {

namespace {

using kind = qrs_error::kind_type;
using reply = std::variant<http::outbound_response, qrs_error>;
using reply_handler = std::function<void(reply)>;

/// Returns "30 s", or "500 ms" for a timeout that is no whole second.
std::string duration_text(std::chrono::milliseconds d) {
  if (d.count() % 1000 == 0)
    return std::to_string(d.count() / 1000) + " s";
  return std::to_string(d.count()) + " ms";
}

bool is_tls_code(int code) {
  switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
      return true;
    default:
      return false;
  }
}

/// Returns the start of `body` as one line for a message.
std::string body_excerpt(const std::string& body) {
  constexpr std::size_t max_len = 300;
  std::string out;
  for (char c : body) {
    // Cuts before a UTF-8 lead byte, so no character is split.
    auto continuation = (static_cast<unsigned char>(c) & 0xC0) == 0x80;
    if (out.size() >= max_len && !continuation) {
      out += "...";
      break;
    }
    auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7F) ? ' ' : c;
  }
  auto first = out.find_first_not_of(' ');
  if (first == std::string::npos)
    return {};
  return out.substr(first, out.find_last_not_of(' ') - first + 1);
}

qrs_error make_error(kind k, long status, std::string message) {
  qrs_error err;
  err.kind = k;
  err.status = status;
  err.message = std::move(message);
  return err;
}

/// Submits `req` and hands `done` either the 2xx response or the error.
void call(http::client& client, std::shared_ptr<const qrs_options> opts,
          http::outbound_request req, reply_handler done) {
  auto handler = std::make_shared<reply_handler>(std::move(done));
  auto what = req.method + " " + req.url.substr(0, req.url.find('?'));
  auto on_done = [opts, handler, what](http::outbound_response res) {
    qrs_error err;
    if (classify(*opts, res, err)) {
      spdlog::debug("qrs {} failed: {}", what, err.message);
      (*handler)(std::move(err));
    } else {
      spdlog::debug("qrs {} answered {}", what, res.status);
      (*handler)(std::move(res));
    }
  };
  if (!client.submit(std::move(req), std::move(on_done)))
    (*handler)(make_error(kind::busy, 0,
                          "too many calls waiting for QRS at "
                            + authority(*opts)
                            + ": the HTTP client refused the request "
                              "(queue full or stopped)"));
}

qrs_error bad_reply(const qrs_options& opts, const std::string& what,
                    const std::string& problem) {
  return make_error(kind::bad_response, 200,
                    "QRS at " + authority(opts) + " sent a bad reply to "
                      + what + ": " + problem);
}

qrs_error not_a_task_id(const std::string& id) {
  return make_error(kind::rejected, 0, "not a task id: '" + id + "'");
}

// -- start_tasks --------------------------------------------------------------

/// The state of one start_tasks operation, shared by its completions.
struct start_job {
  start_job(http::client& c, const qrs_options& o, const start_filter& f,
            start_request r, start_tasks_callback d)
    : client(c),
      opts(std::make_shared<const qrs_options>(o)),
      filter(f),
      req(std::move(r)),
      done(std::move(d)) {
    // nop
  }

  http::client& client;
  std::shared_ptr<const qrs_options> opts;
  start_filter filter;
  start_request req;
  start_tasks_callback done;
  // Guards the lookup results: completions run on the client thread, a
  // refused submit reports on the caller's.
  std::mutex mtx;
  std::size_t pending = 0;
  start_lookups found;
  std::optional<qrs_error> error;
};

/// Plans and starts once every lookup is in.
void finish(const std::shared_ptr<start_job>& job) {
  if (job->error) {
    job->done(std::move(*job->error));
    return;
  }
  auto plan = plan_start(job->req, job->filter, job->found);
  if (plan.to_start.empty()) {
    job->done(std::move(plan.result));
    return;
  }
  auto body = nlohmann::json(plan.to_start).dump();
  auto req = build_request(*job->opts, "POST", "/qrs/task/start/many", {},
                           std::move(body));
  req.at_most_once = true;
  spdlog::debug("qrs starting {} task(s)", plan.to_start.size());
  call(job->client, job->opts, std::move(req),
       [job, result = std::move(plan.result)](reply r) mutable {
         if (auto* err = std::get_if<qrs_error>(&r))
           job->done(std::move(*err));
         else
           job->done(std::move(result));
       });
}

/// Submits one lookup; `store` files the tasks found (under the job lock).
void lookup(const std::shared_ptr<start_job>& job, std::string filter,
            std::function<void(start_lookups&, std::vector<qrs_task>)> store) {
  auto req = build_request(*job->opts, "GET", "/qrs/task/full",
                           {{"filter", filter}});
  call(job->client, job->opts, std::move(req),
       [job, store = std::move(store)](reply r) {
         std::optional<qrs_error> failure;
         std::vector<qrs_task> tasks;
         if (auto* err = std::get_if<qrs_error>(&r)) {
           failure = std::move(*err);
         } else {
           auto parsed = parse_tasks(std::get<http::outbound_response>(r).body);
           if (auto* perr = std::get_if<parse_error>(&parsed))
             failure = bad_reply(*job->opts, "GET /qrs/task/full",
                                 perr->message);
           else
             tasks = std::move(std::get<std::vector<qrs_task>>(parsed));
         }
         bool last = false;
         {
           std::lock_guard<std::mutex> guard{job->mtx};
           if (failure && !job->error)
             job->error = std::move(failure);
           else if (!failure)
             store(job->found, std::move(tasks));
           last = --job->pending == 0;
         }
         if (last)
           finish(job);
       });
}

} // namespace

const char* to_string(qrs_error::kind_type k) {
  switch (k) {
    case kind::unreachable:
      return "unreachable";
    case kind::tls:
      return "tls";
    case kind::forbidden:
      return "forbidden";
    case kind::not_found:
      return "not_found";
    case kind::rejected:
      return "rejected";
    case kind::server:
      return "server";
    case kind::timeout:
      return "timeout";
    case kind::bad_response:
      return "bad_response";
    case kind::busy:
      return "busy";
  }
  return "unknown";
}

bool classify(const qrs_options& opts, const http::outbound_response& res,
              qrs_error& err) {
  auto where = authority(opts);
  if (res.curl_code != CURLE_OK) {
    if (res.curl_code == CURLE_OPERATION_TIMEDOUT)
      err = make_error(kind::timeout, 0,
                       "QRS at " + where + " did not answer within "
                         + duration_text(opts.timeout));
    else if (is_tls_code(res.curl_code)
             || res.error.find("SSL") != std::string::npos
             || res.error.find("TLS") != std::string::npos)
      // A refused client certificate shows up on the first read under TLS
      // 1.3 (CURLE_RECV_ERROR with an OpenSSL alert), not in the handshake.
      err = make_error(kind::tls, 0,
                       "TLS with QRS at " + where + " failed: " + res.error);
    else if (opts.use_ssl && res.curl_code == CURLE_SEND_ERROR)
      // When the server drops the connection at once after the handshake
      // (again a refused client certificate), libcurl may only notice
      // that the peer is gone while sending the request: "getpeername" or
      // "Broken pipe" depending on where the close lands.
      err = make_error(kind::tls, 0,
                       "TLS with QRS at " + where
                         + " failed: the server closed the connection after "
                           "the handshake (client certificate refused?): "
                         + res.error);
    else
      err = make_error(kind::unreachable, 0,
                       "cannot reach QRS at " + where + ": " + res.error);
    return true;
  }
  auto status = res.status;
  if (status >= 200 && status < 300) {
    if (res.error.empty())
      return false;
    // The client cut the body; what is left cannot be parsed.
    err = make_error(kind::bad_response, status,
                     "QRS at " + where + " sent too large a reply: "
                       + res.error);
    return true;
  }
  auto message = "QRS at " + where + " answered " + std::to_string(status);
  if (auto text = body_excerpt(res.body); !text.empty())
    message += ": " + text;
  auto k = kind::bad_response;
  if (status == 403)
    k = kind::forbidden;
  else if (status == 404)
    k = kind::not_found;
  else if (status >= 400 && status < 500)
    k = kind::rejected;
  else if (status >= 500 && status < 600)
    k = kind::server;
  err = make_error(k, status, std::move(message));
  return true;
}

void about(http::client& client, const qrs_options& opts, about_callback done) {
  auto shared = std::make_shared<const qrs_options>(opts);
  call(client, shared, build_request(opts, "GET", "/qrs/about", {}),
       [shared, done = std::move(done)](reply r) {
         if (auto* err = std::get_if<qrs_error>(&r)) {
           // /qrs/about always exists on a QRS: a 404 means the host and
           // port lead somewhere else, a broken gateway rather than a
           // missing resource.
           if (err->kind == kind::not_found)
             err->kind = kind::bad_response;
           done(std::move(*err));
           return;
         }
         auto parsed = parse_about(std::get<http::outbound_response>(r).body);
         if (auto* perr = std::get_if<parse_error>(&parsed))
           done(bad_reply(*shared, "GET /qrs/about", perr->message));
         else
           done(std::move(std::get<std::string>(parsed)));
       });
}

void start_tasks(http::client& client, const qrs_options& opts,
                 const start_filter& filter, start_request req,
                 start_tasks_callback done) {
  auto needed = plan_lookups(req, filter);
  auto job = std::make_shared<start_job>(client, opts, filter, std::move(req),
                                         std::move(done));
  job->pending = (needed.task_ids.empty() ? 0 : 1) + needed.tags.size()
                 + needed.custom_properties.size();
  if (job->pending == 0) {
    finish(job);
    return;
  }
  // Slots for every answer exist before the first call goes out, so a
  // completion only fills its own slot.
  for (auto& tag : needed.tags)
    job->found.by_tag.emplace_back(tag, std::vector<qrs_task>{});
  for (auto& cp : needed.custom_properties)
    job->found.by_custom_property.emplace_back(cp, std::vector<qrs_task>{});
  if (!needed.task_ids.empty())
    lookup(job, filter_ids(needed.task_ids),
           [](start_lookups& found, std::vector<qrs_task> tasks) {
             found.by_id = std::move(tasks);
           });
  for (std::size_t i = 0; i < needed.tags.size(); ++i)
    lookup(job, filter_tag(needed.tags[i]),
           [i](start_lookups& found, std::vector<qrs_task> tasks) {
             found.by_tag[i].second = std::move(tasks);
           });
  for (std::size_t i = 0; i < needed.custom_properties.size(); ++i) {
    auto& [name, value] = needed.custom_properties[i];
    lookup(job, filter_custom_property(name, value),
           [i](start_lookups& found, std::vector<qrs_task> tasks) {
             found.by_custom_property[i].second = std::move(tasks);
           });
  }
}

void start_task(http::client& client, const qrs_options& opts,
                std::string task_id, start_task_callback done) {
  if (!events::is_guid(task_id)) {
    done(not_a_task_id(task_id));
    return;
  }
  auto req = build_request(opts, "POST", "/qrs/task/" + task_id + "/start", {});
  req.at_most_once = true;
  call(client, std::make_shared<const qrs_options>(opts), std::move(req),
       [id = std::move(task_id), done = std::move(done)](reply r) {
         if (auto* err = std::get_if<qrs_error>(&r))
           done(std::move(*err));
         else
           done(task_ref{id, {}});
       });
}

void lookup_task(http::client& client, const qrs_options& opts,
                 std::string task_id, lookup_task_callback done) {
  if (!events::is_guid(task_id)) {
    done(not_a_task_id(task_id));
    return;
  }
  auto shared = std::make_shared<const qrs_options>(opts);
  auto req = build_request(opts, "GET", "/qrs/task/full",
                           {{"filter", filter_ids({task_id})}});
  call(client, shared, std::move(req),
       [shared, id = std::move(task_id), done = std::move(done)](reply r) {
         if (auto* err = std::get_if<qrs_error>(&r)) {
           done(std::move(*err));
           return;
         }
         auto parsed = parse_tasks(std::get<http::outbound_response>(r).body);
         if (auto* perr = std::get_if<parse_error>(&parsed)) {
           done(bad_reply(*shared, "GET /qrs/task/full", perr->message));
           return;
         }
         for (auto& task : std::get<std::vector<qrs_task>>(parsed))
           if (same_id(task.id, id)) {
             done(std::move(task));
             return;
           }
         done(make_error(kind::not_found, 200,
                         "QRS at " + authority(*shared) + " has no task "
                           + id));
       });
}

} // namespace butler::qrs
