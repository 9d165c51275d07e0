#include "net/metrics.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace butler;
using namespace butler::metrics;

namespace {

bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

} // namespace

TEST(metrics, maps_the_counters_a_table_names) {
  counters_status st{{{"posted", 7}, {"failed", 2}, {"held", 3},
                      {"not_in_table", 9}}};
  auto set = from_counters(
    st, {{"posted", "butler_x_total", "X", false, {{"outcome", "posted"}}},
         {"failed", "butler_x_total", "X", false, {{"outcome", "failed"}}},
         {"held", "butler_x_held", "Held", true, {}},
         {"absent", "butler_y_total", "Y", false, {}}});
  ASSERT_EQ(set.samples.size(), 3u);
  EXPECT_EQ(set.samples[0].name, "butler_x_total");
  EXPECT_EQ(set.samples[0].value, 7);
  EXPECT_EQ(set.samples[1].labels,
            (label_list{{"outcome", "failed"}}));
  EXPECT_TRUE(set.samples[2].gauge);
  EXPECT_EQ(set.samples[2].value, 3);
}

TEST(metrics, renders_families_in_the_text_format) {
  metric_set set;
  set.samples = {counter("butler_x_total", "Things done", 7,
                         {{"outcome", "posted"}}),
                 counter("butler_x_total", "Things done", 2,
                         {{"outcome", "failed"}}),
                 gauge("butler_queue_depth", "Waiting", 3)};
  auto text = render(set, nullptr);
  EXPECT_TRUE(has_line(text, "# HELP butler_x_total Things done")) << text;
  EXPECT_TRUE(has_line(text, "# TYPE butler_x_total counter")) << text;
  EXPECT_TRUE(has_line(text, "butler_x_total{outcome=\"posted\"} 7")) << text;
  EXPECT_TRUE(has_line(text, "butler_x_total{outcome=\"failed\"} 2")) << text;
  EXPECT_TRUE(has_line(text, "# TYPE butler_queue_depth gauge")) << text;
  EXPECT_TRUE(has_line(text, "butler_queue_depth 3")) << text;
  // One family per name: a single TYPE line.
  EXPECT_EQ(text.find("# TYPE butler_x_total"),
            text.rfind("# TYPE butler_x_total"));
}

TEST(metrics, leaves_out_what_prometheus_would_refuse) {
  metric_set set;
  set.samples = {counter("butler_ok_total", "Fine", 1),
                 gauge("butler_ok_total", "Same name, other type", 5),
                 counter("butler bad name", "Invalid", 1),
                 counter("butler_neg_total", "A counter never goes down", -4),
                 counter("butler_label_total", "Bad label", 1,
                         {{"bad label", "x"}})};
  auto text = render(set, nullptr);
  EXPECT_TRUE(has_line(text, "butler_ok_total 1")) << text;
  EXPECT_EQ(text.find("butler_ok_total 5"), std::string::npos) << text;
  EXPECT_EQ(text.find("butler bad name"), std::string::npos) << text;
  EXPECT_EQ(text.find("bad label"), std::string::npos) << text;
  EXPECT_TRUE(has_line(text, "butler_neg_total 0")) << text;
}

TEST(metrics, counts_requests_by_route_and_status_with_latency) {
  request_metrics requests;
  requests.record("butler_ping", 200, 0.0004);
  requests.record("butler_ping", 200, 0.003);
  requests.record("unmatched", 404, 0.0001);
  auto text = render(metric_set{}, &requests);
  EXPECT_TRUE(has_line(
    text, "butler_http_requests_total{route=\"butler_ping\",status=\"200\"} 2"))
    << text;
  EXPECT_TRUE(has_line(
    text, "butler_http_requests_total{route=\"unmatched\",status=\"404\"} 1"))
    << text;
  EXPECT_TRUE(has_line(text, "# TYPE butler_http_request_duration_seconds "
                             "histogram"))
    << text;
  EXPECT_TRUE(has_line(text, "butler_http_request_duration_seconds_count{"
                             "route=\"butler_ping\"} 2"))
    << text;
  EXPECT_TRUE(has_line(text, "butler_http_request_duration_seconds_bucket{"
                             "route=\"butler_ping\",le=\"0.0005\"} 1"))
    << text;
  EXPECT_TRUE(has_line(text, "butler_http_request_duration_seconds_bucket{"
                             "route=\"butler_ping\",le=\"0.005\"} 2"))
    << text;
}

TEST(metrics, reads_the_process_figures) {
  auto set = process_samples();
  auto value = [&](const std::string& name) {
    for (auto& s : set.samples)
      if (s.name == name)
        return s.value;
    ADD_FAILURE() << "no " << name;
    return -1.0;
  };
  EXPECT_GT(value("butler_process_resident_memory_bytes"), 1024 * 1024);
  EXPECT_GE(value("butler_process_threads"), 1);
  EXPECT_GE(value("butler_process_open_fds"), 3);
  EXPECT_GE(value("butler_process_cpu_seconds_total"), 0);
  EXPECT_GT(value("butler_process_start_time_seconds"), 1.5e9);
  EXPECT_GE(value("butler_process_uptime_seconds"), 0);
  EXPECT_LT(value("butler_process_uptime_seconds"), 3600);
  EXPECT_EQ(value("butler_build_info"), 1);
}
