#pragma once

// CAF type IDs for Butler's message types, loaded once by
// add_message_types<caf::id_block::butler_types>() in the actor system
// config. Local-only types that carry callbacks or shared pointers (http_call,
// event_batch) stay out.

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
  CAF_ADD_TYPE_ID(butler_types, (butler::log_event))
  CAF_ADD_TYPE_ID(butler_types, (butler::post_outcome))
  CAF_ADD_TYPE_ID(butler_types, (butler::create_dir_request))
  CAF_ADD_TYPE_ID(butler_types, (butler::disk_space_request))
  CAF_ADD_TYPE_ID(butler_types, (butler::slack_post_request))
  CAF_ADD_TYPE_ID(butler_types, (butler::disk_space_reply))
  CAF_ADD_TYPE_ID(butler_types, (butler::active_users))
  CAF_ADD_TYPE_ID(butler_types, (butler::udp_ingest_status))
  CAF_ADD_TYPE_ID(butler_types, (butler::counters_status))
  CAF_ADD_TYPE_ID(butler_types, (butler::task_start_request))
  CAF_ADD_TYPE_ID(butler_types, (butler::app_dump_request))
  CAF_ADD_TYPE_ID(butler_types, (butler::app_reload_request))
  CAF_ADD_TYPE_ID(butler_types, (butler::task_ref))
  CAF_ADD_TYPE_ID(butler_types, (butler::task_start_result))
  CAF_ADD_TYPE_ID(butler_types, (butler::app_list))
  CAF_ADD_TYPE_ID(butler_types, (butler::app_dump))
  CAF_ADD_TYPE_ID(butler_types, (butler::app_reload_result))
  CAF_ADD_TYPE_ID(butler_types, (butler::readiness_check))
  CAF_ADD_TYPE_ID(butler_types, (butler::readiness_report))
  CAF_ADD_TYPE_ID(butler_types, (butler::metric_sample))
  CAF_ADD_TYPE_ID(butler_types, (butler::metric_set))
CAF_END_TYPE_ID_BLOCK(butler_types)
