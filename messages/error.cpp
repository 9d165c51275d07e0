#include "messages/error.hpp"

#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace butler {

std::string to_string(ec code) {
  switch (code) {
    case ec::none: return "none";
    case ec::invalid_argument: return "invalid_argument";
    case ec::not_found: return "not_found";
    case ec::backlog_full: return "backlog_full";
    case ec::unavailable: return "unavailable";
    case ec::timeout: return "timeout";
    case ec::path_escape: return "path_escape";
    case ec::unhandled_exception: return "unhandled_exception";
    case ec::bad_gateway: return "bad_gateway";
    case ec::forbidden: return "forbidden";
    case ec::unprocessable: return "unprocessable";
    case ec::internal: return "internal";
  }
  return "unknown";
}

std::string error_text(const caf::error& err) {
  if (!err)
    return "no error";
  auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  if (err.category() == caf::atom("butler"))
    return to_string(static_cast<ec>(err.code()))
           + (ctx.empty() ? "" : " " + caf::to_string(ctx));
  if (err.category() == caf::atom("system"))
    return caf::to_string(static_cast<caf::sec>(err.code()))
           + (ctx.empty() ? "" : " " + caf::to_string(ctx));
  return caf::to_string(err);
}

} // namespace butler
