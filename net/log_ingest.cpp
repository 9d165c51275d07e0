#include "net/log_ingest.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <mutex>

namespace butler::events {

namespace {

/// Characters of a rejected datagram quoted in its log line.
constexpr std::size_t preview_chars = 120;

/// Returns whether dedup applies: the kinds that carry an execution id.
bool deduplicated(log_event_kind kind) {
  switch (kind) {
    case log_event_kind::reload_failed:
    case log_event_kind::reload_aborted:
    case log_event_kind::reload_success:
    case log_event_kind::distribute:
      return true;
    default:
      return false;
  }
}

/// Returns the first preview_chars characters of `data` for a log line:
/// control characters and bytes that are not well-formed UTF-8 escaped,
/// "..." appended when there is more.
std::string preview(std::string_view data) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string result;
  result.reserve(preview_chars + 16);
  std::size_t chars = 0;
  std::size_t i = 0;
  while (i < data.size() && chars < preview_chars) {
    auto c = static_cast<unsigned char>(data[i]);
    ++chars;
    if (c >= 0x20 && c < 0x7F) {
      result += static_cast<char>(c);
      ++i;
      continue;
    }
    if (c >= 0x80) {
      if (auto len = utf8_sequence_length(data.substr(i)); len > 0) {
        result.append(data.data() + i, len);
        i += len;
        continue;
      }
    }
    switch (c) {
      case '\n': result += "\\n"; break;
      case '\r': result += "\\r"; break;
      case '\t': result += "\\t"; break;
      default:
        result += "\\x";
        result += hex[c >> 4];
        result += hex[c & 0x0F];
    }
    ++i;
  }
  if (i < data.size())
    result += "...";
  return result;
}

/// Returns `ip` without the "::ffff:" of an IPv4-mapped IPv6 address (as a
/// dual-stack socket reports IPv4 senders), otherwise empty.
std::string_view unmapped_ipv4(std::string_view ip) {
  constexpr std::string_view prefix = "::ffff:";
  if (ip.size() <= prefix.size() || ip.find('.') == std::string_view::npos)
    return {};
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if ((ip[i] | 0x20) != prefix[i])
      return {};
  return ip.substr(prefix.size());
}

} // namespace

std::string format_source(std::string_view ip, uint16_t port) {
  char digits[8];
  auto end = std::to_chars(digits, digits + sizeof(digits), port).ptr;
  std::string result;
  bool v6 = ip.find(':') != std::string_view::npos;
  result.reserve(ip.size() + 8);
  if (v6)
    result += '[';
  result += ip;
  if (v6)
    result += ']';
  result += ':';
  result.append(digits, end);
  return result;
}

struct ingest_pipeline::impl {
  impl(ingest_options options, std::unique_ptr<expiring_set> set)
    : opts(std::move(options)), dedup(std::move(set)) {
    if (opts.dedup_enable && !dedup)
      dedup = make_memory_expiring_set(default_dedup_entries);
    for (auto& n : rejected)
      n.store(0, std::memory_order_relaxed);
    set_rate(opts.rate_limit_per_minute);
    units = capacity;
  }

  void set_rate(int per_minute) {
    // Rates above this would overflow the bucket's 64-bit units.
    constexpr std::int64_t max_rate = 50'000'000;
    rate = std::clamp<std::int64_t>(per_minute, 0, max_rate);
    capacity = rate * units_per_token;
    units = std::min(units, capacity);
  }

  /// Takes the filters set_filters() left, if any (on the process() thread).
  void take_new_filters() {
    if (!filters_changed.load(std::memory_order_acquire))
      return;
    std::lock_guard<std::mutex> guard{filters_mtx};
    opts.source_validation = next_filters.source_validation;
    opts.allowed_addresses = std::move(next_filters.allowed_addresses);
    opts.rate_limit_enable = next_filters.rate_limit_enable;
    opts.rate_limit_per_minute = next_filters.rate_limit_per_minute;
    set_rate(opts.rate_limit_per_minute);
    filters_changed.store(false, std::memory_order_release);
  }

  /// Counts a rejection and logs it unless its reason logged a line within
  /// log_interval.
  void reject(reject_reason reason, port_kind port, std::string_view data,
              std::string_view ip, uint16_t source_port,
              std::chrono::steady_clock::time_point now) {
    auto index = static_cast<std::size_t>(reason);
    rejected[index].fetch_add(1, std::memory_order_relaxed);
    auto& t = throttles[index];
    if (t.logged && now - t.last < opts.log_interval) {
      ++t.suppressed;
      return;
    }
    auto source = format_source(ip, source_port);
    const char* port_name = port == port_kind::task ? "task" : "session";
    if (t.suppressed == 0)
      spdlog::warn("udp-ingest rejected a datagram from {} on the {} port: {} "
                   "(\"{}\")",
                   source, port_name, to_string(reason), preview(data));
    else
      spdlog::warn("udp-ingest rejected a datagram from {} on the {} port: {} "
                   "(\"{}\"); {} more {} rejections since the last report "
                   "were not logged",
                   source, port_name, to_string(reason), preview(data),
                   t.suppressed, to_string(reason));
    t.logged = true;
    t.last = now;
    t.suppressed = 0;
  }

  bool allowed(std::string_view ip) const {
    auto v4 = unmapped_ipv4(ip);
    for (const auto& a : opts.allowed_addresses)
      if (a == ip || (!v4.empty() && a == v4))
        return true;
    return false;
  }

  /// Takes a token from the bucket (refilled continuously at
  /// rate_limit_per_minute per minute, holding at most that many). The
  /// bucket counts in 1/60e9 of a token so that a nanosecond refills
  /// exactly `rate` units: integer arithmetic, no rounding drift.
  bool take_token(std::chrono::steady_clock::time_point now) {
    if (!bucket_started) {
      bucket_started = true;
      last_refill = now;
    } else if (now > last_refill) {
      // A minute refills the whole bucket; clamping keeps the product small.
      auto elapsed = std::min<std::chrono::nanoseconds>(now - last_refill,
                                                        std::chrono::minutes{1});
      units = std::min(capacity, units + elapsed.count() * rate);
      last_refill = now;
    }
    if (units < units_per_token)
      return false;
    units -= units_per_token;
    return true;
  }

  struct throttle {
    bool logged = false;
    std::chrono::steady_clock::time_point last;
    std::uint64_t suppressed = 0;
  };

  ingest_options opts;
  std::unique_ptr<expiring_set> dedup;

  // Filters from a config reload, waiting for the process() thread.
  std::mutex filters_mtx;
  ingest_options next_filters;
  std::atomic<bool> filters_changed{false};

  // Read by stats() on other threads.
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> accepted{0};
  std::array<std::atomic<std::uint64_t>, reject_reason_count> rejected;

  // Owned by the thread that calls process().
  std::uint64_t next_id = 1;
  static constexpr std::int64_t units_per_token = 60'000'000'000;
  std::int64_t rate = 0;
  std::int64_t capacity = 0;
  std::int64_t units = 0;
  bool bucket_started = false;
  std::chrono::steady_clock::time_point last_refill;
  std::array<throttle, reject_reason_count> throttles;
  std::string dedup_key;
};

ingest_pipeline::ingest_pipeline(ingest_options opts,
                                 std::unique_ptr<expiring_set> dedup)
  : impl_(std::make_shared<impl>(std::move(opts), std::move(dedup))) {
  // nop
}

std::optional<log_event>
ingest_pipeline::process(port_kind port, std::string_view data,
                         std::string_view source_ip, uint16_t source_port,
                         std::chrono::steady_clock::time_point now) {
  auto& d = *impl_;
  d.take_new_filters();
  d.received.fetch_add(1, std::memory_order_relaxed);
  auto fail = [&](reject_reason reason) {
    d.reject(reason, port, data, source_ip, source_port, now);
    return std::nullopt;
  };
  if (d.opts.source_validation && !d.allowed(source_ip))
    return fail(reject_reason::source_not_allowed);
  auto result = port == port_kind::task
                  ? parse_task_datagram(data, d.opts.max_message_size)
                  : parse_session_datagram(data, d.opts.max_message_size);
  if (!result.ok)
    return fail(result.reason);
  auto& ev = result.event;
  if (d.opts.dedup_enable && deduplicated(ev.kind)) {
    d.dedup_key.assign(to_string(ev.kind));
    d.dedup_key += ':';
    d.dedup_key += ev.execution_id;
    if (d.dedup->seen(d.dedup_key, d.opts.dedup_ttl, now))
      return fail(reject_reason::duplicate);
  }
  if (d.opts.rate_limit_enable && !d.take_token(now))
    return fail(reject_reason::rate_limited);
  ev.id = d.next_id++;
  ev.source = format_source(source_ip, source_port);
  d.accepted.fetch_add(1, std::memory_order_relaxed);
  return std::move(ev);
}

void ingest_pipeline::set_filters(bool source_validation,
                                  std::vector<std::string> allowed_addresses,
                                  bool rate_limit_enable,
                                  int rate_limit_per_minute) {
  auto& d = *impl_;
  std::lock_guard<std::mutex> guard{d.filters_mtx};
  d.next_filters.source_validation = source_validation;
  d.next_filters.allowed_addresses = std::move(allowed_addresses);
  d.next_filters.rate_limit_enable = rate_limit_enable;
  d.next_filters.rate_limit_per_minute = rate_limit_per_minute;
  d.filters_changed.store(true, std::memory_order_release);
}

ingest_stats ingest_pipeline::stats() const {
  ingest_stats result;
  result.received = impl_->received.load(std::memory_order_relaxed);
  result.accepted = impl_->accepted.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < reject_reason_count; ++i)
    result.rejected[i] = impl_->rejected[i].load(std::memory_order_relaxed);
  return result;
}

} // namespace butler::events
