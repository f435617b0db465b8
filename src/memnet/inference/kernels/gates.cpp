// Memories' shares of a gate unit, fused: out (+)= Σ_j relu(x_j·scale_j + shift_j) · W_j (+ bias).
//
// The gate unit of memory block m is a 1×1 conv over the concatenation of its memories, each
// first through BatchNorm and ReLU. memnet splits it per memory (memnet.inference.fast_network)
// and, on a CPU, adds each share into the gate as soon as that memory exists. Done as PyTorch
// ops that is a BatchNorm+ReLU pass that writes a whole activated copy, then a GEMM that reads
// it back; here each group of 6 pixels is activated into a small buffer in the L1 cache and
// multiplied at once, so the memory is read once and the gate read and written once. Shares
// whose memories exist together (the long-term memories and H_1, in the streamed network) are
// summed in one call, in registers, so the gate is written once for all of them: the same
// roundings in the same order as one call per share.
// x_j: [pixels][C], out: [pixels][K] (channels_last rows), W_j: [C][K]; C a multiple of
// simd::lanes (8 for AVX2, 16 for AVX-512), K of twice that.
#include "simd.h"
#include <omp.h>
#include <stdint.h>

#include <algorithm>

namespace {

using simd::vec;

constexpr int ROWS = 6;          // pixels per micro-kernel pass
constexpr int64_t MAX_C = 512;   // channels of one memory
constexpr int64_t MAX_ALL = 2048;  // channels of all memories of one call: the activated
                                   // buffer is ROWS × MAX_ALL floats on the stack

// One memory's share: its rows, BatchNorm as scale and shift, and its part of the gate's matrix.
struct Share {
  const float* x;
  const float* scale;
  const float* shift;
  const float* W;
};

// R pixels (R ≤ ROWS) from pixel p: activate each memory into a[j][R][C], then out[R][K] (+)=
// Σ_j a_j · W_j (+ bias), NV vectors of K at a time: R·NV accumulators (NV = 2: 12 of AVX2's 16
// registers; NV = 4: 24 of AVX-512's 32, so that each load of W feeds 6 multiplies).
// `a` holds ROWS × MAX_ALL floats.
template <int R, int NV>
inline void rows(const Share* shares, int count, int64_t p, int64_t C, int64_t K,
                 const float* bias, float* out, int accumulate, float* a) {
  constexpr int L = simd::lanes;
  const vec zero = simd::zero();
  for (int j = 0; j < count; ++j) {
    const Share& share = shares[j];
    float* aj = a + j * ROWS * C;
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i)
      for (int64_t c = 0; c < C; c += L) {
        const vec v = simd::fmadd(simd::load(share.x + (p + i) * C + c),
                                  simd::load(share.scale + c), simd::load(share.shift + c));
        simd::store(aj + i * C + c, simd::max(v, zero));
      }
  }
  out += p * K;
  for (int64_t j0 = 0; j0 < K; j0 += NV * L) {
    // The accumulators start from the gate so far, or from the bias: set up outside the
    // unrolled loops so that all R·NV stay in registers.
    vec acc[ROWS][NV];
    if (accumulate) {
#pragma GCC unroll 6
      for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
        for (int q = 0; q < NV; ++q) acc[i][q] = simd::load(out + i * K + j0 + q * L);
    } else {
#pragma GCC unroll 4
      for (int q = 0; q < NV; ++q) {
        const vec b = bias ? simd::load(bias + j0 + q * L) : zero;
#pragma GCC unroll 6
        for (int i = 0; i < R; ++i) acc[i][q] = b;
      }
    }
    for (int j = 0; j < count; ++j) {
      const float* aj = a + j * ROWS * C;
      const float* w = shares[j].W + j0;
      for (int64_t c = 0; c < C; ++c, w += K) {
        vec wq[NV];
#pragma GCC unroll 4
        for (int q = 0; q < NV; ++q) wq[q] = simd::load(w + q * L);
#pragma GCC unroll 6
        for (int i = 0; i < R; ++i) {
          const vec b = simd::set1(aj[i * C + c]);
#pragma GCC unroll 4
          for (int q = 0; q < NV; ++q) acc[i][q] = simd::fmadd(b, wq[q], acc[i][q]);
        }
      }
    }
    // The bias of an accumulated share is added after its products, as the unfused addmm_
    // and add_ do.
#pragma GCC unroll 4
    for (int q = 0; q < NV; ++q) {
      const vec e = accumulate && bias ? simd::load(bias + j0 + q * L) : zero;
#pragma GCC unroll 6
      for (int i = 0; i < R; ++i) simd::store(out + i * K + j0 + q * L, simd::add(acc[i][q], e));
    }
  }
}

using RowsFn = void (*)(const Share*, int, int64_t, int64_t, int64_t, const float*, float*, int,
                        float*);

// A run of `count` pixels (≤ ROWS) with NV vectors of K per block.
template <int NV>
void pixels_by(int pixels, const Share* shares, int count, int64_t p, int64_t C, int64_t K,
               const float* bias, float* out, int accumulate, float* a) {
  static constexpr RowsFn BY_COUNT[ROWS + 1] = {nullptr,       rows<1, NV>, rows<2, NV>,
                                                rows<3, NV>,   rows<4, NV>, rows<5, NV>,
                                                rows<6, NV>};
  BY_COUNT[pixels](shares, count, p, C, K, bias, out, accumulate, a);
}

int gate_shares(const Share* shares, int count, int64_t pixels, int64_t C, int64_t K,
                const float* bias, float* out, int accumulate, int threads) {
  if (C % simd::lanes || K % (2 * simd::lanes) || C <= 0 || C > MAX_C || count <= 0 ||
      count * C > MAX_ALL || K <= 0 || pixels < 0)
    return -1;
  // The widest block the registers hold for this K (the sums are the same either way).
  const bool wide = simd::lanes == 16 && K % (4 * simd::lanes) == 0;
  // Chunks of pixels big enough that a thread's start-up is small beside its work.
  constexpr int64_t CHUNK = ROWS * 64;
  const int64_t chunks = (pixels + CHUNK - 1) / CHUNK;
  const int workers = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, chunks)));
#pragma omp parallel num_threads(workers)
  {
    // Each thread's activated pixels, on its stack once per call: a 48 KB frame in every
    // 6-pixel pass made the compiler's stack probes touch its pages each time.
    alignas(64) float a[ROWS * MAX_ALL];
#pragma omp for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      const int64_t end = std::min(pixels, (chunk + 1) * CHUNK);
      for (int64_t p = chunk * CHUNK; p < end; p += ROWS) {
        const int n = static_cast<int>(std::min<int64_t>(ROWS, end - p));
        (wide ? pixels_by<4> : pixels_by<2>)(n, shares, count, p, C, K, bias, out, accumulate,
                                             a);
      }
    }
  }
  return 0;
}

}  // namespace

extern "C" {

// out[p] = relu(x[p]·scale + shift)·W + bias, or with `accumulate` out[p] += the same; for
// `pixels` rows. `bias` may be null. Returns 0, or -1 when the shapes do not fit.
int memnet_gate_share(const float* x, int64_t pixels, int64_t C, const float* scale,
                      const float* shift, const float* W, int64_t K, const float* bias, float* out,
                      int accumulate, int threads) {
  const Share share{x, scale, shift, W};
  return gate_shares(&share, 1, pixels, C, K, bias, out, accumulate, threads);
}

// out[p] = Σ_j relu(xs[j][p]·scales[j] + shifts[j])·Ws[j] + bias over `count` memories of C
// channels each (count·C ≤ 2048): what memnet_gate_share gives for them one after another, the
// first with `bias` and the rest accumulated, to the bit. Returns 0, or -1 when the shapes do
// not fit.
int memnet_gate_shares(const float* const* xs, const float* const* scales,
                       const float* const* shifts, const float* const* Ws, int count,
                       int64_t pixels, int64_t C, int64_t K, const float* bias, float* out,
                       int threads) {
  if (count <= 0 || C < simd::lanes || count * C > MAX_ALL) return -1;
  Share shares[MAX_ALL / simd::lanes];
  for (int j = 0; j < count; ++j) shares[j] = {xs[j], scales[j], shifts[j], Ws[j]};
  return gate_shares(shares, count, pixels, C, K, bias, out, 0, threads);
}

}  // extern "C"
