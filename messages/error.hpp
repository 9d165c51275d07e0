#pragma once

// Butler's error codes as CAF errors. Handlers reply with
// caf::make_error(ec::..., "text"); http_ingress maps each code to one HTTP
// status (net/rest_api).

#include "messages/error_code.hpp"

#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include <string>

namespace butler {

/// Returns the human-readable text carried by a Butler error (its first string
/// context element), or a rendering of the error otherwise.
std::string error_text(const caf::error& err);

} // namespace butler

CAF_ERROR_CODE_ENUM(butler::ec, "butler")
