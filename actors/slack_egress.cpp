#include "actors/slack_egress.hpp"

#include "actors/actor_common.hpp"
#include "net/metrics.hpp"
#include "net/event_format.hpp"
#include "net/slack_format.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace butler {

namespace {

using self_ptr = slack_egress_actor::stateful_pointer<slack_egress_state>;
using time_point = caf::actor_clock::time_point;

/// Posts running at once (the HTTP client allows at least as many).
constexpr std::size_t max_concurrent = slack_max_concurrent;
/// Keys the per-task rate limit remembers.
constexpr std::size_t rate_limit_keys = 100'000;

std::string read_file(const std::string& path, std::string& problem) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    problem = "cannot read " + path;
    return {};
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// Returns the Retry-After header in seconds, or -1 (only the delta-seconds
/// form; Slack sends that).
long retry_after_of(const http::outbound_response& res) {
  auto value = res.header("retry-after");
  if (value.empty())
    return -1;
  try {
    auto seconds = std::stol(value);
    return seconds >= 0 ? seconds : -1;
  } catch (...) {
    return -1;
  }
}

void schedule_tick(self_ptr self, time_point when) {
  auto& st = self->state;
  if (when >= st.tick_at)
    return;
  st.tick_at = when;
  auto delay = when - self->clock().now();
  if (delay < caf::timespan::zero())
    delay = caf::timespan::zero();
  self->delayed_send(self, std::chrono::duration_cast<caf::timespan>(delay),
                     atom::tick_v);
}

void submit(self_ptr self, slack_job job) {
  auto& st = self->state;
  http::outbound_request req;
  req.method = "POST";
  req.url = job.url;
  req.headers = {{"Content-Type", "application/json; charset=utf-8"}};
  req.body = job.body;
  req.timeout = st.cfg.request_timeout;
  req.at_most_once = true;
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(self);
  auto id = job.id;
  ++job.attempts;
  auto accepted = st.http->submit(
    std::move(req), [weak, id](http::outbound_response res) {
      if (auto strong = weak.lock())
        caf::anon_send(caf::actor_cast<slack_egress_actor>(strong),
                       post_outcome{id, res.status, retry_after_of(res),
                                    res.request_sent, res.error,
                                    res.body.substr(0, 200)});
    });
  if (!accepted) {
    // The client is full or stopping: try again shortly.
    --job.attempts;
    auto when = self->clock().now() + std::chrono::milliseconds{100};
    st.waiting.emplace(when, std::move(job));
    schedule_tick(self, when);
    return;
  }
  st.in_flight.emplace(id, std::move(job));
}

/// Starts due jobs while there is room.
void pump(self_ptr self) {
  auto& st = self->state;
  auto now = self->clock().now();
  while (!st.waiting.empty() && st.waiting.begin()->first <= now) {
    st.ready.push_back(std::move(st.waiting.begin()->second));
    st.waiting.erase(st.waiting.begin());
  }
  while (st.in_flight.size() < max_concurrent && !st.ready.empty()) {
    auto job = std::move(st.ready.front());
    st.ready.pop_front();
    auto paused = st.paused.find(job.url);
    if (paused != st.paused.end()) {
      if (paused->second > now) {
        st.waiting.emplace(paused->second, std::move(job));
        continue;
      }
      st.paused.erase(paused);
    }
    submit(self, std::move(job));
  }
  if (!st.waiting.empty())
    schedule_tick(self, st.waiting.begin()->first);
}

/// Queues a post; sheds it when the backlog is full.
void enqueue(self_ptr self, slack_job job) {
  auto& st = self->state;
  if (st.held() >= st.cfg.backlog_size) {
    ++st.shed;
    if (st.shed % 100 == 1)
      spdlog::warn("{} shed {}: the Slack backlog is full ({} held, {} shed "
                   "so far)",
                   self->name(), job.what, st.held(), st.shed);
    if (job.promise.pending())
      job.promise.deliver(caf::make_error(
        ec::backlog_full, "Slack backlog is full ("
                            + std::to_string(st.held())
                            + " messages waiting); message not accepted"));
    return;
  }
  job.id = ++st.next_job;
  ++st.queued;
  st.ready.push_back(std::move(job));
  pump(self);
}

/// Schedules another attempt of `job`, or gives up after maxAttempts.
void retry(self_ptr self, slack_job job, long retry_after,
           const std::string& why) {
  auto& st = self->state;
  if (job.attempts >= st.cfg.max_attempts) {
    ++st.failed;
    spdlog::error("{} gave up on {} after {} attempts: {}", self->name(),
                  job.what, job.attempts, why);
    if (job.promise.pending())
      job.promise.deliver(caf::make_error(
        ec::unavailable, "Slack did not take the message after "
                           + std::to_string(job.attempts)
                           + " attempts: " + why));
    return;
  }
  auto delay = st.cfg.retry_min;
  for (int i = 1; i < job.attempts && delay < st.cfg.retry_max; ++i)
    delay *= 2;
  delay = std::min(delay, st.cfg.retry_max);
  if (retry_after >= 0)
    delay = std::max<std::chrono::milliseconds>(
      delay, std::chrono::seconds{retry_after});
  ++st.retried;
  spdlog::warn("{} retries {} in {} ms (attempt {} of {}): {}", self->name(),
               job.what, delay.count(), job.attempts + 1, st.cfg.max_attempts,
               why);
  auto when = self->clock().now() + delay;
  st.waiting.emplace(when, std::move(job));
  schedule_tick(self, when);
}

void on_outcome(self_ptr self, const post_outcome& out) {
  auto& st = self->state;
  auto i = st.in_flight.find(out.job);
  if (i == st.in_flight.end())
    return;
  auto job = std::move(i->second);
  st.in_flight.erase(i);
  if (out.status >= 200 && out.status < 300) {
    ++st.posted;
    spdlog::info("{} posted {} to Slack", self->name(), job.what);
    if (job.promise.pending())
      job.promise.deliver(caf::ok_atom::value);
  } else if (out.status == 429) {
    auto pause = std::chrono::seconds{out.retry_after >= 0 ? out.retry_after
                                                            : 1};
    st.paused[job.url] = self->clock().now() + pause;
    retry(self, std::move(job), out.retry_after,
          "Slack answered 429 (rate limited)");
  } else if (out.status >= 500) {
    retry(self, std::move(job), out.retry_after,
          "Slack answered " + std::to_string(out.status));
  } else if (out.status == 0 && !out.request_sent) {
    retry(self, std::move(job), -1, out.error);
  } else if (out.status == 0) {
    // The post may have reached Slack: a retry could post it twice.
    ++st.unknown_outcome;
    spdlog::error("{} does not know whether {} reached Slack ({}); not "
                  "retrying, so it is never posted twice",
                  self->name(), job.what, out.error);
    if (job.promise.pending())
      job.promise.deliver(caf::make_error(
        ec::timeout, "Slack did not answer (" + out.error
                       + "); the message may or may not have been posted"));
  } else {
    ++st.failed;
    spdlog::error("{} could not post {}: Slack answered {} {}", self->name(),
                  job.what, out.status, out.body);
    if (job.promise.pending())
      job.promise.deliver(caf::make_error(
        ec::internal, "Slack refused the message: " + std::to_string(out.status)
                        + " " + out.body));
  }
  pump(self);
}

/// Returns the rate-limit key of an event for one channel.
std::string rate_key(const char* channel, const log_event& ev) {
  return std::string{channel} + ":"
         + (ev.task_id.empty() ? ev.task_name : ev.task_id);
}

/// Queues the notification for a failed or aborted reload.
void notify_reload(self_ptr self, const log_event& ev, const char* channel_name,
                   const slack_channel_config& channel,
                   const std::string& template_text) {
  auto& st = self->state;
  if (!st.recent->take(rate_key(channel_name, ev), channel.rate_limit,
                       std::chrono::steady_clock::now())) {
    ++st.rate_limited;
    spdlog::info("{} skips e{} for task {}: rate limit of {} s per task",
                 self->name(), ev.id, ev.task_name,
                 std::chrono::duration_cast<std::chrono::seconds>(
                   channel.rate_limit)
                   .count());
    return;
  }
  auto msg = slack::render_event(ev, channel, template_text);
  if (!msg.problem.empty()) {
    ++st.template_fallbacks;
    spdlog::warn("{} sends a plain message for e{}: {}", self->name(), ev.id,
                 msg.problem);
  }
  slack_job job;
  job.what = "e" + std::to_string(ev.id);
  job.url = channel.webhook_url;
  job.body = std::move(msg.body);
  enqueue(self, std::move(job));
}

void handle_event(self_ptr self, const log_event& ev) {
  auto& st = self->state;
  auto& cfg = st.cfg;
  switch (ev.kind) {
    case log_event_kind::reload_failed:
      if (cfg.enable && cfg.reload_task_failure.enable)
        notify_reload(self, ev, "failure", cfg.reload_task_failure,
                      st.failure_template);
      return;
    case log_event_kind::reload_aborted:
      if (cfg.enable && cfg.reload_task_aborted.enable)
        notify_reload(self, ev, "aborted", cfg.reload_task_aborted,
                      st.aborted_template);
      return;
    case log_event_kind::task_failure_legacy:
      if (!cfg.seed_webhook_url.empty() && !cfg.task_failure_channel.empty()) {
        slack_job job;
        job.what = "e" + std::to_string(ev.id);
        job.url = cfg.seed_webhook_url;
        job.body = slack::seed_task_failure_body(ev, cfg.task_failure_channel);
        enqueue(self, std::move(job));
      }
      return;
    case log_event_kind::session_start:
    case log_event_kind::session_stop:
    case log_event_kind::connection_open:
    case log_event_kind::connection_close:
      if (!cfg.seed_webhook_url.empty()
          && !cfg.login_notification_channel.empty()) {
        slack_job job;
        job.what = "e" + std::to_string(ev.id);
        job.url = cfg.seed_webhook_url;
        job.body = slack::seed_audit_body(ev, cfg.login_notification_channel);
        enqueue(self, std::move(job));
      }
      return;
    default:
      return;
  }
}

void check_drain(self_ptr self) {
  auto& st = self->state;
  auto held = st.held();
  auto outcome = st.drain.settle(self, held);
  if (outcome == drain_gate::expired)
    spdlog::warn("{} stops with {} Slack posts not delivered", self->name(),
                 held);
}

/// Loads a formatted channel's template file; an unreadable one leaves the
/// channel on its plain fallback message.
std::string load_template(self_ptr self, const slack_channel_config& ch) {
  if (ch.message_type != "formatted" || ch.template_file.empty())
    return {};
  std::string problem;
  auto text = read_file(ch.template_file, problem);
  if (!problem.empty())
    spdlog::error("{} {}; notifications fall back to plain messages",
                  self->name(), problem);
  return text;
}

/// Returns the counters as the status reply carries them.
counters_status status_of(const slack_egress_state& st) {
  return counters_status{{{"queued", st.queued},
                          {"posted", st.posted},
                          {"retried", st.retried},
                          {"failed", st.failed},
                          {"unknown_outcome", st.unknown_outcome},
                          {"shed", st.shed},
                          {"rate_limited", st.rate_limited},
                          {"template_fallbacks", st.template_fallbacks},
                          {"held", st.held()}}};
}

/// How the counters appear in /metrics.
const std::vector<metrics::counter_map> metric_table{
  {"queued", "butler_slack_messages_queued_total",
   "Slack messages taken for posting",
   false, {}},
  {"posted", "butler_slack_posts_total",
   "Slack messages by outcome",
   false, {{"outcome", "posted"}}},
  {"failed", "butler_slack_posts_total",
   "Slack messages by outcome",
   false, {{"outcome", "failed"}}},
  {"unknown_outcome", "butler_slack_posts_total",
   "Slack messages by outcome",
   false, {{"outcome", "unknown"}}},
  {"shed", "butler_slack_posts_total",
   "Slack messages by outcome",
   false, {{"outcome", "shed"}}},
  {"rate_limited", "butler_slack_posts_total",
   "Slack messages by outcome",
   false, {{"outcome", "rate_limited"}}},
  {"retried", "butler_slack_retries_total",
   "Slack posts tried again after a network error, 5xx or 429",
   false, {}},
  {"template_fallbacks", "butler_slack_template_fallbacks_total",
   "Slack messages sent as plain text because the template failed",
   false, {}},
  {"held", "butler_slack_backlog_messages",
   "Slack messages waiting to be posted",
   true, {}},
};

} // namespace

slack_egress_actor::behavior_type
slack_egress(slack_egress_actor::stateful_pointer<slack_egress_state> self,
             slack_config cfg, std::shared_ptr<http::client> http) {
  install_common_handlers(self);
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.failure_template = load_template(self, st.cfg.reload_task_failure);
  st.aborted_template = load_template(self, st.cfg.reload_task_aborted);
  st.http = std::move(http);
  st.recent = make_memory_expiring_set(rate_limit_keys);
  return {
    [=](const event_batch& batch) {
      for (auto& ev : *batch.events)
        handle_event(self, ev);
    },
    [=](slack_post_request& req) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      auto url = !st.cfg.rest_webhook_url.empty() ? st.cfg.rest_webhook_url
                                                   : st.cfg.seed_webhook_url;
      if (url.empty())
        return caf::make_error(
          ec::unavailable, "no Slack webhook is configured "
                           "(Butler.slackNotification.restMessage.webhookURL)");
      slack_job job;
      job.what = req.event_id;
      job.url = url;
      job.body = slack::message_body(req.channel, req.text, req.from_user,
                                     req.emoji);
      job.promise = self->make_response_promise<caf::ok_atom>();
      auto promise = job.promise;
      enqueue(self, std::move(job));
      return promise;
    },
    [=](config_ptr& cfg) {
      auto& st = self->state;
      // backlogSize is not live: the reloaded config carries the running one.
      st.cfg = cfg->slack;
      st.failure_template = load_template(self, st.cfg.reload_task_failure);
      st.aborted_template = load_template(self, st.cfg.reload_task_aborted);
      spdlog::info("{} took the reloaded notification settings",
                   self->name());
    },
    [=](post_outcome& out) { on_outcome(self, out); },
    [=](atom::status) { return status_of(self->state); },
    [=](atom::metrics) {
      return metrics::from_counters(status_of(self->state), metric_table);
    },
    [=](atom::drain, caf::timespan grace) -> caf::result<bool> {
      auto& st = self->state;
      if (st.drain.pending())
        return caf::make_error(ec::unavailable, "drain already running");
      // One last attempt for everything waiting on a back-off.
      while (!st.waiting.empty()) {
        st.ready.push_back(std::move(st.waiting.begin()->second));
        st.waiting.erase(st.waiting.begin());
      }
      st.paused.clear();
      pump(self);
      auto promise = st.drain.open(self, grace);
      check_drain(self);
      return promise;
    },
    [=](atom::tick) {
      auto& st = self->state;
      st.tick_at = time_point::max();
      pump(self);
      check_drain(self);
    },
    [=](peer_up&) {
      // slack_egress needs no peers.
    },
  };
}

} // namespace butler
