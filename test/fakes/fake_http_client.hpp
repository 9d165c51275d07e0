#pragma once

// An in-process http::client for actor tests: keeps every submitted request
// with its completion, and lets the test answer each one as a peer would.

#include "net/curl_client.hpp"

#include <deque>
#include <functional>
#include <mutex>

namespace butler::test {

class fake_http_client : public http::client {
public:
  struct pending {
    http::outbound_request req;
    http::completion done;
  };

  bool submit(http::outbound_request req, http::completion done) override {
    std::lock_guard<std::mutex> guard{mtx_};
    if (refuse || stopped_)
      return false;
    ++submitted;
    requests.push_back(pending{std::move(req), std::move(done)});
    return true;
  }

  void stop() override {
    stopped_ = true;
  }

  http::client_stats stats() const override {
    http::client_stats s;
    s.submitted = submitted;
    s.pending = requests.size();
    return s;
  }

  /// Answers the oldest request with `status` (and headers/body), as if it
  /// came back over the network; returns false if none is waiting.
  bool answer(long status, std::vector<std::pair<std::string, std::string>>
                             headers = {},
              std::string body = "ok") {
    http::outbound_response res;
    res.status = status;
    res.headers = std::move(headers);
    res.body = std::move(body);
    res.request_sent = true;
    return finish(std::move(res));
  }

  /// Answers the oldest request for which `match` is true; returns false if
  /// none is waiting.
  bool answer_first(const std::function<bool(const http::outbound_request&)>&
                      match,
                    long status, std::string body) {
    http::outbound_response res;
    res.status = status;
    res.body = std::move(body);
    res.request_sent = true;
    return finish(std::move(res), match);
  }

  /// Fails the oldest request without a response; `sent` says whether the
  /// request had reached the peer.
  bool fail(bool sent, std::string error = "Connection refused") {
    http::outbound_response res;
    res.request_sent = sent;
    res.curl_code = sent ? 28 : 7;
    res.error = std::move(error);
    return finish(std::move(res));
  }

  /// Requests submitted and not yet answered, oldest first.
  std::deque<pending> requests;
  std::size_t submitted = 0;
  /// Makes submit() refuse, like a full client.
  bool refuse = false;

private:
  bool finish(http::outbound_response res,
              const std::function<bool(const http::outbound_request&)>&
                match
              = nullptr) {
    pending p;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      auto i = requests.begin();
      while (i != requests.end() && match && !match(i->req))
        ++i;
      if (i == requests.end())
        return false;
      p = std::move(*i);
      requests.erase(i);
    }
    p.done(std::move(res));
    return true;
  }

  std::mutex mtx_;
  bool stopped_ = false;
};

} // namespace butler::test
