#pragma once

// Turns a validated butler_config into a running actor system: the CAF
// config (scheduler threads, message types, error rendering) and the
// supervisor with the children that config enables.

#include "config/butler_config.hpp"
#include "messages/actors.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <string>

namespace butler {

/// CAF settings for Butler: worker threads from Butler.runtime, Butler's
/// message types and error category.
class butler_system_config : public caf::actor_system_config {
public:
  explicit butler_system_config(const butler_config& cfg);
};

/// Returns the MQTT client id: Butler.mqttConfig.clientId, or
/// "butler-<hostname>-<pid>" so that two instances never share one.
std::string mqtt_client_id(const mqtt_config& cfg);

/// Creates the shared resources (the MQTT client), spawns the supervisor and,
/// through it, every actor the config enables.
supervisor_actor start_service(caf::actor_system& sys, const butler_config& cfg);

} // namespace butler
