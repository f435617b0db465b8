// The vector the kernels are written in, so that each kernel is written once: AVX-512 (16
// floats) in the build made with MEMNET_AVX512, else AVX2 + FMA (8 floats). memnet.inference
// .native builds both where the CPU has AVX-512 and loads the one it picks. Every lane does the
// same fp32 operations in the same order in both, so their results are the same to the bit.
#pragma once
#include <immintrin.h>

namespace simd {

#if defined(MEMNET_AVX512)
using vec = __m512;
constexpr int lanes = 16;
inline vec load(const float* p) { return _mm512_loadu_ps(p); }
inline void store(float* p, vec v) { _mm512_storeu_ps(p, v); }
inline vec zero() { return _mm512_setzero_ps(); }
inline vec set1(float x) { return _mm512_set1_ps(x); }
inline vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
inline vec sub(vec a, vec b) { return _mm512_sub_ps(a, b); }
inline vec mul(vec a, vec b) { return _mm512_mul_ps(a, b); }
inline vec fmadd(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
inline vec max(vec a, vec b) { return _mm512_max_ps(a, b); }
// a where test > 0, else 0 (a ReLU's gradient mask, told from its pre-activation)
inline vec where_positive(vec test, vec a) {
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(test, zero(), _CMP_GT_OQ), a);
}
#else
using vec = __m256;
constexpr int lanes = 8;
inline vec load(const float* p) { return _mm256_loadu_ps(p); }
inline void store(float* p, vec v) { _mm256_storeu_ps(p, v); }
inline vec zero() { return _mm256_setzero_ps(); }
inline vec set1(float x) { return _mm256_set1_ps(x); }
inline vec add(vec a, vec b) { return _mm256_add_ps(a, b); }
inline vec sub(vec a, vec b) { return _mm256_sub_ps(a, b); }
inline vec mul(vec a, vec b) { return _mm256_mul_ps(a, b); }
inline vec fmadd(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
inline vec max(vec a, vec b) { return _mm256_max_ps(a, b); }
inline vec where_positive(vec test, vec a) {
  return _mm256_and_ps(_mm256_cmp_ps(test, zero(), _CMP_GT_OQ), a);
}
#endif

}  // namespace simd
