// Training's pre-activation τ = ReLU(BatchNorm(x)) with batch statistics, forward and backward,
// on channels_last rows x[pixels][C].
//
// MemNet has a τ in front of every conv: 41 of them in the light m4r4c32 net, 79 in m6r6. As
// PyTorch's CPU ops τ is a BatchNorm, a ReLU and, backwards, a ReLU mask pass and a BatchNorm
// backward (0.66 ms forward and backward for a batch of 32 × 31² × 32 channels; 0.45 ms here).
// Each direction here is two passes over the rows, vectorised over the channels:
//   forward:  the per-channel sums (memnet_bn_stats), then y = max(scale·x + shift, 0)
//   backward: g = dy where y > 0 (told from x, as the forward computed y: a pass reads two
//             tensors rather than three); the sums Σg and Σg·(x − mean); then
//             dx = scale·(g − Σg/P − (x − mean)·invstd²·Σg·(x − mean)/P)
//
// Sums are taken in chunks of CHUNK pixels in fp32 (each chunk's from its own start, so at most
// CHUNK terms deep), then the chunks' sums are added in double in chunk order: the result is the
// same for any number of threads. The statistics sum x − x[0] (per channel), which keeps the
// variance exact where the mean is large beside the spread.
//
// The two chunked-sum loops (statistics, backward) are written out each in place: one template
// taking the per-pixel terms as a lambda gave the same sums but made a light-preset training
// step 2× slower (measured; not yet pinned down, the inner loops' vectorisation the likely cause).
#include "chunk_sums.h"
#include <omp.h>
#include <stdint.h>

#include <algorithm>
#include <cmath>
#include <memory>

namespace {

using chunk_sums::add_chunks;

constexpr int64_t CHUNK = 128;

int64_t chunks_of(int64_t pixels) { return (pixels + CHUNK - 1) / CHUNK; }

int workers_for(int threads, int64_t chunks) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, chunks)));
}

}  // namespace

extern "C" {

// mean[c] and the biased variance var[c] of x[pixels][C] over its pixels, in double.
// Returns 0, or -1 when the shapes do not fit.
int memnet_bn_stats(const float* x, int64_t pixels, int64_t C, double* mean, double* var,
                    int threads) {
  if (pixels <= 0 || C <= 0) return -1;
  const int64_t chunks = chunks_of(pixels);
  std::unique_ptr<double[]> sums(new double[chunks * C]), squares(new double[chunks * C]);
  const float* origin = x;  // x[0][c]: the shift of every channel's sums
#pragma omp parallel num_threads(workers_for(threads, chunks))
  {
    std::unique_ptr<float[]> s(new float[C]), q(new float[C]);
#pragma omp for schedule(static)
    for (int64_t k = 0; k < chunks; ++k) {
      std::fill(s.get(), s.get() + C, 0.0f);
      std::fill(q.get(), q.get() + C, 0.0f);
      const int64_t end = std::min(pixels, (k + 1) * CHUNK);
      for (int64_t p = k * CHUNK; p < end; ++p) {
        const float* row = x + p * C;
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const float d = row[c] - origin[c];
          s[c] += d;
          q[c] = std::fma(d, d, q[c]);
        }
      }
      for (int64_t c = 0; c < C; ++c) {
        sums[k * C + c] = s[c];
        squares[k * C + c] = q[c];
      }
    }
  }
  add_chunks(sums.get(), squares.get(), chunks, C, mean, var);
  for (int64_t c = 0; c < C; ++c) {
    const double shifted_mean = mean[c] / static_cast<double>(pixels);
    var[c] = std::max(0.0, var[c] / static_cast<double>(pixels) - shifted_mean * shifted_mean);
    mean[c] = origin[c] + shifted_mean;
  }
  return 0;
}

// y[p][c] = max(scale[c]·x[p][c] + shift[c], 0), one fused multiply-add per sample; y may be x.
int memnet_bn_relu(const float* x, int64_t pixels, int64_t C, const float* scale,
                   const float* shift, float* y, int threads) {
  if (pixels <= 0 || C <= 0) return -1;
  const int64_t chunks = chunks_of(pixels);
#pragma omp parallel for num_threads(workers_for(threads, chunks)) schedule(static)
  for (int64_t k = 0; k < chunks; ++k) {
    const int64_t end = std::min(pixels, (k + 1) * CHUNK);
    for (int64_t p = k * CHUNK; p < end; ++p) {
#pragma omp simd
      for (int64_t c = 0; c < C; ++c)
        y[p * C + c] = std::max(std::fma(scale[c], x[p * C + c], shift[c]), 0.0f);
    }
  }
  return 0;
}

// The gradient dx of τ for its input x and the gradient dy of its output (both [pixels][C]),
// with the forward's scale and shift (whose fused multiply-add tells where y > 0), its mean
// and invstd = 1/sqrt(var + eps) (double); also the
// sums grad_shift[c] = Σ g (BatchNorm β's gradient) and grad_centered[c] = Σ g·(x − mean)
// (γ's gradient is invstd times it). dx may be dy. Returns 0, or -1 when the shapes do not fit.
int memnet_bn_relu_backward(const float* x, const float* dy, int64_t pixels, int64_t C,
                            const float* scale, const float* shift, const double* mean,
                            const double* invstd, float* dx, double* grad_shift,
                            double* grad_centered, int threads) {
  if (pixels <= 0 || C <= 0) return -1;
  const int64_t chunks = chunks_of(pixels);
  std::unique_ptr<double[]> sums(new double[chunks * C]), centered(new double[chunks * C]);
  std::unique_ptr<float[]> mu(new float[C]), a(new float[C]), b(new float[C]);
  for (int64_t c = 0; c < C; ++c) mu[c] = static_cast<float>(mean[c]);
#pragma omp parallel num_threads(workers_for(threads, chunks))
  {
    std::unique_ptr<float[]> s(new float[C]), t(new float[C]);
#pragma omp for schedule(static)
    for (int64_t k = 0; k < chunks; ++k) {
      std::fill(s.get(), s.get() + C, 0.0f);
      std::fill(t.get(), t.get() + C, 0.0f);
      const int64_t end = std::min(pixels, (k + 1) * CHUNK);
      for (int64_t p = k * CHUNK; p < end; ++p) {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const bool active = std::fma(scale[c], x[p * C + c], shift[c]) > 0.0f;
          const float g = active ? dy[p * C + c] : 0.0f;
          s[c] += g;
          t[c] = std::fma(g, x[p * C + c] - mu[c], t[c]);
        }
      }
      for (int64_t c = 0; c < C; ++c) {
        sums[k * C + c] = s[c];
        centered[k * C + c] = t[c];
      }
    }
#pragma omp single
    {
      add_chunks(sums.get(), centered.get(), chunks, C, grad_shift, grad_centered);
      chunk_sums::dx_coefficients(grad_shift, grad_centered, invstd, pixels, C, a.get(), b.get());
    }  // the single's barrier: every thread sees a and b
#pragma omp for schedule(static)
    for (int64_t k = 0; k < chunks; ++k) {
      const int64_t end = std::min(pixels, (k + 1) * CHUNK);
      for (int64_t p = k * CHUNK; p < end; ++p) {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) {
          const bool active = std::fma(scale[c], x[p * C + c], shift[c]) > 0.0f;
          const float g = active ? dy[p * C + c] : 0.0f;
          dx[p * C + c] = scale[c] * (g - a[c] - (x[p * C + c] - mu[c]) * b[c]);
        }
      }
    }
  }
  return 0;
}

}  // extern "C"
