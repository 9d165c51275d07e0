#pragma once

// Small helpers for tests that run real servers on loopback.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace butler::test {

/// Returns a TCP port on 127.0.0.1 that was free a moment ago (bind to port 0,
/// read it back, close).
uint16_t free_tcp_port();

/// Creates a fresh directory under $TMPDIR (or /tmp) and returns its path.
std::string make_temp_dir(const std::string& prefix);

/// Removes `path` and everything below it; ignores errors.
void remove_tree(const std::string& path);

/// Returns the full path of the program `name` (searched in $PATH, then in
/// /usr/sbin, /usr/bin and /sbin), or an empty string if there is none.
std::string find_program(const std::string& name);

struct command_result {
  /// The exit status, 128 + the signal if it was killed, -1 if it could not
  /// be started.
  int exit_code = -1;
  /// Standard output and standard error, interleaved.
  std::string output;
  /// True if it was killed because it ran past its deadline.
  bool timed_out = false;
};

/// Runs `argv` (argv[0] is looked up with find_program) with stdin from
/// /dev/null, collects its output, and kills it after `timeout`.
command_result run_command(const std::vector<std::string>& argv,
                           std::chrono::milliseconds timeout
                           = std::chrono::seconds{10});

} // namespace butler::test
