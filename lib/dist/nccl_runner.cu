// The GPU half of dsk-bench-nccl: NCCL communicators over this process's GPUs, buffers sized for
// the largest size, and for each collective x type x op x size: warm-up, timed iterations
// between CUDA events (per GPU), then (with -c) a fresh run checked element by element on the
// GPU against collectives.hpp's exact expected values. Timings go to rank 0 through the
// rendezvous; rank 0 prints the table (bench_report.hpp).
//
// Buffers, per GPU: send and recv of max_bytes each. In-place runs use recv alone, with NCCL's
// offsets (all_gather's input is its block of the output; reduce_scatter's output is its block
// of the input).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#include <nccl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.hpp"
#include "dist/bench_session.hpp"

extern char** environ;

namespace dsk::dist {

namespace {

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw ResourceError(str(what, ": ", cudaGetErrorString(status)));
}
void check_nccl(ncclResult_t status, const char* what) {
  if (status != ncclSuccess)
    throw ResourceError(str(what, ": ", ncclGetErrorString(status), " (", ncclGetLastError(nullptr),
                            "; NCCL_DEBUG=WARN says more)"));
}
#define CUDA_CHECK(call) check_cuda(call, #call)
#define NCCL_CHECK(call) check_nccl(call, #call)

// Element conversions through float (every value here is a small integer or its mean).
template <typename T> __device__ T from_double(double v) { return static_cast<T>(v); }
template <> __device__ __half from_double<__half>(double v) { return __float2half(static_cast<float>(v)); }
template <> __device__ __nv_bfloat16 from_double<__nv_bfloat16>(double v) { return __float2bfloat16(static_cast<float>(v)); }
template <> __device__ __nv_fp8_e4m3 from_double<__nv_fp8_e4m3>(double v) { return __nv_fp8_e4m3(static_cast<float>(v)); }
template <> __device__ __nv_fp8_e5m2 from_double<__nv_fp8_e5m2>(double v) { return __nv_fp8_e5m2(static_cast<float>(v)); }
template <typename T> __device__ double to_double(T v) { return static_cast<double>(v); }
template <> __device__ double to_double<__half>(__half v) { return __half2float(v); }
template <> __device__ double to_double<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ double to_double<__nv_fp8_e4m3>(__nv_fp8_e4m3 v) { return static_cast<float>(v); }
template <> __device__ double to_double<__nv_fp8_e5m2>(__nv_fp8_e5m2 v) { return static_cast<float>(v); }

template <typename T>
__global__ void fill_input(T* buffer, Layout layout, int rank, uint64_t count) {
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < count; i += uint64_t(gridDim.x) * blockDim.x)
    buffer[i] = from_double<T>(input_value(layout, rank, i));
}

// tolerance: relative, non-zero only for avg on floating types (NCCL may pre-scale by 1/n).
template <typename T>
__global__ void count_wrong(const T* buffer, Layout layout, int rank, uint64_t count, double tolerance,
                            unsigned long long* wrong) {
  unsigned long long local = 0;
  for (uint64_t i = blockIdx.x * uint64_t(blockDim.x) + threadIdx.x; i < count; i += uint64_t(gridDim.x) * blockDim.x) {
    double expected = expected_value(layout, rank, i);
    double got = to_double<T>(buffer[i]);
    if (!(fabs(got - expected) <= tolerance * fabs(expected))) ++local;
  }
  if (local) atomicAdd(wrong, local);
}

constexpr int block_size = 256;
constexpr int grid_size = 1024;

template <typename Kernel, typename... Args>
void launch_typed(DataType type, cudaStream_t stream, Args... args) {
  switch (type) {
    case DataType::float32: Kernel::template run<float>(stream, args...); break;
    case DataType::float16: Kernel::template run<__half>(stream, args...); break;
    case DataType::bfloat16: Kernel::template run<__nv_bfloat16>(stream, args...); break;
    case DataType::float8_e4m3: Kernel::template run<__nv_fp8_e4m3>(stream, args...); break;
    case DataType::float8_e5m2: Kernel::template run<__nv_fp8_e5m2>(stream, args...); break;
    case DataType::int32: Kernel::template run<int32_t>(stream, args...); break;
    case DataType::int64: Kernel::template run<int64_t>(stream, args...); break;
  }
  CUDA_CHECK(cudaGetLastError());
}
struct FillInput {
  template <typename T>
  static void run(cudaStream_t stream, void* buffer, Layout layout, int rank, uint64_t count) {
    fill_input<T><<<grid_size, block_size, 0, stream>>>(static_cast<T*>(buffer), layout, rank, count);
  }
};
struct CountWrong {
  template <typename T>
  static void run(cudaStream_t stream, const void* buffer, Layout layout, int rank, uint64_t count, double tolerance,
                  unsigned long long* wrong) {
    count_wrong<T><<<grid_size, block_size, 0, stream>>>(static_cast<const T*>(buffer), layout, rank, count, tolerance,
                                                        wrong);
  }
};

ncclDataType_t nccl_type(DataType type) {
  switch (type) {
    case DataType::float32: return ncclFloat32;
    case DataType::float16: return ncclFloat16;
    case DataType::bfloat16: return ncclBfloat16;
#if NCCL_VERSION_CODE >= 22400
    case DataType::float8_e4m3: return ncclFloat8e4m3;
    case DataType::float8_e5m2: return ncclFloat8e5m2;
#else
    case DataType::float8_e4m3:
    case DataType::float8_e5m2: throw UsageError("fp8 types need NCCL 2.24 or later");
#endif
    case DataType::int32: return ncclInt32;
    case DataType::int64: return ncclInt64;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::prod: return ncclProd;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::min: return ncclMin;
    case ReduceOp::avg: return ncclAvg;
  }
  return ncclSum;
}

double avg_tolerance(DataType type, int ranks) {
  switch (type) {
    case DataType::float32: return 2e-7 * ranks;
    case DataType::float16: return 1e-3 * ranks;
    case DataType::bfloat16: return 8e-3 * ranks;
    case DataType::float8_e4m3: return 0.125 * ranks;
    case DataType::float8_e5m2: return 0.25 * ranks;
    default: return 0;
  }
}

// Each process takes -g consecutive devices by local rank (nccl-tests' convention), unless the
// launcher already gave it exactly its own (CUDA_VISIBLE_DEVICES per task, e.g. srun --gpus-per-task).
int first_device(const LaunchInfo& launch, int gpus_per_process) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count == gpus_per_process ? 0 : launch.local_rank * gpus_per_process;
}

struct Gpu {
  int device = 0;
  int rank = 0;  // in the communicator
  cudaStream_t stream = nullptr;
  ncclComm_t comm = nullptr;
  char* send = nullptr;
  char* recv = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  unsigned long long* wrong = nullptr;
};

// Owns the GPUs' communicators, streams and buffers for one run.
class GpuSet {
 public:
  GpuSet(const LaunchInfo& launch, int gpus_per_process, uint64_t buffer_bytes, const ncclUniqueId& id) {
    ranks_ = launch.world_size * gpus_per_process;
    gpus_.resize(gpus_per_process);
    for (int g = 0; g < gpus_per_process; ++g) {
      Gpu& gpu = gpus_[g];
      gpu.device = first_device(launch, gpus_per_process) + g;
      gpu.rank = launch.rank * gpus_per_process + g;
      CUDA_CHECK(cudaSetDevice(gpu.device));
      CUDA_CHECK(cudaStreamCreateWithFlags(&gpu.stream, cudaStreamNonBlocking));
      CUDA_CHECK(cudaEventCreate(&gpu.start));
      CUDA_CHECK(cudaEventCreate(&gpu.stop));
      allocate(reinterpret_cast<void**>(&gpu.send), buffer_bytes, gpu.device);
      allocate(reinterpret_cast<void**>(&gpu.recv), buffer_bytes, gpu.device);
      allocate(reinterpret_cast<void**>(&gpu.wrong), sizeof(unsigned long long), gpu.device);
    }
    NCCL_CHECK(ncclGroupStart());
    for (Gpu& gpu : gpus_) {
      CUDA_CHECK(cudaSetDevice(gpu.device));
      NCCL_CHECK(ncclCommInitRank(&gpu.comm, ranks_, id, gpu.rank));
    }
    NCCL_CHECK(ncclGroupEnd());
  }
  ~GpuSet() {
    for (Gpu& gpu : gpus_) {
      cudaSetDevice(gpu.device);
      if (gpu.comm) ncclCommDestroy(gpu.comm);
      cudaFree(gpu.send), cudaFree(gpu.recv), cudaFree(gpu.wrong);
      if (gpu.start) cudaEventDestroy(gpu.start);
      if (gpu.stop) cudaEventDestroy(gpu.stop);
      if (gpu.stream) cudaStreamDestroy(gpu.stream);
    }
  }
  GpuSet(const GpuSet&) = delete;
  GpuSet& operator=(const GpuSet&) = delete;

  std::vector<Gpu>& gpus() { return gpus_; }
  int ranks() const { return ranks_; }
  void synchronize() {
    for (Gpu& gpu : gpus_) {
      CUDA_CHECK(cudaSetDevice(gpu.device));
      CUDA_CHECK(cudaStreamSynchronize(gpu.stream));
    }
  }

 private:
  static void allocate(void** pointer, uint64_t bytes, int device) {
    cudaError_t status = cudaMalloc(pointer, bytes);
    if (status != cudaSuccess)
      throw ResourceError(str("GPU ", device, ": cannot allocate ", bytes, " bytes (", cudaGetErrorString(status),
                              "): lower -e/--maxbytes"));
  }
  int ranks_ = 0;
  std::vector<Gpu> gpus_;
};

struct Case {
  Layout layout;
  DataType type;
  bool in_place;
};

// Where this GPU's collective reads and writes.
std::pair<const char*, char*> buffers_of(const Case& c, const Gpu& gpu) {
  if (!c.in_place) return {gpu.send, gpu.recv};
  size_t element = type_size(c.type);
  return {gpu.recv + in_place_input_offset(c.layout, gpu.rank) * element,
          gpu.recv + in_place_output_offset(c.layout, gpu.rank) * element};
}

void enqueue(const Case& c, const Gpu& gpu) {
  const Layout& l = c.layout;
  auto [input, output] = buffers_of(c, gpu);
  ncclDataType_t type = nccl_type(c.type);
  ncclRedOp_t op = nccl_op(l.op);
  uint64_t chunk = l.count / l.ranks;
  size_t element = type_size(c.type);
  switch (l.collective) {
    case Collective::all_reduce: NCCL_CHECK(ncclAllReduce(input, output, l.count, type, op, gpu.comm, gpu.stream)); break;
    case Collective::all_gather: NCCL_CHECK(ncclAllGather(input, output, chunk, type, gpu.comm, gpu.stream)); break;
    case Collective::reduce_scatter:
      NCCL_CHECK(ncclReduceScatter(input, output, chunk, type, op, gpu.comm, gpu.stream));
      break;
    case Collective::broadcast:
      NCCL_CHECK(ncclBroadcast(input, output, l.count, type, l.root, gpu.comm, gpu.stream));
      break;
    case Collective::reduce: NCCL_CHECK(ncclReduce(input, output, l.count, type, op, l.root, gpu.comm, gpu.stream)); break;
    case Collective::alltoall:
      NCCL_CHECK(ncclGroupStart());
      for (int peer = 0; peer < l.ranks; ++peer) {
        NCCL_CHECK(ncclSend(input + peer * chunk * element, chunk, type, peer, gpu.comm, gpu.stream));
        NCCL_CHECK(ncclRecv(output + peer * chunk * element, chunk, type, peer, gpu.comm, gpu.stream));
      }
      NCCL_CHECK(ncclGroupEnd());
      break;
    case Collective::sendrecv:
      NCCL_CHECK(ncclGroupStart());
      NCCL_CHECK(ncclSend(input, l.count, type, (gpu.rank + 1) % l.ranks, gpu.comm, gpu.stream));
      NCCL_CHECK(ncclRecv(output, l.count, type, (gpu.rank + l.ranks - 1) % l.ranks, gpu.comm, gpu.stream));
      NCCL_CHECK(ncclGroupEnd());
      break;
  }
}

// One collective on every GPU of this process (a group, so that -g > 1 does not deadlock).
void enqueue_all(const Case& c, GpuSet& set) {
  NCCL_CHECK(ncclGroupStart());
  for (Gpu& gpu : set.gpus()) {
    CUDA_CHECK(cudaSetDevice(gpu.device));
    enqueue(c, gpu);
  }
  NCCL_CHECK(ncclGroupEnd());
}

void fill_inputs(const Case& c, GpuSet& set) {
  for (Gpu& gpu : set.gpus()) {
    CUDA_CHECK(cudaSetDevice(gpu.device));
    auto [input, output] = buffers_of(c, gpu);
    uint64_t output_bytes = output_count(c.layout) * type_size(c.type);
    // Poison the output first (NaN for floats, -1 for integers) so that an untouched element is wrong.
    CUDA_CHECK(cudaMemsetAsync(output, 0xff, output_bytes, gpu.stream));
    launch_typed<FillInput>(c.type, gpu.stream, const_cast<char*>(input), c.layout, gpu.rank, input_count(c.layout));
  }
}

// Time per iteration on each GPU, in microseconds.
std::vector<double> time_iterations(const Case& c, GpuSet& set, const BenchOptions& options) {
  for (int i = 0; i < options.warmup_iterations; ++i) {
    enqueue_all(c, set);
    if (options.blocking) set.synchronize();
  }
  set.synchronize();
  for (Gpu& gpu : set.gpus()) {
    CUDA_CHECK(cudaSetDevice(gpu.device));
    CUDA_CHECK(cudaEventRecord(gpu.start, gpu.stream));
  }
  for (int i = 0; i < options.iterations; ++i) {
    enqueue_all(c, set);
    if (options.blocking) set.synchronize();
  }
  for (Gpu& gpu : set.gpus()) {
    CUDA_CHECK(cudaSetDevice(gpu.device));
    CUDA_CHECK(cudaEventRecord(gpu.stop, gpu.stream));
  }
  set.synchronize();
  std::vector<double> times;
  for (Gpu& gpu : set.gpus()) {
    float milliseconds = 0;
    CUDA_CHECK(cudaEventElapsedTime(&milliseconds, gpu.start, gpu.stop));
    times.push_back(milliseconds * 1000.0 / options.iterations);
  }
  return times;
}

// A fresh run on freshly filled inputs, every output element compared on the GPU.
int64_t count_wrong_elements(const Case& c, GpuSet& set) {
  fill_inputs(c, set);
  enqueue_all(c, set);
  double tolerance = c.layout.op == ReduceOp::avg && is_reduction(c.layout.collective) ? avg_tolerance(c.type, set.ranks()) : 0;
  for (Gpu& gpu : set.gpus()) {
    CUDA_CHECK(cudaSetDevice(gpu.device));
    CUDA_CHECK(cudaMemsetAsync(gpu.wrong, 0, sizeof(unsigned long long), gpu.stream));
    if (!output_checked(c.layout, gpu.rank)) continue;
    auto [input, output] = buffers_of(c, gpu);
    launch_typed<CountWrong>(c.type, gpu.stream, static_cast<const void*>(output), c.layout, gpu.rank,
                             output_count(c.layout), tolerance, gpu.wrong);
  }
  set.synchronize();
  int64_t wrong = 0;
  for (Gpu& gpu : set.gpus()) {
    CUDA_CHECK(cudaSetDevice(gpu.device));
    unsigned long long count = 0;
    CUDA_CHECK(cudaMemcpy(&count, gpu.wrong, sizeof count, cudaMemcpyDeviceToHost));
    wrong += static_cast<int64_t>(count);
  }
  return wrong;
}

Measurement measure(const Case& c, GpuSet& set, const BenchOptions& options, Rendezvous& rendezvous, uint64_t bytes) {
  fill_inputs(c, set);
  std::vector<double> times = time_iterations(c, set, options);
  int64_t wrong = options.check ? count_wrong_elements(c, set) : -1;
  std::vector<double> all_times;
  int64_t all_wrong = 0;
  decode_timings(rendezvous.all_gather(encode_timings(times, wrong)), all_times, all_wrong);
  return summarize(all_times, options.average, bytes, bus_bandwidth_factor(c.layout.collective, set.ranks()), all_wrong);
}

std::string nccl_version() {
  int version = 0;
  NCCL_CHECK(ncclGetVersion(&version));
  return str(version / 10000, ".", version % 10000 / 100, ".", version % 100);
}

// This process's GPUs as "rank\thost\tdevice\tbus\tname" lines, for the rendezvous.
std::string describe_gpus(GpuSet& set) {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::string text;
  for (Gpu& gpu : set.gpus()) {
    cudaDeviceProp properties{};
    CUDA_CHECK(cudaGetDeviceProperties(&properties, gpu.device));
    char bus_id[32] = {};
    CUDA_CHECK(cudaDeviceGetPCIBusId(bus_id, sizeof bus_id, gpu.device));
    text += str(gpu.rank, "\t", host, "\t", gpu.device, "\t", bus_id, "\t", properties.name, "\n");
  }
  return text;
}

std::vector<GpuInfo> parse_gpus(const std::vector<std::string>& blobs) {
  std::vector<GpuInfo> gpus;
  for (const std::string& blob : blobs) {
    size_t start = 0;
    for (size_t end; (end = blob.find('\n', start)) != std::string::npos; start = end + 1) {
      std::vector<std::string> fields;
      std::string line = blob.substr(start, end - start);
      for (size_t from = 0, tab;; from = tab + 1) {
        tab = line.find('\t', from);
        fields.push_back(line.substr(from, tab - from));
        if (tab == std::string::npos) break;
      }
      if (fields.size() != 5) throw RemoteError("rendezvous: a rank sent a malformed GPU description");
      gpus.push_back({std::stoi(fields[0]), fields[1], std::stoi(fields[2]), fields[4], fields[3]});
    }
  }
  return gpus;
}

// How each pair of GPUs is connected, as CUDA sees it from this process (pairs on this host) or
// "network" (pairs on different hosts). NCCL picks its transport on its own; this is the hardware.
std::vector<std::string> describe_links(const std::vector<GpuInfo>& gpus, const std::string& my_host) {
  std::vector<std::string> links;
  for (size_t a = 0; a < gpus.size(); ++a)
    for (size_t b = a + 1; b < gpus.size(); ++b) {
      std::string kind;
      if (gpus[a].host != gpus[b].host) kind = "different hosts: network";
      else if (gpus[a].host != my_host) kind = "same host (probed only on rank 0's host)";
      else if (gpus[a].device == gpus[b].device) kind = "same device";
      else {
        int access = 0, performance = 0;
        CUDA_CHECK(cudaDeviceGetP2PAttribute(&access, cudaDevP2PAttrAccessSupported, gpus[a].device, gpus[b].device));
        cudaDeviceGetP2PAttribute(&performance, cudaDevP2PAttrPerformanceRank, gpus[a].device, gpus[b].device);
        kind = access ? str("peer-to-peer (CUDA performance rank ", performance, ")") : "no peer access: through host memory";
      }
      links.push_back(str("rank ", gpus[a].rank, " <-> rank ", gpus[b].rank, ": ", kind));
    }
  return links;
}

std::vector<std::pair<std::string, std::string>> nccl_environment() {
  std::vector<std::pair<std::string, std::string>> variables;
  for (char** entry = environ; *entry; ++entry) {
    std::string text = *entry;
    size_t equals = text.find('=');
    if (text.rfind("NCCL_", 0) == 0 && equals != std::string::npos)
      variables.emplace_back(text.substr(0, equals), text.substr(equals + 1));
  }
  std::sort(variables.begin(), variables.end());
  return variables;
}

Topology gather_topology(GpuSet& set, Rendezvous& rendezvous) {
  Topology topology;
  topology.gpus = parse_gpus(rendezvous.all_gather(describe_gpus(set)));
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  topology.links = describe_links(topology.gpus, host);
  topology.nccl_version = nccl_version();
  topology.nccl_environment = nccl_environment();
  return topology;
}

ncclUniqueId shared_unique_id(const LaunchInfo& launch, Rendezvous& rendezvous) {
  ncclUniqueId id{};
  if (launch.rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
  std::string blob(reinterpret_cast<const char*>(&id), sizeof id);
  std::string from_rank0 = rendezvous.all_gather(launch.rank == 0 ? blob : std::string()).at(0);
  if (from_rank0.size() != sizeof id) throw RemoteError("rendezvous: rank 0 sent a malformed NCCL unique id");
  std::memcpy(&id, from_rank0.data(), sizeof id);
  return id;
}

}  // namespace

std::string probe_gpus(const LaunchInfo& launch, int gpus_per_process) {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) return str("no usable CUDA device (", cudaGetErrorString(status), ")");
  int first = first_device(launch, gpus_per_process);
  if (first + gpus_per_process > count)
    return str("needs CUDA devices ", first, "..", first + gpus_per_process - 1, " (local rank ", launch.local_rank,
               " x -g ", gpus_per_process, ") but ", count, " are visible");
  int version = 0;
  if (ncclGetVersion(&version) != ncclSuccess) return "NCCL is not usable (ncclGetVersion failed)";
  return "";
}

std::vector<Row> run_nccl_benchmark(const BenchOptions& options, const LaunchInfo& launch, Rendezvous& rendezvous,
                                    Topology& topology, const std::function<void(const std::string&)>& print) {
  int ranks = launch.world_size * options.gpus_per_process;
  if (options.root >= ranks) throw UsageError(str("-r/--root ", options.root, ": there are only ", ranks, " ranks"));
  ncclUniqueId id = shared_unique_id(launch, rendezvous);
  GpuSet set(launch, options.gpus_per_process, options.max_bytes, id);
  topology = gather_topology(set, rendezvous);
  print(format_topology(topology));

  std::vector<uint64_t> sizes = size_sweep(options.min_bytes, options.max_bytes, options.step_bytes, options.step_factor);
  std::vector<Row> all_rows;
  for (Collective collective : options.collectives) {
    print(format_table_header(collective, ranks));
    std::vector<Row> rows;
    bool reduces = is_reduction(collective);
    bool rooted = collective == Collective::broadcast || collective == Collective::reduce;
    for (DataType type : options.data_types)
      for (ReduceOp op : reduces ? options.ops : std::vector<ReduceOp>{ReduceOp::sum})
        for (uint64_t size : sizes) {
          uint64_t count = element_count(collective, type, size, ranks);
          if (count == 0) continue;  // smaller than one element per rank
          Layout layout{collective, op, is_low_precision(type), ranks, options.root, count};
          Row row{collective, type, op, rooted ? options.root : -1, count * type_size(type), count, {}, {}};
          row.out_of_place = measure({layout, type, false}, set, options, rendezvous, row.bytes);
          if (has_in_place(collective)) row.in_place = measure({layout, type, true}, set, options, rendezvous, row.bytes);
          print(format_row(row));
          rows.push_back(row);
        }
    print(format_stragglers(rows));
    print(format_average(rows));
    all_rows.insert(all_rows.end(), rows.begin(), rows.end());
  }
  return all_rows;
}

}  // namespace dsk::dist
