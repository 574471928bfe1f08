#include "scale/samples_file.hpp"

#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"
#include "core/fs.hpp"
#include "core/json.hpp"

namespace dsk::scale {
namespace {

void set_field(Observation& sample, const std::string& name, double value, const std::string& where) {
  if (!std::isfinite(value)) throw DataError(str(where, ": field ", name, " is not a finite number"));
  if (name == "time") {
    sample.time = value;
  } else if (name == "current") {
    if (value < 0 || value != std::floor(value) || value > 1e15)  // far beyond any fleet; keeps the cast defined
      throw DataError(str(where, ": current must be a whole number from 0 to 10^15"));
    sample.current = static_cast<int64_t>(value);
  } else {
    sample.metrics[name] = value;
  }
}

Observation parse_json_line(const std::string& line, const std::string& where) {
  const nlohmann::json object = parse_json(line, where);  // 1e309 too is a DataError
  if (!object.is_object()) throw DataError(str(where, ": expected a JSON object"));
  if (!object.contains("time")) throw DataError(str(where, ": missing field \"time\""));
  Observation sample;
  for (const auto& [name, value] : object.items()) {
    if (name == "phase" && value.is_string()) {
      sample.phase = value.get<std::string>();
    } else if (value.is_number()) {
      set_field(sample, name, value.get<double>(), where);
    } else {
      throw DataError(str(where, ": field \"", name, "\" must be a number", name == "phase" ? " or a string" : ""));
    }
  }
  return sample;
}

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> cells;
  std::istringstream stream(line);
  std::string cell;
  while (std::getline(stream, cell, ',')) {
    size_t first = cell.find_first_not_of(" \t\r"), last = cell.find_last_not_of(" \t\r");
    cells.push_back(first == std::string::npos ? "" : cell.substr(first, last - first + 1));
  }
  if (!line.empty() && line.back() == ',') cells.emplace_back();
  return cells;
}

Observation parse_csv_row(const std::vector<std::string>& header, const std::string& line, const std::string& where) {
  std::vector<std::string> cells = split_csv(line);
  if (cells.size() != header.size())
    throw DataError(str(where, ": expected ", header.size(), " fields as in the header, got ", cells.size()));
  Observation sample;
  for (size_t i = 0; i < cells.size(); ++i) {
    if (header[i] == "phase") {
      sample.phase = cells[i];
      continue;
    }
    if (cells[i].empty()) continue;  // a metric not measured at this time
    char* end = nullptr;
    double value = std::strtod(cells[i].c_str(), &end);
    if (*end != '\0') throw DataError(str(where, ": field ", header[i], ": expected a number, got '", cells[i], "'"));
    set_field(sample, header[i], value, where);
  }
  return sample;
}

}  // namespace

std::vector<Observation> parse_samples(const std::string& text, const std::string& source, bool csv) {
  std::vector<Observation> samples;
  std::vector<std::string> header;
  std::istringstream lines(text);
  std::string line;
  int line_number = 0;
  while (std::getline(lines, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::string where = str(source, ":", line_number);
    if (csv && header.empty()) {
      header = split_csv(line);
      bool has_time = false;
      for (const auto& name : header) has_time |= name == "time";
      if (!has_time) throw DataError(str(where, ": the CSV header has no \"time\" column"));
      continue;
    }
    Observation sample = csv ? parse_csv_row(header, line, where) : parse_json_line(line, where);
    if (!samples.empty() && sample.time < samples.back().time)
      throw DataError(str(where, ": time ", sample.time, " goes back from ", samples.back().time));
    samples.push_back(std::move(sample));
  }
  return samples;
}

std::vector<Observation> read_samples(const std::string& path) {
  bool csv = path.size() >= 4 && path.compare(path.size() - 4, 4, ".csv") == 0;
  std::vector<Observation> samples = parse_samples(read_file(path), path, csv);
  if (samples.empty()) throw DataError(str(path, ": no samples"));
  return samples;
}

}  // namespace dsk::scale
