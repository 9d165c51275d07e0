#pragma once

// slack_egress owns the Slack incoming webhooks. It turns failed and aborted
// reloads (slackNotification.*), Butler 2 task failures and user audit events
// (slackConfig) and REST messages (slackPostMessage) into posts, and delivers
// them once: a bounded backlog (full: shed and counted), a per-task rate
// limit, retries with exponential back-off on network errors, 5xx and 429
// (honouring Retry-After, per webhook), and no retry when a post may have
// reached Slack without an answer. Posts go through the asynchronous curl
// client, never blocking an actor thread.

#include "config/butler_config.hpp"
#include "actors/drain_gate.hpp"
#include "messages/actors.hpp"
#include "net/curl_client.hpp"
#include "net/expiring_set.hpp"

#include <caf/actor_clock.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

namespace butler {

/// Slack posts in transfer at once.
constexpr std::size_t slack_max_concurrent = 4;

/// One post to make.
struct slack_job {
  std::uint64_t id = 0;
  /// The event or request it is for ("e17", "r5"), for log lines.
  std::string what;
  std::string url;
  std::string body;
  int attempts = 0;
  /// Answered for REST posts once the outcome is known.
  caf::typed_response_promise<caf::ok_atom> promise;
};

struct slack_egress_state {
  static constexpr const char* name = "slack-egress";

  slack_config cfg;
  /// Contents of the templateFile of each formatted channel.
  std::string failure_template;
  std::string aborted_template;
  std::shared_ptr<http::client> http;
  /// Per-task rate limit (rateLimit seconds per task and channel).
  std::unique_ptr<expiring_set> recent;
  std::deque<slack_job> ready;
  /// Jobs waiting for their next attempt, by due time.
  std::multimap<caf::actor_clock::time_point, slack_job> waiting;
  std::map<std::uint64_t, slack_job> in_flight;
  /// Webhooks told to slow down (429), until when.
  std::map<std::string, caf::actor_clock::time_point> paused;
  std::uint64_t next_job = 0;
  /// The earliest time a tick is already scheduled for.
  caf::actor_clock::time_point tick_at = caf::actor_clock::time_point::max();
  // Counters.
  std::uint64_t queued = 0;
  std::uint64_t posted = 0;
  std::uint64_t retried = 0;
  std::uint64_t failed = 0;
  std::uint64_t unknown_outcome = 0;
  std::uint64_t shed = 0;
  std::uint64_t rate_limited = 0;
  std::uint64_t template_fallbacks = 0;
  /// Pending drain: answered when nothing is left or at the deadline.
  drain_gate drain;

  /// Returns how many jobs are held (ready, waiting, in flight).
  std::size_t held() const {
    return ready.size() + waiting.size() + in_flight.size();
  }
};

/// Posts Slack notifications and REST messages.
/// @param cfg Butler.slackNotification and Butler.slackConfig.
/// @param http the outbound HTTP client (started by the caller).
slack_egress_actor::behavior_type
slack_egress(slack_egress_actor::stateful_pointer<slack_egress_state> self,
             slack_config cfg, std::shared_ptr<http::client> http);

} // namespace butler
