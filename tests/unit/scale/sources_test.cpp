// Parsers of the metric sources: Prometheus text exposition, nvidia-smi's CSV, sinfo/squeue
// output, and samples files.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "scale/controller.hpp"
#include "scale/gpu.hpp"
#include "scale/prometheus.hpp"
#include "scale/samples_file.hpp"
#include "scale/slurm.hpp"

using namespace dsk;
using namespace dsk::scale;

// The example from the Prometheus exposition format documentation.
static const char* kDocumentationExample = R"(# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# Finally a summary, which has a complex representation, too:
# HELP rpc_duration_seconds A summary of the RPC duration in seconds.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.01"} 3102
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds{quantile="0.99"} NaN
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
)";

TEST_CASE("Prometheus text: the documentation's example") {
  auto samples = parse_prometheus_text(kDocumentationExample, "example");
  REQUIRE(samples.size() == 14);
  CHECK(samples[0].name == "http_requests_total");
  CHECK(samples[0].labels.at("code") == "200");
  CHECK(samples[0].value == 1027);
  CHECK(samples[2].labels.at("path") == "C:\\DIR\\FILE.TXT");
  CHECK(samples[2].labels.at("error") == "Cannot find file:\n\"FILE.TXT\"");
  CHECK(samples[3].labels.empty());
  CHECK(std::isinf(samples[4].value));
  CHECK(samples[6].labels.at("le") == "+Inf");
  auto sums = sum_by_name(samples);
  CHECK(sums.at("http_requests_total") == 1030);
  CHECK(sums.at("rpc_duration_seconds") == 3102 + 4773);  // NaN skipped
  CHECK(sums.at("metric_without_timestamp_and_labels") == doctest::Approx(12.47));
}

TEST_CASE("Prometheus text: node_exporter style lines, CRLF, and a dsk-serve style gauge") {
  auto samples = parse_prometheus_text(
      "node_load1 0.21\r\nnode_cpu_seconds_total{cpu=\"0\",mode=\"idle\",} 12345.67\r\n"
      "dsk_serve_queue_depth{model=\"tiny\"} 7\ndsk_serve_queue_depth{model=\"big\"} 5\n",
      "x");
  CHECK(samples.size() == 4);
  CHECK(samples[1].labels.size() == 2);  // a trailing comma is allowed
  CHECK(sum_by_name(samples).at("dsk_serve_queue_depth") == 12);
}

TEST_CASE("Prometheus text: malformed lines name the line") {
  auto error_of = [](const char* text) {
    try {
      parse_prometheus_text(text, "m");
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_of("ok 1\nbad{le=\"1\" 2\n").find("m:2:") == 0);
  CHECK(error_of("x{a=\"unterminated} 1\n").find("unterminated") != std::string::npos);
  CHECK(error_of("x twelve\n").find("expected a number") != std::string::npos);
  CHECK(error_of("x{a=b} 1\n").find("quoted") != std::string::npos);
  CHECK(error_of("x 1 2 3\n").find("after the timestamp") != std::string::npos);
  CHECK(error_of("9lives 1\n").find("metric name") != std::string::npos);
}

TEST_CASE("nvidia-smi CSV: averages over GPUs") {
  auto metrics = parse_nvidia_smi_csv("90, 40000, 80000\n50, 20000, 80000\n");
  CHECK(metrics.at("gpu_util") == 70);
  CHECK(metrics.at("gpu_memory") == doctest::Approx(37.5));
  CHECK(metrics.at("gpus") == 2);
  CHECK_THROWS_AS(parse_nvidia_smi_csv("[N/A], 1, 2\n"), ResourceError);
  CHECK_THROWS_AS(parse_nvidia_smi_csv(""), ResourceError);
}

TEST_CASE("sinfo and squeue: capacity counts powered-up nodes") {
  auto nodes = parse_sinfo_nodes("n1 allocated\nn2 mixed\nn3 idle\nn4 idle~\nn5 drained~\nn6 idle%\nn7 down*\nn3 idle\n");
  REQUIRE(nodes.size() == 7);
  CHECK(nodes[3].powered_down());
  CHECK(nodes[4].state == "drained");
  CHECK(nodes[6].flags == "*");
  Observation observation = slurm_observation(nodes, "RUNNING 1\nRUNNING 1\nPENDING 2\nPENDING 1\n", 5);
  CHECK(*observation.current == 3);  // n1, n2, n3; n7 is down
  CHECK(observation.metrics.at("node_util") == doctest::Approx(200.0 / 3));
  CHECK(observation.metrics.at("pending") == 3);
  CHECK(observation.metrics.at("running") == 2);
}

TEST_CASE("samples files: JSONL and CSV, with errors naming the line") {
  auto jsonl = parse_samples("{\"time\": 0, \"gpu_util\": 91, \"current\": 2, \"phase\": \"warmup\"}\n\n"
                             "{\"time\": 60, \"gpu_util\": 40}\n",
                             "s.jsonl", false);
  REQUIRE(jsonl.size() == 2);
  CHECK(*jsonl[0].current == 2);
  CHECK(jsonl[0].phase == "warmup");
  CHECK(jsonl[1].metrics.at("gpu_util") == 40);
  auto csv = parse_samples("time,gpu_util,pending,phase\n0,91,3,warmup\n60,,0,steady\n", "s.csv", true);
  REQUIRE(csv.size() == 2);
  CHECK(csv[1].metrics.count("gpu_util") == 0);
  auto error_of = [](const char* text, bool is_csv) {
    try {
      parse_samples(text, "f", is_csv);
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_of("{\"time\": 0}\n{\"time\": 1, \"gpu_util\": \"high\"}\n", false).find("f:2: field \"gpu_util\"") == 0);
  CHECK(error_of("{\"gpu_util\": 1}\n", false).find("missing field \"time\"") != std::string::npos);
  CHECK(error_of("{\"time\": 5}\n{\"time\": 1}\n", false).find("goes back") != std::string::npos);
  CHECK(error_of("{\"time\": 0, \"current\": 1.5}\n", false).find("whole number") != std::string::npos);
  CHECK(error_of("time,gpu_util\n0,91,3\n", true).find("f:2: expected 2 fields") == 0);
  CHECK(error_of("gpu_util\n91\n", true).find("no \"time\" column") != std::string::npos);
  CHECK(error_of("{\"time\": 0,\n", false).find("not valid JSON") != std::string::npos);
  // Once an internal error (exit 1): nlohmann reports 1e309 as out of range, not as a parse error.
  CHECK(error_of("{\"time\": 0, \"gpu_util\": 1e309}\n", false).find("f:1: not valid JSON") == 0);
  CHECK(error_of("{\"time\": 0, \"current\": 1e300}\n", false).find("whole number from 0") != std::string::npos);
}

TEST_CASE("a samples file as a source: decided at now; a stale last sample fails the source") {
  std::filesystem::path path = std::filesystem::temp_directory_path() / "dsk-scale-samples-test.jsonl";
  SourceConfig sources;
  sources.samples_path = path.string();
  const double now = 1800000000;
  write_file_atomic(path, "{\"time\": 1799999900, \"gpu_util\": 91, \"current\": 2}\n");
  Observation fresh = observe(sources, now);
  CHECK(fresh.time == now);
  CHECK(*fresh.current == 2);
  CHECK(fresh.metrics.at("gpu_util") == 91);

  write_file_atomic(path, "{\"time\": 1799990000, \"gpu_util\": 91, \"current\": 2}\n");  // 10000 s old
  std::string message;
  try {
    observe(sources, now);
  } catch (const DataError& e) {
    message = e.what();
  }
  CHECK(message.find("last sample is 10000s old") != std::string::npos);
  sources.samples_max_age = 0;  // no limit
  CHECK(observe(sources, now).metrics.at("gpu_util") == 91);

  sources.samples_max_age = 600;  // a trace's own clock (time 60 s) has no age to judge
  write_file_atomic(path, "{\"time\": 60, \"gpu_util\": 10, \"current\": 2}\n");
  CHECK(observe(sources, now).metrics.at("gpu_util") == 10);
  std::filesystem::remove(path);
}
