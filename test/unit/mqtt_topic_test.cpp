#include "net/mqtt_topic.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace butler::mqtt;

TEST(mqtt_topic, accepts_plain_publish_topics) {
  EXPECT_EQ(check_publish_topic("qliksense/start_task"), "");
  EXPECT_EQ(check_publish_topic("a"), "");
  EXPECT_EQ(check_publish_topic("/leading/slash"), "");
}

TEST(mqtt_topic, rejects_bad_publish_topics) {
  EXPECT_NE(check_publish_topic(""), "");
  EXPECT_NE(check_publish_topic("qliksense/+/x"), "");
  EXPECT_NE(check_publish_topic("qliksense/#"), "");
  EXPECT_NE(check_publish_topic("$SYS/broker"), "");
  EXPECT_NE(check_publish_topic(std::string("a\0b", 3)), "");
  EXPECT_NE(check_publish_topic(std::string(65536, 'a')), "");
  EXPECT_EQ(check_publish_topic(std::string(65535, 'a')), "");
}

TEST(mqtt_topic, validates_filters) {
  EXPECT_TRUE(valid_filter("qliksense/#"));
  EXPECT_TRUE(valid_filter("#"));
  EXPECT_TRUE(valid_filter("+"));
  EXPECT_TRUE(valid_filter("a/+/c"));
  EXPECT_TRUE(valid_filter("$share/group/qliksense/start_task"));
  EXPECT_FALSE(valid_filter(""));
  EXPECT_FALSE(valid_filter("a/#/c"));
  EXPECT_FALSE(valid_filter("a/b#"));
  EXPECT_FALSE(valid_filter("a/b+/c"));
}

TEST(mqtt_topic, matches_topics_against_filters) {
  EXPECT_TRUE(topic_matches("qliksense/#", "qliksense/start_task"));
  EXPECT_TRUE(topic_matches("qliksense/#", "qliksense"));
  EXPECT_TRUE(topic_matches("qliksense/#", "qliksense/a/b/c"));
  EXPECT_TRUE(topic_matches("qliksense/start_task", "qliksense/start_task"));
  EXPECT_TRUE(topic_matches("a/+/c", "a/b/c"));
  EXPECT_TRUE(topic_matches("a/+", "a/"));
  EXPECT_TRUE(topic_matches("#", "anything/at/all"));
  EXPECT_FALSE(topic_matches("qliksense/start_task", "qliksense/start_task/x"));
  EXPECT_FALSE(topic_matches("qliksense/start_task", "qliksense"));
  EXPECT_FALSE(topic_matches("a/+/c", "a/b"));
  EXPECT_FALSE(topic_matches("a/+/c", "a/b/c/d"));
  EXPECT_FALSE(topic_matches("other/#", "qliksense/x"));
}

TEST(mqtt_topic, leading_wildcards_skip_dollar_topics) {
  EXPECT_FALSE(topic_matches("#", "$SYS/broker/uptime"));
  EXPECT_FALSE(topic_matches("+/broker/uptime", "$SYS/broker/uptime"));
  EXPECT_TRUE(topic_matches("$SYS/#", "$SYS/broker/uptime"));
}

TEST(mqtt_topic, requires_utf8_in_topics_and_filters) {
  EXPECT_TRUE(is_mqtt_utf8("qliksense/\xC3\xA5r"));
  EXPECT_TRUE(is_mqtt_utf8("\xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_mqtt_utf8("\xFF\xFE"));
  EXPECT_FALSE(is_mqtt_utf8("\xC0\xAF"));         // overlong '/'
  EXPECT_FALSE(is_mqtt_utf8("\xED\xA0\x80"));     // UTF-16 surrogate
  EXPECT_FALSE(is_mqtt_utf8("\xF4\x90\x80\x80")); // past U+10FFFF
  EXPECT_FALSE(is_mqtt_utf8("\xC3"));             // cut short
  EXPECT_EQ(check_publish_topic("butlertest/\xFF\xFE"),
            "must be valid UTF-8 without NUL characters");
  EXPECT_FALSE(valid_filter("a/\xFF/#"));
}

TEST(mqtt_topic, shared_subscriptions_match_their_inner_filter) {
  EXPECT_EQ(filter_problem("$share/butler/qliksense/#"), "");
  EXPECT_NE(filter_problem("$share//qliksense/#"), "");
  EXPECT_NE(filter_problem("$share/g+/qliksense/#"), "");
  EXPECT_NE(filter_problem("$share/group"), "");
  EXPECT_NE(filter_problem("$share/group/"), "");
  EXPECT_EQ(strip_share("$share/butler/qliksense/#"), "qliksense/#");
  EXPECT_EQ(strip_share("qliksense/#"), "qliksense/#");
  EXPECT_TRUE(topic_matches("$share/butler/qliksense/start_task",
                            "qliksense/start_task"));
  EXPECT_FALSE(topic_matches("$share/butler/qliksense/start_task",
                             "qliksense/other"));
}

TEST(mqtt_topic, explains_bad_filters) {
  EXPECT_EQ(filter_problem(""), "must not be empty");
  EXPECT_EQ(filter_problem("a/#/b"),
            "# is only allowed as the whole last level of a topic filter");
  EXPECT_EQ(filter_problem("a/b+"),
            "+ is only allowed as a whole level of a topic filter");
}
