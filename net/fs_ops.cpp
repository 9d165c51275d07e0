#include "net/fs_ops.hpp"

#include <cerrno>
#include <climits>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace butler::fs {

namespace {

// New directories get 0777 minus the umask, as with `mkdir -p` and Node's
// fs.mkdir, which Butler used.
constexpr mode_t dir_mode = 0777;

/// Owns a file descriptor and closes it on destruction.
class unique_fd {
public:
  explicit unique_fd(int fd = -1) noexcept : fd_(fd) {
    // nop
  }

  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;

  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {
    // nop
  }

  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }

  ~unique_fd() {
    reset();
  }

  int get() const noexcept {
    return fd_;
  }

  explicit operator bool() const noexcept {
    return fd_ >= 0;
  }

private:
  void reset() noexcept {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

  int fd_;
};

/// Returns the OS's text for `err` (thread-safe, unlike strerror).
std::string os_error(int err) {
  return std::generic_category().message(err);
}

bool has_nul(const std::string& str) {
  return str.find('\0') != std::string::npos;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

/// Splits `path` at '/' and drops empty components (from leading, trailing
/// and doubled slashes).
std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t pos = 0;
  while (pos <= path.size()) {
    auto next = path.find('/', pos);
    if (next == std::string_view::npos)
      next = path.size();
    if (next > pos)
      parts.push_back(path.substr(pos, next - pos));
    pos = next + 1;
  }
  return parts;
}

/// Normalises an absolute path lexically into its components. A ".." at "/"
/// stays at "/", as the kernel does.
std::vector<std::string> normalize_absolute(std::string_view path) {
  std::vector<std::string> out;
  for (auto part : split_path(path)) {
    if (part == ".")
      continue;
    if (part == "..") {
      if (!out.empty())
        out.pop_back();
      continue;
    }
    out.emplace_back(part);
  }
  return out;
}

/// Returns `root` as an absolute path (relative to the working directory if
/// it is relative), or an empty string if the working directory is unknown.
std::string absolute_root(const std::string& root) {
  if (!root.empty() && root.front() == '/')
    return root;
  char buf[PATH_MAX];
  if (::getcwd(buf, sizeof(buf)) == nullptr)
    return {};
  return std::string{buf} + "/" + root;
}

result escapes(const std::string& path, const std::string& root,
               const std::string& why = {}) {
  auto msg = "directory \"" + path + "\" leaves the QVD root " + root;
  if (!why.empty())
    msg += ": " + why;
  return {status::escapes_root, std::move(msg)};
}

result under_failed(const std::string& path, const std::string& root,
                    const std::string& where, int err) {
  return {status::failed, "cannot create directory \"" + path
                            + "\" in the QVD root " + root + ": " + where
                            + ": " + os_error(err)};
}

} // namespace

result create_directories(const std::string& path) {
  if (path.empty())
    return {status::invalid, "directory is empty"};
  // The C API would silently cut the path at the NUL.
  if (has_nul(path))
    return {status::invalid, "directory contains a NUL character"};
  auto failed = [&path](int err) {
    return result{status::failed,
                  "cannot create " + path + ": " + os_error(err)};
  };
  // Make each prefix in turn, as `mkdir -p` does. A prefix that fails for a
  // reason other than EEXIST may still exist (e.g. EROFS or EACCES on some
  // filesystems for an existing directory), so check before giving up.
  std::size_t pos = 0;
  while (pos <= path.size()) {
    auto next = path.find('/', pos);
    if (next == std::string::npos)
      next = path.size();
    if (next > pos) {
      auto prefix = path.substr(0, next);
      if (::mkdir(prefix.c_str(), dir_mode) != 0) {
        auto err = errno;
        if (err != EEXIST && !is_directory(prefix))
          return failed(err);
      }
    }
    pos = next + 1;
  }
  // The last component may exist as a file (mkdir said EEXIST).
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return failed(errno);
  if (!S_ISDIR(st.st_mode))
    return failed(ENOTDIR);
  return {};
}

result create_directories_under(const std::string& root,
                                const std::string& path) {
  // -- check the path lexically before touching the filesystem -------------
  if (path.empty())
    return {status::invalid, "directory is empty"};
  if (has_nul(path))
    return {status::invalid, "directory contains a NUL character"};
  if (path.size() > PATH_MAX)
    return {status::invalid, "directory is longer than "
                               + std::to_string(PATH_MAX) + " bytes"};
  for (auto part : split_path(path))
    if (part.size() > NAME_MAX)
      return {status::invalid, "directory \"" + path
                                 + "\" has a component longer than "
                                 + std::to_string(NAME_MAX) + " bytes"};
  if (root.empty())
    return {status::failed, "the QVD root is not set"};
  if (has_nul(root))
    return {status::failed, "the QVD root contains a NUL character"};
  std::vector<std::string> below; // components below root, normalised
  if (path.front() == '/') {
    // An absolute path must name root or something below it.
    auto abs_root = absolute_root(root);
    if (abs_root.empty())
      return {status::failed, "cannot resolve the QVD root " + root + ": "
                                + os_error(errno)};
    auto root_parts = normalize_absolute(abs_root);
    auto parts = normalize_absolute(path);
    if (parts.size() < root_parts.size())
      return escapes(path, root);
    for (std::size_t i = 0; i < root_parts.size(); ++i)
      if (parts[i] != root_parts[i])
        return escapes(path, root);
    below.assign(parts.begin() + root_parts.size(), parts.end());
  } else {
    for (auto part : split_path(path)) {
      if (part == ".")
        continue;
      if (part == "..") {
        if (below.empty())
          return escapes(path, root);
        below.pop_back();
        continue;
      }
      below.emplace_back(part);
    }
  }
  // -- walk from a descriptor of root ----------------------------------------
  unique_fd dir{::open(root.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC)};
  if (!dir)
    return {status::failed,
            "cannot open the QVD root " + root + ": " + os_error(errno)};
  // Opening each component with O_NOFOLLOW relative to its parent's
  // descriptor means no symlink is ever followed, not even one swapped in
  // after mkdirat, so the walk cannot leave root.
  std::string walked;
  for (const auto& name : below) {
    if (!walked.empty())
      walked += '/';
    walked += name;
    auto mkdir_err = 0;
    if (::mkdirat(dir.get(), name.c_str(), dir_mode) != 0)
      mkdir_err = errno;
    unique_fd next{::openat(dir.get(), name.c_str(),
                            O_DIRECTORY | O_NOFOLLOW | O_RDONLY | O_CLOEXEC)};
    if (!next) {
      auto err = errno;
      struct stat st {};
      auto is_link = err == ELOOP
                     || (::fstatat(dir.get(), name.c_str(), &st,
                                   AT_SYMLINK_NOFOLLOW)
                           == 0
                         && S_ISLNK(st.st_mode));
      if (is_link)
        return escapes(path, root,
                       walked + " is a symbolic link, which is refused even "
                                "if it points inside the root");
      // If mkdirat failed for a reason of its own (e.g. EACCES), that is why
      // openat then found nothing.
      if (mkdir_err != 0 && mkdir_err != EEXIST)
        err = mkdir_err;
      return under_failed(path, root, walked, err);
    }
    dir = std::move(next);
  }
  return {};
}

result disk_space_of(const std::string& path, disk_space& out) {
  if (path.empty())
    return {status::invalid, "path is empty"};
  if (has_nul(path))
    return {status::invalid, "path contains a NUL character"};
  struct statvfs vfs {};
  if (::statvfs(path.c_str(), &vfs) != 0) {
    auto err = errno;
    // ENOTDIR: a component of the path is a file, so the path does not exist
    // either.
    if (err == ENOENT || err == ENOTDIR)
      return {status::not_found, "path " + path + " does not exist"};
    return {status::failed,
            "cannot read disk space of " + path + ": " + os_error(err)};
  }
  auto frsize = static_cast<std::uint64_t>(vfs.f_frsize);
  out.available = static_cast<std::uint64_t>(vfs.f_bavail) * frsize;
  out.free = static_cast<std::uint64_t>(vfs.f_bfree) * frsize;
  out.total = static_cast<std::uint64_t>(vfs.f_blocks) * frsize;
  return {};
}

} // namespace butler::fs
