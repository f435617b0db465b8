// One memory's share of a gate unit, fused: out (+)= relu(x·scale + shift) · W (+ bias).
//
// The gate unit of memory block m is a 1×1 conv over the concatenation of its memories, each
// first through BatchNorm and ReLU. memnet splits it per memory (memnet.inference.fast_network)
// and, on a CPU, adds each share into the gate as soon as that memory exists. Done as PyTorch
// ops that is a BatchNorm+ReLU pass that writes a whole activated copy, then a GEMM that reads
// it back; here each group of 6 pixels is activated into a small buffer in the L1 cache and
// multiplied at once, so the memory is read once and the gate read and written once.
// x: [pixels][C], out: [pixels][K] (channels_last rows), W: [C][K]; C % 8 == 0, K % 16 == 0.
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>

#include <algorithm>

namespace {

constexpr int ROWS = 6;       // pixels per micro-kernel pass: 12 of the 16 AVX registers
constexpr int64_t MAX_C = 512;  // the activated buffer is ROWS × MAX_C floats on the stack

// R pixels (R ≤ ROWS): activate into a[R][C], then out[R][K] (+)= a · W (+ bias).
template <int R>
inline void rows(const float* x, int64_t C, const float* scale, const float* shift,
                 const float* W, int64_t K, const float* bias, float* out, int accumulate) {
  alignas(32) float a[ROWS * MAX_C];
  const __m256 zero = _mm256_setzero_ps();
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i)
    for (int64_t c = 0; c < C; c += 8) {
      const __m256 v = _mm256_fmadd_ps(_mm256_loadu_ps(x + i * C + c), _mm256_loadu_ps(scale + c),
                                       _mm256_loadu_ps(shift + c));
      _mm256_store_ps(a + i * C + c, _mm256_max_ps(v, zero));
    }
  const __m256 none = _mm256_setzero_ps();
  for (int64_t j0 = 0; j0 < K; j0 += 16) {
    // The accumulators start from the gate so far, or from the bias: set up outside the
    // unrolled loops so that all 2·R stay in registers.
    __m256 acc[ROWS][2];
    if (accumulate) {
#pragma GCC unroll 6
      for (int i = 0; i < R; ++i) {
        acc[i][0] = _mm256_loadu_ps(out + i * K + j0);
        acc[i][1] = _mm256_loadu_ps(out + i * K + j0 + 8);
      }
    } else {
      const __m256 b0 = bias ? _mm256_loadu_ps(bias + j0) : none;
      const __m256 b1 = bias ? _mm256_loadu_ps(bias + j0 + 8) : none;
#pragma GCC unroll 6
      for (int i = 0; i < R; ++i) {
        acc[i][0] = b0;
        acc[i][1] = b1;
      }
    }
    const float* w = W + j0;
    for (int64_t c = 0; c < C; ++c, w += K) {
      const __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);
#pragma GCC unroll 6
      for (int i = 0; i < R; ++i) {
        const __m256 b = _mm256_broadcast_ss(a + i * C + c);
        acc[i][0] = _mm256_fmadd_ps(b, w0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(b, w1, acc[i][1]);
      }
    }
    // The bias of an accumulated share is added after its products, as the unfused addmm_
    // and add_ do.
    const __m256 e0 = accumulate && bias ? _mm256_loadu_ps(bias + j0) : none;
    const __m256 e1 = accumulate && bias ? _mm256_loadu_ps(bias + j0 + 8) : none;
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      _mm256_storeu_ps(out + i * K + j0, _mm256_add_ps(acc[i][0], e0));
      _mm256_storeu_ps(out + i * K + j0 + 8, _mm256_add_ps(acc[i][1], e1));
    }
  }
}

using RowsFn = void (*)(const float*, int64_t, const float*, const float*, const float*, int64_t,
                        const float*, float*, int);
constexpr RowsFn TAIL[ROWS] = {nullptr, rows<1>, rows<2>, rows<3>, rows<4>, rows<5>};

}  // namespace

extern "C" {

// out[p] = relu(x[p]·scale + shift)·W + bias, or with `accumulate` out[p] += the same; for
// `pixels` rows. `bias` may be null. Returns 0, or -1 when the shapes do not fit.
int memnet_gate_share(const float* x, int64_t pixels, int64_t C, const float* scale,
                      const float* shift, const float* W, int64_t K, const float* bias, float* out,
                      int accumulate, int threads) {
  if (C % 8 || K % 16 || C <= 0 || C > MAX_C || K <= 0 || pixels < 0) return -1;
  // Chunks of pixels big enough that a thread's start-up is small beside its work.
  constexpr int64_t CHUNK = ROWS * 64;
  const int64_t chunks = (pixels + CHUNK - 1) / CHUNK;
  const int workers = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, chunks)));
#pragma omp parallel for num_threads(workers) schedule(static)
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const int64_t end = std::min(pixels, (chunk + 1) * CHUNK);
    int64_t p = chunk * CHUNK;
    for (; p + ROWS <= end; p += ROWS)
      rows<ROWS>(x + p * C, C, scale, shift, W, K, bias, out + p * K, accumulate);
    if (p < end) TAIL[end - p](x + p * C, C, scale, shift, W, K, bias, out + p * K, accumulate);
  }
  return 0;
}

}  // extern "C"
