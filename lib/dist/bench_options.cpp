#include "dist/bench_options.hpp"

#include <sstream>

#include "core/error.hpp"

namespace dsk::dist {

namespace {

const char* const collective_names[collective_count] = {"all_reduce", "all_gather", "reduce_scatter", "broadcast",
                                                        "reduce",     "alltoall",   "sendrecv"};
const char* const op_names[reduce_op_count] = {"sum", "prod", "max", "min", "avg"};
const char* const type_names[data_type_count] = {"float", "half", "bfloat16", "f8e4m3", "f8e5m2", "int32", "int64"};
const int type_sizes[data_type_count] = {4, 2, 2, 1, 1, 4, 8};

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');)
    if (!part.empty()) parts.push_back(part);
  return parts;
}

template <typename Enum, int N>
std::vector<Enum> parse_list(const std::string& text, const char* const (&names)[N], const char* flag,
                             Enum (*alias)(const std::string&, bool&)) {
  std::vector<Enum> result;
  for (const std::string& part : split_commas(text)) {
    if (part == "all") {
      for (int i = 0; i < N; ++i) result.push_back(static_cast<Enum>(i));
      continue;
    }
    bool found = false;
    Enum value = alias(part, found);
    for (int i = 0; i < N && !found; ++i)
      if (part == names[i]) value = static_cast<Enum>(i), found = true;
    if (!found) {
      std::string valid;
      for (int i = 0; i < N; ++i) valid += str(names[i], ", ");
      throw UsageError(str(flag, ": unknown value '", part, "' (expected one of ", valid, "or all)"));
    }
    result.push_back(value);
  }
  if (result.empty()) throw UsageError(str(flag, ": empty list"));
  return result;
}

Collective no_collective_alias(const std::string& name, bool& found) {
  static const std::pair<const char*, Collective> aliases[] = {
      {"allreduce", Collective::all_reduce},          {"allgather", Collective::all_gather},
      {"reducescatter", Collective::reduce_scatter}, {"all_to_all", Collective::alltoall},
      {"send_recv", Collective::sendrecv}};
  for (auto [alias, value] : aliases)
    if (name == alias) return found = true, value;
  return Collective::all_reduce;
}

DataType type_alias(const std::string& name, bool& found) {
  static const std::pair<const char*, DataType> aliases[] = {
      {"f32", DataType::float32},         {"float32", DataType::float32},      {"f16", DataType::float16},
      {"float16", DataType::float16},     {"bf16", DataType::bfloat16},        {"fp8_e4m3", DataType::float8_e4m3},
      {"fp8_e5m2", DataType::float8_e5m2}, {"int", DataType::int32},           {"i32", DataType::int32},
      {"i64", DataType::int64}};
  for (auto [alias, value] : aliases)
    if (name == alias) return found = true, value;
  return DataType::float32;
}

ReduceOp no_op_alias(const std::string&, bool&) { return ReduceOp::sum; }

}  // namespace

const char* collective_name(Collective c) { return collective_names[static_cast<int>(c)]; }
const char* op_name(ReduceOp op) { return op_names[static_cast<int>(op)]; }
const char* type_name(DataType t) { return type_names[static_cast<int>(t)]; }
int type_size(DataType t) { return type_sizes[static_cast<int>(t)]; }
bool is_low_precision(DataType t) { return t == DataType::float8_e4m3 || t == DataType::float8_e5m2; }

std::vector<Collective> parse_collectives(const std::string& text) {
  return parse_list<Collective>(text, collective_names, "collective", no_collective_alias);
}
std::vector<DataType> parse_data_types(const std::string& text) {
  return parse_list<DataType>(text, type_names, "-d/--datatype", type_alias);
}
std::vector<ReduceOp> parse_ops(const std::string& text) {
  return parse_list<ReduceOp>(text, op_names, "-o/--op", no_op_alias);
}

std::vector<uint64_t> size_sweep(uint64_t min_bytes, uint64_t max_bytes, uint64_t step_bytes, uint64_t step_factor) {
  std::vector<uint64_t> sizes;
  for (uint64_t size = min_bytes; size <= max_bytes;) {
    sizes.push_back(size);
    uint64_t next = step_factor > 1 ? size * step_factor : size + step_bytes;
    if (next <= size) break;  // overflow, or a step of 0
    size = next;
  }
  return sizes;
}

uint64_t element_count(Collective c, DataType t, uint64_t bytes, int ranks) {
  uint64_t count = bytes / type_size(t);
  bool split = c == Collective::all_gather || c == Collective::reduce_scatter || c == Collective::alltoall;
  return split ? count - count % ranks : count;
}

double bus_bandwidth_factor(Collective c, int ranks) {
  double n = ranks;
  switch (c) {
    case Collective::all_reduce: return 2 * (n - 1) / n;
    case Collective::all_gather:
    case Collective::reduce_scatter:
    case Collective::alltoall: return (n - 1) / n;
    case Collective::broadcast:
    case Collective::reduce:
    case Collective::sendrecv: return 1;
  }
  return 1;
}

bool has_in_place(Collective c) { return c != Collective::alltoall && c != Collective::sendrecv; }

void BenchOptions::validate() const {
  if (min_bytes == 0) throw UsageError("-b/--minbytes: must be at least 1 byte");
  if (max_bytes < min_bytes)
    throw UsageError(str("-e/--maxbytes (", max_bytes, ") is smaller than -b/--minbytes (", min_bytes, ")"));
  if (step_factor == 1) throw UsageError("-f/--stepfactor: must be 2 or more (1 would never grow)");
  if (step_factor == 0 && step_bytes == 0) throw UsageError("-i/--stepbytes: must be at least 1 byte");
  if (gpus_per_process < 1) throw UsageError("-g/--ngpus: must be at least 1");
  if (iterations < 1) throw UsageError("-n/--iters: must be at least 1");
  if (warmup_iterations < 0) throw UsageError("-w/--warmup_iters: must be 0 or more");
  if (root < 0) throw UsageError("-r/--root: must be 0 or more");
  if (average < 0 || average > 3) throw UsageError("-a/--average: must be 0 (rank 0), 1 (mean), 2 (min) or 3 (max)");
}

std::string BenchOptions::signature() const {
  std::ostringstream out;
  out << "collectives=";
  for (Collective c : collectives) out << collective_name(c) << ',';
  out << " types=";
  for (DataType t : data_types) out << type_name(t) << ',';
  out << " ops=";
  for (ReduceOp op : ops) out << op_name(op) << ',';
  out << " b=" << min_bytes << " e=" << max_bytes << " i=" << step_bytes << " f=" << step_factor
      << " g=" << gpus_per_process << " n=" << iterations << " w=" << warmup_iterations << " c=" << check
      << " z=" << blocking << " r=" << root << " a=" << average;
  return out.str();
}

}  // namespace dsk::dist
