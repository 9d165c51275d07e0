#include "net/io_runner.hpp"

#include <boost/asio/io_context.hpp>

#include <spdlog/spdlog.h>

#include <exception>

namespace butler::net_io {

void run_io(boost::asio::io_context& ioc, const char* who) {
  for (;;) {
    try {
      ioc.run();
      return;
    } catch (const std::exception& e) {
      spdlog::error("{} i/o thread caught an exception: {}", who, e.what());
    } catch (...) {
      spdlog::error("{} i/o thread caught an unknown exception", who);
    }
  }
}

} // namespace butler::net_io
