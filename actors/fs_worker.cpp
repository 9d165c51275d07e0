#include "actors/fs_worker.hpp"

#include "actors/actor_common.hpp"
#include "net/fs_ops.hpp"

#include <caf/event_based_actor.hpp>

namespace butler {

namespace {

/// Maps a failed filesystem result to the Butler error the REST API renders.
caf::error to_error(const fs::result& res) {
  switch (res.code) {
    case fs::status::invalid:
      return caf::make_error(ec::invalid_argument, res.message);
    case fs::status::not_found:
      return caf::make_error(ec::not_found, res.message);
    case fs::status::escapes_root:
      return caf::make_error(ec::path_escape, res.message);
    default:
      return caf::make_error(ec::internal, res.message);
  }
}

} // namespace

fs_worker_actor::behavior_type
fs_worker(fs_worker_actor::stateful_pointer<fs_worker_state> self,
          std::string qvd_path) {
  install_common_handlers(self);
  self->state.qvd_path = std::move(qvd_path);
  return {
    [=](create_dir_request& req) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      fs::result res;
      if (req.under_qvd_root) {
        if (st.qvd_path.empty())
          return caf::make_error(ec::unavailable,
                                 "no QVD root configured "
                                 "(Butler.configDirectories.qvdPath)");
        res = fs::create_directories_under(st.qvd_path, req.directory);
      } else {
        res = fs::create_directories(req.directory);
      }
      if (res.code != fs::status::ok) {
        ++st.refused;
        spdlog::warn("{} refused {} for {}: {}", self->name(), req.event_id,
                     req.directory, res.message);
        return to_error(res);
      }
      ++st.created;
      spdlog::info("{} created {}{} for {}", self->name(),
                   req.under_qvd_root ? st.qvd_path + "/" : std::string{},
                   req.directory, req.event_id);
      return caf::ok_atom::value;
    },
    [=](disk_space_request& req) -> caf::result<disk_space_reply> {
      fs::disk_space space;
      auto res = fs::disk_space_of(req.path, space);
      if (res.code != fs::status::ok) {
        spdlog::debug("{} cannot read disk space for {}: {}", self->name(),
                      req.event_id, res.message);
        return to_error(res);
      }
      return disk_space_reply{req.path, space.available, space.free,
                              space.total};
    },
    [=](atom::drain, caf::timespan) { return true; },
    [=](peer_up&) {
      // fs_worker needs no peers.
    },
  };
}

} // namespace butler
