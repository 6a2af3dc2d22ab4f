// WEFT_CLONES: a hot kernel function built twice, for x86-64-v3 (AVX2, FMA)
// and the baseline, the loader picking one for the machine. Internal to
// kernels/cpu.
#ifndef WEFT_KERNELS_CPU_TARGETCLONES_H
#define WEFT_KERNELS_CPU_TARGETCLONES_H

// GCC inlines the helpers into each clone (flatten); clang, which builds the
// fuzzers, cannot combine the two attributes.
#if defined(__clang__)
#define WEFT_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define WEFT_CLONES                                                            \
  __attribute__((target_clones("arch=x86-64-v3", "default"), flatten))
#endif

#endif // WEFT_KERNELS_CPU_TARGETCLONES_H
