#include "actors/actor_system_setup.hpp"

#include "actors/http_ingress.hpp"
#include "actors/mqtt_link.hpp"
#include "actors/supervisor.hpp"
#include "messages/error.hpp"
#include "messages/type_ids.hpp"
#include "net/mqtt_client.hpp"

#include <caf/message.hpp>

#include <spdlog/spdlog.h>

#include <unistd.h>

namespace butler {

butler_system_config::butler_system_config(const butler_config& cfg) {
  set("scheduler.max-threads", cfg.runtime.worker_threads);
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
  // Start order: resources and sinks first, ingress last; shutdown runs it
  // backwards, so ingress stops taking work before the sinks drain.
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
    auto qos = cfg.mqtt.qos;
    specs.push_back({"mqtt-link", [client, qos](caf::actor_system& sys) {
                       return caf::actor_cast<caf::actor>(
                         sys.spawn(mqtt_link, client, qos));
                     }});
  }
  if (cfg.rest.enable) {
    http_ingress_options opts{cfg.rest, cfg.endpoints, cfg.mqtt.enable};
    specs.push_back({"http-ingress", [opts](caf::actor_system& sys) {
                       return caf::actor_cast<caf::actor>(
                         sys.spawn(http_ingress, opts));
                     }});
  }
  return sys.spawn(supervisor, cfg.supervisor, std::move(specs));
}

} // namespace butler
