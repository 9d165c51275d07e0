#include "net/expiring_set.hpp"

#include <deque>
#include <string>
#include <unordered_map>

namespace butler {

expiring_set::~expiring_set() {
  // nop
}

namespace {

/// A hash map key -> time recorded plus a FIFO of records in insertion
/// order. Each call first drops the expired records at the front of the
/// FIFO, so with one ttl per owner (dedup) both stay bounded by what was
/// recorded within the last ttl, at amortised O(1) per call.
class memory_expiring_set final : public expiring_set {
public:
  explicit memory_expiring_set(std::size_t max_entries)
    // A set that holds nothing would make every key new; hold at least one.
    : max_entries_(max_entries == 0 ? 1 : max_entries) {
    // nop
  }

  bool seen(std::string_view key, std::chrono::milliseconds ttl_ms,
            clock::time_point now) override {
    auto ttl = to_clock_duration(ttl_ms);
    drop_expired(now);
    auto i = entries_.find(key);
    if (i != entries_.end()) {
      if (now - i->second.recorded < ttl)
        return true;
      // Expired for this ttl but still held (an earlier record with a longer
      // ttl blocks the FIFO): record it anew; its old FIFO slot goes stale.
      i->second.recorded = now;
      i->second.seq = ++seq_;
      fifo_.push_back({i->first, expiry(now, ttl), seq_});
      return false;
    }
    if (entries_.size() >= max_entries_)
      evict_oldest();
    // The map's key views the string owned by its entry: the heap buffer
    // does not move with the unique_ptr, and lookups need no allocation.
    auto owned = std::make_unique<std::string>(key);
    std::string_view view{*owned};
    auto& e = entries_[view];
    e.key = std::move(owned);
    e.recorded = now;
    e.seq = ++seq_;
    fifo_.push_back({view, expiry(now, ttl), seq_});
    return false;
  }

  std::size_t size() const override {
    return entries_.size();
  }

  std::uint64_t evictions() const override {
    return evictions_;
  }

private:
  struct entry {
    std::unique_ptr<std::string> key;
    clock::time_point recorded;
    /// Matches the FIFO slot that belongs to the current record.
    std::uint64_t seq = 0;
  };

  struct slot {
    std::string_view key;
    clock::time_point expires;
    std::uint64_t seq;
  };

  /// Returns `ttl` in clock ticks, saturated: milliseconds::max() does not
  /// fit in nanoseconds.
  static clock::duration to_clock_duration(std::chrono::milliseconds ttl) {
    constexpr auto limit
      = std::chrono::duration_cast<std::chrono::milliseconds>(
        clock::duration::max());
    if (ttl >= limit)
      return clock::duration::max();
    if (ttl <= -limit)
      return -clock::duration::max();
    return ttl;
  }

  static clock::time_point expiry(clock::time_point now,
                                  clock::duration ttl) {
    if (ttl <= clock::duration::zero())
      return now;
    if (now > clock::time_point::max() - ttl)
      return clock::time_point::max();
    return now + ttl;
  }

  /// Pops the front slot; erases its key if the slot is the key's current
  /// record. A key's stale slots always precede its current one, so no slot
  /// outlives the key it views.
  /// @returns whether a key was erased.
  bool pop_front() {
    const auto& s = fifo_.front();
    bool erased = false;
    auto i = entries_.find(s.key);
    if (i != entries_.end() && i->second.seq == s.seq) {
      entries_.erase(i);
      erased = true;
    }
    fifo_.pop_front();
    return erased;
  }

  void drop_expired(clock::time_point now) {
    while (!fifo_.empty()) {
      const auto& s = fifo_.front();
      auto i = entries_.find(s.key);
      if (i != entries_.end() && i->second.seq == s.seq) {
        if (s.expires > now)
          return;
        entries_.erase(i);
      }
      fifo_.pop_front();
    }
  }

  void evict_oldest() {
    while (!fifo_.empty())
      if (pop_front()) {
        ++evictions_;
        return;
      }
  }

  std::size_t max_entries_;
  std::unordered_map<std::string_view, entry> entries_;
  std::deque<slot> fifo_;
  std::uint64_t seq_ = 0;
  std::uint64_t evictions_ = 0;
};

} // namespace

std::unique_ptr<expiring_set> make_memory_expiring_set(std::size_t max_entries) {
  return std::make_unique<memory_expiring_set>(max_entries);
}

} // namespace butler
