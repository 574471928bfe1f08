// Routing: A/B weights hold over many requests, a user sticks to a version, the fallback engages
// under overload and disengages after it (with hysteresis).
#include <doctest/doctest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <thread>

#include "serve/api_error.hpp"
#include "serve/router.hpp"
#include "server_fixture.hpp"

using namespace dsk::serve;
using namespace dsk::serve::testing;

namespace {

Script short_script() {
  Script script;
  script.tokens = {40, 41, 42};
  return script;
}

// |count - n p| within 5 standard deviations of a binomial: fails by chance about once in 3.5 million runs.
bool within_binomial(int count, int n, double p) { return std::abs(count - n * p) <= 5 * std::sqrt(n * p * (1 - p)); }

}  // namespace

TEST_CASE("A/B weights 90/10 hold over 2,000 HTTP requests, and the version is in the answer") {
  ServerFixture fixture;
  fixture.router.set_model("tiny", {{scripted_model("tiny", "1.2", short_script()), 90}, {scripted_model("tiny", "1.3", short_script()), 10}},
                           {});
  auto client = fixture.client();
  client.set_keep_alive(true);
  std::map<std::string, int> served;
  for (int i = 0; i < 2000; ++i) {
    auto res = client.Post("/v1/completions", R"({"model": "tiny", "prompt": [1], "max_tokens": 1})", "application/json");
    REQUIRE(res);
    REQUIRE(res->status == 200);
    std::string version = res->get_header_value("x-dsk-model-version");
    CHECK(nlohmann::json::parse(res->body)["system_fingerprint"] == "tiny@" + version);
    ++served[version];
  }
  CHECK(served["1.2"] + served["1.3"] == 2000);
  CHECK(within_binomial(served["1.3"], 2000, 0.1));
  std::string metrics = client.Get("/metrics")->body;
  CHECK(metrics.find("dsk_serve_version_weight{model=\"tiny\",version=\"1.3\"} 10") != std::string::npos);
  CHECK(metrics.find(dsk::str("dsk_serve_generation_tokens_total{model=\"tiny\",version=\"1.3\"} ", served["1.3"])) != std::string::npos);
}

TEST_CASE("a user sticks to one version; users spread by the weights") {
  Metrics metrics;
  Router router(metrics);
  router.set_model("m", {{scripted_model("m", "a", short_script()), 70}, {scripted_model("m", "b", short_script()), 30}}, {});
  for (const char* user : {"alice", "bob", "carol"}) {
    std::string first = router.route("m", user).model->version;
    for (int i = 0; i < 20; ++i) CHECK(router.route("m", user).model->version == first);
  }
  int b = 0;
  for (int i = 0; i < 2000; ++i) b += router.route("m", "user-" + std::to_string(i)).model->version == "b";
  CHECK(within_binomial(b, 2000, 0.3));
  CHECK(user_draw("alice") >= 0);
  CHECK(user_draw("alice") < 1);
  CHECK_THROWS_AS(router.route("nope", ""), ApiError);
}

TEST_CASE("the fallback engages when the queue wait passes its bound and disengages after") {
  Metrics metrics;
  Router router(metrics);
  ScriptedEngine* engine = nullptr;
  Script slow = short_script();
  slow.max_batch = 1;
  slow.step = std::chrono::milliseconds(60);  // 3 tokens: about 0.2 s a request, one at a time
  auto primary = scripted_model("big", "1.0", slow, &engine);
  FallbackPolicy policy;
  policy.fallback = "small";
  policy.max_queue_wait = 0.15;
  policy.recover = 0.5;
  policy.min_engaged = std::chrono::milliseconds(200);
  router.set_model("big", {{primary}}, policy);
  router.set_model("small", {{scripted_model("small", "1.0", short_script())}}, {});

  CHECK(router.route("big", "").model->name == "big");
  // Overload: six requests queue behind one slot.
  std::atomic<int> ended{0};
  for (int i = 0; i < 6; ++i) {
    GenerationRequest request;
    request.prompt = {1};
    request.sampling.max_tokens = 3;
    request.sampling.stop_token_ids = {0};
    request.on_event = [&](const TokenEvent& event) { ended += event.finish != FinishReason::none; };
    engine->submit(std::move(request));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Route route = router.route("big", "");
  CHECK(route.fell_back);
  CHECK(route.model->name == "small");
  CHECK(route.requested == "big");
  // Still engaged while the queue drains (hysteresis), then back once it is under recover x bound.
  while (ended < 6) {
    router.route("big", "");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  CHECK(!router.route("big", "").fell_back);
  CHECK(metrics.counter_value("dsk_serve_fallback_switches_total", {{"model", "big"}, {"fallback", "small"}}) == 1);
  CHECK(metrics.counter_value("dsk_serve_fallbacks_total", {{"model", "big"}, {"fallback", "small"}}) >= 1);
}

TEST_CASE("the fallback engages on time to first token too") {
  Metrics metrics;
  Router router(metrics);
  auto primary = scripted_model("big", "1.0", short_script());
  FallbackPolicy policy;
  policy.fallback = "small";
  policy.max_time_to_first_token = 0.5;
  policy.min_engaged = std::chrono::milliseconds(0);
  policy.latency_window = std::chrono::milliseconds(300);
  router.set_model("big", {{primary}}, policy);
  router.set_model("small", {{scripted_model("small", "1.0", short_script())}}, {});
  primary->time_to_first_token.observe(2.0);
  CHECK(router.route("big", "").fell_back);
  std::this_thread::sleep_for(std::chrono::milliseconds(350));  // no recent TTFT: recovered
  CHECK(!router.route("big", "").fell_back);
}
