#include "dist/bench_report.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <numeric>

#include "core/error.hpp"

namespace dsk::dist {

namespace {

std::string printf_string(const char* format, auto... values) {
  char buffer[512];
  std::snprintf(buffer, sizeof buffer, format, values...);
  return buffer;
}

std::string format_cell(const Measurement& m) {
  if (!m.measured) return printf_string(" %8s %7s %7s %6s", "N/A", "N/A", "N/A", "N/A");
  std::string wrong = m.wrong < 0 ? "N/A" : std::to_string(m.wrong);
  double time = m.time_us;
  return time >= 10000 ? printf_string(" %8.0f %7.2f %7.2f %6s", time, m.algbw, m.busbw, wrong.c_str())
                       : printf_string(" %8.2f %7.2f %7.2f %6s", time, m.algbw, m.busbw, wrong.c_str());
}

nlohmann::json cell_json(const Measurement& m) {
  if (!m.measured) return nullptr;
  nlohmann::json cell = {{"time_us", m.time_us},         {"algbw_gbps", m.algbw},
                         {"busbw_gbps", m.busbw},        {"slowest_rank", m.slowest_rank},
                         {"slowest_us", m.slowest_us},   {"fastest_rank", m.fastest_rank},
                         {"fastest_us", m.fastest_us}};
  cell["wrong"] = m.wrong < 0 ? nlohmann::json(nullptr) : nlohmann::json(m.wrong);
  return cell;
}

std::string redop_column(const Row& row) { return is_reduction(row.collective) ? op_name(row.op) : "none"; }

}  // namespace

Measurement summarize(const std::vector<double>& per_rank_us, int average, uint64_t bytes, double bus_factor,
                      int64_t wrong) {
  if (per_rank_us.empty()) throw InternalError("summarize: no ranks");
  Measurement m;
  m.measured = true;
  auto [fastest, slowest] = std::minmax_element(per_rank_us.begin(), per_rank_us.end());
  m.fastest_rank = static_cast<int>(fastest - per_rank_us.begin());
  m.slowest_rank = static_cast<int>(slowest - per_rank_us.begin());
  m.fastest_us = *fastest;
  m.slowest_us = *slowest;
  switch (average) {
    case 0: m.time_us = per_rank_us[0]; break;
    case 1: m.time_us = std::accumulate(per_rank_us.begin(), per_rank_us.end(), 0.0) / per_rank_us.size(); break;
    case 2: m.time_us = *fastest; break;
    default: m.time_us = *slowest; break;
  }
  m.algbw = m.time_us > 0 ? static_cast<double>(bytes) / (m.time_us * 1e3) : 0;  // bytes/us/1e3 = GB/s
  m.busbw = m.algbw * bus_factor;
  m.wrong = wrong;
  return m;
}

std::string format_topology(const Topology& topology) {
  std::string text = str("# NCCL version ", topology.nccl_version, "\n# GPUs:\n");
  for (const GpuInfo& gpu : topology.gpus)
    text += printf_string("#   rank %3d  %-20s device %2d  %-12s  %s\n", gpu.rank, gpu.host.c_str(), gpu.device,
                          gpu.bus_id.c_str(), gpu.name.c_str());
  if (!topology.links.empty()) {
    text += "# Links:\n";
    for (const std::string& link : topology.links) text += "#   " + link + "\n";
  }
  text += "# NCCL environment:";
  if (topology.nccl_environment.empty()) text += " (none set)";
  for (const auto& [name, value] : topology.nccl_environment) text += str(" ", name, "=", value);
  return text + "\n";
}

std::string format_table_header(Collective c, int ranks) {
  std::string text = str("#\n# ", collective_name(c), " over ", ranks, " ranks (busbw = algbw * ",
                         printf_string("%.4g", bus_bandwidth_factor(c, ranks)), ")\n#\n");
  text += printf_string("# %10s %12s %8s %6s %6s %31s %31s\n", "", "", "", "", "", "out-of-place", "in-place");
  text += printf_string("# %10s %12s %8s %6s %6s %8s %7s %7s %6s %8s %7s %7s %6s\n", "size", "count", "type", "redop",
                        "root", "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw", "#wrong");
  text += printf_string("# %10s %12s %8s %6s %6s %8s %7s %7s %6s %8s %7s %7s %6s\n", "(B)", "(elements)", "", "", "",
                        "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "");
  return text;
}

std::string format_row(const Row& row) {
  return printf_string("  %10llu %12llu %8s %6s %6d", static_cast<unsigned long long>(row.bytes),
                       static_cast<unsigned long long>(row.count), type_name(row.type), redop_column(row).c_str(),
                       row.root) +
         format_cell(row.out_of_place) + format_cell(row.in_place) + "\n";
}

double average_bus_bandwidth(const std::vector<Row>& rows) {
  double total = 0;
  int cells = 0;
  for (const Row& row : rows)
    for (const Measurement* m : {&row.out_of_place, &row.in_place})
      if (m->measured) total += m->busbw, ++cells;
  return cells ? total / cells : 0;
}

std::string format_average(const std::vector<Row>& rows) {
  return printf_string("# Avg bus bandwidth    : %g \n", average_bus_bandwidth(rows));
}

std::string format_stragglers(const std::vector<Row>& rows) {
  std::string text = "# Stragglers: the slowest and the fastest rank of each size\n";
  text += printf_string("# %10s %12s %14s %12s %14s %12s %7s\n", "size", "placement", "slowest rank", "(us)",
                        "fastest rank", "(us)", "spread");
  for (const Row& row : rows)
    for (auto [name, m] : {std::pair{"out-of-place", &row.out_of_place}, std::pair{"in-place", &row.in_place}}) {
      if (!m->measured) continue;
      double spread = m->fastest_us > 0 ? 100.0 * (m->slowest_us - m->fastest_us) / m->fastest_us : 0;
      text += printf_string("  %10llu %12s %14d %12.2f %14d %12.2f %6.1f%%\n",
                            static_cast<unsigned long long>(row.bytes), name, m->slowest_rank, m->slowest_us,
                            m->fastest_rank, m->fastest_us, spread);
    }
  return text;
}

std::string to_json(const std::vector<Row>& rows, const Topology& topology, const BenchOptions& options, int ranks) {
  nlohmann::json results = nlohmann::json::array();
  for (const Row& row : rows)
    results.push_back({{"collective", collective_name(row.collective)},
                       {"size", row.bytes},
                       {"count", row.count},
                       {"type", type_name(row.type)},
                       {"redop", redop_column(row)},
                       {"root", row.root},
                       {"bus_factor", bus_bandwidth_factor(row.collective, ranks)},
                       {"out_of_place", cell_json(row.out_of_place)},
                       {"in_place", cell_json(row.in_place)}});
  nlohmann::json gpus = nlohmann::json::array();
  for (const GpuInfo& gpu : topology.gpus)
    gpus.push_back({{"rank", gpu.rank}, {"host", gpu.host}, {"device", gpu.device}, {"name", gpu.name},
                    {"bus_id", gpu.bus_id}});
  nlohmann::json environment = nlohmann::json::object();
  for (const auto& [name, value] : topology.nccl_environment) environment[name] = value;
  nlohmann::json document = {
      {"ranks", ranks},
      {"iterations", options.iterations},
      {"warmup_iterations", options.warmup_iterations},
      {"check", options.check},
      {"average", options.average},
      {"nccl_version", topology.nccl_version},
      {"gpus", gpus},
      {"links", topology.links},
      {"nccl_environment", environment},
      {"results", results},
      {"avg_busbw_gbps", average_bus_bandwidth(rows)},
  };
  return document.dump(2) + "\n";
}

std::string to_csv(const std::vector<Row>& rows) {
  std::string text =
      "collective,size,count,type,redop,root,placement,time_us,algbw_gbps,busbw_gbps,wrong,slowest_rank,slowest_us,"
      "fastest_rank,fastest_us\n";
  for (const Row& row : rows)
    for (auto [name, m] : {std::pair{"out-of-place", &row.out_of_place}, std::pair{"in-place", &row.in_place}}) {
      if (!m->measured) continue;
      std::string wrong = m->wrong < 0 ? "" : std::to_string(m->wrong);
      text += printf_string("%s,%llu,%llu,%s,%s,%d,%s,%.3f,%.4f,%.4f,%s,%d,%.3f,%d,%.3f\n", collective_name(row.collective),
                            static_cast<unsigned long long>(row.bytes), static_cast<unsigned long long>(row.count),
                            type_name(row.type), redop_column(row).c_str(), row.root, name, m->time_us, m->algbw,
                            m->busbw, wrong.c_str(), m->slowest_rank, m->slowest_us, m->fastest_rank, m->fastest_us);
    }
  return text;
}

}  // namespace dsk::dist
