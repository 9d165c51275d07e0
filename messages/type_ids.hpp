#pragma once

// CAF type IDs for Butler's message types, loaded once by
// add_message_types<caf::id_block::butler_types>() in the actor system
// config. Types that carry callbacks (http_call) are local-only and stay out.

#include "messages/atoms.hpp"
#include "messages/events.hpp"
#include "messages/replies.hpp"
#include "messages/requests.hpp"

#include <caf/type_id.hpp>

CAF_BEGIN_TYPE_ID_BLOCK(butler_types, caf::first_custom_type_id)
  CAF_ADD_TYPE_ID(butler_types, (butler::mqtt_publish_request))
  CAF_ADD_TYPE_ID(butler_types, (butler::mqtt_inbound))
  CAF_ADD_TYPE_ID(butler_types, (butler::mqtt_connection_changed))
  CAF_ADD_TYPE_ID(butler_types, (butler::peer_up))
  CAF_ADD_TYPE_ID(butler_types, (butler::mqtt_link_status))
  CAF_ADD_TYPE_ID(butler_types, (butler::child_status))
  CAF_ADD_TYPE_ID(butler_types, (butler::supervisor_status))
CAF_END_TYPE_ID_BLOCK(butler_types)
