#include "actors/udp_ingest.hpp"

#include "actors/actor_common.hpp"
#include "net/metrics.hpp"
#include "net/expiring_set.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>

namespace butler {

namespace {

using self_ptr = udp_ingest_actor::stateful_pointer<udp_ingest_state>;

constexpr auto shed_log_interval = std::chrono::seconds{10};
/// How often a summary of the counters is logged (only when they moved).
constexpr auto report_interval = std::chrono::seconds{60};

/// Returns the numeric addresses of `name` (an IP literal or a host name).
std::vector<std::string> resolve(const std::string& name) {
  std::vector<std::string> result;
  addrinfo hints{};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(name.c_str(), nullptr, &hints, &found) != 0) {
    spdlog::error("udp-ingest cannot resolve allowed source {}; it is left "
                  "out of the allow-list",
                  name);
    return result;
  }
  for (auto* ai = found; ai != nullptr; ai = ai->ai_next) {
    char host[NI_MAXHOST];
    if (::getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), nullptr,
                      0, NI_NUMERICHOST)
        == 0)
      result.emplace_back(host);
  }
  ::freeaddrinfo(found);
  return result;
}

/// Publishes "start" or "error" on both server status topics.
void announce(self_ptr self) {
  auto& st = self->state;
  if (!st.mqtt_cfg.enable || !st.mqtt)
    return;
  std::string state = st.receiver ? "start" : "error";
  self->send(st.mqtt,
             std::vector<mqtt_publish_request>{
               {st.mqtt_cfg.task_failure_server_status_topic, state, -1, false,
                "udp-status"},
               {st.mqtt_cfg.session_server_status_topic, state, -1, false,
                "udp-status"}});
}

void forward(self_ptr self, event_batch batch) {
  auto& st = self->state;
  if (st.router)
    self->send(st.router, std::move(batch));
  else
    st.waiting.push_back(std::move(batch));
}

void check_drain(self_ptr self) {
  auto& st = self->state;
  auto in_flight = st.ctx->in_flight.load();
  auto outcome = st.drain.settle(self, in_flight);
  if (outcome == drain_gate::expired)
    spdlog::warn("{} gives up waiting for {} events in flight", self->name(),
                 in_flight);
}

/// Collected events are handed on at this many, or after the linger time.
constexpr std::size_t flush_batch = 256;
constexpr auto linger = std::chrono::milliseconds{1};

/// Hands the pending events on as one event_batch, shedding what does not
/// fit in the in-flight limit (drop-newest). Runs on the receive thread, or
/// on the actor after that thread stopped.
void send_pending(ingest_context& ctx, const caf::weak_actor_ptr& ingest,
                  std::shared_ptr<ingest_context> owner,
                  std::chrono::steady_clock::time_point now) {
  if (ctx.pending.empty())
    return;
  auto events = std::make_shared<std::vector<log_event>>();
  events->swap(ctx.pending);
  ctx.pending.reserve(flush_batch);
  auto in_flight = ctx.in_flight.load(std::memory_order_relaxed);
  auto room = in_flight >= static_cast<std::int64_t>(ctx.in_flight_limit)
                ? std::size_t{0}
                : ctx.in_flight_limit - static_cast<std::size_t>(in_flight);
  if (events->size() > room) {
    auto shed = events->size() - room;
    auto total = ctx.shed.fetch_add(shed, std::memory_order_relaxed) + shed;
    events->resize(room);
    if (now - ctx.last_shed_log >= shed_log_interval) {
      spdlog::warn("udp-ingest shed {} events in the last {} s: {} events "
                   "in flight is the limit (messageQueue.maxSize)",
                   total - ctx.shed_at_last_log,
                   std::chrono::duration_cast<std::chrono::seconds>(
                     shed_log_interval)
                     .count(),
                   ctx.in_flight_limit);
      ctx.last_shed_log = now;
      ctx.shed_at_last_log = total;
    }
    if (events->empty())
      return;
  }
  auto count = static_cast<std::int64_t>(events->size());
  ctx.in_flight.fetch_add(count, std::memory_order_relaxed);
  // Released by the last sink that holds the batch.
  std::shared_ptr<const void> permit{nullptr, [owner, count](const void*) {
                                       owner->in_flight.fetch_sub(
                                         count, std::memory_order_relaxed);
                                     }};
  if (auto strong = ingest.lock())
    caf::anon_send(caf::actor_cast<udp_ingest_actor>(strong),
                   event_batch{std::move(events), std::move(permit)});
  // Otherwise the actor is going away; the permit returns the places.
}

/// Runs on the receive thread for every batch of datagrams: checks and
/// parses them and collects the accepted events.
net::batch_handler make_handler(std::shared_ptr<ingest_context> ctx,
                                caf::weak_actor_ptr ingest) {
  return [ctx, ingest](std::size_t index, const net::datagram* first,
                       std::size_t n) {
    auto port = index == 0 ? events::port_kind::task : events::port_kind::session;
    auto now = std::chrono::steady_clock::now();
    for (auto* d = first; d != first + n; ++d)
      if (auto ev = ctx->pipeline.process(port, d->data, d->source_ip,
                                          d->source_port, now)) {
        if (ctx->pending.empty())
          ctx->first_pending = now;
        ctx->pending.push_back(std::move(*ev));
      }
    if (ctx->pending.size() >= flush_batch)
      send_pending(*ctx, ingest, ctx, now);
  };
}

/// Runs on the receive thread after each round of receiving and when the
/// linger time passed: hands on what waited long enough; returns whether
/// events are still held.
std::function<bool()> make_flush(std::shared_ptr<ingest_context> ctx,
                                 caf::weak_actor_ptr ingest) {
  return [ctx, ingest] {
    if (ctx->pending.empty())
      return false;
    auto now = std::chrono::steady_clock::now();
    if (now - ctx->first_pending >= linger)
      send_pending(*ctx, ingest, ctx, now);
    return !ctx->pending.empty();
  };
}

/// Returns the counters as the status reply carries them.
udp_ingest_status status_of(const udp_ingest_state& st) {
  udp_ingest_status result;
  result.listening = static_cast<bool>(st.receiver);
  auto stats = st.ctx->pipeline.stats();
  result.received = stats.received;
  result.accepted = stats.accepted;
  for (std::size_t i = 0; i < stats.rejected.size(); ++i)
    if (stats.rejected[i] > 0)
      result.rejected.emplace_back(
        events::to_string(static_cast<events::reject_reason>(i)),
        stats.rejected[i]);
  result.shed = st.ctx->shed.load();
  result.in_flight = static_cast<std::uint64_t>(
    std::max<std::int64_t>(0, st.ctx->in_flight.load()));
  if (st.receiver) {
    result.ports = st.receiver->ports();
    for (auto& s : st.receiver->stats())
      result.kernel_drops += s.kernel_drops;
  }
  return result;
}

/// Returns the counters as /metrics shows them.
metric_set metrics_of(const udp_ingest_state& st) {
  using metrics::counter;
  using metrics::gauge;
  auto stats = st.ctx->pipeline.stats();
  auto s = status_of(st);
  metric_set out;
  out.samples = {
    counter("butler_udp_datagrams_received_total",
            "Datagrams received on the log-event ports", stats.received),
    counter("butler_udp_datagrams_accepted_total",
            "Datagrams accepted as log events", stats.accepted),
    counter("butler_udp_events_shed_total",
            "Accepted events dropped because the events in flight reached "
            "udpServerConfig.messageQueue.maxSize",
            s.shed),
    counter("butler_udp_kernel_drops_total",
            "Datagrams the kernel dropped because a socket buffer was full",
            s.kernel_drops),
    gauge("butler_udp_events_in_flight",
          "Accepted events not yet handed to every sink", s.in_flight),
    gauge("butler_udp_listening", "1 while the UDP sockets are bound",
          s.listening ? 1 : 0)};
  for (std::size_t i = 0; i < stats.rejected.size(); ++i)
    out.samples.push_back(counter(
      "butler_udp_datagrams_rejected_total",
      "Datagrams rejected, by reason (duplicate: deduplicated by execution "
      "id)",
      stats.rejected[i],
      {{"reason",
        events::to_string(static_cast<events::reject_reason>(i))}}));
  return out;
}

/// Logs what the counters did since the last summary: info for traffic,
/// warn when anything was lost (shed, or dropped by the kernel because the
/// socket buffer was full).
void report(self_ptr self) {
  auto& st = self->state;
  auto now = status_of(st);
  auto& was = st.last_report;
  if (now.received == was.received && now.kernel_drops == was.kernel_drops) {
    st.last_report = std::move(now);
    return;
  }
  std::uint64_t rejected = 0;
  for (auto& [reason, count] : now.rejected)
    rejected += count;
  for (auto& [reason, count] : was.rejected)
    rejected -= count;
  auto shed = now.shed - was.shed;
  auto drops = now.kernel_drops - was.kernel_drops;
  if (shed > 0 || drops > 0)
    spdlog::warn("{} in the last {} s: received {}, accepted {}, rejected {}, "
                 "shed {} (in-flight limit), lost {} in the kernel (socket "
                 "buffer full)",
                 self->name(), report_interval.count(),
                 now.received - was.received, now.accepted - was.accepted,
                 rejected, shed, drops);
  else
    spdlog::info("{} in the last {} s: received {}, accepted {}, rejected {}",
                 self->name(), report_interval.count(),
                 now.received - was.received, now.accepted - was.accepted,
                 rejected);
  st.last_report = std::move(now);
}

} // namespace

namespace {

/// Returns the addresses of every allowed source (names resolved).
std::vector<std::string> allowed_addresses(const udp_config& cfg) {
  std::vector<std::string> out;
  for (auto& source : cfg.allowed_sources)
    for (auto& addr : resolve(source))
      out.push_back(addr);
  return out;
}

/// Takes the allow-list and rate limit of a reloaded config. Resolving a
/// host name may block, so it runs in a detached actor of its own.
void take_filters(self_ptr self, const udp_config& cfg) {
  auto ctx = self->state.ctx;
  self->home_system().spawn<caf::detached>([cfg, ctx] {
    auto addresses = allowed_addresses(cfg);
    auto count = addresses.size();
    ctx->pipeline.set_filters(cfg.source_validation, std::move(addresses),
                              cfg.rate_limit_enable,
                              cfg.rate_limit_per_minute);
    spdlog::info("udp-ingest took the reloaded filters: source validation "
                 "{} ({} allowed addresses), rate limit {} ({} per minute)",
                 cfg.source_validation ? "on" : "off", count,
                 cfg.rate_limit_enable ? "on" : "off",
                 cfg.rate_limit_per_minute);
  });
}

} // namespace

std::shared_ptr<ingest_context> make_ingest_context(const udp_config& cfg) {
  events::ingest_options opts;
  opts.max_message_size = cfg.max_message_size;
  opts.source_validation = cfg.source_validation;
  opts.allowed_addresses = allowed_addresses(cfg);
  opts.dedup_enable = cfg.dedup_enable;
  opts.dedup_ttl = cfg.dedup_ttl;
  opts.rate_limit_enable = cfg.rate_limit_enable;
  opts.rate_limit_per_minute = cfg.rate_limit_per_minute;
  std::unique_ptr<expiring_set> dedup;
  if (cfg.dedup_enable)
    dedup = make_memory_expiring_set(cfg.dedup_max_entries);
  return std::make_shared<ingest_context>(std::move(opts), std::move(dedup),
                                          cfg.queue_max_size);
}

udp_ingest_state::~udp_ingest_state() {
  // Joins the receive thread before the handle it sends to goes away.
  if (receiver)
    receiver->stop();
}

udp_ingest_actor::behavior_type
udp_ingest(udp_ingest_actor::stateful_pointer<udp_ingest_state> self,
           udp_config cfg, mqtt_config mqtt_cfg,
           std::shared_ptr<ingest_context> ctx) {
  install_common_handlers(self);
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.mqtt_cfg = std::move(mqtt_cfg);
  st.ctx = std::move(ctx);
  net::udp_receiver_options opts;
  opts.host = st.cfg.host;
  opts.ports = {st.cfg.port_task_failure, st.cfg.port_session_events};
  opts.receive_buffer = st.cfg.receive_buffer;
  // One byte more than allowed, so an oversize datagram is seen as such.
  opts.max_datagram = st.cfg.max_message_size + 1;
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(self);
  opts.flush = make_flush(st.ctx, weak);
  opts.linger = linger;
  st.receiver = net::start_udp_receiver(opts, make_handler(st.ctx, weak),
                                        st.bind_error);
  if (!st.receiver) {
    spdlog::error("{} {}", self->name(), st.bind_error);
    // Stay up long enough to tell MQTT, then fail so the supervisor retries.
    self->delayed_send(self, std::chrono::milliseconds{200}, atom::tick_v);
  } else {
    auto ports = st.receiver->ports();
    spdlog::info("{} receives task events on {}:{} and session events on "
                 "{}:{}",
                 self->name(), st.cfg.host, ports[0], st.cfg.host, ports[1]);
    st.last_report = status_of(st);
    self->delayed_send(self, report_interval, atom::report_v);
  }
  return {
    [=](event_batch& batch) { forward(self, std::move(batch)); },
    [=](atom::status) { return status_of(self->state); },
    [=](atom::metrics) { return metrics_of(self->state); },
    [=](config_ptr& cfg) { take_filters(self, cfg->udp); },
    [=](atom::ready) -> std::string {
      auto& st = self->state;
      return st.receiver ? std::string{} : st.bind_error;
    },
    [=](atom::drain, caf::timespan grace) -> caf::result<bool> {
      auto& st = self->state;
      if (st.drain.pending())
        return caf::make_error(ec::unavailable, "drain already running");
      if (st.receiver) {
        spdlog::info("{} closes its sockets", self->name());
        st.receiver->stop();
        // The receive thread is gone: hand on what it still collected.
        send_pending(*st.ctx, caf::actor_cast<caf::weak_actor_ptr>(self),
                     st.ctx, std::chrono::steady_clock::now());
      }
      auto promise = st.drain.open(self, grace);
      check_drain(self);
      return promise;
    },
    [=](atom::report) {
      report(self);
      self->delayed_send(self, report_interval, atom::report_v);
    },
    [=](atom::tick) {
      auto& st = self->state;
      if (!st.receiver && !st.drain.pending()) {
        self->quit(caf::make_error(ec::unavailable, st.bind_error));
        return;
      }
      check_drain(self);
    },
    [=](peer_up& peer) {
      auto& st = self->state;
      if (peer.name == "event-router") {
        st.router = caf::actor_cast<event_router_actor>(peer.handle);
        while (!st.waiting.empty()) {
          self->send(st.router, std::move(st.waiting.front()));
          st.waiting.pop_front();
        }
      } else if (peer.name == "mqtt-link") {
        st.mqtt = caf::actor_cast<mqtt_link_actor>(peer.handle);
        announce(self);
      }
    },
  };
}

} // namespace butler
