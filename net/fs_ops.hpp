#pragma once

// Filesystem work behind the REST endpoints (createDir, createDirQVD,
// getDiskSpace): plain blocking functions, run by fs_worker on its own
// thread, never on a CAF worker.

#include <cstdint>
#include <string>

namespace butler::fs {

/// The outcome of an operation.
enum class status : uint8_t {
  ok,
  /// The path is missing, empty or malformed.
  invalid,
  /// The path does not exist.
  not_found,
  /// The path leaves its root (after "..", symlinks or an absolute path).
  escapes_root,
  /// The OS refused (permissions, a file in the way, disk full, ...).
  failed,
};

struct result {
  status code = status::ok;
  /// What went wrong, naming the path and the OS error, for the REST reply.
  std::string message;
};

/// Creates `path` and any missing parents (mkdir -p). An existing directory
/// is ok; an existing file is failed.
result create_directories(const std::string& path);

/// Creates `path` below `root` (which must exist): `path` is taken relative to
/// `root`, and the result must stay inside `root` after resolving "..",
/// symlinks and an absolute `path`. Walks component by component with
/// openat/mkdirat and O_NOFOLLOW from a descriptor of `root`, so a symlink
/// swapped in meanwhile cannot lead outside.
result create_directories_under(const std::string& root,
                                const std::string& path);

struct disk_space {
  std::uint64_t available = 0; // bytes an unprivileged user may use
  std::uint64_t free = 0;      // bytes free in total
  std::uint64_t total = 0;     // size of the filesystem
};

/// Reads statvfs for `path`; not_found if it does not exist.
result disk_space_of(const std::string& path, disk_space& out);

} // namespace butler::fs
