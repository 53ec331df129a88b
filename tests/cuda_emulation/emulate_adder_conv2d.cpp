// Runs the real CUDA kernels of the adder convolution (csrc/cuda/adder_conv2d_kernels.cuh)
// on the CPU through the thread emulation of cuda_emu.h. Driven by
// tests/test_cuda_emulation.py, which compiles it with g++ (no torch headers, no nvcc).
//
//   emulate_adder_conv2d < case.bin > results.bin
//       One convolution: stdin holds a header of int64 values (see Header) and the
//       arrays x, weight, [bias], grad_output in the case's dtype (float64, float32,
//       float16 or bfloat16; contiguous NCHW / OIHW). stdout gets, in the same dtype:
//       the forward output, grad_input in modes hardtanh and sign, grad_weight in
//       modes full and sign. stderr gets one line of statistics per kernel launch.
//       Exit status 4 (and "unsupported: ..." on stdout): the compiler lacks the dtype.
//       With the header's `amp` set to a 16-bit dtype code: adder_conv2d_amp instead, whose
//       compute dtype that is. The input is in `dtype` (float32 or the compute dtype), the
//       weight, bias and grad_output are float32; stdout gets the float32 forward (the packed
//       fp16 kernel), grad_input in both modes in `dtype`, grad_weight in both modes in float32.
//   emulate_adder_conv2d --self-test NAME
//       Toy kernels that show the emulation catches what it claims to catch (see self_test).
//   emulate_adder_conv2d --fp16-ops < floats.bin > results.bin
//       The __half stand-ins of cuda_emu.h on 2·n float32 values a, b (stdin: n as int64, then
//       a and b): stdout gets the uint16 bits of round(a), round(b), hsub2, hadd2 and
//       habs2(hsub2) of the rounded pairs, then __half2float of all 65536 bit patterns (float32).
//
// The host side mirrors csrc/cuda/adder_conv2d_cuda.cu: the same weight re-layouts,
// and the grid, tile and split-K choices of the shared launch plan.
#include "cuda_emu.h"  // before the device code: defines the CUDA keywords

#include "adder_conv2d_kernels.cuh"
#include "adder_conv2d_launch.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

using addersr::cuda_kernels::ConvShape;
using addersr::cuda_kernels::Mode;
using cuda_emu::DeviceArray;

constexpr int64_t kMagic = 0x414444455255ll;  // "ADDERU"

// dtype codes of the header
constexpr int64_t kFloat64 = 64, kFloat32 = 32, kFloat16 = 16, kBFloat16 = 17;

struct Header {
  int64_t magic, dtype, reverse_order, sms;
  int64_t N, C, H, W, Cout, kh, kw, sh, sw, ph, pw, dh, dw, groups, has_bias, Ho, Wo;
  int64_t amp;  // 0: adder_conv2d; kFloat16 / kBFloat16: adder_conv2d_amp with that compute dtype
};

[[noreturn]] void die(const std::string& what) { cuda_emu::fail(what.c_str()); }

void read_exact(void* dst, std::size_t bytes) {
  if (bytes > 0 && std::fread(dst, 1, bytes, stdin) != bytes) die("short read on stdin");
}
void write_exact(const void* src, std::size_t bytes) {
  if (bytes > 0 && std::fwrite(src, 1, bytes, stdout) != bytes) die("short write on stdout");
}

template <typename T>
void read_array(DeviceArray<T>& a) {
  read_exact(a.data(), a.size() * sizeof(T));
}
template <typename T>
void write_array(const DeviceArray<T>& a) {
  write_exact(a.data(), a.size() * sizeof(T));
}

void report(const char* kernel, dim3 grid, dim3 block) {
  const cuda_emu::Scheduler& s = cuda_emu::scheduler();
  std::fprintf(stderr, "%s: grid (%u,%u,%u) x %u threads, %lld blocks, %lld barriers\n", kernel, grid.x, grid.y,
               grid.z, block.x, s.blocks, s.barriers);
}

// The fields of addersr::Geometry (csrc/adder_conv2d_geometry.h, which needs ATen)
// that cuda_launch::kernel_shape reads.
struct HostGeometry {
  int64_t N, Cin, H, W, Cout, kh, kw, sh, sw, ph, pw, dh, dw, groups, Ho, Wo;
};

HostGeometry geometry_of(const Header& h) {
  return {h.N, h.C, h.H, h.W, h.Cout, h.kh, h.kw, h.sh, h.sw, h.ph, h.pw, h.dh, h.dw, h.groups, h.Ho, h.Wo};
}

// scalar_t: the tensors' type; acc_t: at::acc_type<scalar_t, /*is_cuda=*/true>
// (fp16/bf16 -> fp32, fp32 -> fp32, fp64 -> fp64).
template <typename scalar_t, typename acc_t>
void run_case(const Header& h) {
  namespace K = addersr::cuda_kernels;
  namespace L = addersr::cuda_launch;
  using IO = K::GradTypes<scalar_t, scalar_t>;
  const ConvShape s = L::kernel_shape(geometry_of(h));
  const std::size_t x_n = (std::size_t)s.N * s.C * s.HW;
  const std::size_t w_n = (std::size_t)s.Cout * s.K;
  const std::size_t y_n = (std::size_t)s.N * s.Cout * s.HoWo;

  DeviceArray<scalar_t> x(x_n), w(w_n), bias(h.has_bias ? (std::size_t)s.Cout : 0), go(y_n);
  read_array(x);
  read_array(w);
  read_array(bias);
  read_array(go);
  // weight.to(acc_opts), bias->to(acc_opts)
  DeviceArray<acc_t> w_acc(w_n), bias_acc(bias.size());
  for (std::size_t i = 0; i < w_n; ++i) w_acc[i] = static_cast<acc_t>(w[i]);
  for (std::size_t i = 0; i < bias.size(); ++i) bias_acc[i] = static_cast<acc_t>(bias[i]);

  // ---- forward: weights [Cout][K] -> [g][K][Mg]
  {
    using Cfg = typename K::GemmConfig<acc_t>::type;
    DeviceArray<acc_t> wt(w_n);
    for (int g = 0; g < s.groups; ++g)
      for (int m = 0; m < s.Mg; ++m)
        for (int k = 0; k < s.K; ++k)
          wt[((std::size_t)g * s.K + k) * s.Mg + m] = w_acc[((std::size_t)g * s.Mg + m) * s.K + k];
    DeviceArray<scalar_t> y(y_n);
    const L::Grid grid = L::forward_grid<Cfg>(s);
    const dim3 g3(grid.x, grid.y, grid.z);
    cuda_emu::launch(K::adder_forward_kernel<scalar_t, acc_t, Cfg>, g3, dim3(Cfg::NT), x.data(),
                     static_cast<const acc_t*>(wt.data()), h.has_bias ? static_cast<const acc_t*>(bias_acc.data()) : nullptr, y.data(), s);
    report("forward", g3, dim3(Cfg::NT));
    write_array(y);
  }

  // ---- grad_input: weights [Cout][Cg][kh*kw] -> [g][kh*kw][Mg][Cg]
  {
    using Cfg = typename K::GemmConfig<acc_t>::type;
    DeviceArray<acc_t> wp(w_n);
    for (int g = 0; g < s.groups; ++g)
      for (int m = 0; m < s.Mg; ++m)
        for (int ci = 0; ci < s.Cg; ++ci)
          for (int t = 0; t < s.KHW; ++t)
            wp[(((std::size_t)g * s.KHW + t) * s.Mg + m) * s.Cg + ci] =
                w_acc[(((std::size_t)g * s.Mg + m) * s.Cg + ci) * s.KHW + t];
    const L::Grid grid = L::grad_input_grid<Cfg>(s);
    const dim3 g3(grid.x, grid.y, grid.z);
    for (const bool sign : {false, true}) {
      DeviceArray<scalar_t> dx(x_n);
      if (sign)
        cuda_emu::launch(K::adder_grad_input_kernel<IO, acc_t, Cfg, Mode::GradInputSign>, g3, dim3(Cfg::NT),
                         go.data(), x.data(), static_cast<const acc_t*>(wp.data()), dx.data(), s);
      else
        cuda_emu::launch(K::adder_grad_input_kernel<IO, acc_t, Cfg, Mode::GradInputHardtanh>, g3,
                         dim3(Cfg::NT), go.data(), x.data(), static_cast<const acc_t*>(wp.data()), dx.data(), s);
      report(sign ? "grad_input sign" : "grad_input hardtanh", g3, dim3(Cfg::NT));
      write_array(dx);
    }
  }

  // ---- grad_weight: split-K partial sums, then the ordered reduction
  {
    using Cfg = typename K::GradWeightConfig<acc_t>::type;
    const L::GradWeightPlan plan = L::grad_weight_plan<Cfg>(s, h.sms);
    const dim3 g3(plan.grid.x, plan.grid.y, plan.grid.z);
    const dim3 r3(plan.reduce_blocks);
    for (const bool sign : {false, true}) {
      DeviceArray<acc_t> part((std::size_t)plan.splits * w_n);
      DeviceArray<scalar_t> dw(w_n);
      if (sign)
        cuda_emu::launch(K::adder_grad_weight_kernel<IO, acc_t, Cfg, Mode::GradWeightSign>, g3,
                         dim3(Cfg::NT), go.data(), x.data(), static_cast<const acc_t*>(w_acc.data()), part.data(), s,
                         (int)plan.pixels_per_split, (int)plan.tap_tiles);
      else
        cuda_emu::launch(K::adder_grad_weight_kernel<IO, acc_t, Cfg, Mode::GradWeightFull>, g3,
                         dim3(Cfg::NT), go.data(), x.data(), static_cast<const acc_t*>(w_acc.data()), part.data(), s,
                         (int)plan.pixels_per_split, (int)plan.tap_tiles);
      report(sign ? "grad_weight sign" : "grad_weight full", g3, dim3(Cfg::NT));
      cuda_emu::launch(K::adder_grad_weight_reduce_kernel<scalar_t, acc_t>, r3, dim3(L::kReduceThreads),
                       static_cast<const acc_t*>(part.data()), dw.data(), (int64_t)w_n, (int)plan.splits);
      report("grad_weight reduce", r3, dim3(L::kReduceThreads));
      write_array(dw);
    }
  }
}

// adder_conv2d_amp, as csrc/cuda/adder_conv2d_cuda.cu runs it: X is the input's type
// (float or V), V the compute dtype; weights, bias, grad_output and the accumulation float.
// The weights are rounded to V on the host (weight.to(compute dtype)) and re-laid out: as
// fp16 pairs for the packed forward, as float for its overflow path and the backward.
template <typename X, typename V>
void run_amp_case(const Header& h) {
  namespace K = addersr::cuda_kernels;
  namespace L = addersr::cuda_launch;
  using IO = K::GradTypes<float, X, V>;
  const ConvShape s = L::kernel_shape(geometry_of(h));
  const std::size_t x_n = (std::size_t)s.N * s.C * s.HW;
  const std::size_t w_n = (std::size_t)s.Cout * s.K;
  const std::size_t y_n = (std::size_t)s.N * s.Cout * s.HoWo;

  DeviceArray<X> x(x_n);
  DeviceArray<float> w(w_n), bias(h.has_bias ? (std::size_t)s.Cout : 0), go(y_n);
  read_array(x);
  read_array(w);
  read_array(bias);
  read_array(go);
  DeviceArray<float> w_val(w_n);  // weight.to(compute dtype).to(float)
  for (std::size_t i = 0; i < w_n; ++i) w_val[i] = static_cast<float>(static_cast<V>(w[i]));

  // ---- forward: [Cout][K] -> [g][ceil(K/2)][Mg] fp16 pairs
  {
    using Cfg = K::PackedConfig;
    const int pairs = (s.K + 1) / 2;
    DeviceArray<uint32_t> wt2((std::size_t)s.groups * pairs * s.Mg);
    for (int g = 0; g < s.groups; ++g)
      for (int m = 0; m < s.Mg; ++m)
        for (int p = 0; p < pairs; ++p) {
          const float* row = &w_val[((std::size_t)g * s.Mg + m) * s.K];
          const float lo = row[2 * p], hi = 2 * p + 1 < s.K ? row[2 * p + 1] : 0.f;
          wt2[((std::size_t)g * pairs + p) * s.Mg + m] =
              K::word_of(__halves2half2(__float2half_rn(lo), __float2half_rn(hi)));
        }
    DeviceArray<float> y(y_n);
    const L::Grid grid = L::forward_grid<Cfg>(s);
    const dim3 g3(grid.x, grid.y, grid.z);
    cuda_emu::launch(K::adder_forward_packed_kernel<X, V, Cfg>, g3, dim3(Cfg::NT), static_cast<const X*>(x.data()),
                     static_cast<const uint32_t*>(wt2.data()), static_cast<const float*>(w_val.data()),
                     h.has_bias ? static_cast<const float*>(bias.data()) : nullptr, y.data(), s);
    report("forward packed", g3, dim3(Cfg::NT));
    write_array(y);
  }

  // ---- grad_input: [Cout][Cg][kh*kw] -> [g][kh*kw][Mg][Cg]
  {
    using Cfg = typename K::GemmConfig<float>::type;
    DeviceArray<float> wp(w_n);
    for (int g = 0; g < s.groups; ++g)
      for (int m = 0; m < s.Mg; ++m)
        for (int ci = 0; ci < s.Cg; ++ci)
          for (int t = 0; t < s.KHW; ++t)
            wp[(((std::size_t)g * s.KHW + t) * s.Mg + m) * s.Cg + ci] =
                w_val[(((std::size_t)g * s.Mg + m) * s.Cg + ci) * s.KHW + t];
    const L::Grid grid = L::grad_input_grid<Cfg>(s);
    const dim3 g3(grid.x, grid.y, grid.z);
    for (const bool sign : {false, true}) {
      DeviceArray<X> dx(x_n);
      if (sign)
        cuda_emu::launch(K::adder_grad_input_kernel<IO, float, Cfg, Mode::GradInputSign>, g3, dim3(Cfg::NT),
                         static_cast<const float*>(go.data()), static_cast<const X*>(x.data()),
                         static_cast<const float*>(wp.data()), dx.data(), s);
      else
        cuda_emu::launch(K::adder_grad_input_kernel<IO, float, Cfg, Mode::GradInputHardtanh>, g3, dim3(Cfg::NT),
                         static_cast<const float*>(go.data()), static_cast<const X*>(x.data()),
                         static_cast<const float*>(wp.data()), dx.data(), s);
      report(sign ? "grad_input sign" : "grad_input hardtanh", g3, dim3(Cfg::NT));
      write_array(dx);
    }
  }

  // ---- grad_weight (float32: the weight's dtype)
  {
    using Cfg = typename K::GradWeightConfig<float>::type;
    const L::GradWeightPlan plan = L::grad_weight_plan<Cfg>(s, h.sms);
    const dim3 g3(plan.grid.x, plan.grid.y, plan.grid.z);
    const dim3 r3(plan.reduce_blocks);
    for (const bool sign : {false, true}) {
      DeviceArray<float> part((std::size_t)plan.splits * w_n), dw(w_n);
      if (sign)
        cuda_emu::launch(K::adder_grad_weight_kernel<IO, float, Cfg, Mode::GradWeightSign>, g3, dim3(Cfg::NT),
                         static_cast<const float*>(go.data()), static_cast<const X*>(x.data()),
                         static_cast<const float*>(w_val.data()), part.data(), s, (int)plan.pixels_per_split,
                         (int)plan.tap_tiles);
      else
        cuda_emu::launch(K::adder_grad_weight_kernel<IO, float, Cfg, Mode::GradWeightFull>, g3, dim3(Cfg::NT),
                         static_cast<const float*>(go.data()), static_cast<const X*>(x.data()),
                         static_cast<const float*>(w_val.data()), part.data(), s, (int)plan.pixels_per_split,
                         (int)plan.tap_tiles);
      report(sign ? "grad_weight sign" : "grad_weight full", g3, dim3(Cfg::NT));
      cuda_emu::launch(K::adder_grad_weight_reduce_kernel<float, float>, r3, dim3(L::kReduceThreads),
                       static_cast<const float*>(part.data()), dw.data(), (int64_t)w_n, (int)plan.splits);
      report("grad_weight reduce", r3, dim3(L::kReduceThreads));
      write_array(dw);
    }
  }
}

// The __half stand-ins on given values (see --fp16-ops in the header comment).
int fp16_ops() {
  int64_t n = 0;
  read_exact(&n, sizeof n);
  if (n < 0 || n > (int64_t(1) << 24)) die("--fp16-ops: bad count");
  std::vector<float> a(n), b(n);
  read_exact(a.data(), n * sizeof(float));
  read_exact(b.data(), n * sizeof(float));
  std::vector<std::uint16_t> out;
  out.reserve(5 * n);
  auto bits = [](__half v) { return v.bits; };
  for (int64_t i = 0; i < n; ++i) out.push_back(bits(__float2half_rn(a[i])));
  for (int64_t i = 0; i < n; ++i) out.push_back(bits(__float2half_rn(b[i])));
  for (const int op : {0, 1, 2}) {
    for (int64_t i = 0; i < n; ++i) {
      const __half2 x = __halves2half2(__float2half_rn(a[i]), __float2half_rn(b[i]));
      const __half2 y = __halves2half2(__float2half_rn(b[i]), __float2half_rn(a[i]));
      const __half2 r = op == 0 ? __hsub2(x, y) : op == 1 ? __hadd2(x, y) : __habs2(__hsub2(x, y));
      out.push_back(bits(r.x));  // a - b, a + b, |a - b|
      // The high lane computed b - a, b + a, |b - a|: the same bits but for the sign of a - b
      // (zeros and NaNs aside, whose signs carry no information).
      const std::uint16_t high = op == 0 ? std::uint16_t(r.y.bits ^ 0x8000u) : r.y.bits;
      const bool zero_or_nan = (r.x.bits & 0x7FFFu) == 0 || (r.x.bits & 0x7FFFu) > 0x7C00u;
      if (high != r.x.bits && !zero_or_nan) die("--fp16-ops: the two lanes of a packed op disagree");
    }
  }
  write_exact(out.data(), out.size() * sizeof(std::uint16_t));
  std::vector<float> all(65536);
  for (int i = 0; i < 65536; ++i) all[i] = __half2float(__half{std::uint16_t(i)});
  write_exact(all.data(), all.size() * sizeof(float));
  std::fflush(stdout);
  return 0;
}

// ------------------------------------------------------------------ self-tests
//
// Each prints "ok" and exits 0 when the emulation behaves as documented in
// cuda_emu.h; the divergent ones are expected to be stopped by the emulator
// (exit status 3 and a message on stderr); "oob" is expected to crash.

constexpr int kToyThreads = 64;

// out[t] = v[t] + v[(t + 1) % n] with v in shared memory; a barrier between the
// stores and the loads when `with_barrier`.
__global__ void toy_neighbour_sum(const float* __restrict__ in, float* __restrict__ out, bool with_barrier) {
  __shared__ float v[kToyThreads];
  const int t = threadIdx.x;
  v[t] = in[t];
  if (with_barrier) __syncthreads();
  out[t] = v[t] + v[(t + 1) % kToyThreads];
}

// Thread 0 returns early: the others wait at a barrier it never reaches.
__global__ void toy_early_return(float* __restrict__ out) {
  __shared__ float v[kToyThreads];
  const int t = threadIdx.x;
  if (t == 0) return;
  v[t] = 1.f;
  __syncthreads();
  out[t] = v[t];
}

// Odd and even threads wait at different __syncthreads calls.
__global__ void toy_two_barriers(float* __restrict__ out) {
  __shared__ float v[kToyThreads];
  const int t = threadIdx.x;
  v[t] = 1.f;
  if (t % 2)
    __syncthreads();
  else
    __syncthreads();
  out[t] = v[t];
}

// Reads shared memory that no thread wrote.
__global__ void toy_unwritten_shared(float* __restrict__ out) {
  __shared__ float v[2 * kToyThreads];
  const int t = threadIdx.x;
  v[t] = 1.f;
  __syncthreads();
  out[t] = v[t + kToyThreads];
}

// Reads one element past the end of its input.
__global__ void toy_out_of_bounds(const float* __restrict__ in, float* __restrict__ out) {
  const int t = threadIdx.x;
  out[t] = in[t + 1];
}

// adder_conv2d_amp: input float32 or the compute dtype.
int run_amp(const Header& h) {
  const bool f32_input = h.dtype == kFloat32;
  if (!f32_input && h.dtype != h.amp) die("amp: the input must be float32 or the compute dtype");
  if (h.amp == kBFloat16) {
    f32_input ? run_amp_case<float, bfloat16>(h) : run_amp_case<bfloat16, bfloat16>(h);
  } else if (h.amp == kFloat16) {
#if CUDA_EMU_HAS_FLOAT16
    f32_input ? run_amp_case<float, float16>(h) : run_amp_case<float16, float16>(h);
#else
    std::puts("unsupported: this compiler has no _Float16");
    return 4;
#endif
  } else {
    die("amp: the compute dtype must be float16 or bfloat16");
  }
  std::fflush(stdout);
  return 0;
}

int self_test(const std::string& name) {
  DeviceArray<float> in(kToyThreads), out(kToyThreads);
  for (int t = 0; t < kToyThreads; ++t) in[t] = float(t);
  auto neighbour_sums_ok = [&] {
    for (int t = 0; t < kToyThreads; ++t)
      if (out[t] != in[t] + in[(t + 1) % kToyThreads]) return false;
    return true;
  };
  if (name == "barrier") {  // correct in both thread orders
    for (const bool rev : {false, true}) {
      cuda_emu::set_reverse_order(rev);
      cuda_emu::launch(toy_neighbour_sum, dim3(1), dim3(kToyThreads), in.data(), out.data(), true);
      if (!neighbour_sums_ok()) return std::puts("wrong result with the barrier"), 1;
    }
  } else if (name == "race") {  // wrong in at least one order
    bool all_ok = true;
    for (const bool rev : {false, true}) {
      cuda_emu::set_reverse_order(rev);
      cuda_emu::launch(toy_neighbour_sum, dim3(1), dim3(kToyThreads), in.data(), out.data(), false);
      all_ok = all_ok && neighbour_sums_ok();
    }
    if (all_ok) return std::puts("the missing barrier went unnoticed"), 1;
  } else if (name == "early_return") {
    cuda_emu::launch(toy_early_return, dim3(2), dim3(kToyThreads), out.data());
    return std::puts("the divergent barrier went unnoticed"), 1;
  } else if (name == "two_barriers") {
    cuda_emu::launch(toy_two_barriers, dim3(1), dim3(kToyThreads), out.data());
    return std::puts("the divergent barrier went unnoticed"), 1;
  } else if (name == "unwritten_shared") {
    cuda_emu::launch(toy_unwritten_shared, dim3(1), dim3(kToyThreads), out.data());
    for (int t = 0; t < kToyThreads; ++t)
      if (!(out[t] > 1e38f)) return std::puts("unwritten shared memory was not poisoned"), 1;
  } else if (name == "oob") {
    cuda_emu::launch(toy_out_of_bounds, dim3(1), dim3(kToyThreads), in.data(), out.data());
    return std::puts("the out-of-bounds read went unnoticed"), 1;
  } else {
    die("unknown self-test " + name);
  }
  std::puts("ok");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--self-test") == 0) return self_test(argv[2]);
  if (argc == 2 && std::strcmp(argv[1], "--fp16-ops") == 0) return fp16_ops();
  if (argc != 1) die("usage: emulate_adder_conv2d < case.bin > results.bin | --self-test NAME | --fp16-ops");
  Header h;
  read_exact(&h, sizeof h);
  if (h.magic != kMagic) die("bad header (magic)");
  cuda_emu::set_reverse_order(h.reverse_order != 0);
  if (h.amp != 0) return run_amp(h);
  switch (h.dtype) {
    case kFloat64:
      run_case<double, double>(h);
      break;
    case kFloat32:
      run_case<float, float>(h);
      break;
    case kFloat16:
#if CUDA_EMU_HAS_FLOAT16
      run_case<float16, float>(h);
      break;
#else
      std::puts("unsupported: this compiler has no _Float16");
      return 4;
#endif
    case kBFloat16:
      run_case<bfloat16, float>(h);
      break;
    default:
      die("unknown dtype code");
  }
  std::fflush(stdout);
  return 0;
}
