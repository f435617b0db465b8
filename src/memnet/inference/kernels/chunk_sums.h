// What τ's backward kernels (batchnorm.cpp, gate_gradients.cpp) share: the fixed-order sum of
// per-chunk partial sums, and τ's two per-channel sums folded into the coefficients of dx.
#pragma once
#include <stdint.h>

namespace chunk_sums {

// first_sum[c] = Σ_chunks first[chunk][c], and the same for `second`, in chunk order (in
// double), so that the result does not depend on how the chunks were shared among threads.
inline void add_chunks(const double* first, const double* second, int64_t chunks, int64_t C,
                       double* first_sum, double* second_sum) {
  for (int64_t c = 0; c < C; ++c) first_sum[c] = second_sum[c] = 0;
  for (int64_t k = 0; k < chunks; ++k)
    for (int64_t c = 0; c < C; ++c) {
      first_sum[c] += first[k * C + c];
      second_sum[c] += second[k * C + c];
    }
}

// τ's input gradient is dx = scale·(g − a − (x − mean)·b) with a = Σg/P and
// b = invstd²·Σg·(x − mean)/P: a and b per channel, from the sums in double, rounded to fp32.
inline void dx_coefficients(const double* grad_shift, const double* grad_centered,
                            const double* invstd, int64_t pixels, int64_t C, float* a, float* b) {
  const double count = static_cast<double>(pixels);
  for (int64_t c = 0; c < C; ++c) {
    a[c] = static_cast<float>(grad_shift[c] / count);
    b[c] = static_cast<float>(invstd[c] * invstd[c] * grad_centered[c] / count);
  }
}

}  // namespace chunk_sums
