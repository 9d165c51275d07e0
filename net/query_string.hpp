#pragma once

// Splitting a request target and decoding its query string
// (application/x-www-form-urlencoded, as load scripts send it).

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace butler::http {

/// A request target cut at the first '?'.
struct target_parts {
  std::string_view path;
  std::string_view query;
};

/// Splits `target` into path and query (without the '?').
target_parts split_target(std::string_view target);

/// Decodes %XX escapes, and '+' as a space when `plus_is_space`. Returns
/// nullopt for a malformed escape ("%G1", a trailing "%").
std::optional<std::string> url_decode(std::string_view text,
                                      bool plus_is_space = true);

/// Decoded query parameters in the order given.
class query_params {
public:
  /// Returns the first value of `name`, or nullptr if absent.
  const std::string* find(std::string_view name) const;

  const std::vector<std::pair<std::string, std::string>>& items() const {
    return items_;
  }

  /// Parses "a=1&b=x%20y"; a name without '=' gets an empty value. Returns
  /// nullopt if any name or value has a malformed escape.
  static std::optional<query_params> parse(std::string_view query);

private:
  std::vector<std::pair<std::string, std::string>> items_;
};

} // namespace butler::http
