#include "net/qrs_ops.hpp"

#include "test/support/eventually.hpp"
#include "test/support/free_port.hpp"
#include "test/support/sense_fake.hpp"
#include "test/support/test_certs.hpp"

#include <gtest/gtest.h>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using namespace butler::qrs;
using butler::test::cert_files;
using butler::test::eventually;
using butler::test::sense_fake;
using json = nlohmann::json;
using kind = qrs_error::kind_type;

namespace {

// The fake's built-in tasks (test/fakes/fake_qrs.py, DEFAULT_DATA).
// Tag startTask1: sales, sales_weekly, targets. Tag startTask2: finance2,
// archive. Tag nightly: nightly, finance2, user_sync. taskGroup=tasks1:
// sales, targets (sales_weekly has taskGroup=tasks3, legacyTaskGroup=tasks1).
// taskGroup=tasks2: finance2, archive. cockpit: no tags, no properties.
const std::string sales = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e";
const std::string sales_weekly = "8d1b7c2e-3f4a-4b5c-9d6e-7f8091a2b3c4";
const std::string targets = "210832b5-6174-4572-bd19-3e61eda675ef";
const std::string nightly = "0a1b2c3d-1111-2222-3333-444455556666";
const std::string finance2 = "09b3c78f-04dd-45e3-a4bf-1b074d6572fa";
const std::string cockpit = "a1a11a11-b1c0-4879-88fc-c7cdd9c1cf3e";
const std::string archive = "eaf1da4f-fd44-4cea-b2de-7b67a6496ee3";
const std::string user_sync = "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9";
const std::string unknown = "00000000-0000-4000-8000-000000000001";

const std::string user = "UserDirectory=Internal;UserId=sa_repository";

using strings = std::vector<std::string>;

std::string upper(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

/// Collects the callbacks of one operation; the state outlives the test body
/// in case a callback comes late.
template <class T>
class outcome {
public:
  std::function<void(T)> callback() {
    return [st = state_](T value) {
      std::lock_guard<std::mutex> guard{st->mtx};
      st->values.push_back(std::move(value));
    };
  }

  /// Waits for the first callback.
  bool wait(std::chrono::milliseconds timeout = 10s) {
    return eventually([this] { return count() > 0; }, timeout);
  }

  std::size_t count() const {
    std::lock_guard<std::mutex> guard{state_->mtx};
    return state_->values.size();
  }

  T value() const {
    std::lock_guard<std::mutex> guard{state_->mtx};
    return state_->values.front();
  }

private:
  struct state {
    std::mutex mtx;
    std::vector<T> values;
  };
  std::shared_ptr<state> state_ = std::make_shared<state>();
};

strings refs(const std::vector<task_ref>& items) {
  strings out;
  for (auto& r : items)
    out.push_back(r.id);
  return out;
}

bool is_key(const std::string& key) {
  return key.size() == 16
         && std::all_of(key.begin(), key.end(), [](char c) {
              return std::isalnum(static_cast<unsigned char>(c));
            });
}

/// Returns "METHOD path [filter]" for each call.
strings summary(const json& calls) {
  strings out;
  for (auto& call : calls) {
    auto line = call["method"].get<std::string>() + " "
                + call["path"].get<std::string>();
    if (call["query"].contains("filter"))
      line += " [" + call["query"]["filter"].get<std::string>() + "]";
    out.push_back(line);
  }
  return out;
}

strings sorted(strings items) {
  std::sort(items.begin(), items.end());
  return items;
}

class qrs_ops_test : public ::testing::Test {
public:
  static void SetUpTestSuite() {
    dir_ = butler::test::make_temp_dir("butler-qrs-ops-");
    try {
      certs_ = butler::test::make_test_certs(dir_);
      other_dir_ = dir_ + "/other";
      std::filesystem::create_directories(other_dir_);
      other_certs_ = butler::test::make_test_certs(other_dir_);
    } catch (const std::exception& ex) {
      error_ = ex.what();
      return;
    }
    fake_ = std::make_unique<sense_fake>("fake_qrs.py");
    if (!fake_->start(certs_))
      error_ = fake_->last_error();
  }

  static void TearDownTestSuite() {
    fake_.reset();
    butler::test::remove_tree(dir_);
  }

protected:
  void SetUp() override {
    ASSERT_EQ(error_, "");
    ASSERT_TRUE(fake_->reset());
    client_ = butler::http::make_curl_client();
  }

  void TearDown() override {
    client_->stop();
  }

  /// Options for the fake: its CA, our client certificate, the user header.
  qrs_options options() const {
    qrs_options opts;
    opts.host = "127.0.0.1";
    opts.port = fake_->port();
    opts.client_cert = certs_.client_cert;
    opts.client_key = certs_.client_key;
    opts.ca_file = certs_.ca_cert;
    opts.verify_peer = true;
    opts.headers = {{"X-Qlik-User", user}};
    opts.timeout = 5s;
    return opts;
  }

  std::string where() const {
    return "127.0.0.1:" + std::to_string(fake_->port());
  }

  json calls() {
    return fake_->calls();
  }

  strings started() {
    auto s = fake_->control_get("/started");
    return s.is_array() ? s.get<strings>() : strings{"<no answer>"};
  }

  /// Runs start_tasks and returns its single outcome.
  std::variant<start_result, qrs_error>
  run_start(const start_request& req, const start_filter& filter = {},
            const qrs_options* opts = nullptr) {
    outcome<std::variant<start_result, qrs_error>> out;
    start_tasks(*client_, opts ? *opts : options(), filter, req,
                out.callback());
    EXPECT_TRUE(out.wait());
    // No further callback can come once the client is stopped.
    client_->stop();
    EXPECT_EQ(out.count(), 1u);
    if (out.count() == 0)
      return qrs_error{kind::bad_response, 0, "no callback"};
    return out.value();
  }

  std::variant<std::string, qrs_error> run_about(const qrs_options& opts) {
    outcome<std::variant<std::string, qrs_error>> out;
    about(*client_, opts, out.callback());
    EXPECT_TRUE(out.wait());
    client_->stop();
    EXPECT_EQ(out.count(), 1u);
    if (out.count() == 0)
      return qrs_error{kind::bad_response, 0, "no callback"};
    return out.value();
  }

  static inline std::string dir_;
  static inline std::string other_dir_;
  static inline std::string error_;
  static inline cert_files certs_;
  static inline cert_files other_certs_;
  static inline std::unique_ptr<sense_fake> fake_;
  std::unique_ptr<butler::http::client> client_;
};

/// Checks that an operation succeeded.
template <class Variant>
::testing::AssertionResult succeeded(const Variant& res) {
  if (auto* err = std::get_if<qrs_error>(&res))
    return ::testing::AssertionFailure()
           << "failed with " << to_string(err->kind) << ": " << err->message;
  return ::testing::AssertionSuccess();
}

/// Checks that an operation failed with `expected`.
template <class Variant>
::testing::AssertionResult failed_with(const Variant& res, kind expected) {
  auto* err = std::get_if<qrs_error>(&res);
  if (err == nullptr)
    return ::testing::AssertionFailure() << "succeeded";
  if (err->kind != expected)
    return ::testing::AssertionFailure()
           << "failed with " << to_string(err->kind) << " instead of "
           << to_string(expected) << ": " << err->message;
  return ::testing::AssertionSuccess() << err->message;
}

#define ASSERT_OK(res) ASSERT_TRUE(succeeded(res))
#define ASSERT_FAILED(res, expected_kind)                                      \
  ASSERT_TRUE(failed_with(res, expected_kind))

} // namespace

// -- classifying replies (no network) -----------------------------------------

TEST(qrs_classify, maps_statuses_and_transport_errors) {
  qrs_options opts;
  opts.host = "sense1";
  opts.timeout = 30s;
  auto check = [&](butler::http::outbound_response res, kind expected,
                   const std::string& message) {
    qrs_error err;
    EXPECT_TRUE(classify(opts, res, err)) << message;
    EXPECT_EQ(std::string{to_string(err.kind)}, to_string(expected)) << message;
    EXPECT_EQ(err.message, message);
  };
  auto answered = [](long status, std::string body = {}) {
    butler::http::outbound_response res;
    res.status = status;
    res.body = std::move(body);
    return res;
  };
  auto failed = [](int code, std::string error) {
    butler::http::outbound_response res;
    res.curl_code = code;
    res.error = std::move(error);
    return res;
  };
  check(answered(403, "XrfKey header and querystring values do not match"),
        kind::forbidden,
        "QRS at sense1:4242 answered 403: XrfKey header and querystring "
        "values do not match");
  check(answered(404), kind::not_found, "QRS at sense1:4242 answered 404");
  check(answered(400, "{\"message\":\"Invalid filter\"}\r\n"), kind::rejected,
        "QRS at sense1:4242 answered 400: {\"message\":\"Invalid filter\"}");
  check(answered(409, "  conflict\n"), kind::rejected,
        "QRS at sense1:4242 answered 409: conflict");
  check(answered(500, "boom"), kind::server,
        "QRS at sense1:4242 answered 500: boom");
  check(answered(503), kind::server, "QRS at sense1:4242 answered 503");
  check(answered(302), kind::bad_response, "QRS at sense1:4242 answered 302");
  check(failed(CURLE_COULDNT_CONNECT, "Connection refused"), kind::unreachable,
        "cannot reach QRS at sense1:4242: Connection refused");
  check(failed(CURLE_GOT_NOTHING, "Empty reply from server"),
        kind::unreachable, "cannot reach QRS at sense1:4242: Empty reply from server");
  check(failed(CURLE_OPERATION_TIMEDOUT, "Operation timed out"), kind::timeout,
        "QRS at sense1:4242 did not answer within 30 s");
  check(failed(CURLE_PEER_FAILED_VERIFICATION, "unable to get local issuer"),
        kind::tls, "TLS with QRS at sense1:4242 failed: unable to get local issuer");
  check(failed(CURLE_SSL_CONNECT_ERROR, "handshake failure"), kind::tls,
        "TLS with QRS at sense1:4242 failed: handshake failure");
  check(failed(CURLE_RECV_ERROR,
               "OpenSSL SSL_read: error:0A00045C:SSL routines::tlsv13 alert "
               "certificate required, errno 0"),
        kind::tls,
        "TLS with QRS at sense1:4242 failed: OpenSSL SSL_read: "
        "error:0A00045C:SSL routines::tlsv13 alert certificate required, "
        "errno 0");
  check(failed(CURLE_SEND_ERROR, "getpeername() failed with errno 107: "
                                 "Transport endpoint is not connected"),
        kind::tls,
        "TLS with QRS at sense1:4242 failed: the server closed the connection "
        "after the handshake (client certificate refused?): getpeername() "
        "failed with errno 107: Transport endpoint is not connected");
  check(failed(CURLE_SEND_ERROR, "Send failure: Broken pipe"), kind::tls,
        "TLS with QRS at sense1:4242 failed: the server closed the connection "
        "after the handshake (client certificate refused?): Send failure: "
        "Broken pipe");
  check(failed(CURLE_RECV_ERROR, "Connection reset by peer"), kind::unreachable,
        "cannot reach QRS at sense1:4242: Connection reset by peer");
  // A cut body is not a usable answer; a long error body is cut short.
  auto cut = answered(200, "[{");
  cut.error = "response body truncated at 2 bytes";
  check(cut, kind::bad_response,
        "QRS at sense1:4242 sent too large a reply: response body truncated "
        "at 2 bytes");
  qrs_error err;
  EXPECT_TRUE(classify(opts, answered(500, std::string(5000, 'x')), err));
  EXPECT_LT(err.message.size(), 400u);
  EXPECT_EQ(err.message.substr(err.message.size() - 4), "x...");
  EXPECT_EQ(err.status, 500);
  // Multi-byte characters are never split by the cut.
  std::string wide;
  for (int i = 0; i < 400; ++i)
    wide += "\xC3\xB6";
  EXPECT_TRUE(classify(opts, answered(500, wide), err));
  auto kept = err.message.substr(err.message.find(": ") + 2);
  ASSERT_GE(kept.size(), 3u);
  kept.resize(kept.size() - 3);
  EXPECT_EQ(kept.size() % 2, 0u);
  EXPECT_EQ(kept.find_first_not_of("\xC3\xB6"), std::string::npos);
  EXPECT_EQ(kept.substr(kept.size() - 2), "\xC3\xB6");
  EXPECT_FALSE(classify(opts, answered(200, "{}"), err));
  EXPECT_FALSE(classify(opts, answered(204), err));
  opts.timeout = 1500ms;
  EXPECT_TRUE(classify(opts, failed(CURLE_OPERATION_TIMEDOUT, "x"), err));
  EXPECT_EQ(err.message, "QRS at sense1:4242 did not answer within 1500 ms");
}

// -- about --------------------------------------------------------------------

TEST_F(qrs_ops_test, about_passes_on_the_build_version) {
  auto res = run_about(options());
  ASSERT_OK(res);
  EXPECT_EQ(std::get<std::string>(res), "30.4.2.0");
  auto all = calls();
  ASSERT_EQ(all.size(), 1u) << all.dump();
  auto& call = all[0];
  EXPECT_EQ(call["method"], "GET");
  EXPECT_EQ(call["path"], "/qrs/about");
  ASSERT_EQ(call["query"].size(), 1u) << call["query"].dump();
  auto key = call["query"]["xrfkey"].get<std::string>();
  EXPECT_TRUE(is_key(key)) << key;
  EXPECT_EQ(call["headers"]["x-qlik-xrfkey"], key);
  EXPECT_EQ(call["headers"]["x-qlik-user"], user);
  EXPECT_FALSE(call["headers"].contains("content-type"));
  EXPECT_EQ(call["client_cert_cn"], "butler-test-client");
  EXPECT_EQ(call["status"], 200);
}

TEST_F(qrs_ops_test, every_call_gets_a_fresh_xrfkey) {
  auto opts = options();
  std::vector<outcome<std::variant<std::string, qrs_error>>> outs(3);
  for (auto& out : outs)
    about(*client_, opts, out.callback());
  for (auto& out : outs) {
    ASSERT_TRUE(out.wait());
    ASSERT_OK(out.value());
  }
  auto all = calls();
  ASSERT_EQ(all.size(), 3u);
  std::set<std::string> keys;
  for (auto& call : all) {
    EXPECT_EQ(call["query"]["xrfkey"], call["headers"]["x-qlik-xrfkey"]);
    keys.insert(call["query"]["xrfkey"].get<std::string>());
  }
  EXPECT_EQ(keys.size(), 3u);
}

TEST_F(qrs_ops_test, sends_the_configured_user_and_extra_headers) {
  auto opts = options();
  opts.headers = {{"X-Qlik-User", "UserDirectory=CORP;UserId=butler"},
                  {"X-Custom", "abc"}};
  ASSERT_OK(run_about(opts));
  auto all = calls();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0]["headers"]["x-qlik-user"], "UserDirectory=CORP;UserId=butler");
  EXPECT_EQ(all[0]["headers"]["x-custom"], "abc");
}

TEST_F(qrs_ops_test, about_without_user_header_is_forbidden) {
  auto opts = options();
  opts.headers.clear();
  auto res = run_about(opts);
  ASSERT_FAILED(res, kind::forbidden);
  EXPECT_EQ(std::get<qrs_error>(res).status, 403);
  EXPECT_EQ(std::get<qrs_error>(res).message,
            "QRS at " + where() + " answered 403: Missing X-Qlik-User");
}

// -- start_tasks --------------------------------------------------------------

TEST_F(qrs_ops_test, starts_by_ids_with_one_lookup_and_one_start) {
  start_request req;
  req.task_ids = {sales, cockpit};
  auto res = run_start(req);
  ASSERT_OK(res);
  auto& r = std::get<start_result>(res);
  EXPECT_EQ(refs(r.started), (strings{sales, cockpit}));
  ASSERT_EQ(r.started.size(), 2u);
  EXPECT_EQ(r.started[0].name, "Reload of Sales");
  EXPECT_EQ(r.started[1].name, "Reload of Manager's cockpit");
  EXPECT_TRUE(r.invalid.empty());
  auto all = calls();
  EXPECT_EQ(summary(all),
            (strings{"GET /qrs/task/full [id eq " + sales + " or id eq "
                       + cockpit + "]",
                     "POST /qrs/task/start/many"}));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1]["body"], json(strings{sales, cockpit}));
  EXPECT_EQ(all[1]["headers"]["content-type"], "application/json");
  EXPECT_EQ(all[1]["status"], 204);
  for (auto& call : all) {
    EXPECT_EQ(call["query"]["xrfkey"], call["headers"]["x-qlik-xrfkey"]);
    EXPECT_EQ(call["headers"]["x-qlik-user"], user);
    EXPECT_EQ(call["client_cert_cn"], "butler-test-client");
  }
  EXPECT_NE(all[0]["query"]["xrfkey"], all[1]["query"]["xrfkey"]);
  EXPECT_EQ(started(), (strings{sales, cockpit}));
}

TEST_F(qrs_ops_test, starts_by_tag) {
  start_request req;
  req.tags = {"startTask1"};
  auto res = run_start(req);
  ASSERT_OK(res);
  auto& r = std::get<start_result>(res);
  EXPECT_EQ(refs(r.by_tag), (strings{sales, sales_weekly, targets}));
  EXPECT_TRUE(r.started.empty());
  EXPECT_EQ(summary(calls()),
            (strings{"GET /qrs/task/full [tags.name eq 'startTask1']",
                     "POST /qrs/task/start/many"}));
  EXPECT_EQ(started(), (strings{sales, sales_weekly, targets}));
}

TEST_F(qrs_ops_test, starts_by_custom_property) {
  start_request req;
  req.custom_properties = {{"taskGroup", "tasks1"}};
  auto res = run_start(req);
  ASSERT_OK(res);
  auto& r = std::get<start_result>(res);
  EXPECT_EQ(refs(r.by_custom_property), (strings{sales, targets}));
  EXPECT_EQ(summary(calls()),
            (strings{"GET /qrs/task/full [customProperties.definition.name eq "
                     "'taskGroup' and customProperties.value eq 'tasks1']",
                     "POST /qrs/task/start/many"}));
  EXPECT_EQ(started(), (strings{sales, targets}));
}

TEST_F(qrs_ops_test, starts_ids_tags_and_properties_once_each) {
  start_request req;
  req.task_ids = {upper(sales), unknown, "abc", sales};
  req.tags = {"startTask2"};
  req.custom_properties = {{"taskGroup", "tasks2"}};
  auto res = run_start(req);
  ASSERT_OK(res);
  auto& r = std::get<start_result>(res);
  EXPECT_EQ(refs(r.started), (strings{upper(sales)}));
  EXPECT_EQ(r.invalid, (strings{unknown, "abc"}));
  EXPECT_EQ(refs(r.by_tag), (strings{finance2, archive}));
  EXPECT_EQ(refs(r.by_custom_property), (strings{finance2, archive}));
  auto all = calls();
  ASSERT_EQ(all.size(), 4u) << all.dump();
  auto lines = summary(all);
  // The lookups run at once (any order); the start comes last.
  EXPECT_EQ(sorted({lines[0], lines[1], lines[2]}),
            sorted({"GET /qrs/task/full [id eq " + upper(sales) + " or id eq "
                      + unknown + "]",
                    "GET /qrs/task/full [tags.name eq 'startTask2']",
                    "GET /qrs/task/full [customProperties.definition.name eq "
                    "'taskGroup' and customProperties.value eq 'tasks2']"}));
  EXPECT_EQ(lines[3], "POST /qrs/task/start/many");
  EXPECT_EQ(all[3]["body"], json(strings{sales, finance2, archive}));
  EXPECT_EQ(started(), (strings{sales, finance2, archive}));
}

TEST_F(qrs_ops_test, unknown_ids_start_nothing) {
  start_request req;
  req.task_ids = {unknown, "not-a-guid"};
  auto res = run_start(req);
  ASSERT_OK(res);
  auto& r = std::get<start_result>(res);
  EXPECT_EQ(r.invalid, (strings{unknown, "not-a-guid"}));
  EXPECT_TRUE(r.started.empty());
  EXPECT_EQ(summary(calls()),
            (strings{"GET /qrs/task/full [id eq " + unknown + "]"}));
  EXPECT_EQ(started(), strings{});
}

TEST_F(qrs_ops_test, all_must_exist_cancels_only_the_id_starts) {
  start_request req;
  req.task_ids = {sales, unknown};
  req.tags = {"nightly"};
  req.all_must_exist = true;
  auto res = run_start(req);
  ASSERT_OK(res);
  auto& r = std::get<start_result>(res);
  EXPECT_TRUE(r.started.empty());
  EXPECT_EQ(r.invalid, (strings{unknown}));
  EXPECT_EQ(refs(r.by_tag), (strings{nightly, finance2, user_sync}));
  auto all = calls();
  ASSERT_EQ(all.size(), 3u) << all.dump();
  EXPECT_EQ(all[2]["body"], json(strings{nightly, finance2, user_sync}));
  EXPECT_EQ(started(), (strings{nightly, finance2, user_sync}));
}

TEST_F(qrs_ops_test, filter_denies_and_skips_denied_lookups) {
  start_filter filter;
  filter.enable = true;
  filter.task_ids = {upper(cockpit)};
  filter.tags = {"startTask2"};
  filter.custom_properties = {{"taskGroup", "tasks1"}};
  start_request req;
  req.task_ids = {cockpit, sales, nightly};
  req.tags = {"startTask1", "startTask2"};
  req.custom_properties = {{"taskGroup", "tasks1"}, {"taskGroup", "tasks3"}};
  auto res = run_start(req, filter);
  ASSERT_OK(res);
  auto& r = std::get<start_result>(res);
  // cockpit by id, sales by its custom property; nightly has neither.
  EXPECT_EQ(refs(r.started), (strings{cockpit, sales}));
  EXPECT_EQ(r.denied, (strings{nightly}));
  EXPECT_EQ(r.tags_denied, (strings{"startTask1"}));
  EXPECT_EQ(refs(r.by_tag), (strings{finance2, archive}));
  EXPECT_EQ(refs(r.by_custom_property), (strings{sales, targets}));
  ASSERT_EQ(r.custom_properties_denied.size(), 1u);
  EXPECT_EQ(r.custom_properties_denied[0].second, "tasks3");
  auto lines = summary(calls());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(sorted({lines[0], lines[1], lines[2]}),
            sorted({"GET /qrs/task/full [id eq " + cockpit + " or id eq "
                      + sales + " or id eq " + nightly + "]",
                    "GET /qrs/task/full [tags.name eq 'startTask2']",
                    "GET /qrs/task/full [customProperties.definition.name eq "
                    "'taskGroup' and customProperties.value eq 'tasks1']"}));
  EXPECT_EQ(started(), (strings{cockpit, sales, finance2, archive, targets}));
}

TEST_F(qrs_ops_test, everything_denied_sends_no_start) {
  start_filter filter;
  filter.enable = true;
  start_request req;
  req.task_ids = {nightly};
  req.tags = {"nightly"};
  auto res = run_start(req, filter);
  ASSERT_OK(res);
  auto& r = std::get<start_result>(res);
  EXPECT_EQ(r.denied, (strings{nightly}));
  EXPECT_EQ(r.tags_denied, (strings{"nightly"}));
  EXPECT_EQ(summary(calls()),
            (strings{"GET /qrs/task/full [id eq " + nightly + "]"}));
  EXPECT_EQ(started(), strings{});
}

TEST_F(qrs_ops_test, an_empty_request_calls_nothing) {
  auto res = run_start({});
  ASSERT_OK(res);
  EXPECT_TRUE(std::get<start_result>(res).started.empty());
  EXPECT_EQ(calls(), json::array());
}

TEST_F(qrs_ops_test, filters_with_quotes_ampersands_and_non_ascii_arrive_intact) {
  start_request req;
  req.tags = {"Bob's & co"};
  req.custom_properties = {{"taskGroup", "F\xC3\xB6rs\xC3\xA4ljning 100%"}};
  auto res = run_start(req);
  ASSERT_OK(res);
  EXPECT_TRUE(std::get<start_result>(res).by_tag.empty());
  auto all = calls();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(sorted(summary(all)),
            sorted({"GET /qrs/task/full [tags.name eq 'Bob''s & co']",
                    "GET /qrs/task/full [customProperties.definition.name eq "
                    "'taskGroup' and customProperties.value eq "
                    "'F\xC3\xB6rs\xC3\xA4ljning 100%']"}));
  for (auto& call : all)
    EXPECT_EQ(call["status"], 200) << call.dump();
}

// -- single starts and lookups ------------------------------------------------

TEST_F(qrs_ops_test, starts_one_task) {
  outcome<std::variant<task_ref, qrs_error>> out;
  start_task(*client_, options(), upper(targets), out.callback());
  ASSERT_TRUE(out.wait());
  client_->stop();
  EXPECT_EQ(out.count(), 1u);
  auto res = out.value();
  ASSERT_OK(res);
  EXPECT_EQ(std::get<task_ref>(res).id, upper(targets));
  auto all = calls();
  EXPECT_EQ(summary(all),
            (strings{"POST /qrs/task/" + upper(targets) + "/start"}));
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0]["body"], nullptr);
  EXPECT_EQ(all[0]["status"], 204);
  EXPECT_EQ(started(), (strings{targets}));
}

TEST_F(qrs_ops_test, starting_an_unknown_task_is_not_found) {
  outcome<std::variant<task_ref, qrs_error>> out;
  start_task(*client_, options(), unknown, out.callback());
  ASSERT_TRUE(out.wait());
  auto res = out.value();
  ASSERT_FAILED(res, kind::not_found);
  EXPECT_EQ(std::get<qrs_error>(res).status, 404);
  EXPECT_EQ(std::get<qrs_error>(res).message,
            "QRS at " + where() + " answered 404");
  EXPECT_EQ(started(), strings{});
}

TEST_F(qrs_ops_test, a_malformed_id_is_rejected_without_a_call) {
  outcome<std::variant<task_ref, qrs_error>> start;
  start_task(*client_, options(), "../about", start.callback());
  ASSERT_EQ(start.count(), 1u); // before start_task returned
  ASSERT_FAILED(start.value(), kind::rejected);
  outcome<std::variant<qrs_task, qrs_error>> lookup;
  lookup_task(*client_, options(), "x' or 1 eq 1", lookup.callback());
  ASSERT_EQ(lookup.count(), 1u);
  ASSERT_FAILED(lookup.value(), kind::rejected);
  EXPECT_EQ(calls(), json::array());
}

TEST_F(qrs_ops_test, looks_up_one_task) {
  outcome<std::variant<qrs_task, qrs_error>> out;
  lookup_task(*client_, options(), upper(sales_weekly), out.callback());
  ASSERT_TRUE(out.wait());
  auto res = out.value();
  ASSERT_OK(res);
  auto& task = std::get<qrs_task>(res);
  EXPECT_EQ(task.id, sales_weekly);
  EXPECT_EQ(task.name, "Reload of Sales (weekly)");
  EXPECT_EQ(task.tags, (strings{"startTask1"}));
  ASSERT_EQ(task.custom_properties.size(), 2u);
  EXPECT_EQ(task.custom_properties[1].first, "legacyTaskGroup");
  EXPECT_EQ(summary(calls()),
            (strings{"GET /qrs/task/full [id eq " + upper(sales_weekly) + "]"}));
  outcome<std::variant<qrs_task, qrs_error>> missing;
  lookup_task(*client_, options(), unknown, missing.callback());
  ASSERT_TRUE(missing.wait());
  ASSERT_FAILED(missing.value(), kind::not_found);
  EXPECT_EQ(std::get<qrs_error>(missing.value()).message,
            "QRS at " + where() + " has no task " + unknown);
}

// -- failures -----------------------------------------------------------------

TEST_F(qrs_ops_test, a_server_not_signed_by_our_ca_fails_tls) {
  auto opts = options();
  opts.ca_file = other_certs_.ca_cert;
  auto res = run_about(opts);
  ASSERT_FAILED(res, kind::tls);
  EXPECT_EQ(std::get<qrs_error>(res).message.rfind(
              "TLS with QRS at " + where() + " failed: ", 0),
            0u)
    << std::get<qrs_error>(res).message;
  EXPECT_EQ(calls(), json::array());
}

TEST_F(qrs_ops_test, without_a_client_certificate_the_call_fails) {
  auto opts = options();
  opts.client_cert.clear();
  opts.client_key.clear();
  auto res = run_about(opts);
  ASSERT_EQ(res.index(), 1u) << "succeeded without a client certificate";
  auto& err = std::get<qrs_error>(res);
  // The fake refuses in the handshake; libcurl sees that as an alert, or
  // (a race) as a connection gone right after it. Either way no call.
  EXPECT_TRUE(err.kind == kind::tls || err.kind == kind::forbidden
              || err.kind == kind::unreachable)
    << to_string(err.kind) << ": " << err.message;
  EXPECT_EQ(calls(), json::array());
}

TEST_F(qrs_ops_test, a_client_certificate_from_another_ca_fails) {
  auto opts = options();
  opts.client_cert = other_certs_.client_cert;
  opts.client_key = other_certs_.client_key;
  auto res = run_about(opts);
  ASSERT_EQ(res.index(), 1u) << "succeeded with a foreign client certificate";
  auto& err = std::get<qrs_error>(res);
  // The fake refuses in the handshake; libcurl sees that as an alert, or
  // (a race) as a connection gone right after it. Either way no call.
  EXPECT_TRUE(err.kind == kind::tls || err.kind == kind::forbidden
              || err.kind == kind::unreachable)
    << to_string(err.kind) << ": " << err.message;
  EXPECT_EQ(calls(), json::array());
}

TEST_F(qrs_ops_test, a_scripted_403_is_forbidden) {
  ASSERT_TRUE(fake_->script({{"match", "GET /qrs/about"},
                             {"status", 403},
                             {"body", "XrfKey header and querystring values "
                                      "do not match"}}));
  auto res = run_about(options());
  ASSERT_FAILED(res, kind::forbidden);
  EXPECT_EQ(std::get<qrs_error>(res).status, 403);
  EXPECT_EQ(std::get<qrs_error>(res).message,
            "QRS at " + where()
              + " answered 403: XrfKey header and querystring values do not "
                "match");
}

TEST_F(qrs_ops_test, a_404_on_about_is_a_bad_response) {
  ASSERT_TRUE(fake_->script({{"match", "GET /qrs/about"},
                             {"status", 404},
                             {"body", "No such route"}}));
  auto res = run_about(options());
  ASSERT_FAILED(res, kind::bad_response);
  EXPECT_EQ(std::get<qrs_error>(res).status, 404);
  EXPECT_EQ(std::get<qrs_error>(res).message,
            "QRS at " + where() + " answered 404: No such route");
}

TEST_F(qrs_ops_test, a_scripted_404_on_a_single_start_is_not_found) {
  ASSERT_TRUE(fake_->script(
    {{"match", "POST /qrs/task/.*/start"}, {"status", 404}}));
  outcome<std::variant<task_ref, qrs_error>> out;
  start_task(*client_, options(), sales, out.callback());
  ASSERT_TRUE(out.wait());
  ASSERT_FAILED(out.value(), kind::not_found);
  EXPECT_EQ(started(), strings{});
}

TEST_F(qrs_ops_test, a_failed_lookup_fails_the_start_before_anything_starts) {
  ASSERT_TRUE(fake_->script({{"match", "GET /qrs/task/full"},
                             {"status", 500},
                             {"body", {{"message", "database gone"}}}}));
  start_request req;
  req.task_ids = {sales};
  req.tags = {"startTask1"};
  req.custom_properties = {{"taskGroup", "tasks1"}};
  auto res = run_start(req);
  ASSERT_FAILED(res, kind::server);
  EXPECT_EQ(std::get<qrs_error>(res).status, 500);
  EXPECT_EQ(std::get<qrs_error>(res).message,
            "QRS at " + where() + " answered 500: {\"message\": \"database gone\"}");
  auto lines = summary(calls());
  EXPECT_EQ(lines.size(), 3u);
  for (auto& line : lines)
    EXPECT_EQ(line.rfind("GET ", 0), 0u) << line;
  EXPECT_EQ(started(), strings{});
}

TEST_F(qrs_ops_test, a_failed_start_fails_the_operation) {
  ASSERT_TRUE(fake_->script(
    {{"match", "POST /qrs/task/start/many"}, {"status", 500}, {"body", "no"}}));
  start_request req;
  req.task_ids = {sales};
  auto res = run_start(req);
  ASSERT_FAILED(res, kind::server);
  EXPECT_EQ(std::get<qrs_error>(res).message,
            "QRS at " + where() + " answered 500: no");
  EXPECT_EQ(started(), strings{});
}

TEST_F(qrs_ops_test, a_bad_filter_answer_is_rejected) {
  ASSERT_TRUE(fake_->script({{"match", "GET /qrs/task/full"},
                             {"status", 400},
                             {"body", {{"message", "Invalid filter"}}}}));
  start_request req;
  req.tags = {"x"};
  ASSERT_FAILED(run_start(req), kind::rejected);
}

TEST_F(qrs_ops_test, unusable_replies_are_bad_responses) {
  ASSERT_TRUE(fake_->script(
    {{"match", "GET /qrs/about"}, {"status", 200}, {"body", "<html>"}}));
  auto about_res = run_about(options());
  ASSERT_FAILED(about_res, kind::bad_response);
  EXPECT_EQ(std::get<qrs_error>(about_res).message,
            "QRS at " + where()
              + " sent a bad reply to GET /qrs/about: QRS about reply is not "
                "JSON");
  client_ = butler::http::make_curl_client();
  ASSERT_TRUE(fake_->script({{"match", "GET /qrs/task/full"},
                             {"status", 200},
                             {"body", json::parse(R"([{"name": "no id"}])")}}));
  start_request req;
  req.task_ids = {sales};
  auto res = run_start(req);
  ASSERT_FAILED(res, kind::bad_response);
  EXPECT_EQ(started(), strings{});
}

TEST_F(qrs_ops_test, a_stalled_start_times_out_and_is_not_sent_again) {
  ASSERT_TRUE(fake_->script(
    {{"match", "POST /qrs/task/start/many"}, {"stall", true}}));
  auto opts = options();
  opts.timeout = 700ms;
  start_request req;
  req.task_ids = {sales};
  auto res = run_start(req, {}, &opts);
  ASSERT_FAILED(res, kind::timeout);
  EXPECT_EQ(std::get<qrs_error>(res).message,
            "QRS at " + where() + " did not answer within 700 ms");
  // The client is stopped: whatever it would have re-sent is in by now.
  EXPECT_EQ(summary(calls()),
            (strings{"GET /qrs/task/full [id eq " + sales + "]",
                     "POST /qrs/task/start/many"}));
  EXPECT_EQ(started(), strings{});
}

TEST_F(qrs_ops_test, a_stalled_lookup_times_out_and_starts_nothing) {
  ASSERT_TRUE(
    fake_->script({{"match", "GET /qrs/task/full"}, {"stall", true}}));
  auto opts = options();
  opts.timeout = 500ms;
  start_request req;
  req.tags = {"startTask1"};
  auto res = run_start(req, {}, &opts);
  ASSERT_FAILED(res, kind::timeout);
  EXPECT_EQ(summary(calls()),
            (strings{"GET /qrs/task/full [tags.name eq 'startTask1']"}));
  EXPECT_EQ(started(), strings{});
}

TEST_F(qrs_ops_test, a_start_cut_off_on_a_reused_connection_is_not_resent) {
  // The lookup leaves a kept-alive connection; if the start went out on it
  // and the connection closed unanswered, libcurl would re-send the start on
  // a new one (which the fake would then carry out).
  ASSERT_TRUE(
    fake_->script({{"match", "POST /qrs/task/start/many"}, {"close", true}}));
  start_request req;
  req.task_ids = {sales};
  auto res = run_start(req);
  ASSERT_FAILED(res, kind::unreachable);
  EXPECT_EQ(summary(calls()),
            (strings{"GET /qrs/task/full [id eq " + sales + "]",
                     "POST /qrs/task/start/many"}));
  EXPECT_EQ(started(), strings{});
}

TEST_F(qrs_ops_test, a_single_start_cut_off_is_not_resent) {
  // As above: the lookup leaves a connection for the start to reuse.
  outcome<std::variant<qrs_task, qrs_error>> lookup;
  lookup_task(*client_, options(), sales, lookup.callback());
  ASSERT_TRUE(lookup.wait());
  ASSERT_OK(lookup.value());
  ASSERT_TRUE(
    fake_->script({{"match", "POST /qrs/task/.*/start"}, {"close", true}}));
  outcome<std::variant<task_ref, qrs_error>> start;
  start_task(*client_, options(), sales, start.callback());
  ASSERT_TRUE(start.wait());
  client_->stop();
  EXPECT_EQ(start.count(), 1u);
  ASSERT_FAILED(start.value(), kind::unreachable);
  EXPECT_EQ(summary(calls()),
            (strings{"GET /qrs/task/full [id eq " + sales + "]",
                     "POST /qrs/task/" + sales + "/start"}));
  EXPECT_EQ(started(), strings{});
}

TEST_F(qrs_ops_test, a_refused_connection_is_unreachable) {
  auto opts = options();
  opts.port = butler::test::free_tcp_port();
  auto res = run_about(opts);
  ASSERT_FAILED(res, kind::unreachable);
  EXPECT_EQ(std::get<qrs_error>(res).message.rfind(
              "cannot reach QRS at 127.0.0.1:" + std::to_string(opts.port)
                + ": ",
              0),
            0u)
    << std::get<qrs_error>(res).message;
  client_ = butler::http::make_curl_client();
  start_request req;
  req.task_ids = {sales};
  ASSERT_FAILED(run_start(req, {}, &opts), kind::unreachable);
}

TEST_F(qrs_ops_test, a_stopped_client_fails_at_once) {
  client_->stop();
  outcome<std::variant<std::string, qrs_error>> out;
  about(*client_, options(), out.callback());
  ASSERT_EQ(out.count(), 1u);
  ASSERT_FAILED(out.value(), kind::busy);
  outcome<std::variant<start_result, qrs_error>> start;
  start_request req;
  req.task_ids = {sales};
  req.tags = {"a", "b"};
  start_tasks(*client_, options(), {}, req, start.callback());
  EXPECT_EQ(start.count(), 1u);
  ASSERT_FAILED(start.value(), kind::busy);
  EXPECT_EQ(calls(), json::array());
}
