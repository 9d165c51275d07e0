#pragma once

// "Was this key used within the last ttl?" behind small interfaces, as the
// design asks for dedup (seen) and per-key rate limits (take), so that a
// shared store (e.g. Redis) can replace the in-memory one for several
// instances.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace butler {

/// Remembers keys for a while.
class expiring_set {
public:
  using clock = std::chrono::steady_clock;

  virtual ~expiring_set();

  /// Returns true if `key` was recorded within `ttl` before `now`; otherwise
  /// records it at `now` and returns false. (Dedup: "seen".)
  virtual bool seen(std::string_view key, std::chrono::milliseconds ttl,
                    clock::time_point now)
    = 0;

  /// Returns true, and records `key` at `now`, if it was not recorded within
  /// `ttl`; false otherwise. (Rate limit: "take".)
  bool take(std::string_view key, std::chrono::milliseconds ttl,
            clock::time_point now) {
    return !seen(key, ttl, now);
  }

  /// Number of keys held now.
  virtual std::size_t size() const = 0;

  /// Keys dropped early because the set was full (oldest first).
  virtual std::uint64_t evictions() const = 0;
};

/// An in-memory expiring set of at most `max_entries` keys: expired keys are
/// dropped as time passes; when full, the oldest key goes first (counted in
/// evictions()). Not thread-safe: one owner.
std::unique_ptr<expiring_set> make_memory_expiring_set(std::size_t max_entries);

} // namespace butler
