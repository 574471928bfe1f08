// GPU utilization and memory, averaged over the GPUs of this machine: from NVML, loaded at run
// time with dlopen("libnvidia-ml.so.1") so that dsk-scale runs where there is no GPU driver, or
// else from `nvidia-smi --query-gpu=... --format=csv,noheader,nounits`.
#pragma once

#include <map>
#include <string>

namespace dsk::scale {

// {"gpu_util": percent, "gpu_memory": percent used, "gpus": count}. ResourceError saying why when
// neither NVML nor nvidia-smi can be used (no GPU, no driver).
std::map<std::string, double> read_gpu_metrics();

// The nvidia-smi query's output, one line per GPU: "util, memory.used, memory.total".
std::map<std::string, double> parse_nvidia_smi_csv(const std::string& text);

}  // namespace dsk::scale
