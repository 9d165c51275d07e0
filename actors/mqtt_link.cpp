#include "actors/mqtt_link.hpp"

#include "actors/actor_common.hpp"
#include "net/metrics.hpp"
#include "net/event_format.hpp"
#include "net/mqtt_topic.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <algorithm>

namespace butler {

namespace {

using self_ptr = mqtt_link_actor::stateful_pointer<mqtt_link_state>;

/// Checks a pending drain every few milliseconds.

void check_drain(self_ptr self) {
  auto& st = self->state;
  if (!st.drain.pending())
    return;
  auto held = st.client->stats().backlog;
  switch (st.drain.settle(self, held)) {
    case drain_gate::drained:
      spdlog::info("{} handed its whole backlog to the broker", self->name());
      break;
    case drain_gate::expired:
      spdlog::warn("{} still holds {} messages at the end of the grace "
                   "period",
                   self->name(), held);
      break;
    case drain_gate::waiting: // checked again at the next tick
    case drain_gate::idle:
      break;
  }
}

/// Counts a publish the client refused, with one log line per 1000.
void note_shed(self_ptr self, const std::string& id) {
  auto& st = self->state;
  if (++st.shed % 1000 == 1)
    spdlog::warn("{} shed {}: the MQTT backlog is full ({} shed so far)",
                 self->name(), id, st.shed);
}

} // namespace

mqtt_link_state::~mqtt_link_state() {
  // The client outlives this incarnation; stop it from calling into a handle
  // that is going away.
  if (client)
    client->bind({});
}

mqtt_link_actor::behavior_type
mqtt_link(mqtt_link_actor::stateful_pointer<mqtt_link_state> self,
          std::shared_ptr<mqtt::client> client, mqtt_config cfg) {
  install_common_handlers(self);
  auto& st = self->state;
  st.client = std::move(client);
  st.cfg = std::move(cfg);
  auto initial = st.client->stats();
  st.connected = initial.connected;
  // The client calls these from its own threads: hand over, nothing else.
  // A weak handle, because the client (held by this actor) must not keep the
  // actor alive.
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(self);
  st.client->bind(mqtt::callbacks{
    [weak](std::string topic, std::string payload) {
      if (auto strong = weak.lock())
        caf::anon_send(caf::actor_cast<mqtt_link_actor>(strong),
                       mqtt_inbound{std::move(topic), std::move(payload)});
    },
    [weak](bool connected, std::string detail) {
      if (auto strong = weak.lock())
        caf::anon_send(caf::actor_cast<mqtt_link_actor>(strong),
                       mqtt_connection_changed{connected, std::move(detail)});
    },
  });
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& hs = self->state.handlers;
    hs.erase(std::remove_if(hs.begin(), hs.end(),
                            [&](auto& h) {
                              return h.second.address() == dm.source;
                            }),
             hs.end());
  });
  return {
    [=](mqtt_publish_request& req) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      auto topic = req.topic;
      auto qos = req.qos < 0 ? st.cfg.qos : req.qos;
      auto outcome = st.client->publish(
        mqtt::message{std::move(req.topic), std::move(req.payload), qos,
                      req.retain});
      switch (outcome) {
        case mqtt::publish_result::accepted:
          spdlog::debug("{} holds {} for {}", self->name(), req.event_id, topic);
          return caf::ok_atom::value;
        case mqtt::publish_result::backlog_full: {
          auto stats = st.client->stats();
          // One line per 1000 refusals keeps an overload from flooding the log.
          if (stats.rejected_full % 1000 == 1)
            spdlog::warn("{} refused {} for {}: backlog full ({} held, {} "
                         "refused so far)",
                         self->name(), req.event_id, topic, stats.backlog,
                         stats.rejected_full);
          return caf::make_error(
            ec::backlog_full,
            "MQTT backlog is full (" + std::to_string(stats.backlog)
              + " messages held for the broker); message not accepted");
        }
        case mqtt::publish_result::invalid:
          return caf::make_error(ec::invalid_argument,
                                 "MQTT cannot publish to topic '" + topic
                                   + "' (or with QoS "
                                   + std::to_string(qos) + ")");
        case mqtt::publish_result::stopped:
          break;
      }
      return caf::make_error(ec::unavailable, "MQTT client is stopped");
    },
    [=](std::vector<mqtt_publish_request>& reqs) {
      auto& st = self->state;
      for (auto& req : reqs) {
        auto qos = req.qos < 0 ? st.cfg.qos : req.qos;
        if (st.client->publish(mqtt::message{std::move(req.topic),
                                             std::move(req.payload), qos,
                                             req.retain})
            == mqtt::publish_result::accepted)
          ++st.events_published;
        else
          note_shed(self, req.event_id);
      }
    },
    [=](const event_batch& batch) {
      auto& st = self->state;
      for (auto& ev : *batch.events) {
        st.scratch.clear();
        events::append_mqtt_messages(ev, st.cfg, st.cfg.qos, st.scratch);
        for (auto& msg : st.scratch) {
          if (st.client->publish(std::move(msg))
              == mqtt::publish_result::accepted) {
            ++st.events_published;
            spdlog::trace("{} holds e{} for the broker", self->name(), ev.id);
          } else {
            note_shed(self, "e" + std::to_string(ev.id));
          }
        }
      }
    },
    [=](atom::subscribe, std::string& filter,
        mqtt_inbound_handler_actor& handler) {
      if (!mqtt::valid_filter(filter)) {
        spdlog::error("{} ignores handler for invalid topic filter '{}'", self->name(),
                      filter);
        return;
      }
      auto& hs = self->state.handlers;
      auto i = std::find_if(hs.begin(), hs.end(),
                            [&](auto& h) { return h.first == filter; });
      if (i != hs.end())
        i->second = handler;
      else
        hs.emplace_back(filter, handler);
      self->monitor(handler);
      spdlog::info("{} routes '{}' to a handler", self->name(), filter);
    },
    [=](mqtt_inbound& msg) {
      auto& st = self->state;
      bool claimed = false;
      for (auto& [filter, handler] : st.handlers)
        if (mqtt::topic_matches(filter, msg.topic)) {
          self->send(handler, msg);
          claimed = true;
        }
      if (claimed) {
        ++st.inbound_dispatched;
      } else {
        ++st.inbound_ignored;
        spdlog::trace("{} ignores a message on {}", self->name(), msg.topic);
      }
    },
    [=](mqtt_connection_changed& change) {
      auto& st = self->state;
      st.connected = change.connected;
      st.detail = change.detail;
      if (change.connected)
        spdlog::info("{} is up: {}", self->name(), change.detail);
      else
        spdlog::warn("{} is down: {}; holding {} messages", self->name(),
                     change.detail, st.client->stats().backlog);
    },
    [=](atom::status) -> mqtt_link_status {
      auto& st = self->state;
      auto stats = st.client->stats();
      return mqtt_link_status{stats.connected,       st.detail,
                              stats.published,       stats.rejected_full,
                              stats.connects,        stats.received,
                              st.inbound_dispatched, st.inbound_ignored,
                              stats.backlog,         st.events_published,
                              st.shed};
    },
    [=](atom::metrics) {
      using metrics::counter;
      using metrics::gauge;
      auto& st = self->state;
      auto stats = st.client->stats();
      metric_set out;
      out.samples = {
        gauge("butler_mqtt_connected", "1 while connected to the broker",
              stats.connected ? 1 : 0),
        counter("butler_mqtt_connects_total", "Connections to the broker",
                stats.connects),
        counter("butler_mqtt_connect_failures_total",
                "Connection attempts that failed", stats.connect_failures),
        counter("butler_mqtt_publishes_total",
                "Messages handed to the broker", stats.published),
        counter("butler_mqtt_publish_failures_total",
                "Publishes refused because the backlog was full",
                stats.rejected_full),
        counter("butler_mqtt_events_shed_total",
                "Log-event messages dropped because the backlog was full",
                st.shed),
        gauge("butler_mqtt_backlog_messages",
              "Messages held until the broker takes them", stats.backlog),
        counter("butler_mqtt_received_total", "Messages received",
                stats.received),
        counter("butler_mqtt_inbound_total",
                "Received messages by outcome", st.inbound_dispatched,
                {{"outcome", "dispatched"}}),
        counter("butler_mqtt_inbound_total",
                "Received messages by outcome", st.inbound_ignored,
                {{"outcome", "ignored"}})};
      return out;
    },
    [=](atom::ready) -> std::string {
      auto& st = self->state;
      if (st.client->stats().connected)
        return {};
      return "not connected to the MQTT broker"
             + (st.detail.empty() ? std::string{} : ": " + st.detail);
    },
    [=](atom::drain, caf::timespan grace) -> caf::result<bool> {
      auto promise = self->state.drain.open(self, grace);
      check_drain(self);
      return promise;
    },
    [=](atom::tick) { check_drain(self); },
    [=](peer_up&) {
      // mqtt_link needs no peers: handlers register themselves.
    },
  };
}

} // namespace butler
