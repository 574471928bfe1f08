// The innermost loops of the CPU kernels are compiled twice, for x86-64-v3 (AVX2 + FMA) and for
// the baseline, and the loader picks one by the processor (GCC's target_clones). One binary then
// runs on any x86-64 and uses the wide units where they exist. A clone is never inlined, so mark
// the small per-tile functions, not the OpenMP-parallel loops around them.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DSK_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define DSK_MULTIVERSION
#endif
