#include "scale/plot.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "scale/process.hpp"

namespace dsk::scale {
namespace {

// Columns: time (hours), load, capacity, capacity at a scale-out (or NaN), at a scale-in (or NaN),
// demand in units (or NaN).
std::string plot_data(const SimulationResult& result) {
  std::string data;
  double start = result.steps.empty() ? 0 : result.steps.front().time;
  for (const auto& step : result.steps) {
    std::string out = step.action == "scale-out" ? str(step.capacity) : "NaN";
    std::string in = step.action == "scale-in" ? str(step.capacity) : "NaN";
    std::string demand = step.demand ? str(*step.demand) : "NaN";
    data += str((step.time - start) / 3600, " ", step.load, " ", step.capacity, " ", out, " ", in, " ", demand, "\n");
  }
  return data;
}

// The gnuplot script: the metric on the left axis, capacity (and demand) in units on the right,
// both from zero so that a level reads as a level; markers where the policy acted.
std::string plot_script(const SimulationResult& result, const std::string& metric, const std::string& data_path,
                        const std::string& output_path) {
  double hours = result.steps.empty() ? 0 : (result.steps.back().time - result.steps.front().time) / 3600;
  double top_units = static_cast<double>(result.peak_capacity);
  bool has_demand = false;
  for (const auto& step : result.steps) {
    if (!step.demand) continue;
    has_demand = true;
    top_units = std::max(top_units, *step.demand);
  }
  std::string script = str(
      "set terminal pngcairo noenhanced size 1000,500\n", "set output '", output_path, "'\n",
      "set xlabel 'hours'\nset ylabel '", metric, "'\nset y2label 'capacity (units)'\n",
      "set xrange [0:", hours > 0 ? hours : 1, "]\nset yrange [0:*]\nset y2range [0:", std::ceil(top_units * 1.1) + 1, "]\n",
      "set ytics nomirror\nset y2tics\nset key outside top center horizontal\nset grid\n",
      "plot '", data_path, "' using 1:2 with lines lc rgb '#888888' title '", metric, "', ");
  if (has_demand) script += "'' using 1:6 axes x1y2 with lines dt 2 lw 2 lc rgb '#ff7f0e' title 'demand', ";
  script +=
      "'' using 1:3 axes x1y2 with steps lw 2 lc rgb '#1f77b4' title 'capacity', "
      "'' using 1:4 axes x1y2 with points pt 9 ps 1.5 lc rgb '#2ca02c' title 'scale-out', "
      "'' using 1:5 axes x1y2 with points pt 11 ps 1.5 lc rgb '#d62728' title 'scale-in'\n";
  return script;
}

}  // namespace

void plot_simulation(const SimulationResult& result, const std::string& metric, const std::string& png_path) {
  std::filesystem::path target = std::filesystem::absolute(png_path);
  std::filesystem::path data_path = str(target.string(), ".dat.", getpid());
  std::filesystem::path temporary = str(target.string(), ".tmp.", getpid(), ".png");
  write_file_atomic(data_path, plot_data(result));
  std::filesystem::path script_path = str(target.string(), ".gp.", getpid());
  write_file_atomic(script_path, plot_script(result, metric, data_path.string(), temporary.string()));
  CommandResult gnuplot = run_command({"gnuplot", script_path.string()}, {}, 60);
  std::filesystem::remove(data_path);
  std::filesystem::remove(script_path);
  if (gnuplot.exit_code == 127) throw ResourceError("--plot needs gnuplot on PATH (Debian: apt-get install gnuplot-nox)");
  if (gnuplot.exit_code != 0 || !std::filesystem::exists(temporary)) {
    std::filesystem::remove(temporary);
    throw ResourceError(str("gnuplot failed (exit ", gnuplot.exit_code, "): ", gnuplot.errors));
  }
  std::filesystem::rename(temporary, target);
}

}  // namespace dsk::scale
