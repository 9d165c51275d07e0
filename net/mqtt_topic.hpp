#pragma once

// MQTT topic names and filters (MQTT 3.1.1 sections 1.5.3 and 4.7), shared by
// the REST layer, the MQTT client and config validation.

#include <string>
#include <string_view>

namespace butler::mqtt {

/// Returns whether `text` is well-formed UTF-8 without NUL, as MQTT requires
/// of topics (no overlong forms, surrogates or code points past U+10FFFF).
bool is_mqtt_utf8(std::string_view text);

/// Returns an empty string if `topic` can be published to, otherwise why not,
/// phrased to follow "topic ...": empty, a wildcard ('+', '#'), not UTF-8 or
/// a NUL, over 65535 bytes, or a '$' topic reserved for the broker.
std::string check_publish_topic(std::string_view topic);

/// Returns an empty string if `filter` is a valid subscription filter ('#'
/// only as the whole last level, '+' only as a whole level, optionally behind
/// "$share/<group>/"), otherwise why not.
std::string filter_problem(std::string_view filter);

/// Returns whether filter_problem(filter) is empty.
bool valid_filter(std::string_view filter);

/// Returns `filter` without a "$share/<group>/" prefix.
std::string_view strip_share(std::string_view filter);

/// Returns whether `topic` matches the valid `filter` (a shared subscription
/// matches what its inner filter matches). Wildcards at the first level do
/// not match topics that begin with '$'.
bool topic_matches(std::string_view filter, std::string_view topic);

} // namespace butler::mqtt
