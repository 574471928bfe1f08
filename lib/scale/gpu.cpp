#include "scale/gpu.hpp"

#include <dlfcn.h>

#include <optional>
#include <sstream>

#include "core/error.hpp"
#include "core/log.hpp"
#include "scale/process.hpp"

namespace dsk::scale {
namespace {

// The few NVML declarations dsk-scale needs (nvml.h is not required at build time); the layouts
// are NVML's stable ABI.
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_opaque*;
struct nvmlUtilization_t {
  unsigned int gpu;
  unsigned int memory;
};
struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

class NvmlLibrary {
 public:
  NvmlLibrary() : handle_(dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL)) {}
  ~NvmlLibrary() {
    if (handle_) dlclose(handle_);
  }
  bool loaded() const { return handle_ != nullptr; }
  template <typename Function>
  Function symbol(const char* name) const {
    void* address = dlsym(handle_, name);
    if (!address) throw ResourceError(str("NVML: libnvidia-ml.so.1 lacks ", name));
    return reinterpret_cast<Function>(address);
  }

 private:
  void* handle_;
};

std::optional<std::map<std::string, double>> read_nvml() {
  NvmlLibrary nvml;
  if (!nvml.loaded()) return std::nullopt;
  auto init = nvml.symbol<nvmlReturn_t (*)()>("nvmlInit_v2");
  auto shutdown = nvml.symbol<nvmlReturn_t (*)()>("nvmlShutdown");
  auto count_devices = nvml.symbol<nvmlReturn_t (*)(unsigned int*)>("nvmlDeviceGetCount_v2");
  auto device_at = nvml.symbol<nvmlReturn_t (*)(unsigned int, nvmlDevice_t*)>("nvmlDeviceGetHandleByIndex_v2");
  auto utilization = nvml.symbol<nvmlReturn_t (*)(nvmlDevice_t, nvmlUtilization_t*)>("nvmlDeviceGetUtilizationRates");
  auto memory = nvml.symbol<nvmlReturn_t (*)(nvmlDevice_t, nvmlMemory_t*)>("nvmlDeviceGetMemoryInfo");
  if (init() != 0) {
    log_debug("NVML: nvmlInit_v2 failed");
    return std::nullopt;
  }
  unsigned int count = 0;
  double util_sum = 0, memory_sum = 0;
  bool ok = count_devices(&count) == 0 && count > 0;
  for (unsigned int i = 0; ok && i < count; ++i) {
    nvmlDevice_t device = nullptr;
    nvmlUtilization_t rates{};
    nvmlMemory_t info{};
    ok = device_at(i, &device) == 0 && utilization(device, &rates) == 0 && memory(device, &info) == 0;
    util_sum += rates.gpu;
    memory_sum += info.total ? 100.0 * static_cast<double>(info.used) / static_cast<double>(info.total) : 0;
  }
  shutdown();
  if (!ok) return std::nullopt;
  return std::map<std::string, double>{{"gpu_util", util_sum / count}, {"gpu_memory", memory_sum / count}, {"gpus", count}};
}

}  // namespace

std::map<std::string, double> parse_nvidia_smi_csv(const std::string& text) {
  std::istringstream lines(text);
  std::string line;
  double util_sum = 0, memory_sum = 0;
  int count = 0;
  while (std::getline(lines, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::istringstream fields(line);
    double util = 0, used = 0, total = 0;
    char comma1 = 0, comma2 = 0;
    if (!(fields >> util >> comma1 >> used >> comma2 >> total) || comma1 != ',' || comma2 != ',' || total <= 0)
      throw ResourceError(str("nvidia-smi: expected 'utilization, memory.used, memory.total', got '", line, "'"));
    util_sum += util;
    memory_sum += 100.0 * used / total;
    ++count;
  }
  if (count == 0) throw ResourceError("nvidia-smi lists no GPU");
  return {{"gpu_util", util_sum / count}, {"gpu_memory", memory_sum / count}, {"gpus", count}};
}

std::map<std::string, double> read_gpu_metrics() {
  if (auto metrics = read_nvml()) return *metrics;
  CommandResult smi = run_command({"nvidia-smi", "--query-gpu=utilization.gpu,memory.used,memory.total",
                                   "--format=csv,noheader,nounits"});
  if (smi.exit_code == 127)
    throw ResourceError("GPU metrics unavailable: libnvidia-ml.so.1 cannot be loaded and nvidia-smi is not on PATH (no GPU driver here?)");
  if (smi.exit_code != 0)
    throw ResourceError(str("GPU metrics unavailable: NVML failed and nvidia-smi exited ", smi.exit_code, ": ", smi.errors));
  return parse_nvidia_smi_csv(smi.output);
}

}  // namespace dsk::scale
