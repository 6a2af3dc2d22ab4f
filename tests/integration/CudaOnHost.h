// CUDA's device built-ins on the host, so that CUDA kernels run on a machine
// without a GPU: the generated ones (CudaEmulationTest.cpp prepends this
// header to their sources and compiles them with the CPU kernels' compiler)
// and kernels/cuda/Library.cu (tests/unit/cuda/LibraryOnHostTest.cpp).
//
// A launch runs its blocks one after another; a block's threads are fibers
// (ucontext) on the calling thread, each with its own threadIdx. A fiber
// runs until it reaches a barrier: __syncthreads waits for the block, a warp
// shuffle for the 32 lanes of its warp (it writes its value, waits, reads
// its partner's, waits). Barriers the hardware would not pass — a shuffle
// with a lane that has exited, lanes of a warp waiting at a shuffle while
// others wait at __syncthreads — end the launch with an error instead of a
// hang (a thread that has exited counts as arrived at __syncthreads).
// __shared__ is static storage: one block runs at a time.
//
// Not the GPU: blocks never run concurrently, lanes never race, and the math
// library is the host's; what this checks is the kernels' indexing, vector
// accesses, layouts, reductions and barriers against the CPU kernels.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <utility>

#include <math.h>
#include <sys/mman.h>
#include <ucontext.h>

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

// Internal linkage throughout: each shared object of emulated kernels keeps
// its own state (shared ones would bind across objects as unique symbols
// and outlive the object that defined them).
namespace weftemu {
namespace {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

enum class State { Running, AtBlockBarrier, AtWarpBarrier, Done };

struct Fiber {
  ucontext_t context;
  State state = State::Done;
  Dim3 index;
};

constexpr int kMaxThreads = 1024;
constexpr size_t kStackBytes = 256 << 10;

struct Launch {
  Dim3 blockIdx, blockDim, gridDim;
  Fiber fibers[kMaxThreads];
  Fiber *current = nullptr;
  ucontext_t scheduler;
  uint64_t slots[kMaxThreads]; // the values lanes exchange in a shuffle
  struct Fragments {
    unsigned a[4], b[2];
  } fragments[kMaxThreads]; // an mma's operands
  std::function<void()> body;
  unsigned char *dynamicShared = nullptr; // extern __shared__
};

inline Launch *active = nullptr;

inline void wait(State state) {
  Fiber *self = active->current;
  self->state = state;
  swapcontext(&self->context, &active->scheduler);
}

inline void fiberMain() {
  active->body();
  active->current->state = State::Done; // uc_link returns to the scheduler
}

/// Runs one block to its end; an empty string when it passes every barrier.
inline std::string runBlock(Launch &l, char *stacks) {
  const int n = static_cast<int>(l.blockDim.x);
  for (int t = 0; t < n; ++t) {
    Fiber &f = l.fibers[t];
    f.index = {static_cast<unsigned>(t), 0, 0};
    f.state = State::Running;
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = stacks + t * kStackBytes;
    f.context.uc_stack.ss_size = kStackBytes;
    f.context.uc_link = &l.scheduler;
    makecontext(&f.context, fiberMain, 0);
  }
  for (;;) {
    for (int t = 0; t < n; ++t)
      if (l.fibers[t].state == State::Running) {
        l.current = &l.fibers[t];
        swapcontext(&l.scheduler, &l.fibers[t].context);
      }
    // Every fiber now waits or has exited. Warps whose lanes all wait at a
    // shuffle go on first.
    bool released = false, atWarp = false, atBlock = false;
    for (int w = 0; w < n; w += 32) {
      int waiting = 0, done = 0, lanes = std::min(32, n - w);
      for (int t = w; t < w + lanes; ++t) {
        waiting += l.fibers[t].state == State::AtWarpBarrier;
        done += l.fibers[t].state == State::Done;
      }
      if (waiting == lanes) {
        for (int t = w; t < w + lanes; ++t)
          l.fibers[t].state = State::Running;
        released = true;
      } else if (waiting > 0) {
        atWarp = true;
        if (done > 0)
          return "block " + std::to_string(l.blockIdx.x) +
                 ": a shuffle of warp " + std::to_string(w / 32) +
                 " with lanes that have exited";
      }
    }
    if (released)
      continue;
    for (int t = 0; t < n; ++t)
      atBlock |= l.fibers[t].state == State::AtBlockBarrier;
    if (atWarp)
      return "block " + std::to_string(l.blockIdx.x) +
             ": lanes of a warp wait at a shuffle while others wait at "
             "__syncthreads";
    if (!atBlock)
      return ""; // every thread has exited
    for (int t = 0; t < n; ++t)
      if (l.fibers[t].state == State::AtBlockBarrier)
        l.fibers[t].state = State::Running;
  }
}

/// Runs `body` as the kernel of a grid × threads launch with `sharedBytes`
/// of dynamic shared memory; an empty string, else what went wrong.
inline std::string launchBody(Dim3 grid, int threads, size_t sharedBytes,
                              std::function<void()> body) {
  if (threads <= 0 || threads > kMaxThreads || grid.x == 0 || grid.y == 0)
    return "launch of " + std::to_string(grid.x) + " × " +
           std::to_string(grid.y) + " blocks of " + std::to_string(threads) +
           " threads";
  static Launch l; // large: kept off the stack
  l.body = std::move(body);
  l.blockDim = {static_cast<unsigned>(threads), 1, 1};
  l.gridDim = grid;
  const size_t bytes = static_cast<size_t>(threads) * kStackBytes;
  void *stacks = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (stacks == MAP_FAILED)
    return "no memory for the fibers' stacks";
  l.dynamicShared = static_cast<unsigned char *>(std::aligned_alloc(
      128, std::max<size_t>(128, (sharedBytes + 127) / 128 * 128)));
  active = &l;
  std::string error;
  for (unsigned y = 0; y < grid.y && error.empty(); ++y)
    for (unsigned x = 0; x < grid.x && error.empty(); ++x) {
      l.blockIdx = {x, y, 0};
      error = runBlock(l, static_cast<char *>(stacks));
    }
  active = nullptr;
  std::free(l.dynamicShared);
  munmap(stacks, bytes);
  return error;
}

template <typename... A, size_t... I>
void call(void (*kernel)(A...), char **args, std::index_sequence<I...>) {
  kernel(reinterpret_cast<A>(args[I])...);
}

/// Runs the generated `kernel` (every parameter a pointer) over `grid`
/// blocks of `threads` threads with the pointers `args`.
template <typename... A>
std::string launch(void (*kernel)(A...), char **args, long grid, int threads) {
  if (grid <= 0 || grid > 0xffffffffL)
    return "launch of " + std::to_string(grid) + " blocks";
  return launchBody({static_cast<unsigned>(grid), 1, 1}, threads, 0, [=] {
    call(kernel, args, std::index_sequence_for<A...>{});
  });
}

template <typename T> T shuffle(T value, int source) {
  static_assert(sizeof(T) <= sizeof(uint64_t), "a shuffle moves 8 bytes");
  const unsigned self = active->current->index.x;
  std::memcpy(&active->slots[self], &value, sizeof(T));
  wait(State::AtWarpBarrier);
  T other;
  std::memcpy(&other, &active->slots[(self & ~31u) | (source & 31)], sizeof(T));
  wait(State::AtWarpBarrier); // every lane has read before the next write
  return other;
}

} // namespace
} // namespace weftemu

#define threadIdx (::weftemu::active->current->index)
#define blockIdx (::weftemu::active->blockIdx)
#define blockDim (::weftemu::active->blockDim)
#define gridDim (::weftemu::active->gridDim)

static inline void __syncthreads() {
  weftemu::wait(weftemu::State::AtBlockBarrier);
}

template <typename T>
static T __shfl_xor_sync(unsigned mask, T value, int laneMask) {
  if (mask != 0xffffffffu)
    std::abort(); // the generated kernels shuffle whole warps only
  return weftemu::shuffle(value, static_cast<int>(threadIdx.x & 31) ^ laneMask);
}

static inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
static inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}
static inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// kernels/cuda/Library.cu on the host (tests/unit/cuda/LibraryOnHostTest.cpp):
// what it takes from cuda_bf16.h and the device's intrinsics, and its
// tensor-core product.
#define WEFT_CUDA_ON_HOST 1
#define __align__(n) alignas(n)

struct __nv_bfloat16 {
  uint16_t bits;
};
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
struct uint4 {
  unsigned x, y, z, w;
};
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) {
  return {x, y, z, w};
}
static inline float __bfloat162float(__nv_bfloat16 b) {
  return __uint_as_float(static_cast<unsigned>(b.bits) << 16);
}
/// Nearest even; NaN stays NaN.
static inline __nv_bfloat16 __float2bfloat16_rn(float value) {
  unsigned word = __float_as_uint(value);
  if ((word & 0x7fffffffu) > 0x7f800000u)
    return {static_cast<uint16_t>(word >> 16 | 0x40)};
  word += 0x7fffu + (word >> 16 & 1);
  return {static_cast<uint16_t>(word >> 16)};
}
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) {
  return b.bits;
}
static inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
  return {__float2bfloat16_rn(lo), __float2bfloat16_rn(hi)};
}
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return std::sqrt(a); }

// Fibers switch only at barriers: an atomic is a plain read-modify-write.
static inline unsigned long long atomicCAS(unsigned long long *address,
                                           unsigned long long compare,
                                           unsigned long long value) {
  const unsigned long long old = *address;
  if (old == compare)
    *address = value;
  return old;
}

template <typename T>
static T __shfl_sync(unsigned mask, T value, int sourceLane) {
  if (mask != 0xffffffffu)
    std::abort();
  return weftemu::shuffle(value, sourceLane);
}

#define WEFT_DYNAMIC_SHARED(name)                                              \
  unsigned char *name = ::weftemu::active->dynamicShared

namespace weftemu {
namespace {
/// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: d += A · B over a
/// warp, each lane holding the fragments the PTX ISA gives (group g = lane
/// / 4 rows g and g + 8, t = lane % 4 columns 2t, 2t + 1 and + 8).
inline void mmaM16N8K16(float (&d)[4], const unsigned (&a)[4], unsigned b0,
                        unsigned b1) {
  Launch &l = *active;
  const unsigned self = l.current->index.x, warp = self & ~31u;
  for (int i = 0; i < 4; ++i)
    l.fragments[self].a[i] = a[i];
  l.fragments[self].b[0] = b0;
  l.fragments[self].b[1] = b1;
  wait(State::AtWarpBarrier);
  auto half = [](unsigned word, int k) {
    return __uint_as_float((k % 2 ? word >> 16 : word & 0xffffu) << 16);
  };
  auto A = [&](int r, int k) { // lane g·4 + t, register rowHalf + 2·colHalf
    const unsigned lane = (r % 8) * 4 + (k % 8) / 2;
    return half(l.fragments[warp + lane].a[r / 8 + 2 * (k / 8)], k);
  };
  auto B = [&](int k, int n) { // lane n·4 + t, register k / 8
    const unsigned lane = n * 4 + (k % 8) / 2;
    return half(l.fragments[warp + lane].b[k / 8], k);
  };
  const int g = static_cast<int>(self & 31) / 4,
            t = static_cast<int>(self & 31) % 4;
  for (int i = 0; i < 4; ++i) {
    const int r = g + 8 * (i / 2), n = 2 * t + i % 2;
    float sum = 0.0f;
    for (int k = 0; k < 16; ++k)
      sum += A(r, k) * B(k, n);
    d[i] += sum;
  }
  wait(State::AtWarpBarrier); // every lane has read the fragments
}
} // namespace
} // namespace weftemu
