#include "net/mqtt_topic.hpp"

#include <cstdint>

namespace butler::mqtt {

namespace {

constexpr std::string_view share_prefix = "$share/";

/// Cuts the next level off `rest`; returns false when there is none left.
bool next_level(std::string_view& rest, std::string_view& level, bool& done) {
  if (done)
    return false;
  auto slash = rest.find('/');
  if (slash == std::string_view::npos) {
    level = rest;
    done = true;
  } else {
    level = rest.substr(0, slash);
    rest = rest.substr(slash + 1);
  }
  return true;
}

} // namespace

bool is_mqtt_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == 0)
        return false;
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > text.size())
      return false;
    for (std::size_t k = 1; k < len; ++k) {
      auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80)
        return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800)
        || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))
        || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

std::string check_publish_topic(std::string_view topic) {
  if (topic.empty())
    return "must not be empty";
  if (topic.size() > 65535)
    return "must be at most 65535 bytes";
  if (topic.find_first_of("+#") != std::string_view::npos)
    return "must not contain the MQTT wildcards + or #";
  if (!is_mqtt_utf8(topic))
    return "must be valid UTF-8 without NUL characters";
  if (topic.front() == '$')
    return "must not start with $ (reserved for the broker)";
  return {};
}

std::string_view strip_share(std::string_view filter) {
  if (filter.substr(0, share_prefix.size()) != share_prefix)
    return filter;
  auto rest = filter.substr(share_prefix.size());
  auto slash = rest.find('/');
  return slash == std::string_view::npos ? std::string_view{}
                                         : rest.substr(slash + 1);
}

std::string filter_problem(std::string_view filter) {
  if (filter.empty())
    return "must not be empty";
  if (filter.size() > 65535)
    return "must be at most 65535 bytes";
  if (!is_mqtt_utf8(filter))
    return "must be valid UTF-8 without NUL characters";
  if (filter.substr(0, share_prefix.size()) == share_prefix) {
    auto rest = filter.substr(share_prefix.size());
    auto slash = rest.find('/');
    auto group = rest.substr(0, slash);
    if (group.empty() || group.find_first_of("+#") != std::string_view::npos
        || slash == std::string_view::npos || rest.size() == slash + 1)
      return "expected $share/<group>/<filter> with a group name without + "
             "or #";
    filter = strip_share(filter);
  }
  std::string_view rest = filter;
  std::string_view level;
  bool done = false;
  while (next_level(rest, level, done)) {
    if (level.find('#') != std::string_view::npos && (level != "#" || !done))
      return "# is only allowed as the whole last level of a topic filter";
    if (level.find('+') != std::string_view::npos && level != "+")
      return "+ is only allowed as a whole level of a topic filter";
  }
  return {};
}

bool valid_filter(std::string_view filter) {
  return filter_problem(filter).empty();
}

bool topic_matches(std::string_view filter, std::string_view topic) {
  filter = strip_share(filter);
  if (!topic.empty() && topic.front() == '$' && !filter.empty()
      && (filter.front() == '+' || filter.front() == '#'))
    return false;
  std::string_view frest = filter;
  std::string_view trest = topic;
  std::string_view flevel;
  std::string_view tlevel;
  bool fdone = false;
  bool tdone = false;
  while (next_level(frest, flevel, fdone)) {
    if (flevel == "#")
      return true; // matches the parent level and everything below
    if (!next_level(trest, tlevel, tdone))
      return false;
    if (flevel != "+" && flevel != tlevel)
      return false;
  }
  return tdone || !next_level(trest, tlevel, tdone);
}

} // namespace butler::mqtt
