#include "net/query_string.hpp"

namespace butler::http {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

} // namespace

target_parts split_target(std::string_view target) {
  auto pos = target.find('?');
  if (pos == std::string_view::npos)
    return {target, {}};
  return {target.substr(0, pos), target.substr(pos + 1)};
}

std::optional<std::string> url_decode(std::string_view text,
                                      bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size())
        return std::nullopt;
      auto hi = hex_value(text[i + 1]);
      auto lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0)
        return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

const std::string* query_params::find(std::string_view name) const {
  for (auto& [key, value] : items_)
    if (key == name)
      return &value;
  return nullptr;
}

std::optional<query_params> query_params::parse(std::string_view query) {
  query_params result;
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{}
                                          : query.substr(amp + 1);
    if (pair.empty())
      continue;
    auto eq = pair.find('=');
    auto name = url_decode(pair.substr(0, eq));
    auto value = url_decode(eq == std::string_view::npos ? std::string_view{}
                                                         : pair.substr(eq + 1));
    if (!name || !value)
      return std::nullopt;
    result.items_.emplace_back(std::move(*name), std::move(*value));
  }
  return result;
}

} // namespace butler::http
