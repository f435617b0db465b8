// One memory's share of a gate unit in training, backwards: the gradients of its part of the
// gate's 1×1 weight, of its BatchNorm's γ and β, and of the memory, from the memory x[pixels][C]
// and the gate's output gradient g[pixels][K] (channels_last rows).
//
// The share is out += a·W with a = relu(scale·x + shift). As PyTorch ops its backward makes a
// again and writes it out, runs two 1×1 convs (Wᵀ for a's gradient, aᵀg for W's) and then τ's
// backward, two more passes: about 11 passes over tensors of the memory's size and three kernel calls. Here it is one
// pass that reads x and g a few pixels at a time and makes everything but dx, then an
// elementwise pass over dx:
//   first:  for each run of CHUNK pixels, a = relu(scale·x + shift) and da = g·Wᵀ (a kept for
//           the run only), d = da where scale·x + shift > 0 written into dx; the sums Σd and
//           Σd·(x − mean); then dW += aᵀg over the run, with its sums held in registers
//   second: dx = scale·(d − Σd/P − (x − mean)·invstd²·Σd·(x − mean)/P) in place, as
//           kernels/batchnorm.cpp makes it.
// The sums are taken in fp32 over fixed runs of pixels (CHUNK for τ's sums, as batchnorm.cpp
// takes them; GROUP chunks for dW) and the runs added in double in order: the result is the
// same for any number of threads.
// C a multiple of simd::lanes, K of twice that.
#include "chunk_sums.h"
#include "simd.h"
#include <omp.h>
#include <stdint.h>

#include <algorithm>
#include <memory>

namespace {

using simd::vec;

constexpr int ROWS = 6;          // pixels per micro-kernel pass
constexpr int64_t CHUNK = 128;   // pixels per fp32 run of τ's sums
constexpr int64_t GROUP = 8;     // chunks per fp32 run of dW's sums
constexpr int64_t MAX_C = 512;   // channels of the memory: ROWS × MAX_C floats on the stack

struct Share {
  const float* x;      // [pixels][C]
  const float* g;      // [pixels][K]
  int64_t C, K;
  const float* scale;  // τ as relu(scale·x + shift)
  const float* shift;
  const float* mean;   // fp32
  const float* WT;     // [K][C]: the share of the gate's weight, transposed
};

// da[i][c] = Σ_k g[p + i][k]·WT[k][c] for R pixels from p, NV vectors of C at a time.
template <int R, int NV>
inline void activation_gradient(const Share& s, int64_t p, float* da) {
  constexpr int L = simd::lanes;
  const float* g = s.g + p * s.K;
  for (int64_t c0 = 0; c0 < s.C; c0 += NV * L) {
    vec acc[ROWS][NV];
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
      for (int q = 0; q < NV; ++q) acc[i][q] = simd::zero();
    for (int64_t k = 0; k < s.K; ++k) {
      vec w[NV];
#pragma GCC unroll 2
      for (int q = 0; q < NV; ++q) w[q] = simd::load(s.WT + k * s.C + c0 + q * L);
#pragma GCC unroll 6
      for (int i = 0; i < R; ++i) {
        const vec b = simd::set1(g[i * s.K + k]);
#pragma GCC unroll 2
        for (int q = 0; q < NV; ++q) acc[i][q] = simd::fmadd(b, w[q], acc[i][q]);
      }
    }
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
      for (int q = 0; q < NV; ++q) simd::store(da + i * s.C + c0 + q * L, acc[i][q]);
  }
}

// The first pass over R pixels from p: d into dx, a into the chunk's `a` rows (from `row`),
// τ's sums into sum/centered [C]. `da` holds ROWS × C floats.
template <int R, int NV>
void first_pass(const Share& s, int64_t p, float* sum, float* centered, float* a, float* dx,
                float* da) {
  constexpr int L = simd::lanes;
  activation_gradient<R, NV>(s, p, da);
  const vec zero = simd::zero();
  for (int i = 0; i < R; ++i) {
    const float* x = s.x + (p + i) * s.C;
    for (int64_t c = 0; c < s.C; c += L) {
      const vec xv = simd::load(x + c);
      const vec pre = simd::fmadd(xv, simd::load(s.scale + c), simd::load(s.shift + c));
      const vec d = simd::where_positive(pre, simd::load(da + i * s.C + c));
      simd::store(dx + (p + i) * s.C + c, d);
      simd::store(sum + c, simd::add(simd::load(sum + c), d));
      simd::store(centered + c, simd::fmadd(d, simd::sub(xv, simd::load(s.mean + c)),
                                            simd::load(centered + c)));
      simd::store(a + i * s.C + c, simd::max(pre, zero));
    }
  }
}

// dw [C][K] += Σ_p a[p]ᵀ g[p] over `pixels` pixels from p (a: their rows, [pixels][C]), pixel
// by pixel in order. Blocks of 4 rows of dw by 2 vectors of K stay in registers over all the
// pixels: 8 independent sums, so that the FMAs' latency is hidden.
void weight_gradient(const Share& s, int64_t p, int64_t pixels, const float* a, float* dw) {
  constexpr int L = simd::lanes;
  constexpr int CB = 4;
  const float* g = s.g + p * s.K;
  for (int64_t c0 = 0; c0 < s.C; c0 += CB)
    for (int64_t k0 = 0; k0 < s.K; k0 += 2 * L) {
      vec acc[CB][2];
#pragma GCC unroll 4
      for (int r = 0; r < CB; ++r) {
        acc[r][0] = simd::load(dw + (c0 + r) * s.K + k0);
        acc[r][1] = simd::load(dw + (c0 + r) * s.K + k0 + L);
      }
      for (int64_t i = 0; i < pixels; ++i) {
        const vec g0 = simd::load(g + i * s.K + k0), g1 = simd::load(g + i * s.K + k0 + L);
#pragma GCC unroll 4
        for (int r = 0; r < CB; ++r) {
          const vec b = simd::set1(a[i * s.C + c0 + r]);
          acc[r][0] = simd::fmadd(b, g0, acc[r][0]);
          acc[r][1] = simd::fmadd(b, g1, acc[r][1]);
        }
      }
#pragma GCC unroll 4
      for (int r = 0; r < CB; ++r) {
        simd::store(dw + (c0 + r) * s.K + k0, acc[r][0]);
        simd::store(dw + (c0 + r) * s.K + k0 + L, acc[r][1]);
      }
    }
}

// The second pass, on the pixels from p to end: dx = scale·(d − A − (x − mean)·B) in place,
// with τ's sums folded into A = Σd/P and B = invstd²·Σd·(x − mean)/P.
void second_pass(const Share& s, int64_t p, int64_t end, const float* A, const float* B,
                 float* dx) {
  constexpr int L = simd::lanes;
  for (; p < end; ++p) {
    const float* x = s.x + p * s.C;
    float* out = dx + p * s.C;
    for (int64_t c = 0; c < s.C; c += L) {
      const vec xv = simd::load(x + c);
      const vec spread = simd::mul(simd::sub(xv, simd::load(s.mean + c)), simd::load(B + c));
      const vec d = simd::sub(simd::load(out + c), simd::load(A + c));
      simd::store(out + c, simd::mul(simd::load(s.scale + c), simd::sub(d, spread)));
    }
  }
}

using FirstFn = void (*)(const Share&, int64_t, float*, float*, float*, float*, float*);

template <int NV>
struct ByRows {
  static constexpr FirstFn first[ROWS + 1] = {
      nullptr, first_pass<1, NV>, first_pass<2, NV>, first_pass<3, NV>,
      first_pass<4, NV>, first_pass<5, NV>, first_pass<6, NV>};
};

}  // namespace

extern "C" {

// For one memory x [pixels][C] of a gate whose output gradient is g [pixels][K], τ's scale,
// shift (fp32), mean and invstd (double) and the share's weight transposed, WT [K][C]:
// grad_W [C][K] = Σ_p a[p]ᵀ g[p] (double), grad_shift[c] = Σ d and grad_centered[c] =
// Σ d·(x − mean) (double; β's gradient and γ's over invstd), and the memory's gradient dx
// [pixels][C]. Returns 0, or -1 when the shapes do not fit.
int memnet_gate_share_backward(const float* x, const float* g, int64_t pixels, int64_t C,
                               int64_t K, const float* scale, const float* shift,
                               const double* mean, const double* invstd, const float* WT,
                               double* grad_W, float* dx, double* grad_shift,
                               double* grad_centered, int threads) {
  constexpr int L = simd::lanes;
  if (pixels <= 0 || C <= 0 || K <= 0 || C % L || K % (2 * L) || C > MAX_C) return -1;
  const int64_t chunks = (pixels + CHUNK - 1) / CHUNK;
  const int64_t groups = (chunks + GROUP - 1) / GROUP;
  std::unique_ptr<double[]> sums(new double[chunks * C]), centered(new double[chunks * C]),
      group_dw(new double[groups * C * K]);
  std::unique_ptr<float[]> mu(new float[C]), A(new float[C]), B(new float[C]);
  for (int64_t c = 0; c < C; ++c) mu[c] = static_cast<float>(mean[c]);
  const Share share{x, g, C, K, scale, shift, mu.get(), WT};
  const bool wide = C % (2 * L) == 0;
  const FirstFn* first = wide ? ByRows<2>::first : ByRows<1>::first;
  const int workers =
      static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, groups)));
#pragma omp parallel num_threads(workers)
  {
    alignas(64) float da[ROWS * MAX_C];
    std::unique_ptr<float[]> dw(new float[C * K]), a(new float[CHUNK * C]),
        chunk_sum(new float[C]), chunk_centered(new float[C]);
#pragma omp for schedule(static)
    for (int64_t group = 0; group < groups; ++group) {
      std::fill(dw.get(), dw.get() + C * K, 0.0f);
      const int64_t last = std::min(chunks, (group + 1) * GROUP);
      for (int64_t k = group * GROUP; k < last; ++k) {
        std::fill(chunk_sum.get(), chunk_sum.get() + C, 0.0f);
        std::fill(chunk_centered.get(), chunk_centered.get() + C, 0.0f);
        const int64_t end = std::min(pixels, (k + 1) * CHUNK);
        for (int64_t p = k * CHUNK; p < end; p += ROWS) {
          const int n = static_cast<int>(std::min<int64_t>(ROWS, end - p));
          first[n](share, p, chunk_sum.get(), chunk_centered.get(),
                   a.get() + (p - k * CHUNK) * C, dx, da);
        }
        weight_gradient(share, k * CHUNK, end - k * CHUNK, a.get(), dw.get());
        for (int64_t c = 0; c < C; ++c) {
          sums[k * C + c] = chunk_sum[c];
          centered[k * C + c] = chunk_centered[c];
        }
      }
      for (int64_t i = 0; i < C * K; ++i) group_dw[group * C * K + i] = dw[i];
    }
#pragma omp single
    {
      chunk_sums::add_chunks(sums.get(), centered.get(), chunks, C, grad_shift, grad_centered);
      for (int64_t i = 0; i < C * K; ++i) grad_W[i] = 0;
      for (int64_t group = 0; group < groups; ++group)
        for (int64_t i = 0; i < C * K; ++i) grad_W[i] += group_dw[group * C * K + i];
      chunk_sums::dx_coefficients(grad_shift, grad_centered, invstd, pixels, C, A.get(), B.get());
    }  // the single's barrier: every thread sees A and B
#pragma omp for schedule(static)
    for (int64_t k = 0; k < chunks; ++k) {
      second_pass(share, k * CHUNK, std::min(pixels, (k + 1) * CHUNK), A.get(), B.get(), dx);
    }
  }
  return 0;
}

}  // extern "C"
