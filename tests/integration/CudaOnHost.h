// CUDA's device built-ins on the host, so that the generated CUDA kernels run
// on a machine without a GPU (CudaEmulationTest.cpp prepends this header to
// their sources and compiles them with the CPU kernels' compiler).
//
// A launch runs its blocks one after another; a block's threads are fibers
// (ucontext) on the calling thread, each with its own threadIdx. A fiber
// runs until it reaches a barrier: __syncthreads waits for the block, a warp
// shuffle for the 32 lanes of its warp (it writes its value, waits, reads
// its partner's, waits). Barriers the hardware would not pass — a shuffle
// with a lane that has exited or waits elsewhere, threads waiting at
// different barriers — end the launch with an error instead of a hang.
// __shared__ is static storage: one block runs at a time.
//
// Not the GPU: blocks never run concurrently, lanes never race, and the math
// library is the host's; what this checks is the kernels' indexing, vector
// accesses, layouts, reductions and barriers against the CPU kernels.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
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

namespace weftemu {

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
  void (*body)(void *) = nullptr;
  void *arguments = nullptr;
};

inline Launch *active = nullptr;

inline void wait(State state) {
  Fiber *self = active->current;
  self->state = state;
  swapcontext(&self->context, &active->scheduler);
}

inline void fiberMain() {
  active->body(active->arguments);
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
                 ": a shuffle of "
                 "warp " +
                 std::to_string(w / 32) + " with lanes that have exited";
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

template <typename... A, size_t... I>
void call(void (*kernel)(A...), char **args, std::index_sequence<I...>) {
  kernel(reinterpret_cast<A>(args[I])...);
}

/// Runs `kernel` over `grid` blocks of `threads` threads with the pointers
/// `args`; an empty string, else what went wrong.
template <typename... A>
std::string launch(void (*kernel)(A...), char **args, long grid, int threads) {
  if (threads <= 0 || threads > kMaxThreads || grid <= 0)
    return "launch of " + std::to_string(grid) + " blocks of " +
           std::to_string(threads) + " threads";
  struct Bound {
    void (*kernel)(A...);
    char **args;
  } bound{kernel, args};
  static Launch l; // large: kept off the stack
  l.body = [](void *p) {
    auto *b = static_cast<Bound *>(p);
    call(b->kernel, b->args, std::index_sequence_for<A...>{});
  };
  l.arguments = &bound;
  l.blockDim = {static_cast<unsigned>(threads), 1, 1};
  l.gridDim = {static_cast<unsigned>(grid), 1, 1};
  const size_t bytes = static_cast<size_t>(threads) * kStackBytes;
  void *stacks = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (stacks == MAP_FAILED)
    return "no memory for the fibers' stacks";
  active = &l;
  std::string error;
  for (long b = 0; b < grid && error.empty(); ++b) {
    l.blockIdx = {static_cast<unsigned>(b), 0, 0};
    error = runBlock(l, static_cast<char *>(stacks));
  }
  active = nullptr;
  munmap(stacks, bytes);
  return error;
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

} // namespace weftemu

#define threadIdx (::weftemu::active->current->index)
#define blockIdx (::weftemu::active->blockIdx)
#define blockDim (::weftemu::active->blockDim)
#define gridDim (::weftemu::active->gridDim)

inline void __syncthreads() { weftemu::wait(weftemu::State::AtBlockBarrier); }

template <typename T> T __shfl_xor_sync(unsigned mask, T value, int laneMask) {
  if (mask != 0xffffffffu)
    std::abort(); // the generated kernels shuffle whole warps only
  return weftemu::shuffle(value, static_cast<int>(threadIdx.x & 31) ^ laneMask);
}

inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}
inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
