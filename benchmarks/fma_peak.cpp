// The cores' fp32 FMA peak: every OpenMP thread runs 12 independent chains of vector FMAs
// (enough to cover the FMA latency on every port) for a fixed count, and the rate is counted
// over the slowest thread. Built twice by benchmarks/speed.py: AVX2 (8 lanes) and, where the
// CPU has it, AVX-512 (16 lanes, -DWIDE). Prints GFLOP/s.
#include <immintrin.h>
#include <omp.h>

#include <chrono>
#include <cstdio>

#if defined(WIDE)
using vec = __m512;
static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
static vec set1(float x) { return _mm512_set1_ps(x); }
static float first(vec v) { return _mm512_cvtss_f32(v); }
#else
using vec = __m256;
static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
static vec set1(float x) { return _mm256_set1_ps(x); }
static float first(vec v) { return _mm256_cvtss_f32(v); }
#endif

constexpr int CHAINS = 12;
constexpr long ITERATIONS = 100000000;

int main() {
  double seconds = 0, sink = 0;
  int threads = 1;
#pragma omp parallel reduction(max : seconds) reduction(+ : sink)
  {
#pragma omp single
    threads = omp_get_num_threads();
    vec acc[CHAINS];
    for (int i = 0; i < CHAINS; ++i) acc[i] = set1(1.0f + 1e-7f * i);
    const vec b = set1(0.9999999f), c = set1(1e-7f);
#pragma omp barrier
    const auto start = std::chrono::steady_clock::now();
    for (long n = 0; n < ITERATIONS; ++n) {
#pragma GCC unroll 12
      for (int i = 0; i < CHAINS; ++i) acc[i] = fma(acc[i], b, c);
    }
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (int i = 0; i < CHAINS; ++i) sink += first(acc[i]);
  }
  const double flop = 2.0 * CHAINS * (sizeof(vec) / sizeof(float)) * ITERATIONS * threads;
  std::printf("%.1f\n", flop / seconds / 1e9);
  return sink == 12345.0;  // keeps the chains alive
}
