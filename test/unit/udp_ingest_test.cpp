#include "actors/udp_ingest.hpp"

#include "messages/error.hpp"
#include "test/fakes/fake_mqtt_link.hpp"
#include "test/support/caf_fixture.hpp"
#include "test/support/eventually.hpp"
#include "test/support/log_capture.hpp"

#include <caf/send.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

using namespace butler;
using namespace std::chrono_literals;

namespace {

/// What the stand-in router received; it keeps the batches (and with them
/// their in-flight permits) until the test lets go.
struct router_log {
  std::vector<event_batch> batches;
  std::size_t events() const {
    std::size_t n = 0;
    for (auto& b : batches)
      n += b.events->size();
    return n;
  }
};

event_router_actor::behavior_type fake_router(event_router_actor::pointer,
                                              std::shared_ptr<router_log> log) {
  return {
    [=](const event_batch& batch) { log->batches.push_back(batch); },
    [=](atom::status) { return counters_status{}; },
    [=](atom::metrics) { return metric_set{}; },
    [=](config_ptr&) {},
    [=](atom::drain, caf::timespan) { return true; },
    [=](peer_up&) {},
  };
}

void send_datagram(uint16_t port, const std::string& text) {
  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::sendto(fd, text.data(), text.size(), 0, reinterpret_cast<sockaddr*>(&to),
           sizeof(to));
  ::close(fd);
}

std::string failure(int i) {
  char exec[40];
  std::snprintf(exec, sizeof(exec), "fb0f317d-da91-4b86-aafa-%012d", i);
  return "/scheduler-reload-failed/;sense-node-1;Reload " + std::to_string(i)
         + ";Sales;CORP\\sa;e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e;;"
           "2024-05-01 10:11:12,123;ERROR;"
         + exec + ";Max retries reached";
}

struct udp_ingest_test : test::caf_fixture {
  test::log_capture logs;
  udp_config cfg;
  mqtt_config mqtt_cfg;
  std::shared_ptr<router_log> routed = std::make_shared<router_log>();
  std::shared_ptr<test::fake_link_script> link_script
    = std::make_shared<test::fake_link_script>();
  std::vector<mqtt_publish_request>& publishes = link_script->notes;
  std::shared_ptr<ingest_context> ctx;
  udp_ingest_actor ingest;

  udp_ingest_test() {
    cfg.enable = true;
    cfg.port_task_failure = 0;
    cfg.port_session_events = 0;
    mqtt_cfg.enable = true;
  }

  ~udp_ingest_test() {
    // Its periodic report would keep the test scheduler's final run() going.
    if (ingest)
      caf::anon_send_exit(ingest, caf::exit_reason::kill);
    consume_messages();
  }

  void start() {
    ctx = make_ingest_context(cfg);
    ingest = sys.spawn(udp_ingest, cfg, mqtt_cfg, ctx);
    auto router = sys.spawn(fake_router, routed);
    auto link = sys.spawn(test::fake_mqtt_link, link_script);
    caf::anon_send(ingest,
                   peer_up{"event-router", caf::actor_cast<caf::actor>(router)});
    caf::anon_send(ingest, peer_up{"mqtt-link", caf::actor_cast<caf::actor>(link)});
    consume_messages();
  }

  udp_ingest_status status() {
    return ask<udp_ingest_status>(ingest, atom::status_v);
  }

  /// Lets the actors handle what the receive thread sent until `pred` holds.
  template <class Pred>
  bool until(Pred pred) {
    return test::eventually([&] {
      consume_messages();
      return pred();
    });
  }
};

} // namespace

TEST_F(udp_ingest_test, announces_start_and_forwards_accepted_events) {
  start();
  ASSERT_EQ(publishes.size(), 2u);
  EXPECT_EQ(publishes[0].topic,
            "qliksense/butler/task_failure_server");
  EXPECT_EQ(publishes[0].payload, "start");
  EXPECT_EQ(publishes[1].topic, "qliksense/butler/session_server");
  auto ports = status().ports;
  ASSERT_EQ(ports.size(), 2u);
  send_datagram(ports[0], failure(1));
  send_datagram(ports[1], "sense-node-1;Start session;CORP;anna");
  send_datagram(ports[0], "not a datagram Sense sends");
  ASSERT_TRUE(until([&] { return routed->events() == 2; }));
  auto st = status();
  EXPECT_EQ(st.received, 3u);
  EXPECT_EQ(st.accepted, 2u);
  ASSERT_EQ(st.rejected.size(), 1u);
  EXPECT_EQ(st.rejected[0].first, "field_count");
  EXPECT_EQ(st.in_flight, 2u) << "the router still holds the batches";
  routed->batches.clear();
  EXPECT_EQ(status().in_flight, 0u) << "releasing the batches frees the places";
}

TEST_F(udp_ingest_test, sheds_what_exceeds_the_in_flight_limit_and_reports_it) {
  cfg.queue_max_size = 2;
  start();
  auto port = status().ports[0];
  for (int i = 0; i < 5; ++i)
    send_datagram(port, failure(i));
  ASSERT_TRUE(until([&] { return status().accepted == 5; }));
  ASSERT_TRUE(until([&] { return routed->events() == 2; }));
  auto st = status();
  EXPECT_EQ(st.shed, 3u);
  EXPECT_EQ(st.in_flight, 2u);
  // The periodic summary says what was received and what was lost.
  advance_time(60s);
  consume_messages();
  auto lines = logs.matching("udp-ingest in the last 60 s");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "udp-ingest in the last 60 s: received 5, accepted 5, "
                      "rejected 0, shed 3 (in-flight limit), lost 0 in the "
                      "kernel (socket buffer full)");
  // Nothing moved: no line.
  advance_time(60s);
  consume_messages();
  EXPECT_EQ(logs.matching("udp-ingest in the last 60 s").size(), 1u);
}

TEST_F(udp_ingest_test, a_port_in_use_announces_error_and_fails) {
  // Hold a UDP port so that the actor cannot bind it.
  int holder = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(holder, reinterpret_cast<sockaddr*>(&addr), &len);
  cfg.port_task_failure = ntohs(addr.sin_port);
  start();
  ASSERT_EQ(publishes.size(), 2u);
  EXPECT_EQ(publishes[0].payload, "error");
  EXPECT_FALSE(status().listening);
  EXPECT_EQ(logs.matching("cannot bind UDP").size(), 1u);
  self->monitor(ingest);
  advance_time(200ms);
  consume_messages();
  bool down = false;
  self->receive([&](caf::down_msg& dm) {
    down = true;
    EXPECT_EQ(dm.reason, caf::make_error(ec::unavailable));
  });
  EXPECT_TRUE(down);
  ::close(holder);
}
