#include "net/expiring_set.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace butler;
using namespace std::chrono_literals;

namespace {

using clock_type = expiring_set::clock;

// Explicit time points: no sleeping, no real clock.
clock_type::time_point at(std::chrono::milliseconds offset) {
  return clock_type::time_point{} + 1h + offset;
}

} // namespace

TEST(expiring_set, seen_records_a_new_key_and_reports_it_within_ttl) {
  auto set = make_memory_expiring_set(10);
  EXPECT_EQ(set->size(), 0u);
  EXPECT_FALSE(set->seen("a", 10s, at(0ms)));
  EXPECT_EQ(set->size(), 1u);
  EXPECT_TRUE(set->seen("a", 10s, at(0ms)));
  EXPECT_TRUE(set->seen("a", 10s, at(5s)));
  // Seeing a key does not record it again: the window counts from the first.
  EXPECT_TRUE(set->seen("a", 10s, at(9999ms)));
  EXPECT_FALSE(set->seen("b", 10s, at(5s)));
  EXPECT_EQ(set->size(), 2u);
  EXPECT_EQ(set->evictions(), 0u);
}

TEST(expiring_set, keys_are_copied) {
  auto set = make_memory_expiring_set(10);
  {
    std::string key = "reload_failed:fb0f317d-da91-4b86-aafa-0174ae1e8c8f";
    EXPECT_FALSE(set->seen(key, 10s, at(0ms)));
    key.assign(key.size(), 'x');
  }
  EXPECT_TRUE(set->seen("reload_failed:fb0f317d-da91-4b86-aafa-0174ae1e8c8f",
                        10s, at(1s)));
  EXPECT_FALSE(set->seen(std::string(51, 'x'), 10s, at(1s)));
}

TEST(expiring_set, expires_a_key_exactly_at_its_ttl) {
  auto set = make_memory_expiring_set(10);
  EXPECT_FALSE(set->seen("a", 10s, at(0ms)));
  EXPECT_TRUE(set->seen("a", 10s, at(9999ms)));
  // At exactly ttl after it was recorded the key is new again ...
  EXPECT_FALSE(set->seen("a", 10s, at(10000ms)));
  // ... and recorded anew at that time.
  EXPECT_TRUE(set->seen("a", 10s, at(19999ms)));
  EXPECT_FALSE(set->seen("a", 10s, at(20000ms)));
  EXPECT_EQ(set->size(), 1u);
}

TEST(expiring_set, drops_expired_keys_as_time_passes) {
  auto set = make_memory_expiring_set(10);
  EXPECT_FALSE(set->seen("a", 10s, at(0s)));
  EXPECT_FALSE(set->seen("b", 10s, at(1s)));
  EXPECT_FALSE(set->seen("c", 10s, at(2s)));
  EXPECT_EQ(set->size(), 3u);
  // At 11 s "a" and "b" have expired; any call drops them.
  EXPECT_FALSE(set->seen("d", 10s, at(11s)));
  EXPECT_EQ(set->size(), 2u);
  EXPECT_TRUE(set->seen("c", 10s, at(11s)));
  EXPECT_FALSE(set->seen("b", 10s, at(11s)));
  EXPECT_EQ(set->size(), 3u);
  EXPECT_EQ(set->evictions(), 0u);
}

TEST(expiring_set, take_is_the_negation_of_seen) {
  auto set = make_memory_expiring_set(10);
  EXPECT_TRUE(set->take("task-1", 30s, at(0s)));
  EXPECT_FALSE(set->take("task-1", 30s, at(10s)));
  EXPECT_FALSE(set->take("task-1", 30s, at(29999ms)));
  EXPECT_TRUE(set->take("task-1", 30s, at(30s)));
  EXPECT_TRUE(set->take("task-2", 30s, at(30s)));
  EXPECT_FALSE(set->take("task-2", 30s, at(31s)));
}

TEST(expiring_set, evicts_the_oldest_key_when_full) {
  auto set = make_memory_expiring_set(3);
  EXPECT_FALSE(set->seen("a", 1min, at(0s)));
  EXPECT_FALSE(set->seen("b", 1min, at(1s)));
  EXPECT_FALSE(set->seen("c", 1min, at(2s)));
  EXPECT_EQ(set->size(), 3u);
  EXPECT_EQ(set->evictions(), 0u);
  // "d" pushes out "a", the oldest.
  EXPECT_FALSE(set->seen("d", 1min, at(3s)));
  EXPECT_EQ(set->size(), 3u);
  EXPECT_EQ(set->evictions(), 1u);
  EXPECT_TRUE(set->seen("b", 1min, at(4s)));
  EXPECT_TRUE(set->seen("c", 1min, at(4s)));
  EXPECT_TRUE(set->seen("d", 1min, at(4s)));
  // "a" is new again, and pushes out "b".
  EXPECT_FALSE(set->seen("a", 1min, at(5s)));
  EXPECT_EQ(set->evictions(), 2u);
  EXPECT_FALSE(set->seen("b", 1min, at(6s)));
  EXPECT_EQ(set->evictions(), 3u);
  EXPECT_EQ(set->size(), 3u);
}

TEST(expiring_set, expiry_frees_room_without_evicting) {
  auto set = make_memory_expiring_set(2);
  EXPECT_FALSE(set->seen("a", 10s, at(0s)));
  EXPECT_FALSE(set->seen("b", 10s, at(1s)));
  EXPECT_FALSE(set->seen("c", 10s, at(10s))); // "a" expired at 10 s
  EXPECT_EQ(set->evictions(), 0u);
  EXPECT_TRUE(set->seen("b", 10s, at(10s)));
  EXPECT_EQ(set->size(), 2u);
}

TEST(expiring_set, evicts_in_record_order_after_a_key_is_recorded_anew) {
  auto set = make_memory_expiring_set(2);
  // A long ttl for "long" keeps the FIFO front busy while "a" is recorded
  // anew under a shorter ttl; the stale slot must not evict the new record.
  EXPECT_FALSE(set->seen("long", 1h, at(0s)));
  EXPECT_FALSE(set->seen("a", 1s, at(1s)));
  EXPECT_FALSE(set->seen("a", 1s, at(3s))); // expired, recorded anew
  EXPECT_EQ(set->size(), 2u);
  EXPECT_TRUE(set->seen("a", 1s, at(3500ms)));
  // Full: the oldest record is "long".
  EXPECT_FALSE(set->seen("b", 1h, at(3600ms)));
  EXPECT_EQ(set->evictions(), 1u);
  EXPECT_FALSE(set->seen("long", 1h, at(3700ms)));
  EXPECT_EQ(set->evictions(), 2u);
}

TEST(expiring_set, holds_at_least_one_key) {
  auto set = make_memory_expiring_set(0);
  EXPECT_FALSE(set->seen("a", 10s, at(0s)));
  EXPECT_TRUE(set->seen("a", 10s, at(1s)));
  EXPECT_FALSE(set->seen("b", 10s, at(1s)));
  EXPECT_EQ(set->size(), 1u);
  EXPECT_EQ(set->evictions(), 1u);
}

TEST(expiring_set, handles_zero_and_huge_ttls) {
  auto set = make_memory_expiring_set(10);
  // A zero ttl never reports a key as seen.
  EXPECT_FALSE(set->seen("z", 0ms, at(0s)));
  EXPECT_FALSE(set->seen("z", 0ms, at(0s)));
  // A ttl that overflows the clock keeps the key.
  auto forever = std::chrono::milliseconds::max();
  EXPECT_FALSE(set->seen("f", forever, at(0s)));
  EXPECT_TRUE(set->seen("f", forever, at(24h * 365)));
}

TEST(expiring_set, stays_bounded_over_many_keys) {
  auto set = make_memory_expiring_set(100);
  for (int i = 0; i < 10000; ++i)
    EXPECT_FALSE(set->seen("key-" + std::to_string(i), 50ms,
                           at(std::chrono::milliseconds{i})));
  // Only the keys of the last 50 ms are held; nothing had to be evicted.
  EXPECT_EQ(set->size(), 50u);
  EXPECT_EQ(set->evictions(), 0u);
  EXPECT_TRUE(set->seen("key-9999", 50ms, at(9999ms)));
  EXPECT_FALSE(set->seen("key-9949", 50ms, at(9999ms)));
}
