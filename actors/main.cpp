// butler: the service's entry point. Reads and validates the config before
// anything starts, sets up logging, runs the actor system, turns SIGHUP into
// a config reload and SIGINT and SIGTERM into an orderly shutdown.

#include "actors/actor_system_setup.hpp"
#include "actors/config_reload.hpp"
#include "config/config_loader.hpp"
#include "config/logging.hpp"
#include "config/version.hpp"
#include "messages/atoms.hpp"
#include "messages/error.hpp"

#include <CLI/CLI.hpp>
#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <pthread.h>

namespace {

/// Prints every warning and error of a config load to stderr.
void print_problems(const butler::load_result& loaded) {
  for (auto& w : loaded.warnings)
    std::cerr << "warning: " << w << "\n";
  for (auto& e : loaded.errors)
    std::cerr << "error: " << e << "\n";
}

/// Blocks the signals butler handles in this thread and every thread started
/// after it; the main thread takes them with sigwait. A second SIGTERM during
/// shutdown therefore waits, instead of killing the process half-way.
sigset_t block_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A peer closing a socket must not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  return set;
}

/// Runs the service until SIGINT or SIGTERM. `cfg` is what it runs with;
/// SIGHUP re-reads `config_file` with `env` and updates what changes live.
int run(butler::butler_config& cfg, const std::string& config_file,
        const butler::environment& env, sigset_t signals) {
  using namespace butler;
  butler_system_config caf_cfg{cfg};
  caf::actor_system sys{caf_cfg};
  supervisor_actor sup;
  try {
    sup = start_service(sys, cfg);
  } catch (const std::exception& e) {
    // Validation catches bad settings first; this is the last line of defence
    // (e.g. a client library refusing an option).
    spdlog::error("butler cannot start: {}", e.what());
    return 1;
  }
  spdlog::info("butler {} is running (pid {})", version(), ::getpid());
  int sig = 0;
  while (true) {
    if (sigwait(&signals, &sig) != 0)
      continue;
    if (sig == SIGHUP) {
      spdlog::info("butler received SIGHUP; reloading {}", config_file);
      auto result = reload_config(config_file, env, cfg);
      bool live = std::any_of(
        result.changes.begin(), result.changes.end(),
        [](const config_change& c) { return c.kind == change_kind::live; });
      if (live)
        caf::anon_send(sup, std::make_shared<const butler_config>(cfg));
      continue;
    }
    break;
  }
  spdlog::info("butler received {}; shutting down", strsignal(sig));
  // Each stage (ingress, then every sink) may take the grace period.
  auto budget = cfg.supervisor.shutdown_grace * 4 + std::chrono::seconds{2};
  int rc = 0;
  {
    caf::scoped_actor self{sys};
    self->request(sup, budget, atom::shutdown_v)
      .receive([](caf::ok_atom) { spdlog::info("butler stopped cleanly"); },
               [&](caf::error& err) {
                 spdlog::error("butler shutdown incomplete: {}",
                               error_text(err));
                 rc = 1;
               });
  }
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  spdlog::default_logger()->flush();
  return rc;
}

} // namespace

int main(int argc, char** argv) {
  // Before any thread exists (the log flusher, CAF, Paho, Beast), so that no
  // thread but main ever takes these signals.
  auto signals = block_signals();
  CLI::App app{"Butler: add-on services for Qlik Sense Enterprise"};
  std::string config_file;
  std::string check_file;
  bool show_version = false;
  app.add_option("-c,--config", config_file, "Run with this YAML config file");
  app.add_option("--check-config", check_file,
                 "Validate this config file, print each problem and exit "
                 "(0 when valid)");
  app.add_flag("-v,--version", show_version, "Print the version and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (show_version) {
    std::cout << "butler " << butler::version() << "\n";
    return 0;
  }
  auto env = butler::process_environment();
  if (!check_file.empty()) {
    auto loaded = butler::load_config_file(check_file, env);
    print_problems(loaded);
    if (!loaded.ok()) {
      std::cerr << check_file << ": " << loaded.errors.size()
                << " problem(s); the config is not valid\n";
      return 1;
    }
    std::cout << check_file << ": config is valid\n";
    return 0;
  }
  if (config_file.empty()) {
    std::cerr << "butler: no config file; use --config FILE (see --help)\n";
    return 2;
  }
  auto loaded = butler::load_config_file(config_file, env);
  if (!loaded.ok()) {
    print_problems(loaded);
    std::cerr << "butler: not starting: " << config_file << " has "
              << loaded.errors.size() << " problem(s)\n";
    return 1;
  }
  auto log_problem = butler::setup_logging(loaded.config.logging);
  spdlog::info("butler {} starting with config {}", butler::version(),
               config_file);
  if (!log_problem.empty())
    spdlog::error("butler {}", log_problem);
  for (auto& w : loaded.warnings)
    spdlog::warn("config {}", w);
  return run(loaded.config, config_file, env, signals);
}
