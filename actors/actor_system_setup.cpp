#include "actors/actor_system_setup.hpp"

#include "actors/engine_client.hpp"
#include "actors/event_router.hpp"
#include "actors/fs_worker.hpp"
#include "actors/heartbeat_pinger.hpp"
#include "actors/http_ingress.hpp"
#include "actors/mqtt_link.hpp"
#include "actors/mqtt_task_starter.hpp"
#include "actors/qrs_client.hpp"
#include "actors/session_tracker.hpp"
#include "actors/slack_egress.hpp"
#include "actors/supervisor.hpp"
#include "actors/udp_ingest.hpp"
#include "actors/uptime_monitor.hpp"
#include "messages/error.hpp"
#include "messages/type_ids.hpp"
#include "net/mqtt_client.hpp"
#include "net/systemd_notify.hpp"

#include <caf/message.hpp>

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>

namespace butler {

butler_system_config::butler_system_config(const butler_config& cfg) {
  set("scheduler.max-threads", cfg.runtime.worker_threads);
  set("scheduler.policy", cfg.runtime.scheduler_policy == "stealing"
                            ? caf::atom("stealing")
                            : caf::atom("sharing"));
  add_message_types<caf::id_block::butler_types>();
  add_error_category(caf::atom("butler"), [](uint8_t code, caf::atom_value,
                                             const caf::message& ctx) {
    return "butler::" + to_string(static_cast<ec>(code))
           + (ctx.empty() ? std::string{} : to_string(ctx));
  });
}

std::string mqtt_client_id(const mqtt_config& cfg) {
  if (!cfg.client_id.empty())
    return cfg.client_id;
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0)
    std::snprintf(host, sizeof(host), "unknown");
  return "butler-" + std::string{host} + "-" + std::to_string(::getpid());
}

supervisor_actor start_service(caf::actor_system& sys,
                               const butler_config& cfg) {
  std::vector<child_spec> specs;
  // Start order: resources and sinks first, then the router, ingress last;
  // shutdown runs it backwards, so ingress stops taking work before the
  // router and the sinks drain.
  if (cfg.mqtt.enable) {
    mqtt::client_options opts;
    opts.host = cfg.mqtt.broker_host;
    opts.port = cfg.mqtt.broker_port;
    opts.client_id = mqtt_client_id(cfg.mqtt);
    opts.username = cfg.mqtt.username;
    opts.password = cfg.mqtt.password;
    opts.tls = cfg.mqtt.tls.enable;
    opts.ca_file = cfg.mqtt.tls.ca;
    opts.cert_file = cfg.mqtt.tls.cert;
    opts.key_file = cfg.mqtt.tls.key;
    opts.reconnect_min = cfg.mqtt.reconnect_min;
    opts.reconnect_max = cfg.mqtt.reconnect_max;
    opts.backlog_limit = cfg.mqtt.backlog_size;
    opts.subscriptions = {cfg.mqtt.subscription_root_topic};
    opts.on_connect = mqtt::message{
      cfg.mqtt.status_topic,
      "Connected to MQTT broker " + cfg.mqtt.broker_host + ":"
        + std::to_string(cfg.mqtt.broker_port) + " with client ID "
        + opts.client_id,
      cfg.mqtt.qos, false};
    std::shared_ptr<mqtt::client> client = mqtt::make_paho_client(opts);
    client->start();
    spdlog::info("mqtt-client connects to {}:{} as {}", opts.host, opts.port,
                 opts.client_id);
    auto mqtt_cfg = cfg.mqtt;
    specs.push_back({"mqtt-link", [client, mqtt_cfg](caf::actor_system& sys,
                                  const butler_config&) {
                       return caf::actor_cast<caf::actor>(
                         sys.spawn(mqtt_link, client, mqtt_cfg));
                     }});
  }
  auto& flags = cfg.endpoints;
  if (cfg.rest.enable
      && (flags.enabled("createDir") || flags.enabled("createDirQVD")
          || flags.enabled("getDiskSpace"))) {
    auto qvd_path = cfg.directories.qvd_path;
    specs.push_back({"fs-worker", [qvd_path](caf::actor_system& sys,
                                  const butler_config&) {
                       // Detached: its blocking filesystem calls get their
                       // own thread.
                       return caf::actor_cast<caf::actor>(
                         sys.spawn<caf::detached>(fs_worker, qvd_path));
                     }});
  }
  auto routes = make_routes(cfg);
  bool slack_routed = std::any_of(routes.begin(), routes.end(), [](auto& r) {
    return r.sink == "slack-egress";
  });
  if ((cfg.udp.enable && slack_routed)
      || (cfg.rest.enable && flags.enabled("slackPostMessage"))) {
    http::client_options opts;
    opts.max_pending = cfg.slack.backlog_size + slack_max_concurrent;
    opts.max_concurrent = slack_max_concurrent;
    std::shared_ptr<http::client> client = http::make_curl_client(opts);
    specs.push_back({"slack-egress",
                     [client](caf::actor_system& sys,
                              const butler_config& now) {
                       return caf::actor_cast<caf::actor>(
                         sys.spawn(slack_egress, now.slack, client));
                     },
                     true});
  }
  if (!cfg.qrs.host.empty()) {
    // Its own HTTP client: a slow Slack must not hold up task starts.
    http::client_options opts;
    opts.max_concurrent = 8;
    opts.max_host_connections = 8;
    std::shared_ptr<http::client> client = http::make_curl_client(opts);
    auto qopts = qrs_options_of(cfg);
    specs.push_back({"qrs-client",
                     [client, qopts](caf::actor_system& sys,
                                     const butler_config& now) {
                       return caf::actor_cast<caf::actor>(
                         sys.spawn(qrs_client, qopts, start_filter_of(now),
                                   client));
                     },
                     true});
  }
  if (!cfg.engine.host.empty()) {
    std::shared_ptr<engine::client> client = engine::make_client();
    auto eopts = engine_options_of(cfg);
    specs.push_back({"engine-client", [client, eopts](caf::actor_system& sys,
                                  const butler_config&) {
                       return caf::actor_cast<caf::actor>(
                         sys.spawn(engine_client, eopts, client));
                     }});
  }
  if (cfg.mqtt.enable) {
    task_starter_options opts;
    opts.topic = cfg.mqtt.task_start_topic;
    opts.reply_timeout = cfg.qrs.timeout * 4 + std::chrono::seconds{5};
    specs.push_back({"mqtt-task-starter", [opts](caf::actor_system& sys,
                                  const butler_config&) {
                       return caf::actor_cast<caf::actor>(
                         sys.spawn(mqtt_task_starter, opts));
                     }});
  }
  auto mqtt_cfg = cfg.mqtt;
  specs.push_back({"session-tracker", [mqtt_cfg](caf::actor_system& sys,
                                  const butler_config&) {
                     return caf::actor_cast<caf::actor>(
                       sys.spawn(session_tracker, mqtt_cfg));
                   }});
  if (cfg.udp.enable) {
    specs.push_back({"event-router",
                     [](caf::actor_system& sys, const butler_config& now) {
                       return caf::actor_cast<caf::actor>(
                         sys.spawn(event_router, make_routes(now)));
                     },
                     true});
    auto ctx = make_ingest_context(cfg.udp);
    // The ingest context (and the allow-list and rate limit it holds)
    // outlives restarts; a reload updates it through the actor.
    specs.push_back({"udp-ingest",
                     [mqtt_cfg, ctx](caf::actor_system& sys,
                                     const butler_config& now) {
                       return caf::actor_cast<caf::actor>(
                         sys.spawn(udp_ingest, now.udp, mqtt_cfg, ctx));
                     },
                     true});
  }
  if (cfg.rest.enable) {
    http_ingress_options opts{cfg.rest,        cfg.endpoints,
                              cfg.mqtt.enable, cfg.qrs.timeout,
                              cfg.engine.timeout, cfg.docker_health,
                              cfg.prometheus};
    specs.push_back({"http-ingress", [opts](caf::actor_system& sys,
                                  const butler_config&) {
                       return caf::actor_cast<caf::actor>(
                         sys.spawn(http_ingress, opts));
                     }});
  }
  // Their keys need a restart, so a restarted child keeps the values
  // Butler started with.
  if (cfg.heartbeat.enable) {
    // Its own HTTP client, one GET at a time: a slow monitor holds up nothing
    // else.
    http::client_options opts;
    opts.max_pending = 4;
    opts.max_concurrent = 1;
    opts.max_host_connections = 1;
    std::shared_ptr<http::client> client = http::make_curl_client(opts);
    auto hb_cfg = cfg.heartbeat;
    specs.push_back({"heartbeat-pinger", [hb_cfg, client](caf::actor_system& sys,
                                                          const butler_config&) {
                       return caf::actor_cast<caf::actor>(
                         sys.spawn(heartbeat_pinger, hb_cfg, client));
                     }});
  }
  if (cfg.uptime_monitor.enable) {
    auto um_cfg = cfg.uptime_monitor;
    specs.push_back({"uptime-monitor", [um_cfg](caf::actor_system& sys,
                                                const butler_config&) {
                       return caf::actor_cast<caf::actor>(
                         sys.spawn(uptime_monitor, um_cfg));
                     }});
  }
  service_notifier notifier;
  notifier.send = [](const std::string& state) { systemd::notify(state); };
  notifier.watchdog = systemd::watchdog_period();
  if (notifier.watchdog.count() > 0)
    spdlog::info("supervisor feeds the systemd watchdog (period {} ms)",
                 std::chrono::duration_cast<std::chrono::milliseconds>(
                   notifier.watchdog)
                   .count());
  return sys.spawn(supervisor, std::make_shared<const butler_config>(cfg),
                   std::move(specs), std::move(notifier));
}

} // namespace butler
