#pragma once

// Runs an Asio I/O context on a thread of its own, logging and surviving
// exceptions that escape a handler, so that one bad completion does not end
// the thread that serves every connection.

namespace boost::asio {
class io_context;
} // namespace boost::asio

namespace butler::net_io {

/// Runs `ioc` until it runs out of work. An exception escaping a handler is
/// logged as "`who` i/o thread caught an exception: ..." and the loop
/// resumes.
void run_io(boost::asio::io_context& ioc, const char* who);

} // namespace butler::net_io
