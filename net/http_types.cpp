#include "net/http_types.hpp"

#include <nlohmann/json.hpp>

namespace butler::http {

std::string_view request::header(std::string_view name) const {
  for (auto& [key, value] : headers)
    if (key == name)
      return value;
  return {};
}

std::string_view reason(unsigned status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 400 ? "OK" : "Error";
  }
}

response error_response(unsigned status, std::string_view message) {
  // Keys in the order Butler has always sent them.
  nlohmann::ordered_json body{{"statusCode", status},
                      {"error", std::string{reason(status)}},
                      {"message", std::string{message}}};
  response res;
  res.status = status;
  // Invalid UTF-8 in an echoed parameter must not turn a 400 into a throw.
  res.body = body.dump(-1, ' ', false,
                       nlohmann::ordered_json::error_handler_t::replace);
  return res;
}

reply_sink::~reply_sink() {
  // nop
}

responder::responder(std::shared_ptr<reply_sink> sink) : sink_(std::move(sink)) {
  // nop
}

void responder::operator()(response res) const {
  if (sink_)
    sink_->send(std::move(res));
}

} // namespace butler::http
