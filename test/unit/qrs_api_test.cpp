#include "net/qrs_api.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cctype>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace butler::qrs;
using json = nlohmann::json;

namespace {

// Task ids used throughout: a (tagged startTask1, taskGroup=tasks1),
// b (no tags), c (taskGroup=tasks2), unknown (QRS has no such task).
const std::string id_a = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e";
const std::string id_b = "7552d9fc-d1bb-4975-9a38-18357de531ea";
const std::string id_c = "a1a11a11-b1c0-4879-88fc-c7cdd9c1cf3e";
const std::string id_unknown = "00000000-0000-4000-8000-000000000000";

qrs_task task_a() {
  return {id_a, "Reload of Sales", {"startTask1"}, {{"taskGroup", "tasks1"}}};
}
qrs_task task_b() {
  return {id_b, "Reload of Budget", {}, {}};
}
qrs_task task_c() {
  return {id_c, "Reload of Stock", {"other"}, {{"taskGroup", "tasks2"}}};
}

std::string upper(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

/// Returns the value of header `name` in `req`, or "<none>".
std::string header(const butler::http::outbound_request& req,
                   const std::string& name) {
  std::string out = "<none>";
  int n = 0;
  for (auto& [k, v] : req.headers)
    if (k == name) {
      out = v;
      ++n;
    }
  return n > 1 ? "<repeated>" : out;
}

bool is_key(const std::string& key) {
  if (key.size() != 16)
    return false;
  for (char c : key)
    if (!std::isalnum(static_cast<unsigned char>(c)))
      return false;
  return true;
}

qrs_options sense1() {
  qrs_options opts;
  opts.host = "sense1";
  opts.port = 4242;
  opts.client_cert = "/certs/client.pem";
  opts.client_key = "/certs/client_key.pem";
  opts.ca_file = "/certs/root.pem";
  opts.verify_peer = true;
  opts.headers = {{"X-Qlik-User", "UserDirectory=Internal;UserId=sa_repository"},
                  {"X-Extra", "1"}};
  opts.timeout = std::chrono::milliseconds{12'500};
  return opts;
}

} // namespace

// -- xrfkey -------------------------------------------------------------------

TEST(qrs_api, xrfkey_is_sixteen_letters_or_digits) {
  for (int i = 0; i < 200; ++i) {
    auto key = make_xrfkey();
    EXPECT_TRUE(is_key(key)) << key;
  }
}

TEST(qrs_api, xrfkey_is_fresh_per_call_and_uses_the_whole_alphabet) {
  std::set<std::string> keys;
  bool lower = false, upper_case = false, digit = false;
  for (int i = 0; i < 1000; ++i) {
    auto key = make_xrfkey();
    keys.insert(key);
    for (unsigned char c : key) {
      lower = lower || std::islower(c);
      upper_case = upper_case || std::isupper(c);
      digit = digit || std::isdigit(c);
    }
  }
  EXPECT_EQ(keys.size(), 1000u);
  EXPECT_TRUE(lower);
  EXPECT_TRUE(upper_case);
  EXPECT_TRUE(digit);
}

TEST(qrs_api, xrfkeys_differ_across_threads) {
  std::vector<std::string> keys(4);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < keys.size(); ++i)
    threads.emplace_back([&keys, i] { keys[i] = make_xrfkey(); });
  for (auto& t : threads)
    t.join();
  std::set<std::string> distinct(keys.begin(), keys.end());
  EXPECT_EQ(distinct.size(), keys.size());
}

// -- requests -----------------------------------------------------------------

TEST(qrs_api, url_encode_keeps_only_unreserved_characters) {
  EXPECT_EQ(url_encode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(url_encode("a b&c=d'e+f/g?h#%"),
            "a%20b%26c%3Dd%27e%2Bf%2Fg%3Fh%23%25");
  EXPECT_EQ(url_encode("F\xC3\xB6rs\xC3\xA4ljning"), "F%C3%B6rs%C3%A4ljning");
  EXPECT_EQ(url_encode(std::string{"\0\x7F", 2}), "%00%7F");
  EXPECT_EQ(url_encode(""), "");
}

TEST(qrs_api, builds_a_get_with_key_in_query_and_header) {
  auto req = build_request(sense1(), "GET", "/qrs/about", {});
  auto key = header(req, "X-Qlik-Xrfkey");
  ASSERT_TRUE(is_key(key)) << key;
  EXPECT_EQ(req.method, "GET");
  EXPECT_EQ(req.url, "https://sense1:4242/qrs/about?xrfkey=" + key);
  EXPECT_EQ(req.headers.size(), 3u);
  EXPECT_EQ(header(req, "X-Qlik-User"),
            "UserDirectory=Internal;UserId=sa_repository");
  EXPECT_EQ(header(req, "X-Extra"), "1");
  EXPECT_EQ(header(req, "Content-Type"), "<none>");
  EXPECT_EQ(req.body, "");
  EXPECT_EQ(req.ca_file, "/certs/root.pem");
  EXPECT_EQ(req.cert_file, "/certs/client.pem");
  EXPECT_EQ(req.key_file, "/certs/client_key.pem");
  EXPECT_TRUE(req.verify_peer);
  EXPECT_EQ(req.timeout, std::chrono::milliseconds{12'500});
  EXPECT_FALSE(req.at_most_once);
}

TEST(qrs_api, each_request_gets_its_own_key) {
  auto r1 = build_request(sense1(), "GET", "/qrs/about", {});
  auto r2 = build_request(sense1(), "GET", "/qrs/about", {});
  EXPECT_NE(header(r1, "X-Qlik-Xrfkey"), header(r2, "X-Qlik-Xrfkey"));
}

TEST(qrs_api, encodes_filters_with_quotes_spaces_ampersands_and_non_ascii) {
  auto filter = filter_tag("Bob's tag & F\xC3\xB6rs\xC3\xA4ljning=1+1");
  EXPECT_EQ(filter, "tags.name eq 'Bob''s tag & F\xC3\xB6rs\xC3\xA4ljning=1+1'");
  auto req = build_request(sense1(), "GET", "/qrs/task/full",
                           {{"filter", filter}, {"odd name", "x"}});
  auto key = header(req, "X-Qlik-Xrfkey");
  EXPECT_EQ(req.url, "https://sense1:4242/qrs/task/full?xrfkey=" + key
                       + "&filter=tags.name%20eq%20%27Bob%27%27s%20tag%20%26%20"
                         "F%C3%B6rs%C3%A4ljning%3D1%2B1%27&odd%20name=x");
}

TEST(qrs_api, sends_json_content_type_with_a_body) {
  auto req = build_request(sense1(), "POST", "/qrs/task/start/many", {},
                           "[\"" + id_a + "\"]");
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.body, "[\"" + id_a + "\"]");
  EXPECT_EQ(header(req, "Content-Type"), "application/json");
  EXPECT_EQ(req.headers.size(), 4u);
  // A POST without a body still says JSON, not libcurl's form default.
  auto start = build_request(sense1(), "POST", "/qrs/task/" + id_a + "/start",
                             {});
  EXPECT_EQ(header(start, "Content-Type"), "application/json");
  EXPECT_EQ(start.body, "");
}

TEST(qrs_api, uses_plain_http_and_brackets_ipv6_hosts) {
  auto opts = sense1();
  opts.use_ssl = false;
  opts.port = 4243;
  auto req = build_request(opts, "GET", "/qrs/about", {});
  EXPECT_EQ(req.url.rfind("http://sense1:4243/qrs/about?xrfkey=", 0), 0u)
    << req.url;
  opts.host = "::1";
  EXPECT_EQ(authority(opts), "[::1]:4243");
  opts.host = "[::1]";
  EXPECT_EQ(authority(opts), "[::1]:4243");
}

TEST(qrs_api, connect_timeout_never_exceeds_the_timeout) {
  auto opts = sense1();
  opts.timeout = std::chrono::milliseconds{300};
  auto req = build_request(opts, "GET", "/qrs/about", {});
  EXPECT_EQ(req.timeout, std::chrono::milliseconds{300});
  EXPECT_EQ(req.connect_timeout, std::chrono::milliseconds{300});
}

// -- filters ------------------------------------------------------------------

TEST(qrs_api, quotes_string_literals) {
  EXPECT_EQ(quote("abc"), "'abc'");
  EXPECT_EQ(quote("it's"), "'it''s'");
  EXPECT_EQ(quote("''"), "''''''");
  EXPECT_EQ(quote(""), "''");
}

TEST(qrs_api, builds_filters) {
  EXPECT_EQ(filter_ids({id_a}), "id eq " + id_a);
  EXPECT_EQ(filter_ids({id_a, id_b, id_c}),
            "id eq " + id_a + " or id eq " + id_b + " or id eq " + id_c);
  EXPECT_EQ(filter_ids({}), "");
  EXPECT_EQ(filter_tag("startTask1"), "tags.name eq 'startTask1'");
  EXPECT_EQ(filter_custom_property("taskGroup", "tasks1"),
            "customProperties.definition.name eq 'taskGroup' and "
            "customProperties.value eq 'tasks1'");
  EXPECT_EQ(filter_custom_property("a'b", "c'd"),
            "customProperties.definition.name eq 'a''b' and "
            "customProperties.value eq 'c''d'");
}

// -- replies ------------------------------------------------------------------

TEST(qrs_api, parses_about) {
  auto ok = parse_about(
    R"({"buildVersion":"30.4.2.0","buildDate":"x","nodeType":1,"schemaPath":"About"})");
  ASSERT_TRUE(std::holds_alternative<std::string>(ok));
  EXPECT_EQ(std::get<std::string>(ok), "30.4.2.0");
}

TEST(qrs_api, rejects_bad_about_replies) {
  for (const char* body : {"", "not json", "{\"buildVersion\":", "[]", "42",
                           "{}", "{\"buildVersion\":30}",
                           "{\"buildVersion\":null}"}) {
    auto res = parse_about(body);
    ASSERT_TRUE(std::holds_alternative<parse_error>(res)) << body;
    EXPECT_FALSE(std::get<parse_error>(res).message.empty());
  }
}

TEST(qrs_api, parses_condensed_tasks) {
  auto res = parse_tasks(R"([{"id":")" + id_a
                         + R"(","name":"Reload of Sales","privileges":null},)"
                           R"({"id":")"
                         + id_b + R"(","name":"B"}])");
  ASSERT_TRUE(std::holds_alternative<std::vector<qrs_task>>(res))
    << std::get<parse_error>(res).message;
  auto& tasks = std::get<std::vector<qrs_task>>(res);
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[0].id, id_a);
  EXPECT_EQ(tasks[0].name, "Reload of Sales");
  EXPECT_TRUE(tasks[0].tags.empty());
  EXPECT_TRUE(tasks[0].custom_properties.empty());
  EXPECT_EQ(tasks[1].id, id_b);
  EXPECT_EQ(tasks[1].name, "B");
}

TEST(qrs_api, parses_full_tasks) {
  auto body = json::array(
    {{{"id", id_a},
      {"name", "Reload of Sales"},
      {"taskType", 0},
      {"app", {{"id", id_b}, {"name", "Sales"}}},
      {"tags",
       {{{"id", id_c}, {"name", "startTask1"}}, {{"id", id_b}, {"name", "x"}}}},
      {"customProperties",
       {{{"definition", {{"name", "taskGroup"}, {"id", id_c}}},
         {"value", "tasks1"}}}},
      {"operational", {{"lastExecutionResult", {{"status", 8}}}}}},
     {{"id", id_b}, {"name", "B"}, {"tags", nullptr},
      {"customProperties", nullptr}},
     {{"id", id_c}}});
  auto res = parse_tasks(body.dump());
  ASSERT_TRUE(std::holds_alternative<std::vector<qrs_task>>(res))
    << std::get<parse_error>(res).message;
  auto& tasks = std::get<std::vector<qrs_task>>(res);
  ASSERT_EQ(tasks.size(), 3u);
  EXPECT_EQ(tasks[0].tags, (std::vector<std::string>{"startTask1", "x"}));
  ASSERT_EQ(tasks[0].custom_properties.size(), 1u);
  EXPECT_EQ(tasks[0].custom_properties[0].first, "taskGroup");
  EXPECT_EQ(tasks[0].custom_properties[0].second, "tasks1");
  EXPECT_TRUE(tasks[1].tags.empty());
  EXPECT_EQ(tasks[2].id, id_c);
  EXPECT_EQ(tasks[2].name, "");
  auto empty = parse_tasks("[]");
  ASSERT_TRUE(std::holds_alternative<std::vector<qrs_task>>(empty));
  EXPECT_TRUE(std::get<std::vector<qrs_task>>(empty).empty());
}

TEST(qrs_api, rejects_bad_task_lists) {
  const std::string a = "\"" + id_a + "\"";
  std::vector<std::string> bodies{
    "",
    "[{\"id\":",
    "{\"id\":" + a + "}",
    "null",
    "[42]",
    "[{\"name\":\"no id\"}]",
    "[{\"id\":42}]",
    "[{\"id\":\"\"}]",
    "[{\"id\":" + a + ",\"name\":7}]",
    "[{\"id\":" + a + ",\"tags\":{}}]",
    "[{\"id\":" + a + ",\"tags\":[{\"id\":\"x\"}]}]",
    "[{\"id\":" + a + ",\"tags\":[\"plain\"]}]",
    "[{\"id\":" + a + ",\"customProperties\":\"x\"}]",
    "[{\"id\":" + a + ",\"customProperties\":[1]}]",
    "[{\"id\":" + a + ",\"customProperties\":[{\"value\":\"v\"}]}]",
    "[{\"id\":" + a
      + ",\"customProperties\":[{\"definition\":{},\"value\":\"v\"}]}]",
    "[{\"id\":" + a
      + ",\"customProperties\":[{\"definition\":{\"name\":\"n\"},\"value\":3}]}]",
    "[{\"id\":" + a + "}, 1]",
  };
  for (auto& body : bodies) {
    auto res = parse_tasks(body);
    ASSERT_TRUE(std::holds_alternative<parse_error>(res)) << body;
    EXPECT_FALSE(std::get<parse_error>(res).message.empty());
  }
}

TEST(qrs_api, compares_ids_ignoring_case) {
  EXPECT_TRUE(same_id(id_a, upper(id_a)));
  EXPECT_FALSE(same_id(id_a, id_c));
  EXPECT_FALSE(same_id(id_a, id_a + " "));
}

// -- the filter ---------------------------------------------------------------

TEST(qrs_api, filter_allows_by_id_tag_or_custom_property) {
  start_filter off;
  EXPECT_TRUE(task_allowed(off, task_b()));
  start_filter f;
  f.enable = true;
  EXPECT_FALSE(task_allowed(f, task_a()));
  f.task_ids = {upper(id_b)};
  EXPECT_TRUE(task_allowed(f, task_b()));
  EXPECT_FALSE(task_allowed(f, task_a()));
  f.tags = {"startTask1"};
  EXPECT_TRUE(task_allowed(f, task_a()));
  f.tags = {"starttask1"}; // tag names match exactly
  EXPECT_FALSE(task_allowed(f, task_a()));
  f.custom_properties = {{"taskGroup", "tasks2"}};
  EXPECT_TRUE(task_allowed(f, task_c()));
  EXPECT_FALSE(task_allowed(f, task_a())); // same name, other value
  f.custom_properties = {{"tasks2", "taskGroup"}};
  EXPECT_FALSE(task_allowed(f, task_c()));
}

// -- planning lookups ---------------------------------------------------------

TEST(qrs_api, plans_lookups_for_guids_and_allowed_tags_only) {
  start_request req;
  req.task_ids = {"-", id_a, "abc", upper(id_a), id_b, ""};
  req.tags = {"t1", "t2", "t1"};
  req.custom_properties = {{"g", "1"}, {"g", "2"}, {"g", "1"}};
  start_filter f;
  auto all = plan_lookups(req, f);
  EXPECT_EQ(all.task_ids, (std::vector<std::string>{id_a, id_b}));
  EXPECT_EQ(all.tags, (std::vector<std::string>{"t1", "t2"}));
  ASSERT_EQ(all.custom_properties.size(), 2u);
  EXPECT_EQ(all.custom_properties[1].second, "2");
  f.enable = true;
  f.tags = {"t2"};
  f.custom_properties = {{"g", "1"}};
  auto allowed = plan_lookups(req, f);
  EXPECT_EQ(allowed.task_ids, (std::vector<std::string>{id_a, id_b}));
  EXPECT_EQ(allowed.tags, (std::vector<std::string>{"t2"}));
  ASSERT_EQ(allowed.custom_properties.size(), 1u);
  EXPECT_EQ(allowed.custom_properties[0].second, "1");
  auto none = plan_lookups(start_request{}, f);
  EXPECT_TRUE(none.task_ids.empty());
  EXPECT_TRUE(none.tags.empty());
  EXPECT_TRUE(none.custom_properties.empty());
}

// -- planning a start ---------------------------------------------------------

namespace {

using strings = std::vector<std::string>;

/// One planner case; task lists are written "id/name", custom properties
/// "name=value".
struct plan_case {
  const char* name;
  start_request req;
  start_filter filter;
  start_lookups found;
  strings to_start;
  strings started;
  strings invalid;
  strings denied;
  strings by_tag;
  strings tags_denied;
  strings by_cp;
  strings cps_denied;
};

strings refs(const std::vector<task_ref>& items) {
  strings out;
  for (auto& r : items)
    out.push_back(r.id + "/" + r.name);
  return out;
}

strings pairs(const std::vector<std::pair<std::string, std::string>>& items) {
  strings out;
  for (auto& [k, v] : items)
    out.push_back(k + "=" + v);
  return out;
}

std::string ref(const qrs_task& t) {
  return t.id + "/" + t.name;
}

start_filter filter_on(strings ids, strings tags,
                       std::vector<std::pair<std::string, std::string>> cps) {
  start_filter f;
  f.enable = true;
  f.task_ids = std::move(ids);
  f.tags = std::move(tags);
  f.custom_properties = std::move(cps);
  return f;
}

start_request ids(strings task_ids, bool all_must_exist = false) {
  start_request r;
  r.task_ids = std::move(task_ids);
  r.all_must_exist = all_must_exist;
  return r;
}

start_lookups found_ids(std::vector<qrs_task> tasks) {
  start_lookups l;
  l.by_id = std::move(tasks);
  return l;
}

std::vector<plan_case> plan_cases() {
  std::vector<plan_case> cases;
  // Nothing asked, nothing done.
  cases.push_back({"empty request", {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}});
  cases.push_back({"empty request, filter on", {}, filter_on({}, {}, {}), {},
                   {}, {}, {}, {}, {}, {}, {}, {}});
  // Ids.
  cases.push_back({"ids found, filter off", ids({id_b, id_a}), {},
                   found_ids({task_a(), task_b()}), strings{id_b, id_a},
                   strings{ref(task_b()), ref(task_a())}, {}, {}, {}, {}, {},
                   {}});
  cases.push_back({"unknown and malformed ids are invalid",
                   ids({id_a, id_unknown, "abc", ""}), {},
                   found_ids({task_a()}), strings{id_a},
                   strings{ref(task_a())},
                   strings{id_unknown, "abc", ""}, {}, {}, {}, {}, {}});
  cases.push_back({"the placeholder id is skipped", ids({"-", id_a}), {},
                   found_ids({task_a()}), strings{id_a},
                   strings{ref(task_a())}, {}, {}, {}, {}, {}, {}});
  cases.push_back({"all must exist, one missing: no id starts",
                   ids({id_a, id_unknown, id_b}, true), {},
                   found_ids({task_a(), task_b()}), {}, {},
                   strings{id_unknown}, {}, {}, {}, {}, {}});
  cases.push_back({"all must exist, one malformed: no id starts",
                   ids({id_a, "not-a-guid"}, true), {}, found_ids({task_a()}),
                   {}, {}, strings{"not-a-guid"}, {}, {}, {}, {}, {}});
  cases.push_back({"all must exist, all there: ids start",
                   ids({id_a, id_b}, true), {},
                   found_ids({task_a(), task_b()}), strings{id_a, id_b},
                   strings{ref(task_a()), ref(task_b())}, {}, {}, {}, {}, {},
                   {}});
  {
    plan_case c{"all must exist cancels ids but not tags or custom properties",
                ids({id_b, id_unknown}, true),
                {},
                found_ids({task_b()}),
                strings{id_a, id_c},
                {},
                strings{id_unknown},
                {},
                strings{ref(task_a())},
                {},
                strings{ref(task_c())},
                {}};
    c.req.tags = {"startTask1"};
    c.req.custom_properties = {{"taskGroup", "tasks2"}};
    c.found.by_tag = {{"startTask1", {task_a()}}};
    c.found.by_custom_property = {{{"taskGroup", "tasks2"}, {task_c()}}};
    cases.push_back(c);
  }
  {
    plan_case c{"all must exist with an invalid and a denied id",
                ids({id_a, id_b, id_unknown}, true),
                filter_on({id_a}, {}, {}),
                found_ids({task_a(), task_b()}),
                {},
                {},
                strings{id_unknown},
                strings{id_b},
                {},
                {},
                {},
                {}};
    cases.push_back(c);
  }
  // The filter on ids.
  cases.push_back({"filter allows by id, denies the rest",
                   ids({id_a, id_b}), filter_on({id_b}, {}, {}),
                   found_ids({task_a(), task_b()}), strings{id_b},
                   strings{ref(task_b())}, {}, strings{id_a}, {}, {}, {}, {}});
  cases.push_back({"filter allows by id in another case",
                   ids({id_b}), filter_on({upper(id_b)}, {}, {}),
                   found_ids({task_b()}), strings{id_b},
                   strings{ref(task_b())}, {}, {}, {}, {}, {}, {}});
  cases.push_back({"filter allows an id via its tag",
                   ids({id_a, id_b}), filter_on({}, {"startTask1"}, {}),
                   found_ids({task_a(), task_b()}), strings{id_a},
                   strings{ref(task_a())}, {}, strings{id_b}, {}, {}, {}, {}});
  cases.push_back({"filter allows an id via its custom property",
                   ids({id_a, id_c}),
                   filter_on({}, {}, {{"taskGroup", "tasks2"}}),
                   found_ids({task_a(), task_c()}), strings{id_c},
                   strings{ref(task_c())}, {}, strings{id_a}, {}, {}, {}, {}});
  cases.push_back({"filter with empty allow lists denies every id",
                   ids({id_a, id_b, id_c}), filter_on({}, {}, {}),
                   found_ids({task_a(), task_b(), task_c()}), {}, {}, {},
                   strings{id_a, id_b, id_c}, {}, {}, {}, {}});
  cases.push_back({"unknown ids are invalid, not denied, with the filter on",
                   ids({id_unknown}), filter_on({}, {}, {}), found_ids({}),
                   {}, {}, strings{id_unknown}, {}, {}, {}, {}, {}});
  // Tags and custom properties.
  {
    plan_case c{"tags and custom properties, filter off",
                {},
                {},
                {},
                strings{id_a, id_b, id_c},
                {},
                {},
                {},
                strings{ref(task_a()), ref(task_b())},
                {},
                strings{ref(task_c())},
                {}};
    c.req.tags = {"t", "empty"};
    c.req.custom_properties = {{"taskGroup", "tasks2"}};
    c.found.by_tag = {{"t", {task_a(), task_b()}}, {"empty", {}}};
    c.found.by_custom_property = {{{"taskGroup", "tasks2"}, {task_c()}}};
    cases.push_back(c);
  }
  {
    plan_case c{"a tag or custom property not allowed is denied whole",
                {},
                filter_on({id_a}, {"ok"}, {{"taskGroup", "tasks2"}}),
                {},
                strings{id_c},
                {},
                {},
                {},
                strings{ref(task_c())},
                strings{"bad"},
                {},
                strings{"taskGroup=tasks1"}};
    c.req.tags = {"bad", "ok", "bad"};
    c.req.custom_properties = {{"taskGroup", "tasks1"}, {"taskGroup", "tasks1"}};
    // Lookup data for the denied ones must not matter.
    c.found.by_tag = {{"bad", {task_a()}}, {"ok", {task_c()}}};
    c.found.by_custom_property = {{{"taskGroup", "tasks1"}, {task_a()}}};
    cases.push_back(c);
  }
  {
    plan_case c{"a tag missing from the lookups starts nothing",
                {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}};
    c.req.tags = {"never-looked-up"};
    c.req.custom_properties = {{"n", "v"}};
    cases.push_back(c);
  }
  // Duplicates and case.
  {
    plan_case c{"a task reached by id and tag starts once, reported twice",
                ids({id_a, upper(id_a)}),
                {},
                found_ids({task_a()}),
                strings{id_a},
                strings{ref(task_a())},
                {},
                {},
                strings{ref(task_a())},
                {},
                strings{ref(task_a())},
                {}};
    c.req.tags = {"startTask1", "other"};
    c.req.custom_properties = {{"taskGroup", "tasks1"}};
    c.found.by_tag = {{"startTask1", {task_a()}}, {"other", {task_a()}}};
    c.found.by_custom_property = {{{"taskGroup", "tasks1"}, {task_a()}}};
    cases.push_back(c);
  }
  cases.push_back({"ids keep their case in reports, QRS's in the start",
                   ids({upper(id_a), upper(id_unknown)}), {},
                   found_ids({task_a()}), strings{id_a},
                   strings{upper(id_a) + "/" + task_a().name},
                   strings{upper(id_unknown)}, {}, {}, {}, {}, {}});
  cases.push_back({"a repeated invalid or denied id is reported once",
                   ids({"abc", "abc", id_b, upper(id_b)}),
                   filter_on({}, {}, {}), found_ids({task_b()}), {}, {},
                   strings{"abc"}, strings{id_b}, {}, {}, {}, {}});
  return cases;
}

} // namespace

TEST(qrs_api, plans_starts_by_butlers_rules) {
  for (auto& c : plan_cases()) {
    SCOPED_TRACE(c.name);
    auto plan = plan_start(c.req, c.filter, c.found);
    EXPECT_EQ(plan.to_start, c.to_start);
    EXPECT_EQ(refs(plan.result.started), c.started);
    EXPECT_EQ(plan.result.invalid, c.invalid);
    EXPECT_EQ(plan.result.denied, c.denied);
    EXPECT_EQ(refs(plan.result.by_tag), c.by_tag);
    EXPECT_EQ(plan.result.tags_denied, c.tags_denied);
    EXPECT_EQ(refs(plan.result.by_custom_property), c.by_cp);
    EXPECT_EQ(pairs(plan.result.custom_properties_denied), c.cps_denied);
  }
}

TEST(qrs_api, renders_the_start_result_as_butlers_reply) {
  start_result res;
  res.started = {{id_a, "Reload of Sales"}};
  res.invalid = {"abc"};
  res.denied = {id_b};
  res.by_tag = {{id_c, "Reload of Stock"}};
  res.tags_denied = {"startTask_invalid1"};
  res.by_custom_property = {{id_c, "Reload of Stock"}};
  res.custom_properties_denied = {{"taskGroup", "cp_value_denied1"}};
  auto expected = json::parse(R"({
    "tasksId": {
      "started": [{"taskId": ")" + id_a + R"(", "taskName": "Reload of Sales"}],
      "invalid": [{"taskId": "abc"}],
      "denied": [{"taskId": ")" + id_b + R"("}]},
    "tasksTag": [{"taskId": ")" + id_c + R"(", "taskName": "Reload of Stock"}],
    "tasksTagDenied": [{"tag": "startTask_invalid1"}],
    "tasksCP": [{"taskId": ")" + id_c + R"(", "taskName": "Reload of Stock"}],
    "tasksCPDenied": [{"name": "taskGroup", "value": "cp_value_denied1"}]})");
  EXPECT_EQ(json::parse(start_result_json(res)), expected);
  auto empty = json::parse(start_result_json({}));
  EXPECT_EQ(empty["tasksId"]["started"], json::array());
  EXPECT_EQ(empty["tasksCPDenied"], json::array());
  // Invalid UTF-8 from a request does not throw.
  start_result bad;
  bad.invalid = {"\xFF\xFE"};
  EXPECT_FALSE(start_result_json(bad).empty());
}
