// A PNG of a simulation: the load the policy saw, the capacity it chose, and its actions, drawn
// by gnuplot (Debian's gnuplot-nox), which must be on PATH.
#pragma once

#include <string>

#include "scale/simulate.hpp"

namespace dsk::scale {

// Writes png_path (atomically). ResourceError when gnuplot is missing or fails.
void plot_simulation(const SimulationResult& result, const std::string& metric, const std::string& png_path);

}  // namespace dsk::scale
