// Token embedding lookup: out [N,C] = table [V,C] rows; backward scatters the rows back (+=).
#include <cstring>

#include "kernels.hpp"

namespace dsk::kernels::cpu {

void embedding_forward(float* out, const int32_t* tokens, const float* table, int N, int C) {
  for (int n = 0; n < N; n++) std::memcpy(out + (int64_t)n * C, table + (int64_t)tokens[n] * C, sizeof(float) * C);
}

void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int N, int C) {
  for (int n = 0; n < N; n++) {  // serial: two positions may hold the same token
    float* row = dtable + (int64_t)tokens[n] * C;
    const float* d = dout + (int64_t)n * C;
    for (int c = 0; c < C; c++) row[c] += d[c];
  }
}

}  // namespace dsk::kernels::cpu
