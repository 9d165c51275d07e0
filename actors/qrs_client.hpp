#pragma once

// qrs_client owns Butler's conversation with the Qlik Repository Service:
// task starts by id, tag and custom property (with Butler.startTaskFilter)
// and the QRS ping. Calls go out on the asynchronous curl client with the
// client certificate and a fresh Xrfkey each; completions come back as
// messages, so no actor thread ever waits on QRS.

#include "config/butler_config.hpp"
#include "actors/drain_gate.hpp"
#include "messages/actors.hpp"
#include "net/curl_client.hpp"
#include "net/qrs_api.hpp"

#include <caf/actor_clock.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace butler {

/// Returns the QRS options for `cfg` (configQRS plus cert).
qrs::qrs_options qrs_options_of(const butler_config& cfg);

/// Returns the start filter for `cfg` (startTaskFilter).
qrs::start_filter start_filter_of(const butler_config& cfg);

struct qrs_client_state {
  static constexpr const char* name = "qrs-client";

  qrs::qrs_options opts;
  qrs::start_filter filter;
  std::shared_ptr<http::client> http;
  std::uint64_t next_op = 0;
  std::map<std::uint64_t, caf::typed_response_promise<task_start_result>>
    starts;
  std::map<std::uint64_t, caf::typed_response_promise<std::string>> pings;
  // Counters.
  std::uint64_t tasks_started = 0;
  std::uint64_t start_calls = 0;
  std::uint64_t failures = 0;
  drain_gate drain;
};

/// Talks to QRS.
/// @param opts host, certificates, headers and timeout.
/// @param filter Butler.startTaskFilter.
/// @param http the outbound HTTP client (started by the caller).
qrs_client_actor::behavior_type
qrs_client(qrs_client_actor::stateful_pointer<qrs_client_state> self,
           qrs::qrs_options opts, qrs::start_filter filter,
           std::shared_ptr<http::client> http);

} // namespace butler
