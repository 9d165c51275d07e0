#include "net/query_string.hpp"

#include <gtest/gtest.h>

using butler::http::query_params;
using butler::http::split_target;
using butler::http::url_decode;

TEST(query_string, splits_target_at_first_question_mark) {
  auto parts = split_target("/v2/mqttPublishMessage?topic=a?b&message=x");
  EXPECT_EQ(parts.path, "/v2/mqttPublishMessage");
  EXPECT_EQ(parts.query, "topic=a?b&message=x");
  auto bare = split_target("/butlerPing");
  EXPECT_EQ(bare.path, "/butlerPing");
  EXPECT_TRUE(bare.query.empty());
}

TEST(query_string, decodes_escapes_and_plus) {
  EXPECT_EQ(url_decode("a%20b+c%2Bd"), "a b c+d");
  EXPECT_EQ(url_decode("a+b", false), "a+b");
  EXPECT_EQ(url_decode("%C3%A5%C3%A4%C3%B6"), "\xC3\xA5\xC3\xA4\xC3\xB6");
  EXPECT_EQ(url_decode("100%25"), "100%");
}

TEST(query_string, rejects_malformed_escapes) {
  EXPECT_FALSE(url_decode("%"));
  EXPECT_FALSE(url_decode("abc%2"));
  EXPECT_FALSE(url_decode("%G1"));
  EXPECT_FALSE(url_decode("%1x"));
}

TEST(query_string, parses_parameters_in_order) {
  auto q = query_params::parse("topic=qliksense%2Fx&message=hello+world&flag&=v");
  ASSERT_TRUE(q);
  ASSERT_EQ(q->items().size(), 4u);
  EXPECT_EQ(*q->find("topic"), "qliksense/x");
  EXPECT_EQ(*q->find("message"), "hello world");
  EXPECT_EQ(*q->find("flag"), "");
  EXPECT_EQ(*q->find(""), "v");
  EXPECT_EQ(q->find("missing"), nullptr);
}

TEST(query_string, first_value_wins_and_empty_pairs_are_skipped) {
  auto q = query_params::parse("&&a=1&a=2&");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->items().size(), 2u);
  EXPECT_EQ(*q->find("a"), "1");
}

TEST(query_string, rejects_a_malformed_parameter) {
  EXPECT_FALSE(query_params::parse("topic=%zz&message=x"));
  EXPECT_FALSE(query_params::parse("to%pic=a"));
}
