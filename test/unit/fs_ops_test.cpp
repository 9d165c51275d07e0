#include "net/fs_ops.hpp"

#include "test/support/free_port.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <string>

#include <dirent.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace butler;
using fs::status;

namespace {

// The uid and gid of "nobody" on Debian, for checks that need an
// unprivileged process when the tests run as root.
constexpr uid_t nobody_uid = 65534;
constexpr gid_t nobody_gid = 65534;

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_file(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

void write_file(const std::string& path) {
  std::ofstream out{path};
  out << "x";
  ASSERT_TRUE(out.good()) << path;
}

/// Adds every entry below `dir` (without following symlinks) to `out`, as
/// "relative/path:type".
void collect(const std::string& dir, const std::string& rel,
             std::set<std::string>& out) {
  auto* d = ::opendir(dir.c_str());
  if (d == nullptr)
    return;
  while (auto* ent = ::readdir(d)) {
    std::string name = ent->d_name;
    if (name == "." || name == "..")
      continue;
    auto path = dir + "/" + name;
    auto rel_path = rel.empty() ? name : rel + "/" + name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0)
      continue;
    if (S_ISLNK(st.st_mode)) {
      out.insert(rel_path + ":link");
    } else if (S_ISDIR(st.st_mode)) {
      out.insert(rel_path + ":dir");
      collect(path, rel_path, out);
    } else {
      out.insert(rel_path + ":file");
    }
  }
  ::closedir(d);
}

/// Makes every directory below `dir` writable again so that remove_tree can
/// delete it.
void make_writable(const std::string& dir) {
  ::chmod(dir.c_str(), 0755);
  auto* d = ::opendir(dir.c_str());
  if (d == nullptr)
    return;
  while (auto* ent = ::readdir(d)) {
    std::string name = ent->d_name;
    if (name == "." || name == "..")
      continue;
    auto path = dir + "/" + name;
    if (is_dir(path))
      make_writable(path);
  }
  ::closedir(d);
}

/// Runs `fn` in a child process as nobody and returns its result, or nullopt
/// if the child could not drop its privileges.
std::optional<fs::result> run_as_nobody(std::function<fs::result()> fn) {
  int fds[2];
  if (::pipe(fds) != 0)
    return std::nullopt;
  auto pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return std::nullopt;
  }
  if (pid == 0) {
    ::close(fds[0]);
    if (::setgroups(0, nullptr) != 0 || ::setgid(nobody_gid) != 0
        || ::setuid(nobody_uid) != 0)
      ::_exit(2);
    auto res = fn();
    std::string out(1, static_cast<char>(res.code));
    out += res.message;
    auto ok = ::write(fds[1], out.data(), out.size())
              == static_cast<ssize_t>(out.size());
    ::_exit(ok ? 0 : 3);
  }
  ::close(fds[1]);
  std::string in;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof(buf))) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    in.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    // retry
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0 || in.empty())
    return std::nullopt;
  return fs::result{static_cast<status>(in[0]), in.substr(1)};
}

/// Changes the working directory for the lifetime of the object.
class scoped_chdir {
public:
  explicit scoped_chdir(const std::string& dir) {
    char buf[PATH_MAX];
    if (::getcwd(buf, sizeof(buf)) != nullptr)
      old_ = buf;
    ok_ = ::chdir(dir.c_str()) == 0;
  }

  ~scoped_chdir() {
    if (!old_.empty() && ::chdir(old_.c_str()) != 0)
      std::perror("scoped_chdir: chdir back");
  }

  bool ok() const {
    return ok_;
  }

private:
  std::string old_;
  bool ok_ = false;
};

class fs_ops_test : public ::testing::Test {
protected:
  void SetUp() override {
    base_ = test::make_temp_dir("fs_ops_test.");
    root_ = base_ + "/root";
    outside_ = base_ + "/outside";
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(outside_.c_str(), 0755), 0);
  }

  void TearDown() override {
    make_writable(base_);
    test::remove_tree(base_);
    EXPECT_FALSE(exists(base_));
  }

  /// Returns everything below the temp dir, inside and outside root.
  std::set<std::string> snapshot() const {
    std::set<std::string> out;
    collect(base_, "", out);
    return out;
  }

  /// Expects a refusal of `path` below root_ with `code`, and that nothing
  /// was created anywhere (inside root or outside it).
  fs::result expect_refused(const std::string& path, status code) {
    auto before = snapshot();
    auto res = fs::create_directories_under(root_, path);
    EXPECT_EQ(res.code, code) << "path: " << path << ", message: "
                              << res.message;
    EXPECT_FALSE(res.message.empty());
    EXPECT_EQ(snapshot(), before) << "something was created for " << path;
    return res;
  }

  std::string base_;
  std::string root_;
  std::string outside_;
};

// -- create_directories -------------------------------------------------------

TEST_F(fs_ops_test, create_directories_makes_nested_path) {
  auto path = base_ + "/a/b/c";
  auto res = fs::create_directories(path);
  EXPECT_EQ(res.code, status::ok) << res.message;
  EXPECT_TRUE(res.message.empty());
  EXPECT_TRUE(is_dir(base_ + "/a"));
  EXPECT_TRUE(is_dir(base_ + "/a/b"));
  EXPECT_TRUE(is_dir(path));
}

TEST_F(fs_ops_test, create_directories_accepts_existing_directory) {
  EXPECT_EQ(fs::create_directories(base_).code, status::ok);
  auto path = base_ + "/x/y";
  ASSERT_EQ(fs::create_directories(path).code, status::ok);
  write_file(path + "/keep");
  auto res = fs::create_directories(path);
  EXPECT_EQ(res.code, status::ok) << res.message;
  // The existing content is untouched.
  EXPECT_TRUE(is_file(path + "/keep"));
}

TEST_F(fs_ops_test, create_directories_handles_doubled_and_trailing_slashes) {
  auto res = fs::create_directories(base_ + "//d///e/");
  EXPECT_EQ(res.code, status::ok) << res.message;
  EXPECT_TRUE(is_dir(base_ + "/d/e"));
}

TEST_F(fs_ops_test, create_directories_fails_below_a_file) {
  auto file = base_ + "/f";
  write_file(file);
  auto path = file + "/x/y";
  auto res = fs::create_directories(path);
  EXPECT_EQ(res.code, status::failed);
  EXPECT_EQ(res.message, "cannot create " + path + ": Not a directory");
  EXPECT_TRUE(is_file(file));
}

TEST_F(fs_ops_test, create_directories_fails_on_a_file_at_the_end) {
  auto file = base_ + "/f";
  write_file(file);
  auto res = fs::create_directories(file);
  EXPECT_EQ(res.code, status::failed);
  EXPECT_EQ(res.message, "cannot create " + file + ": Not a directory");
  EXPECT_TRUE(is_file(file));
}

TEST_F(fs_ops_test, create_directories_takes_relative_path_from_cwd) {
  scoped_chdir cd{base_};
  ASSERT_TRUE(cd.ok());
  auto res = fs::create_directories("rel/sub");
  EXPECT_EQ(res.code, status::ok) << res.message;
  EXPECT_TRUE(is_dir(base_ + "/rel/sub"));
}

TEST_F(fs_ops_test, create_directories_rejects_empty_path) {
  auto before = snapshot();
  auto res = fs::create_directories("");
  EXPECT_EQ(res.code, status::invalid);
  EXPECT_FALSE(res.message.empty());
  EXPECT_EQ(snapshot(), before);
}

TEST_F(fs_ops_test, create_directories_rejects_nul) {
  auto before = snapshot();
  auto res = fs::create_directories(base_ + "/a" + std::string(1, '\0')
                                    + "b");
  EXPECT_EQ(res.code, status::invalid);
  EXPECT_EQ(res.message, "directory contains a NUL character");
  // Not cut at the NUL either.
  EXPECT_FALSE(exists(base_ + "/a"));
  EXPECT_EQ(snapshot(), before);
}

TEST_F(fs_ops_test, create_directories_fails_on_too_long_component) {
  auto path = base_ + "/" + std::string(NAME_MAX + 1, 'n');
  auto res = fs::create_directories(path);
  EXPECT_EQ(res.code, status::failed);
  EXPECT_EQ(res.message, "cannot create " + path + ": File name too long");
}

TEST_F(fs_ops_test, create_directories_fails_in_read_only_parent) {
  auto ro = base_ + "/ro";
  ASSERT_EQ(::mkdir(ro.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(ro.c_str(), 0555), 0);
  auto path = ro + "/x";
  if (::geteuid() != 0) {
    auto res = fs::create_directories(path);
    EXPECT_EQ(res.code, status::failed);
    EXPECT_EQ(res.message, "cannot create " + path + ": Permission denied");
  } else {
    // Root ignores the mode bits: check as nobody in a child process, and
    // check a failure that holds for root too.
    ASSERT_EQ(::chmod(base_.c_str(), 0755), 0);
    auto res = run_as_nobody([&] { return fs::create_directories(path); });
    ASSERT_TRUE(res.has_value()) << "could not run as nobody";
    EXPECT_EQ(res->code, status::failed);
    EXPECT_EQ(res->message, "cannot create " + path + ": Permission denied");
    write_file(base_ + "/f");
    auto below_file = base_ + "/f/x";
    auto res2 = fs::create_directories(below_file);
    EXPECT_EQ(res2.code, status::failed);
    EXPECT_EQ(res2.message,
              "cannot create " + below_file + ": Not a directory");
  }
  EXPECT_FALSE(exists(path));
}

// -- create_directories_under ------------------------------------------------

TEST_F(fs_ops_test, under_creates_simple_relative_path) {
  auto res = fs::create_directories_under(root_, "a");
  EXPECT_EQ(res.code, status::ok) << res.message;
  EXPECT_TRUE(res.message.empty());
  EXPECT_TRUE(is_dir(root_ + "/a"));
}

TEST_F(fs_ops_test, under_creates_nested_path) {
  auto res = fs::create_directories_under(root_, "a/b/c");
  EXPECT_EQ(res.code, status::ok) << res.message;
  EXPECT_TRUE(is_dir(root_ + "/a/b/c"));
}

TEST_F(fs_ops_test, under_accepts_existing_directory) {
  ASSERT_EQ(fs::create_directories_under(root_, "a/b").code, status::ok);
  write_file(root_ + "/a/b/keep");
  auto before = snapshot();
  auto res = fs::create_directories_under(root_, "a/b");
  EXPECT_EQ(res.code, status::ok) << res.message;
  EXPECT_EQ(snapshot(), before);
  EXPECT_EQ(fs::create_directories_under(root_, ".").code, status::ok);
  EXPECT_EQ(snapshot(), before);
}

TEST_F(fs_ops_test, under_normalises_dot_and_dot_dot_lexically) {
  auto res = fs::create_directories_under(root_, "a/./b/../c");
  EXPECT_EQ(res.code, status::ok) << res.message;
  EXPECT_TRUE(is_dir(root_ + "/a/c"));
  // "b" is cancelled by ".." before anything is made.
  EXPECT_FALSE(exists(root_ + "/a/b"));
}

TEST_F(fs_ops_test, under_refuses_dot_dot_above_root) {
  auto res = expect_refused("../x", status::escapes_root);
  EXPECT_EQ(res.message, "directory \"../x\" leaves the QVD root " + root_);
  EXPECT_FALSE(exists(base_ + "/x"));
}

TEST_F(fs_ops_test, under_refuses_nested_dot_dot_above_root) {
  auto res = expect_refused("a/../../x", status::escapes_root);
  EXPECT_EQ(res.message,
            "directory \"a/../../x\" leaves the QVD root " + root_);
  EXPECT_FALSE(exists(root_ + "/a"));
  EXPECT_FALSE(exists(base_ + "/x"));
  expect_refused("..", status::escapes_root);
  expect_refused("a/b/../../../outside/x", status::escapes_root);
  EXPECT_FALSE(exists(outside_ + "/x"));
}

TEST_F(fs_ops_test, under_accepts_dot_dot_back_to_root) {
  auto before = snapshot();
  auto res = fs::create_directories_under(root_, "a/..");
  EXPECT_EQ(res.code, status::ok) << res.message;
  EXPECT_EQ(snapshot(), before);
}

TEST_F(fs_ops_test, under_accepts_absolute_path_inside_root) {
  auto res = fs::create_directories_under(root_, root_ + "/abs/d");
  EXPECT_EQ(res.code, status::ok) << res.message;
  EXPECT_TRUE(is_dir(root_ + "/abs/d"));
  res = fs::create_directories_under(root_, root_ + "/x/../y");
  EXPECT_EQ(res.code, status::ok) << res.message;
  EXPECT_TRUE(is_dir(root_ + "/y"));
  EXPECT_FALSE(exists(root_ + "/x"));
  // A root written with a trailing slash compares the same.
  res = fs::create_directories_under(root_ + "/", root_ + "/z");
  EXPECT_EQ(res.code, status::ok) << res.message;
  EXPECT_TRUE(is_dir(root_ + "/z"));
}

TEST_F(fs_ops_test, under_accepts_absolute_path_equal_to_root) {
  auto before = snapshot();
  EXPECT_EQ(fs::create_directories_under(root_, root_).code, status::ok);
  EXPECT_EQ(fs::create_directories_under(root_, root_ + "/").code,
            status::ok);
  EXPECT_EQ(snapshot(), before);
}

TEST_F(fs_ops_test, under_refuses_absolute_path_outside_root) {
  auto path = outside_ + "/x";
  auto res = expect_refused(path, status::escapes_root);
  EXPECT_EQ(res.message,
            "directory \"" + path + "\" leaves the QVD root " + root_);
  EXPECT_FALSE(exists(path));
  expect_refused("/", status::escapes_root);
  expect_refused(base_, status::escapes_root);
  // A sibling that shares root's name as a string prefix is outside.
  expect_refused(root_ + "other/x", status::escapes_root);
  EXPECT_FALSE(exists(root_ + "other"));
  expect_refused(root_ + "/../outside/x", status::escapes_root);
  EXPECT_FALSE(exists(path));
}

TEST_F(fs_ops_test, under_refuses_symlink_pointing_outside) {
  ASSERT_EQ(::symlink(outside_.c_str(), (root_ + "/link").c_str()), 0);
  ASSERT_EQ(::mkdir((root_ + "/a").c_str(), 0755), 0);
  ASSERT_EQ(::symlink(outside_.c_str(), (root_ + "/a/link2").c_str()), 0);
  auto res = expect_refused("link/x", status::escapes_root);
  EXPECT_EQ(res.message.rfind("directory \"link/x\" leaves the QVD root "
                              + root_ + ": link is a symbolic link",
                              0),
            0u)
    << res.message;
  expect_refused("link", status::escapes_root);
  expect_refused("link/", status::escapes_root);
  res = expect_refused("a/link2/x/y", status::escapes_root);
  EXPECT_NE(res.message.find("a/link2 is a symbolic link"), std::string::npos)
    << res.message;
  expect_refused(root_ + "/link/x", status::escapes_root);
  // Nothing appeared outside.
  EXPECT_FALSE(exists(outside_ + "/x"));
  std::set<std::string> below_outside;
  collect(outside_, "", below_outside);
  EXPECT_TRUE(below_outside.empty());
}

TEST_F(fs_ops_test, under_refuses_symlink_pointing_inside) {
  ASSERT_EQ(::mkdir((root_ + "/real").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("real", (root_ + "/in").c_str()), 0);
  auto res = expect_refused("in/x", status::escapes_root);
  EXPECT_NE(res.message.find("refused even if it points inside the root"),
            std::string::npos)
    << res.message;
  EXPECT_FALSE(exists(root_ + "/real/x"));
}

TEST_F(fs_ops_test, under_fails_on_file_in_the_way) {
  write_file(root_ + "/f");
  auto res = expect_refused("f/x", status::failed);
  EXPECT_EQ(res.message, "cannot create directory \"f/x\" in the QVD root "
                           + root_ + ": f: Not a directory");
  res = expect_refused("f", status::failed);
  EXPECT_EQ(res.message, "cannot create directory \"f\" in the QVD root "
                           + root_ + ": f: Not a directory");
  EXPECT_TRUE(is_file(root_ + "/f"));
}

TEST_F(fs_ops_test, under_rejects_empty_path) {
  auto res = expect_refused("", status::invalid);
  EXPECT_EQ(res.message, "directory is empty");
}

TEST_F(fs_ops_test, under_rejects_nul_in_name) {
  auto res = expect_refused("a" + std::string(1, '\0') + "b", status::invalid);
  EXPECT_EQ(res.message, "directory contains a NUL character");
  expect_refused("x/" + std::string(1, '\0'), status::invalid);
  expect_refused(std::string(1, '\0'), status::invalid);
}

TEST_F(fs_ops_test, under_rejects_too_long_component) {
  auto res = expect_refused("a/" + std::string(NAME_MAX + 1, 'n'),
                            status::invalid);
  EXPECT_NE(res.message.find("component longer than"), std::string::npos)
    << res.message;
  // Exactly NAME_MAX is fine.
  auto longest = std::string(NAME_MAX, 'n');
  EXPECT_EQ(fs::create_directories_under(root_, longest).code, status::ok);
  EXPECT_TRUE(is_dir(root_ + "/" + longest));
}

TEST_F(fs_ops_test, under_rejects_too_long_path) {
  std::string path;
  while (path.size() <= PATH_MAX)
    path += "abcdefg/";
  expect_refused(path, status::invalid);
}

TEST_F(fs_ops_test, under_fails_when_root_is_missing) {
  auto missing = base_ + "/missing";
  auto before = snapshot();
  auto res = fs::create_directories_under(missing, "x");
  EXPECT_EQ(res.code, status::failed);
  EXPECT_EQ(res.message, "cannot open the QVD root " + missing
                           + ": No such file or directory");
  EXPECT_EQ(snapshot(), before);
}

TEST_F(fs_ops_test, under_fails_when_root_is_a_file) {
  auto file = base_ + "/rootfile";
  write_file(file);
  auto before = snapshot();
  auto res = fs::create_directories_under(file, "x");
  EXPECT_EQ(res.code, status::failed);
  EXPECT_EQ(res.message,
            "cannot open the QVD root " + file + ": Not a directory");
  EXPECT_EQ(snapshot(), before);
}

TEST_F(fs_ops_test, under_fails_when_root_is_empty) {
  auto before = snapshot();
  auto res = fs::create_directories_under("", "x");
  EXPECT_EQ(res.code, status::failed);
  EXPECT_FALSE(res.message.empty());
  EXPECT_EQ(snapshot(), before);
}

TEST_F(fs_ops_test, under_handles_doubled_and_trailing_slashes) {
  auto res = fs::create_directories_under(root_, "a//b///c/");
  EXPECT_EQ(res.code, status::ok) << res.message;
  EXPECT_TRUE(is_dir(root_ + "/a/b/c"));
  res = fs::create_directories_under(root_ + "//", "./d//");
  EXPECT_EQ(res.code, status::ok) << res.message;
  EXPECT_TRUE(is_dir(root_ + "/d"));
}

TEST_F(fs_ops_test, under_accepts_relative_root) {
  scoped_chdir cd{base_};
  ASSERT_TRUE(cd.ok());
  auto res = fs::create_directories_under("root", "x");
  EXPECT_EQ(res.code, status::ok) << res.message;
  EXPECT_TRUE(is_dir(root_ + "/x"));
  // An absolute path is compared with root made absolute.
  res = fs::create_directories_under("root", root_ + "/y");
  EXPECT_EQ(res.code, status::ok) << res.message;
  EXPECT_TRUE(is_dir(root_ + "/y"));
  auto before = snapshot();
  res = fs::create_directories_under("root", outside_ + "/z");
  EXPECT_EQ(res.code, status::escapes_root) << res.message;
  EXPECT_EQ(snapshot(), before);
}

TEST_F(fs_ops_test, under_follows_a_root_that_is_a_symlink) {
  // The root comes from the config, so it may itself be a symlink.
  auto link = base_ + "/rootlink";
  ASSERT_EQ(::symlink(root_.c_str(), link.c_str()), 0);
  auto res = fs::create_directories_under(link, "z");
  EXPECT_EQ(res.code, status::ok) << res.message;
  EXPECT_TRUE(is_dir(root_ + "/z"));
}

TEST_F(fs_ops_test, under_fails_in_read_only_directory) {
  auto ro = root_ + "/ro";
  ASSERT_EQ(::mkdir(ro.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(ro.c_str(), 0555), 0);
  auto expected = "cannot create directory \"ro/x\" in the QVD root " + root_
                  + ": ro/x: Permission denied";
  if (::geteuid() != 0) {
    auto res = expect_refused("ro/x", status::failed);
    EXPECT_EQ(res.message, expected);
  } else {
    // Root ignores the mode bits: check as nobody in a child process.
    ASSERT_EQ(::chmod(base_.c_str(), 0755), 0);
    auto before = snapshot();
    auto res = run_as_nobody(
      [&] { return fs::create_directories_under(root_, "ro/x"); });
    ASSERT_TRUE(res.has_value()) << "could not run as nobody";
    EXPECT_EQ(res->code, status::failed);
    EXPECT_EQ(res->message, expected);
    EXPECT_EQ(snapshot(), before);
  }
}

// -- disk_space_of -----------------------------------------------------------

TEST_F(fs_ops_test, disk_space_of_real_directory) {
  fs::disk_space space;
  auto res = fs::disk_space_of(base_, space);
  ASSERT_EQ(res.code, status::ok) << res.message;
  EXPECT_TRUE(res.message.empty());
  EXPECT_GT(space.total, 0u);
  EXPECT_LE(space.free, space.total);
  EXPECT_LE(space.available, space.free);
  // The size of the filesystem does not change between two calls: check the
  // arithmetic against statvfs itself.
  struct statvfs vfs {};
  ASSERT_EQ(::statvfs(base_.c_str(), &vfs), 0);
  EXPECT_EQ(space.total, static_cast<std::uint64_t>(vfs.f_blocks)
                           * static_cast<std::uint64_t>(vfs.f_frsize));
}

TEST_F(fs_ops_test, disk_space_of_file_path) {
  auto file = base_ + "/f";
  write_file(file);
  fs::disk_space of_dir;
  fs::disk_space of_file;
  ASSERT_EQ(fs::disk_space_of(base_, of_dir).code, status::ok);
  auto res = fs::disk_space_of(file, of_file);
  ASSERT_EQ(res.code, status::ok) << res.message;
  EXPECT_GT(of_file.total, 0u);
  EXPECT_EQ(of_file.total, of_dir.total);
}

TEST_F(fs_ops_test, disk_space_of_missing_path) {
  auto missing = base_ + "/missing";
  fs::disk_space space{1, 2, 3};
  auto res = fs::disk_space_of(missing, space);
  EXPECT_EQ(res.code, status::not_found);
  EXPECT_EQ(res.message, "path " + missing + " does not exist");
  EXPECT_EQ(space.available, 1u);
  EXPECT_EQ(space.free, 2u);
  EXPECT_EQ(space.total, 3u);
}

TEST_F(fs_ops_test, disk_space_of_path_below_a_file) {
  write_file(base_ + "/f");
  auto path = base_ + "/f/x";
  fs::disk_space space;
  auto res = fs::disk_space_of(path, space);
  EXPECT_EQ(res.code, status::not_found);
  EXPECT_EQ(res.message, "path " + path + " does not exist");
}

TEST_F(fs_ops_test, disk_space_of_rejects_empty_and_nul) {
  fs::disk_space space;
  auto res = fs::disk_space_of("", space);
  EXPECT_EQ(res.code, status::invalid);
  EXPECT_EQ(res.message, "path is empty");
  res = fs::disk_space_of(base_ + std::string(1, '\0') + "x", space);
  EXPECT_EQ(res.code, status::invalid);
  EXPECT_EQ(res.message, "path contains a NUL character");
}

TEST_F(fs_ops_test, disk_space_of_fails_without_search_permission) {
  auto closed = base_ + "/closed";
  ASSERT_EQ(::mkdir(closed.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(closed.c_str(), 0), 0);
  auto path = closed + "/x";
  auto expected = "cannot read disk space of " + path + ": Permission denied";
  if (::geteuid() != 0) {
    fs::disk_space space;
    auto res = fs::disk_space_of(path, space);
    EXPECT_EQ(res.code, status::failed);
    EXPECT_EQ(res.message, expected);
  } else {
    // Root ignores the mode bits: check as nobody in a child process.
    ASSERT_EQ(::chmod(base_.c_str(), 0755), 0);
    auto res = run_as_nobody([&] {
      fs::disk_space space;
      return fs::disk_space_of(path, space);
    });
    ASSERT_TRUE(res.has_value()) << "could not run as nobody";
    EXPECT_EQ(res->code, status::failed);
    EXPECT_EQ(res->message, expected);
  }
}

} // namespace
