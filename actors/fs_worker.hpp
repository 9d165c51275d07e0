#pragma once

// fs_worker owns filesystem access for the REST API: creating directories
// (anywhere, or confined below Butler.configDirectories.qvdPath) and reading
// disk space. Spawned detached, so its blocking calls run on its own thread,
// never on a CAF worker.

#include "messages/actors.hpp"

#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <cstdint>
#include <string>

namespace butler {

struct fs_worker_state {
  static constexpr const char* name = "fs-worker";

  /// Butler.configDirectories.qvdPath; empty when not configured.
  std::string qvd_path;
  std::uint64_t created = 0;
  std::uint64_t refused = 0;
};

/// Serves directory and disk-space requests.
/// @param qvd_path the root for createDirQVD (may be empty).
fs_worker_actor::behavior_type
fs_worker(fs_worker_actor::stateful_pointer<fs_worker_state> self,
          std::string qvd_path);

} // namespace butler
