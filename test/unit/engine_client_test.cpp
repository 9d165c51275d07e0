#include "net/engine_client.hpp"

#include "test/support/eventually.hpp"
#include "test/support/free_port.hpp"
#include "test/support/sense_fake.hpp"
#include "test/support/test_certs.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace butler::engine;
using butler::test::cert_files;
using butler::test::eventually;
using butler::test::sense_fake;
using json = nlohmann::json;
using kind = engine_error::kind;

namespace {

// The fake's built-in data set (test/fakes/fake_engine.py, DEFAULT_DATA).
const std::string sales_id = "7552d9fc-d1bb-4975-9a38-18357de531ea";
const std::string finance_id = "b1a4f3c2-5e6d-4f70-8a9b-0c1d2e3f4a5b";
const std::string empty_id = "e2d5c7a1-9b3f-4c8e-a6d4-2f1b0e9c8d7a";
const std::string ops_id = "3f9a8e2b-7c6d-4e5f-9a0b-1c2d3e4f5a6b";
const std::string unknown_id = "00000000-0000-4000-8000-000000000001";

const std::string qlik_user = "UserDirectory=Internal;UserId=sa_repository";

/// The keys of the dump in the REST contract (butler-api.json, the example
/// of /v4/senseappdump/{appId}).
const std::set<std::string> dump_keys{
  "appId",      "properties",    "loadScript", "lineage",
  "sheets",     "stories",       "masterobjects", "appprops",
  "dataconnections", "dimensions", "bookmarks", "embeddedmedia",
  "snapshots",  "fields",        "variables",  "measures"};

const std::vector<std::string> dump_arrays{
  "sheets",     "stories",   "masterobjects", "appprops", "dataconnections",
  "dimensions", "bookmarks", "embeddedmedia", "snapshots", "fields",
  "variables",  "measures"};

/// Collects the callbacks of one operation; the state outlives the test body
/// in case a callback comes late.
template <class T>
class outcome {
public:
  std::function<void(T)> callback() {
    return [st = state_](T value) {
      std::lock_guard<std::mutex> guard{st->mtx};
      st->values.push_back(std::move(value));
      st->threads.push_back(std::this_thread::get_id());
    };
  }

  /// Waits for the first callback.
  bool wait(std::chrono::milliseconds timeout = 15s) {
    return eventually([this] { return count() > 0; }, timeout);
  }

  std::size_t count() const {
    std::lock_guard<std::mutex> guard{state_->mtx};
    return state_->values.size();
  }

  T value() const {
    std::lock_guard<std::mutex> guard{state_->mtx};
    return state_->values.at(0);
  }

  std::thread::id thread() const {
    std::lock_guard<std::mutex> guard{state_->mtx};
    return state_->threads.at(0);
  }

private:
  struct state {
    mutable std::mutex mtx;
    std::vector<T> values;
    std::vector<std::thread::id> threads;
  };
  std::shared_ptr<state> state_ = std::make_shared<state>();
};

using list_result = std::variant<std::vector<app_entry>, engine_error>;
using dump_result = std::variant<json, engine_error>;
using reload_result = std::variant<bool, engine_error>;

/// Returns the error of a result, failing the test if there is none.
template <class T>
engine_error error_of(const std::variant<T, engine_error>& r) {
  if (auto* err = std::get_if<engine_error>(&r))
    return *err;
  ADD_FAILURE() << "expected an error, got a result";
  return {};
}

/// Returns the value of a result, failing the test on an error.
template <class T>
T value_of(const std::variant<T, engine_error>& r) {
  if (auto* err = std::get_if<engine_error>(&r)) {
    ADD_FAILURE() << "expected a result, got " << to_string(err->what) << ": "
                  << err->message;
    return T{};
  }
  return std::get<T>(r);
}

/// Returns the methods of a connection's requests, in order.
std::vector<std::string> methods(const json& conn) {
  std::vector<std::string> result;
  for (auto& req : conn.at("requests"))
    result.push_back(req.value("method", std::string{"<null>"}));
  return result;
}

/// Counts the requests of `conn` calling `method`.
std::size_t count_method(const json& conn, const std::string& method) {
  auto ms = methods(conn);
  return static_cast<std::size_t>(std::count(ms.begin(), ms.end(), method));
}

/// Returns the first request calling `method` (null if none).
json request_of(const json& conn, const std::string& method) {
  for (auto& req : conn.at("requests"))
    if (req.value("method", std::string{}) == method)
      return req;
  return nullptr;
}

/// Returns the ids of the items of a dump's list (qInfo.qId of each item,
/// or of its qProperty for property trees).
std::set<std::string> ids_of(const json& items) {
  std::set<std::string> result;
  for (auto& item : items) {
    const json& props = item.contains("qProperty") ? item["qProperty"] : item;
    result.insert(props.at("qInfo").at("qId").get<std::string>());
  }
  return result;
}

/// A TCP listener that accepts nothing and says nothing: the kernel completes
/// the TCP handshake, so a client's TLS handshake waits forever.
class silent_listener {
public:
  silent_listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (fd_ >= 0
        && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0
        && ::listen(fd_, 8) == 0) {
      socklen_t len = sizeof(addr);
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
      port_ = ntohs(addr.sin_port);
    }
  }

  ~silent_listener() {
    if (fd_ >= 0)
      ::close(fd_);
  }

  uint16_t port() const {
    return port_;
  }

private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

class engine_client_test : public ::testing::Test {
public:
  static void SetUpTestSuite() {
    dir_ = new std::string(butler::test::make_temp_dir("butler-engine-test"));
    certs_ = new cert_files(butler::test::make_test_certs(*dir_));
    other_dir_ = new std::string(*dir_ + "/other");
    std::filesystem::create_directories(*other_dir_);
    other_certs_ = new cert_files(butler::test::make_test_certs(*other_dir_));
    fake_ = new sense_fake("fake_engine.py");
    if (!fake_->start(*certs_))
      fake_error_ = new std::string(fake_->last_error());
  }

  static void TearDownTestSuite() {
    delete fake_;
    fake_ = nullptr;
    butler::test::remove_tree(*dir_);
    delete certs_;
    delete other_certs_;
    delete dir_;
    delete other_dir_;
    delete fake_error_;
    fake_error_ = nullptr;
  }

  void SetUp() override {
    ASSERT_EQ(fake_error_, nullptr) << *fake_error_;
    ASSERT_TRUE(fake_->reset());
    client_ = make_client();
  }

  void TearDown() override {
    if (client_)
      client_->stop();
  }

  /// Returns options that reach the fake with the test's client certificate.
  engine_options options() const {
    engine_options opts;
    opts.host = "127.0.0.1";
    opts.port = fake_->port();
    opts.client_cert = certs_->client_cert;
    opts.client_key = certs_->client_key;
    opts.ca_file = certs_->ca_cert;
    opts.headers = {{"X-Qlik-User", qlik_user}};
    opts.timeout = 10s;
    return opts;
  }

  list_result list(const engine_options& opts) {
    outcome<list_result> out;
    client_->list_apps(opts, out.callback());
    EXPECT_TRUE(out.wait());
    EXPECT_EQ(out.count(), 1u);
    return out.count() > 0 ? out.value() : list_result{engine_error{}};
  }

  dump_result dump(const engine_options& opts, const std::string& app_id) {
    outcome<dump_result> out;
    client_->dump_app(opts, app_id, out.callback());
    EXPECT_TRUE(out.wait());
    EXPECT_EQ(out.count(), 1u);
    return out.count() > 0 ? out.value() : dump_result{engine_error{}};
  }

  reload_result reload(const engine_options& opts, const std::string& app_id,
                       reload_options ropts = {}) {
    outcome<reload_result> out;
    client_->reload_app(opts, app_id, ropts, out.callback());
    EXPECT_TRUE(out.wait());
    EXPECT_EQ(out.count(), 1u);
    return out.count() > 0 ? out.value() : reload_result{engine_error{}};
  }

  /// Returns the fake's connections once `n` of them are closed.
  json closed_connections(std::size_t n) {
    json calls;
    eventually([&] {
      calls = fake_->calls();
      if (!calls.is_array() || calls.size() < n)
        return false;
      for (auto& c : calls)
        if (c.value("open", true))
          return false;
      return true;
    });
    return calls;
  }

  /// Returns the only connection the fake saw, once closed.
  json only_connection() {
    auto calls = closed_connections(1);
    EXPECT_TRUE(calls.is_array());
    EXPECT_EQ(calls.size(), 1u) << calls.dump(2);
    return calls.is_array() && !calls.empty() ? calls[0] : json::object();
  }

  std::string where() const {
    return "127.0.0.1:" + std::to_string(fake_->port());
  }

protected:
  static std::string* dir_;
  static std::string* other_dir_;
  static cert_files* certs_;
  static cert_files* other_certs_;
  static sense_fake* fake_;
  static std::string* fake_error_;
  std::unique_ptr<client> client_;
};

std::string* engine_client_test::dir_ = nullptr;
std::string* engine_client_test::other_dir_ = nullptr;
cert_files* engine_client_test::certs_ = nullptr;
cert_files* engine_client_test::other_certs_ = nullptr;
sense_fake* engine_client_test::fake_ = nullptr;
std::string* engine_client_test::fake_error_ = nullptr;

} // namespace

// -- list ---------------------------------------------------------------------

TEST_F(engine_client_test, lists_the_apps) {
  auto apps = value_of(list(options()));
  ASSERT_EQ(apps.size(), 4u);
  EXPECT_EQ(apps[0].id, sales_id);
  EXPECT_EQ(apps[0].name, "Sales dashboard");
  EXPECT_EQ(apps[1].id, finance_id);
  EXPECT_EQ(apps[1].name, "Finance reporting");
  EXPECT_EQ(apps[2].id, empty_id);
  EXPECT_EQ(apps[2].name, "Empty app");
  EXPECT_EQ(apps[3].id, ops_id);
  EXPECT_EQ(apps[3].name, "Operations monitor");
}

TEST_F(engine_client_test, list_sends_getdoclist_on_engine_data) {
  value_of(list(options()));
  auto conn = only_connection();
  EXPECT_EQ(conn.value("path", ""), "/app/engineData");
  EXPECT_EQ(conn["headers"].value("x-qlik-user", ""), qlik_user);
  EXPECT_EQ(conn.value("client_cert_cn", ""), "butler-test-client");
  ASSERT_EQ(conn["requests"].size(), 1u) << conn.dump(2);
  auto& req = conn["requests"][0];
  EXPECT_EQ(req["method"], "GetDocList");
  EXPECT_EQ(req["handle"], -1);
  EXPECT_EQ(req["id"], 1);
  EXPECT_EQ(req["params"], json::array());
  EXPECT_TRUE(conn.value("closed_cleanly", false)) << conn.dump(2);
}

TEST_F(engine_client_test, callbacks_run_on_the_client_thread) {
  outcome<list_result> out;
  client_->list_apps(options(), out.callback());
  ASSERT_TRUE(out.wait());
  EXPECT_NE(out.thread(), std::this_thread::get_id());
}

// -- dump ---------------------------------------------------------------------

TEST_F(engine_client_test, dumps_the_sales_app) {
  auto d = value_of(dump(options(), sales_id));
  ASSERT_TRUE(d.is_object());
  std::set<std::string> keys;
  for (auto& [key, value] : d.items())
    keys.insert(key);
  EXPECT_EQ(keys, dump_keys);
  for (auto& key : dump_arrays)
    EXPECT_TRUE(d[key].is_array()) << key;
  EXPECT_EQ(d["appId"], sales_id);
  EXPECT_EQ(d["properties"].value("qTitle", ""), "Sales dashboard");
  // The load script, exactly as the engine holds it (CR LF line ends).
  auto script = d["loadScript"].get<std::string>();
  EXPECT_EQ(script.rfind("///$tab Main\r\nSET ThousandSep=',';\r\n", 0), 0u)
    << script;
  EXPECT_NE(script.find("LIB CONNECT TO 'SalesDB (qlik_sa)';\r\n"),
            std::string::npos);
  EXPECT_NE(script.find("SQL SELECT * FROM sales.dbo.orders;"),
            std::string::npos);
  // Sheets carry their child objects (the full property tree).
  ASSERT_EQ(d["sheets"].size(), 2u);
  std::map<std::string, std::set<std::string>> children;
  for (auto& sheet : d["sheets"]) {
    auto& prop = sheet.at("qProperty");
    EXPECT_EQ(prop["qInfo"]["qType"], "sheet");
    std::set<std::string> ids;
    for (auto& child : sheet.at("qChildren"))
      ids.insert(child.at("qProperty").at("qInfo").at("qId").get<std::string>());
    children[prop["qMetaDef"]["title"].get<std::string>()] = ids;
  }
  EXPECT_EQ(children["Overview"],
            (std::set<std::string>{"kPjTvR", "XmHwaQ", "RqPzJd"}));
  EXPECT_EQ(children["Product analysis"],
            (std::set<std::string>{"bTrsEx", "JvaPsm"}));
  ASSERT_EQ(d["stories"].size(), 1u);
  EXPECT_EQ(d["stories"][0]["qProperty"]["qMetaDef"]["title"],
            "Quarterly review");
  EXPECT_EQ(d["stories"][0]["qChildren"].size(), 1u);
  EXPECT_EQ(ids_of(d["masterobjects"]), (std::set<std::string>{"tGpSjmW"}));
  EXPECT_EQ(ids_of(d["appprops"]), (std::set<std::string>{"AppPropsList"}));
  EXPECT_EQ(ids_of(d["snapshots"]),
            (std::set<std::string>{"5e0a2c4b-6d8f-4a1c-9e3b-7f5d1a3c5e77"}));
  EXPECT_EQ(ids_of(d["dimensions"]),
            (std::set<std::string>{"hRZaKk", "PbJkqv"}));
  EXPECT_EQ(ids_of(d["measures"]), (std::set<std::string>{"fJQTmw", "nmKPtX"}));
  for (auto& m : d["measures"]) {
    if (m["qInfo"]["qId"] == "fJQTmw") {
      EXPECT_EQ(m["qMeasure"]["qDef"], "Sum(Amount)");
    }
  }
  EXPECT_EQ(ids_of(d["bookmarks"]),
            (std::set<std::string>{"0c7e9a2b-4f6d-4b8a-8c1e-3a5b7d9f1e43",
                                   "1d8f0b3c-5a7e-4c9b-9d2f-4b6c8e0a2f54"}));
  // Variables as the variable list shows them, reserved ones included.
  EXPECT_EQ(ids_of(d["variables"]),
            (std::set<std::string>{"f3a5c7e9-1b2d-4f4a-8c6e-0a2b4c6d8e65",
                                   "a4b6d8f0-2c3e-4a5b-9d7f-1b3c5d7e9f76",
                                   "b5c7e9a1-3d4f-4b6c-8e0a-2c4d6e8f0a87"}));
  std::set<std::string> variable_names;
  for (auto& v : d["variables"])
    variable_names.insert(v.value("qName", ""));
  EXPECT_EQ(variable_names, (std::set<std::string>{"vCurrentYear",
                                                   "vTargetRevenue",
                                                   "ThousandSep"}));
  EXPECT_EQ(d["fields"].size(), 16u); // system fields included
  EXPECT_EQ(d["embeddedmedia"].size(), 3u);
  ASSERT_EQ(d["dataconnections"].size(), 2u);
  EXPECT_EQ(d["dataconnections"][0]["qName"], "DataFiles");
  EXPECT_EQ(d["dataconnections"][1]["qName"], "SalesDB (qlik_sa)");
  EXPECT_EQ(d["dataconnections"][1]["qType"], "OLEDB");
  ASSERT_TRUE(d["lineage"].is_object());
  ASSERT_EQ(d["lineage"]["qLineage"].size(), 3u);
  EXPECT_EQ(d["lineage"]["qLineage"][0]["qDiscriminator"], "SalesDB (qlik_sa)");
  EXPECT_EQ(d["lineage"]["qLineage"][0]["qStatement"],
            "SQL SELECT * FROM sales.dbo.orders");
}

TEST_F(engine_client_test, dump_sends_the_expected_requests) {
  value_of(dump(options(), sales_id));
  auto conn = only_connection();
  EXPECT_EQ(conn.value("path", ""), "/app/" + sales_id);
  EXPECT_EQ(conn["headers"].value("x-qlik-user", ""), qlik_user);
  EXPECT_EQ(conn.value("client_cert_cn", ""), "butler-test-client");
  EXPECT_TRUE(conn.value("closed_cleanly", false));
  auto& reqs = conn["requests"];
  ASSERT_FALSE(reqs.empty());
  // OpenDoc first, on the global handle, without data.
  EXPECT_EQ(reqs[0]["method"], "OpenDoc");
  EXPECT_EQ(reqs[0]["handle"], -1);
  EXPECT_EQ(reqs[0]["params"],
            (json{{"qDocName", sales_id}, {"qNoData", true}}));
  // Ids increase by one per request, in the order they were sent.
  for (std::size_t i = 0; i < reqs.size(); ++i)
    EXPECT_EQ(reqs[i]["id"], static_cast<int>(i) + 1);
  // Then every independent call at once, on the Doc handle.
  auto doc = request_of(conn, "GetScript")["handle"];
  EXPECT_NE(doc, -1);
  std::vector<std::string> first;
  for (std::size_t i = 1; i < std::min<std::size_t>(reqs.size(), 6); ++i)
    first.push_back(reqs[i]["method"]);
  EXPECT_EQ(first, (std::vector<std::string>{"GetAppProperties", "GetScript",
                                             "GetAllInfos", "GetConnections",
                                             "GetLineage"}));
  for (std::size_t i = 1; i < 6 && i < reqs.size(); ++i)
    EXPECT_EQ(reqs[i]["handle"], doc) << reqs[i].dump();
  // One session object per list, each with its definition.
  EXPECT_EQ(count_method(conn, "CreateSessionObject"), 11u);
  std::map<std::string, json> defs; // qInfo.qType -> qProp
  for (auto& req : reqs) {
    if (req["method"] != "CreateSessionObject")
      continue;
    EXPECT_EQ(req["handle"], doc);
    auto& prop = req["params"]["qProp"];
    defs[prop["qInfo"]["qType"].get<std::string>()] = prop;
  }
  EXPECT_EQ(defs["SheetList"]["qAppObjectListDef"]["qType"], "sheet");
  EXPECT_EQ(defs["StoryList"]["qAppObjectListDef"]["qType"], "story");
  EXPECT_EQ(defs["MasterObjectList"]["qAppObjectListDef"]["qType"],
            "masterobject");
  EXPECT_EQ(defs["AppPropsList"]["qAppObjectListDef"]["qType"], "appprops");
  EXPECT_EQ(defs["DimensionList"]["qDimensionListDef"]["qType"], "dimension");
  EXPECT_EQ(defs["MeasureList"]["qMeasureListDef"]["qType"], "measure");
  EXPECT_EQ(defs["BookmarkList"]["qBookmarkListDef"]["qType"], "bookmark");
  EXPECT_EQ(defs["SnapshotList"]["qBookmarkListDef"]["qType"], "snapshot");
  EXPECT_EQ(defs["VariableList"]["qVariableListDef"]["qType"], "variable");
  EXPECT_EQ(defs["VariableList"]["qVariableListDef"]["qShowReserved"], true);
  EXPECT_EQ(defs["VariableList"]["qVariableListDef"]["qShowConfig"], true);
  EXPECT_EQ(defs["FieldList"]["qFieldListDef"]["qShowSystem"], true);
  EXPECT_TRUE(defs["MediaList"].contains("qMediaListDef"));
  EXPECT_EQ(count_method(conn, "GetLayout"), 11u);
  // Each item fetched by id: 2 sheets, a story, a master object, appprops.
  EXPECT_EQ(count_method(conn, "GetObject"), 5u);
  EXPECT_EQ(count_method(conn, "GetFullPropertyTree"), 5u);
  EXPECT_EQ(count_method(conn, "GetDimension"), 2u);
  EXPECT_EQ(count_method(conn, "GetMeasure"), 2u);
  EXPECT_EQ(count_method(conn, "GetBookmark"), 3u); // 2 bookmarks, 1 snapshot
  EXPECT_EQ(count_method(conn, "GetProperties"), 7u);
  auto dim = request_of(conn, "GetDimension");
  EXPECT_EQ(dim["handle"], doc);
  EXPECT_TRUE(dim["params"].contains("qId"));
  // Nothing on the global handle but OpenDoc; nothing that changes the app.
  for (auto& req : reqs) {
    if (req["method"] != "OpenDoc") {
      EXPECT_NE(req["handle"], -1) << req.dump();
    }
  }
  EXPECT_EQ(count_method(conn, "DoSave"), 0u);
  EXPECT_EQ(count_method(conn, "DoReload"), 0u);
}

TEST_F(engine_client_test, dumps_an_empty_app) {
  auto d = value_of(dump(options(), empty_id));
  std::set<std::string> keys;
  for (auto& [key, value] : d.items())
    keys.insert(key);
  EXPECT_EQ(keys, dump_keys);
  for (auto& key : dump_arrays) {
    EXPECT_TRUE(d[key].is_array()) << key;
    EXPECT_TRUE(d[key].empty()) << key << ": " << d[key].dump();
  }
  EXPECT_EQ(d["loadScript"], "");
  EXPECT_EQ(d["lineage"], (json{{"qLineage", json::array()}}));
  EXPECT_EQ(d["properties"].value("qTitle", ""), "Empty app");
  EXPECT_TRUE(only_connection().value("closed_cleanly", false));
}

TEST_F(engine_client_test, dump_of_an_unknown_app_is_not_found) {
  auto err = error_of(dump(options(), unknown_id));
  EXPECT_EQ(err.what, kind::not_found) << err.message;
  EXPECT_EQ(err.rpc_code, 1003);
  EXPECT_NE(err.message.find(unknown_id), std::string::npos) << err.message;
  EXPECT_NE(err.message.find("OpenDoc"), std::string::npos) << err.message;
  EXPECT_NE(err.message.find(where()), std::string::npos) << err.message;
  auto conn = only_connection();
  EXPECT_EQ(methods(conn), (std::vector<std::string>{"OpenDoc"}));
  EXPECT_TRUE(conn.value("closed_cleanly", false)) << conn.dump(2);
}

TEST_F(engine_client_test, dump_with_an_empty_app_id_fails_without_connecting) {
  auto err = error_of(dump(options(), ""));
  EXPECT_EQ(err.what, kind::not_found) << err.message;
  EXPECT_EQ(fake_->calls(), json::array());
}

TEST_F(engine_client_test, app_id_cannot_change_the_upgrade_target) {
  auto err = error_of(dump(options(), "../engineData?x=1"));
  EXPECT_EQ(err.what, kind::not_found) << err.message;
  auto conn = only_connection();
  EXPECT_EQ(conn.value("path", ""), "/app/..%2FengineData%3Fx%3D1");
}

// -- reload -------------------------------------------------------------------

TEST_F(engine_client_test, reloads_and_saves_an_app) {
  reload_options ropts;
  ropts.mode = 1;
  ropts.partial = true;
  EXPECT_TRUE(value_of(reload(options(), sales_id, ropts)));
  auto conn = only_connection();
  EXPECT_EQ(conn.value("path", ""), "/app/" + sales_id);
  EXPECT_EQ(methods(conn),
            (std::vector<std::string>{"OpenDoc", "DoReload", "DoSave"}));
  auto& reqs = conn["requests"];
  EXPECT_EQ(reqs[0]["params"],
            (json{{"qDocName", sales_id}, {"qNoData", false}}));
  EXPECT_EQ(reqs[1]["params"],
            (json{{"qMode", 1}, {"qPartial", true}, {"qDebug", false}}));
  EXPECT_NE(reqs[1]["handle"], -1);
  EXPECT_EQ(reqs[2]["handle"], reqs[1]["handle"]);
  EXPECT_TRUE(conn.value("closed_cleanly", false));
}

TEST_F(engine_client_test, failed_reload_is_false_and_not_saved) {
  EXPECT_FALSE(value_of(reload(options(), finance_id)));
  auto conn = only_connection();
  EXPECT_EQ(methods(conn), (std::vector<std::string>{"OpenDoc", "DoReload"}));
  EXPECT_EQ(conn["requests"][1]["params"],
            (json{{"qMode", 0}, {"qPartial", false}, {"qDebug", false}}));
  EXPECT_TRUE(conn.value("closed_cleanly", false));
}

TEST_F(engine_client_test, reload_of_an_unknown_app_is_not_found) {
  auto err = error_of(reload(options(), unknown_id));
  EXPECT_EQ(err.what, kind::not_found) << err.message;
  EXPECT_NE(err.message.find(unknown_id), std::string::npos) << err.message;
  EXPECT_EQ(methods(only_connection()), (std::vector<std::string>{"OpenDoc"}));
}

TEST_F(engine_client_test, reload_answer_without_boolean_is_a_protocol_error) {
  ASSERT_TRUE(fake_->script(
    {{"match", "DoReload"}, {"result", {{"qReturn", "yes"}}}}));
  auto err = error_of(reload(options(), sales_id));
  EXPECT_EQ(err.what, kind::protocol) << err.message;
  EXPECT_NE(err.message.find("DoReload"), std::string::npos) << err.message;
  EXPECT_EQ(count_method(only_connection(), "DoSave"), 0u);
}

// -- scripted failures --------------------------------------------------------

TEST_F(engine_client_test, error_frame_fails_the_dump_with_its_code) {
  ASSERT_TRUE(fake_->script({{"match", "GetScript"},
                             {"body",
                              {{"code", -32602},
                               {"parameter", "qScript"},
                               {"message", "Invalid parameters"}}}}));
  auto err = error_of(dump(options(), sales_id));
  EXPECT_EQ(err.what, kind::rpc) << err.message;
  EXPECT_EQ(err.rpc_code, -32602);
  EXPECT_NE(err.message.find("GetScript"), std::string::npos) << err.message;
  EXPECT_NE(err.message.find("Invalid parameters"), std::string::npos)
    << err.message;
  EXPECT_NE(err.message.find(where()), std::string::npos) << err.message;
  // The session is closed cleanly on the error path too.
  EXPECT_TRUE(only_connection().value("closed_cleanly", false));
}

TEST_F(engine_client_test, reply_without_expected_member_is_a_protocol_error) {
  ASSERT_TRUE(
    fake_->script({{"match", "OpenDoc"}, {"result", {{"qOther", 1}}}}));
  auto err = error_of(dump(options(), sales_id));
  EXPECT_EQ(err.what, kind::protocol) << err.message;
  EXPECT_NE(err.message.find("OpenDoc"), std::string::npos) << err.message;
  EXPECT_TRUE(only_connection().value("closed_cleanly", false));
}

TEST_F(engine_client_test, stalled_call_times_out_and_closes) {
  ASSERT_TRUE(fake_->script({{"match", "GetScript"}, {"stall", true}}));
  auto opts = options();
  opts.timeout = 500ms;
  auto err = error_of(dump(opts, sales_id));
  EXPECT_EQ(err.what, kind::timeout) << err.message;
  EXPECT_NE(err.message.find("GetScript"), std::string::npos) << err.message;
  EXPECT_NE(err.message.find(where()), std::string::npos) << err.message;
  // The connection is gone (closed_connections waits for "open": false),
  // closed with a close frame although a call was unanswered.
  auto conn = only_connection();
  EXPECT_FALSE(conn.value("open", true));
  EXPECT_TRUE(conn.value("closed_cleanly", false)) << conn.dump(2);
}

TEST_F(engine_client_test, closed_connection_fails_the_operation) {
  ASSERT_TRUE(fake_->script({{"match", "GetAppProperties"}, {"close", true}}));
  auto err = error_of(dump(options(), sales_id));
  EXPECT_EQ(err.what, kind::protocol) << err.message;
  EXPECT_NE(err.message.find(where()), std::string::npos) << err.message;
  EXPECT_FALSE(only_connection().value("open", true));
}

TEST_F(engine_client_test, refused_upgrade_is_upgrade_refused) {
  ASSERT_TRUE(fake_->script({{"match", "UPGRADE"}, {"status", 403}}));
  auto err = error_of(list(options()));
  EXPECT_EQ(err.what, kind::upgrade_refused) << err.message;
  EXPECT_NE(err.message.find("403"), std::string::npos) << err.message;
  EXPECT_NE(err.message.find("/app/engineData"), std::string::npos)
    << err.message;
  EXPECT_NE(err.message.find(where()), std::string::npos) << err.message;
}

TEST_F(engine_client_test, missing_user_header_is_refused) {
  auto opts = options();
  opts.headers.clear();
  auto err = error_of(list(opts));
  EXPECT_EQ(err.what, kind::upgrade_refused) << err.message;
  EXPECT_NE(err.message.find("403"), std::string::npos) << err.message;
}

TEST_F(engine_client_test, header_with_line_break_is_rejected_before_sending) {
  auto opts = options();
  opts.headers.emplace_back("X-Evil", "a\r\nX-Injected: 1");
  auto err = error_of(list(opts));
  EXPECT_EQ(err.what, kind::protocol) << err.message;
  EXPECT_NE(err.message.find("X-Evil"), std::string::npos) << err.message;
  EXPECT_EQ(fake_->calls(), json::array());
}

// -- TLS ------------------------------------------------------------------------

TEST_F(engine_client_test, verify_peer_with_the_right_ca_works) {
  auto opts = options();
  opts.verify_peer = true;
  EXPECT_EQ(value_of(list(opts)).size(), 4u);
  // By name too: SNI and host name check against the certificate's SAN.
  opts.host = "localhost";
  EXPECT_EQ(value_of(list(opts)).size(), 4u);
}

TEST_F(engine_client_test, verify_peer_with_a_wrong_ca_fails_with_tls) {
  auto opts = options();
  opts.verify_peer = true;
  opts.ca_file = other_certs_->ca_cert;
  auto err = error_of(list(opts));
  EXPECT_EQ(err.what, kind::tls) << err.message;
  EXPECT_NE(err.message.find(where()), std::string::npos) << err.message;
  EXPECT_EQ(fake_->calls(), json::array());
}

TEST_F(engine_client_test, no_verify_accepts_an_unknown_server_ca) {
  auto opts = options();
  opts.verify_peer = false;
  opts.ca_file = other_certs_->ca_cert;
  EXPECT_EQ(value_of(list(opts)).size(), 4u);
}

TEST_F(engine_client_test, missing_client_certificate_fails) {
  auto opts = options();
  opts.client_cert.clear();
  opts.client_key.clear();
  auto err = error_of(list(opts));
  EXPECT_EQ(err.what, kind::tls) << err.message;
  EXPECT_NE(err.message.find(where()), std::string::npos) << err.message;
  // The engine rejected the handshake; no WebSocket session was opened.
  EXPECT_TRUE(eventually([] {
    return fake_->control_get("/handshake_failures").value("count", 0) == 1;
  }));
  EXPECT_EQ(fake_->calls(), json::array());
}

TEST_F(engine_client_test, client_certificate_of_another_ca_fails) {
  auto opts = options();
  opts.client_cert = other_certs_->client_cert;
  opts.client_key = other_certs_->client_key;
  auto err = error_of(list(opts));
  EXPECT_EQ(err.what, kind::tls) << err.message;
  EXPECT_TRUE(eventually([] {
    return fake_->control_get("/handshake_failures").value("count", 0) == 1;
  }));
  EXPECT_EQ(fake_->calls(), json::array());
}

TEST_F(engine_client_test, unreadable_certificate_files_fail_with_tls) {
  auto opts = options();
  opts.client_cert = *dir_ + "/missing.pem";
  auto err = error_of(list(opts));
  EXPECT_EQ(err.what, kind::tls) << err.message;
  EXPECT_NE(err.message.find("missing.pem"), std::string::npos) << err.message;
  opts = options();
  opts.client_key = certs_->server_key; // not the client certificate's key
  err = error_of(list(opts));
  EXPECT_EQ(err.what, kind::tls) << err.message;
  opts = options();
  opts.ca_file = *dir_ + "/missing-ca.pem";
  err = error_of(list(opts));
  EXPECT_EQ(err.what, kind::tls) << err.message;
  EXPECT_NE(err.message.find("missing-ca.pem"), std::string::npos)
    << err.message;
  EXPECT_EQ(fake_->calls(), json::array());
}

TEST_F(engine_client_test, plain_websocket_against_tls_fails) {
  auto opts = options();
  opts.use_ssl = false;
  opts.timeout = 3s;
  auto err = error_of(list(opts));
  EXPECT_NE(err.what, kind::timeout) << err.message;
  EXPECT_NE(err.message.find(where()), std::string::npos) << err.message;
}

// -- reachability ---------------------------------------------------------------

TEST_F(engine_client_test, refused_connection_is_unreachable) {
  auto opts = options();
  opts.port = butler::test::free_tcp_port();
  auto err = error_of(list(opts));
  EXPECT_EQ(err.what, kind::unreachable) << err.message;
  EXPECT_NE(err.message.find("127.0.0.1:" + std::to_string(opts.port)),
            std::string::npos)
    << err.message;
}

TEST_F(engine_client_test, empty_host_is_unreachable) {
  auto opts = options();
  opts.host.clear();
  auto err = error_of(list(opts));
  EXPECT_EQ(err.what, kind::unreachable) << err.message;
  EXPECT_EQ(fake_->calls(), json::array());
}

TEST_F(engine_client_test, unknown_host_is_unreachable) {
  auto opts = options();
  opts.host = "no-such-host.invalid";
  auto err = error_of(list(opts));
  EXPECT_EQ(err.what, kind::unreachable) << err.message;
  EXPECT_NE(err.message.find("no-such-host.invalid"), std::string::npos)
    << err.message;
}

TEST_F(engine_client_test, silent_server_times_out_in_the_tls_handshake) {
  silent_listener silent;
  ASSERT_NE(silent.port(), 0);
  auto opts = options();
  opts.port = silent.port();
  opts.timeout = 300ms;
  auto err = error_of(list(opts));
  EXPECT_EQ(err.what, kind::timeout) << err.message;
  EXPECT_NE(err.message.find("TLS handshake"), std::string::npos)
    << err.message;
}

// -- concurrency and stop -------------------------------------------------------

TEST_F(engine_client_test, ten_concurrent_dumps_all_succeed) {
  std::vector<outcome<dump_result>> outs(10);
  for (auto& out : outs)
    client_->dump_app(options(), sales_id, out.callback());
  for (auto& out : outs) {
    ASSERT_TRUE(out.wait());
    EXPECT_EQ(out.count(), 1u);
    auto d = value_of(out.value());
    EXPECT_EQ(d["sheets"].size(), 2u);
    EXPECT_EQ(d["dimensions"].size(), 2u);
  }
  auto calls = closed_connections(10);
  ASSERT_EQ(calls.size(), 10u);
  for (auto& conn : calls)
    EXPECT_TRUE(conn.value("closed_cleanly", false));
}

TEST_F(engine_client_test, stop_fails_a_stalled_operation) {
  ASSERT_TRUE(fake_->script({{"match", "GetScript"}, {"stall", true}}));
  auto opts = options();
  opts.timeout = 60s;
  outcome<dump_result> out;
  client_->dump_app(opts, sales_id, out.callback());
  // Wait until the engine holds the request.
  ASSERT_TRUE(eventually([&] {
    auto calls = fake_->calls();
    return calls.is_array() && calls.size() == 1
           && count_method(calls[0], "GetScript") == 1;
  }));
  EXPECT_EQ(out.count(), 0u);
  client_->stop();
  // stop() returns after the callback ran.
  ASSERT_EQ(out.count(), 1u);
  auto err = error_of(out.value());
  EXPECT_EQ(err.what, kind::unreachable) << err.message;
  EXPECT_NE(err.message.find("stopped"), std::string::npos) << err.message;
  client_->stop(); // idempotent
  EXPECT_EQ(out.count(), 1u);
  // The connection is gone (and the fake done with it before the next test).
  EXPECT_FALSE(closed_connections(1).at(0).value("open", true));
}

TEST_F(engine_client_test, operations_after_stop_fail_at_once) {
  client_->stop();
  outcome<list_result> out;
  client_->list_apps(options(), out.callback());
  ASSERT_EQ(out.count(), 1u);
  EXPECT_EQ(error_of(out.value()).what, kind::unreachable);
  auto calls = fake_->calls();
  EXPECT_EQ(calls, json::array()) << calls.dump(2);
}

TEST_F(engine_client_test, destroying_a_busy_client_reports_every_operation) {
  ASSERT_TRUE(fake_->script({{"match", "GetDocList|GetScript"}, {"stall", true}, {"times", 2}}));
  outcome<list_result> listing;
  outcome<dump_result> dumping;
  client_->list_apps(options(), listing.callback());
  client_->dump_app(options(), ops_id, dumping.callback());
  ASSERT_TRUE(eventually([&] {
    auto calls = fake_->calls();
    std::size_t stalled = 0;
    for (auto& conn : calls)
      stalled += count_method(conn, "GetDocList") + count_method(conn, "GetScript");
    return stalled == 2;
  }));
  client_.reset();
  EXPECT_EQ(listing.count(), 1u);
  EXPECT_EQ(dumping.count(), 1u);
  EXPECT_EQ(error_of(listing.value()).what, kind::unreachable);
  EXPECT_EQ(error_of(dumping.value()).what, kind::unreachable);
  // Both connections are gone.
  EXPECT_EQ(closed_connections(2).size(), 2u);
}
