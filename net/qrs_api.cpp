#include "net/qrs_api.hpp"

#include "net/log_event_parser.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <random>

namespace butler::qrs {

namespace {

using json = nlohmann::json;

char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

bool is_unreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/// Returns whether `items` holds `id`, ignoring case.
bool contains_id(const std::vector<std::string>& items, std::string_view id) {
  return std::any_of(items.begin(), items.end(),
                     [&](const std::string& x) { return same_id(x, id); });
}

bool contains_ref(const std::vector<task_ref>& items, std::string_view id) {
  return std::any_of(items.begin(), items.end(),
                     [&](const task_ref& x) { return same_id(x.id, id); });
}

template <class T>
bool contains(const std::vector<T>& items, const T& x) {
  return std::find(items.begin(), items.end(), x) != items.end();
}

/// Returns the tasks `found` lists under `key`, or nullptr.
template <class Key>
const std::vector<qrs_task>*
find_tasks(const std::vector<std::pair<Key, std::vector<qrs_task>>>& found,
           const Key& key) {
  for (auto& [k, tasks] : found)
    if (k == key)
      return &tasks;
  return nullptr;
}

/// Reads one task array entry; returns an error message or "".
std::string read_task(const json& entry, std::size_t index, qrs_task& out) {
  auto where = "task " + std::to_string(index);
  if (!entry.is_object())
    return where + " is not an object";
  auto id = entry.find("id");
  if (id == entry.end() || !id->is_string()
      || id->get_ref<const std::string&>().empty())
    return where + " has no id";
  out.id = id->get<std::string>();
  where = "task " + out.id;
  if (auto name = entry.find("name"); name != entry.end() && !name->is_null()) {
    if (!name->is_string())
      return where + " has a name that is not a string";
    out.name = name->get<std::string>();
  }
  if (auto tags = entry.find("tags"); tags != entry.end() && !tags->is_null()) {
    if (!tags->is_array())
      return where + " has tags that are not an array";
    for (auto& tag : *tags) {
      auto name = tag.is_object() ? tag.find("name") : tag.end();
      if (!tag.is_object() || name == tag.end() || !name->is_string())
        return where + " has a tag without a name";
      out.tags.push_back(name->get<std::string>());
    }
  }
  if (auto cps = entry.find("customProperties");
      cps != entry.end() && !cps->is_null()) {
    if (!cps->is_array())
      return where + " has customProperties that are not an array";
    for (auto& cp : *cps) {
      if (!cp.is_object())
        return where + " has a custom property that is not an object";
      auto def = cp.find("definition");
      auto value = cp.find("value");
      if (def == cp.end() || !def->is_object() || !def->contains("name")
          || !(*def)["name"].is_string())
        return where + " has a custom property without a definition name";
      if (value == cp.end() || !value->is_string())
        return where + " has a custom property without a string value";
      out.custom_properties.emplace_back((*def)["name"].get<std::string>(),
                                         value->get<std::string>());
    }
  }
  return {};
}

json refs_json(const std::vector<task_ref>& refs) {
  auto out = json::array();
  for (auto& ref : refs)
    out.push_back({{"taskId", ref.id}, {"taskName", ref.name}});
  return out;
}

} // namespace

// -- requests -----------------------------------------------------------------

std::string make_xrfkey() {
  static constexpr char alphabet[]
    = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  // One generator per thread, seeded once from the OS: a key is a CSRF guard
  // that must differ per call, not a secret, so mt19937 is enough.
  thread_local std::mt19937 gen{std::random_device{}()};
  std::uniform_int_distribution<std::size_t> pick{0, sizeof(alphabet) - 2};
  std::string key(16, ' ');
  for (auto& c : key)
    c = alphabet[pick(gen)];
  return key;
}

std::string url_encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (is_unreserved(c)) {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0x0F];
    }
  }
  return out;
}

std::string authority(const qrs_options& opts) {
  auto host = opts.host;
  if (host.find(':') != std::string::npos && host.front() != '[')
    host = "[" + host + "]";
  return host + ":" + std::to_string(opts.port);
}

http::outbound_request
build_request(const qrs_options& opts, std::string method, std::string path,
              std::vector<std::pair<std::string, std::string>> query,
              std::string body) {
  auto key = make_xrfkey();
  http::outbound_request req;
  req.url = (opts.use_ssl ? "https://" : "http://") + authority(opts) + path
            + "?xrfkey=" + key;
  for (auto& [name, value] : query)
    req.url += "&" + url_encode(name) + "=" + url_encode(value);
  req.headers.emplace_back("X-Qlik-Xrfkey", key);
  for (auto& header : opts.headers)
    req.headers.push_back(header);
  // libcurl labels a POST without a type as a form; QRS takes JSON.
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")
    req.headers.emplace_back("Content-Type", "application/json");
  req.method = std::move(method);
  req.body = std::move(body);
  req.timeout = opts.timeout;
  req.connect_timeout = std::min(req.connect_timeout, opts.timeout);
  req.ca_file = opts.ca_file;
  req.cert_file = opts.client_cert;
  req.key_file = opts.client_key;
  req.verify_peer = opts.verify_peer;
  return req;
}

// -- filters ------------------------------------------------------------------

std::string quote(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'')
      out += '\'';
    out += c;
  }
  out += '\'';
  return out;
}

std::string filter_ids(const std::vector<std::string>& ids) {
  std::string out;
  for (auto& id : ids) {
    if (!out.empty())
      out += " or ";
    out += "id eq " + id;
  }
  return out;
}

std::string filter_tag(std::string_view tag) {
  return "tags.name eq " + quote(tag);
}

std::string filter_custom_property(std::string_view name,
                                   std::string_view value) {
  return "customProperties.definition.name eq " + quote(name)
         + " and customProperties.value eq " + quote(value);
}

// -- replies ------------------------------------------------------------------

std::variant<std::string, parse_error> parse_about(std::string_view body) {
  auto doc = json::parse(body, nullptr, false);
  if (doc.is_discarded())
    return parse_error{"QRS about reply is not JSON"};
  if (!doc.is_object())
    return parse_error{"QRS about reply is not an object"};
  auto version = doc.find("buildVersion");
  if (version == doc.end() || !version->is_string())
    return parse_error{"QRS about reply has no buildVersion"};
  return version->get<std::string>();
}

std::variant<std::vector<qrs_task>, parse_error>
parse_tasks(std::string_view body) {
  auto doc = json::parse(body, nullptr, false);
  if (doc.is_discarded())
    return parse_error{"QRS task list is not JSON"};
  if (!doc.is_array())
    return parse_error{"QRS task list is not an array"};
  std::vector<qrs_task> tasks;
  tasks.reserve(doc.size());
  for (std::size_t i = 0; i < doc.size(); ++i) {
    qrs_task task;
    if (auto problem = read_task(doc[i], i, task); !problem.empty())
      return parse_error{"QRS task list: " + problem};
    tasks.push_back(std::move(task));
  }
  return tasks;
}


bool same_id(std::string_view a, std::string_view b) {
  return a.size() == b.size()
         && std::equal(a.begin(), a.end(), b.begin(),
                       [](char x, char y) { return lower(x) == lower(y); });
}

// -- planning a start ---------------------------------------------------------

bool task_allowed(const start_filter& filter, const qrs_task& task) {
  if (!filter.enable)
    return true;
  if (contains_id(filter.task_ids, task.id))
    return true;
  for (auto& tag : task.tags)
    if (contains(filter.tags, tag))
      return true;
  for (auto& cp : task.custom_properties)
    if (contains(filter.custom_properties, cp))
      return true;
  return false;
}

start_lookups_needed plan_lookups(const start_request& req,
                                  const start_filter& filter) {
  start_lookups_needed out;
  for (auto& id : req.task_ids)
    if (events::is_guid(id) && !contains_id(out.task_ids, id))
      out.task_ids.push_back(id);
  for (auto& tag : req.tags)
    if ((!filter.enable || contains(filter.tags, tag))
        && !contains(out.tags, tag))
      out.tags.push_back(tag);
  for (auto& cp : req.custom_properties)
    if ((!filter.enable || contains(filter.custom_properties, cp))
        && !contains(out.custom_properties, cp))
      out.custom_properties.push_back(cp);
  return out;
}

start_plan plan_start(const start_request& req, const start_filter& filter,
                      const start_lookups& found) {
  start_plan plan;
  auto& res = plan.result;
  auto add_start = [&](const std::string& id) {
    if (!contains_id(plan.to_start, id))
      plan.to_start.push_back(id);
  };
  // Ids: invalid, denied or a candidate; candidates start unless
  // allTaskIdsMustExist and some id was invalid.
  struct candidate {
    task_ref given;
    std::string qrs_id;
  };
  std::vector<candidate> candidates;
  std::vector<std::string> seen;
  for (auto& id : req.task_ids) {
    if (id == "-" || contains_id(seen, id))
      continue;
    seen.push_back(id);
    const qrs_task* task = nullptr;
    if (events::is_guid(id))
      for (auto& t : found.by_id)
        if (same_id(t.id, id)) {
          task = &t;
          break;
        }
    if (task == nullptr)
      res.invalid.push_back(id);
    else if (!task_allowed(filter, *task))
      res.denied.push_back(id);
    else
      candidates.push_back({{id, task->name}, task->id});
  }
  if (!req.all_must_exist || res.invalid.empty()) {
    for (auto& c : candidates) {
      res.started.push_back(c.given);
      add_start(c.qrs_id);
    }
  }
  // Tags and custom properties: all their tasks, or denied as a whole.
  for (auto& tag : req.tags) {
    if (filter.enable && !contains(filter.tags, tag)) {
      if (!contains(res.tags_denied, tag))
        res.tags_denied.push_back(tag);
      continue;
    }
    if (auto* tasks = find_tasks(found.by_tag, tag))
      for (auto& t : *tasks) {
        if (!contains_ref(res.by_tag, t.id))
          res.by_tag.push_back({t.id, t.name});
        add_start(t.id);
      }
  }
  for (auto& cp : req.custom_properties) {
    if (filter.enable && !contains(filter.custom_properties, cp)) {
      if (!contains(res.custom_properties_denied, cp))
        res.custom_properties_denied.push_back(cp);
      continue;
    }
    if (auto* tasks = find_tasks(found.by_custom_property, cp))
      for (auto& t : *tasks) {
        if (!contains_ref(res.by_custom_property, t.id))
          res.by_custom_property.push_back({t.id, t.name});
        add_start(t.id);
      }
  }
  return plan;
}

std::string start_result_json(const start_result& res) {
  auto ids = [](const std::vector<std::string>& items) {
    auto out = json::array();
    for (auto& id : items)
      out.push_back({{"taskId", id}});
    return out;
  };
  auto tags_denied = json::array();
  for (auto& tag : res.tags_denied)
    tags_denied.push_back({{"tag", tag}});
  auto cps_denied = json::array();
  for (auto& [name, value] : res.custom_properties_denied)
    cps_denied.push_back({{"name", name}, {"value", value}});
  json doc{{"tasksId",
            {{"started", refs_json(res.started)},
             {"invalid", ids(res.invalid)},
             {"denied", ids(res.denied)}}},
           {"tasksTag", refs_json(res.by_tag)},
           {"tasksTagDenied", std::move(tags_denied)},
           {"tasksCP", refs_json(res.by_custom_property)},
           {"tasksCPDenied", std::move(cps_denied)}};
  // Replace, not throw, on invalid UTF-8 in a name from a request.
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace butler::qrs
