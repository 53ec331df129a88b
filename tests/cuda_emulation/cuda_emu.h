// A thread-by-thread CPU emulation of the CUDA execution model, just large enough
// to host-compile and run the project's real device code (csrc/cuda/*.cuh) with g++.
//
// Each CUDA thread of a block is a fiber (ucontext) with its own stack; the blocks
// of a grid run one after another. A fiber runs until it reaches __syncthreads()
// or returns; when every fiber of the block has stopped, the scheduler checks the
// barrier and releases all of them. That makes three kinds of device-code bugs
// visible instead of hiding them:
//
//  * a divergent barrier (some threads wait at __syncthreads while others have
//    returned, or threads wait at different __syncthreads calls) stops the
//    program with a message naming the threads and source lines;
//  * a missing barrier (a shared-memory race): between two barriers the fibers run
//    one at a time, in thread order or, with set_reverse_order(true), in reverse
//    order. A thread that reads what another thread writes in the same interval
//    then reads the stale value in one of the two orders, so running a kernel in
//    both orders and comparing with an oracle exposes the race;
//  * reads of shared memory that no thread wrote: all __shared__ variables live in
//    one linker section that is filled with 0x7F bytes (3.4e38 as float, 1.4e306
//    as double) before every block, so such reads poison the results.
//
// Device buffers (DeviceArray) end at an inaccessible page and start after one,
// so an out-of-bounds global load or store crashes the process.
//
// Supported: __global__/__device__/__forceinline__/__launch_bounds__/__align__,
// __shared__ (static storage shared by the fibers of the running block),
// threadIdx/blockIdx/blockDim/gridDim, __syncthreads, float4, dim3, the host
// math library (fabsf, fminf, ...), stand-ins for the 16-bit storage types, and cuda_fp16.h's
// __half / __half2 with the packed intrinsics the kernels use (bit-exact: IEEE binary16,
// every operation rounded to nearest even, as the GPU's HADD2/HSUB2 round). Not supported
// (compile errors, not silent): warp intrinsics, atomics, dynamic shared memory, and any
// other cuda_fp16.h function (add it here, with its rounding, when a kernel needs it).
#pragma once

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// One section for every __shared__ variable, so that the scheduler can poison it.
#define __shared__ static __attribute__((section("cuda_emu_shared")))
#define __syncthreads() ::cuda_emu::sync_threads(__FILE__, __LINE__)

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
  float x, y, z, w;
};

// bfloat16 as at::BFloat16 stores it (the top half of a float), converted with
// round-to-nearest-even like c10. fp16 is the compiler's _Float16 where it has one.
struct bfloat16 {
  std::uint16_t bits;
  bfloat16() = default;
  explicit bfloat16(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    bits = std::isnan(f) ? std::uint16_t(0x7FC0) : std::uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
  }
  explicit operator float() const {
    const std::uint32_t u = std::uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }
};
#if defined(__FLT16_MAX__)
#define CUDA_EMU_HAS_FLOAT16 1
using float16 = _Float16;
#else
#define CUDA_EMU_HAS_FLOAT16 0
#endif

// ---- cuda_fp16.h stand-ins. __half is IEEE binary16 as bits, converted bit by bit (no
// dependence on the compiler's _Float16). Arithmetic converts to float, computes there and
// rounds once to binary16: exact for |·|, and correctly rounded for + and - because float's
// 24 significant bits are at least 2·11 + 2 (double rounding through float is then
// innocuous), which is what the GPU's fp16 units compute. No operators: the device code must
// use the intrinsics, whose rounding is defined.
struct __half {
  std::uint16_t bits;
};
struct __half2 {
  __half x, y;  // low, high
};

inline float __half2float(__half h) {
  const std::uint32_t sign = std::uint32_t(h.bits & 0x8000u) << 16;
  const std::uint32_t exp = (h.bits >> 10) & 0x1Fu, man = h.bits & 0x3FFu;
  std::uint32_t u;
  if (exp == 0) {  // zero or subnormal: man · 2^-24, exact in float
    const float f = std::ldexp(float(man), -24);
    std::memcpy(&u, &f, sizeof u);
    u |= sign;
  } else if (exp == 31) {  // inf or NaN (payload kept)
    u = sign | 0x7F800000u | (man << 13);
  } else {
    u = sign | ((exp - 15 + 127) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline __half __float2half_rn(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  const std::uint16_t sign = std::uint16_t((u >> 16) & 0x8000u);
  const std::uint32_t a = u & 0x7FFFFFFFu;
  std::uint32_t h;
  if (a > 0x7F800000u) {
    h = 0x7E00u;  // NaN
  } else if (a >= 0x47800000u) {
    h = 0x7C00u;  // |f| >= 2^16: overflows to inf
  } else if (a < 0x38800000u) {
    // Below 2^-14: a subnormal (or zero), man = |f| · 2^24 rounded to nearest even;
    // 1024 is the smallest normal, reached by carry.
    h = std::uint32_t(std::nearbyint(std::ldexp(std::fabs(f), 24)));
  } else {
    // Normal: drop 13 mantissa bits, rounding to nearest even; a carry may step the
    // exponent, up to inf (65520 and above).
    h = ((((a >> 23) - 127 + 15) << 10) | ((a >> 13) & 0x3FFu));
    const std::uint32_t rest = a & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  }
  return __half{std::uint16_t(sign | h)};
}

inline __half2 __halves2half2(__half lo, __half hi) { return __half2{lo, hi}; }
inline float __low2float(__half2 h) { return __half2float(h.x); }
inline float __high2float(__half2 h) { return __half2float(h.y); }
inline __half2 __hsub2(__half2 a, __half2 b) {
  return {__float2half_rn(__half2float(a.x) - __half2float(b.x)), __float2half_rn(__half2float(a.y) - __half2float(b.y))};
}
inline __half2 __hadd2(__half2 a, __half2 b) {
  return {__float2half_rn(__half2float(a.x) + __half2float(b.x)), __float2half_rn(__half2float(a.y) + __half2float(b.y))};
}
inline __half2 __habs2(__half2 a) {  // clears the sign bits (a NaN stays a NaN)
  return {__half{std::uint16_t(a.x.bits & 0x7FFFu)}, __half{std::uint16_t(a.y.bits & 0x7FFFu)}};
}

// The running fiber's indices (set by the scheduler before every switch into a fiber).
inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

extern "C" char __start_cuda_emu_shared[];
extern "C" char __stop_cuda_emu_shared[];

namespace cuda_emu {

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "cuda_emu: %s\n", what);
  std::fflush(stderr);
  std::_Exit(3);
}

enum class FiberState { Running, AtBarrier, Done };

struct Fiber {
  ucontext_t ctx;
  FiberState state;
  const char* file;
  int line;
};

struct Scheduler {
  static constexpr std::size_t kStackBytes = 256 * 1024;
  ucontext_t main_ctx;
  std::vector<Fiber> fibers;
  std::vector<char*> stacks;
  Fiber* current = nullptr;
  const std::function<void()>* body = nullptr;
  bool reverse = false;
  // Statistics of the last launch.
  long long blocks = 0, barriers = 0;
};

inline Scheduler& scheduler() {
  static Scheduler s;
  return s;
}

// Threads of a block run between barriers in reverse thread order when true.
inline void set_reverse_order(bool reverse) { scheduler().reverse = reverse; }

inline void sync_threads(const char* file, int line) {
  Scheduler& s = scheduler();
  Fiber* f = s.current;
  if (f == nullptr) fail("__syncthreads() called outside a kernel launch");
  f->state = FiberState::AtBarrier;
  f->file = file;
  f->line = line;
  if (swapcontext(&f->ctx, &s.main_ctx) != 0) fail("swapcontext failed");
}

inline void fiber_entry() {
  Scheduler& s = scheduler();
  (*s.body)();
  s.current->state = FiberState::Done;
  // Returning switches to uc_link, the scheduler.
}

inline void set_thread_index(unsigned linear, dim3 block) {
  threadIdx.x = linear % block.x;
  threadIdx.y = (linear / block.x) % block.y;
  threadIdx.z = linear / (block.x * block.y);
}

// Runs one block of `body`: every thread to its next barrier, check, release, repeat.
inline void run_block(const std::function<void()>& body, dim3 block) {
  Scheduler& s = scheduler();
  const unsigned nt = block.x * block.y * block.z;
  if (nt == 0 || nt > 1024) fail("block size must be 1..1024 threads");
  while (s.stacks.size() < nt) {
    void* p = std::malloc(Scheduler::kStackBytes);
    if (p == nullptr) fail("out of memory for fiber stacks");
    s.stacks.push_back(static_cast<char*>(p));
  }
  s.fibers.resize(nt);
  s.body = &body;
  std::memset(__start_cuda_emu_shared, 0x7F, (std::size_t)(__stop_cuda_emu_shared - __start_cuda_emu_shared));
  for (unsigned t = 0; t < nt; ++t) {
    Fiber& f = s.fibers[t];
    f.state = FiberState::Running;
    f.file = nullptr;
    f.line = 0;
    if (getcontext(&f.ctx) != 0) fail("getcontext failed");
    f.ctx.uc_stack.ss_sp = s.stacks[t];
    f.ctx.uc_stack.ss_size = Scheduler::kStackBytes;
    f.ctx.uc_link = &s.main_ctx;
    makecontext(&f.ctx, &fiber_entry, 0);
  }
  for (;;) {
    for (unsigned i = 0; i < nt; ++i) {
      const unsigned t = s.reverse ? nt - 1 - i : i;
      Fiber& f = s.fibers[t];
      if (f.state == FiberState::Done) continue;
      f.state = FiberState::Running;
      set_thread_index(t, block);
      s.current = &f;
      if (swapcontext(&s.main_ctx, &f.ctx) != 0) fail("swapcontext failed");
    }
    s.current = nullptr;
    // Every fiber is now at a barrier or done.
    const Fiber* waiting = nullptr;
    unsigned n_wait = 0, first_wait = 0, first_done = nt;
    for (unsigned t = 0; t < nt; ++t) {
      const Fiber& f = s.fibers[t];
      if (f.state == FiberState::Done) {
        if (first_done == nt) first_done = t;
        continue;
      }
      if (waiting == nullptr) {
        waiting = &f;
        first_wait = t;
      } else if (f.line != waiting->line || std::strcmp(f.file, waiting->file) != 0) {
        char msg[512];
        std::snprintf(msg, sizeof msg,
                      "divergent __syncthreads in block (%u,%u,%u): thread %u waits at %s:%d, thread %u at %s:%d",
                      blockIdx.x, blockIdx.y, blockIdx.z, first_wait, waiting->file, waiting->line, t, f.file,
                      f.line);
        fail(msg);
      }
      ++n_wait;
    }
    if (n_wait == 0) break;  // the whole block returned
    if (first_done != nt) {
      char msg[512];
      std::snprintf(msg, sizeof msg,
                    "divergent __syncthreads in block (%u,%u,%u): thread %u returned while %u threads wait at %s:%d",
                    blockIdx.x, blockIdx.y, blockIdx.z, first_done, n_wait, waiting->file, waiting->line);
      fail(msg);
    }
    ++s.barriers;
  }
  ++s.blocks;
}

// kernel<<<grid, block>>>(args...): the blocks in x-fastest order, each emulated thread by thread.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) fail("empty grid (an invalid launch configuration on a GPU)");
  if (grid.y > 65535 || grid.z > 65535) fail("grid.y and grid.z must be at most 65535");
  Scheduler& s = scheduler();
  s.blocks = s.barriers = 0;
  const std::function<void()> body = [&] { kernel(args...); };
  gridDim = grid;
  blockDim = block;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        blockIdx = {x, y, z};
        run_block(body, block);
      }
}

// A device array: its data ends where an inaccessible page begins and starts after
// another, so out-of-bounds accesses fault instead of reading a neighbour.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(std::size_t n) : n_(n) {
    const std::size_t page = (std::size_t)sysconf(_SC_PAGESIZE);
    const std::size_t bytes = n * sizeof(T);
    const std::size_t data_pages = (bytes + page - 1) / page;
    map_bytes_ = (data_pages + 2) * page;
    void* base = mmap(nullptr, map_bytes_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) fail("mmap failed");
    base_ = static_cast<char*>(base);
    if (data_pages > 0 && mprotect(base_ + page, data_pages * page, PROT_READ | PROT_WRITE) != 0)
      fail("mprotect failed");
    data_ = reinterpret_cast<T*>(base_ + page + data_pages * page - bytes);
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { munmap(base_, map_bytes_); }
  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return n_; }
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }

 private:
  std::size_t n_;
  std::size_t map_bytes_;
  char* base_;
  T* data_;
};

}  // namespace cuda_emu
