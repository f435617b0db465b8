// Prototype Winograd F(m×m, 3×3) convolution, stride 1, zero padding 1, batch 1, fp32,
// channels_last (NHWC) input and output, on one CPU thread with AVX2 + FMA.
//
// A conv is split into the three Winograd stages, over blocks of `block` tiles so that a block's
// transformed input V and products M stay in the L2 cache:
//   V[ξ][tile][c] = (Bᵀ d B)_ξ       input transform, 8 channels per AVX2 vector
//   M[ξ][tile][k] = Σ_c V[ξ][tile][c] U[ξ][c][k]   t² independent GEMMs (own 6×16 micro-kernel)
//   y = Aᵀ M A + bias                output transform, 8 output channels per vector
// U = G g Gᵀ is computed by the caller (in float64, once per weight).
// `input_transform` / `output_transform` expose the first and last stage over the whole image so
// that the GEMMs can also be run by torch (at::bmm) on [t²][tiles][C] tensors.
#include <immintrin.h>
#include <torch/extension.h>

#include <vector>

namespace {

// Transform matrices (Lavin & Gray 2016). BT: t×t, AT: m×t.
constexpr float BT2[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
constexpr float AT2[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
constexpr float BT4[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                             {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
constexpr float AT4[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};

template <int M>
struct Tf;
template <>
struct Tf<2> {
  static constexpr int T = 4;
  static constexpr float b(int i, int j) { return BT2[i][j]; }
  static constexpr float a(int i, int j) { return AT2[i][j]; }
};
template <>
struct Tf<4> {
  static constexpr int T = 6;
  static constexpr float b(int i, int j) { return BT4[i][j]; }
  static constexpr float a(int i, int j) { return AT4[i][j]; }
};

// out[i] = Σ_j mat(i, j) in[j·stride] over vectors; zero entries are skipped at compile time.
template <int R, int K, typename F>
inline void apply(F mat, const __m256* in, int in_stride, __m256* out, int out_stride) {
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    __m256 acc = _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int j = 0; j < K; ++j) {
      const float c = mat(i, j);
      if (c == 1.0f) {
        acc = _mm256_add_ps(acc, in[j * in_stride]);
      } else if (c == -1.0f) {
        acc = _mm256_sub_ps(acc, in[j * in_stride]);
      } else if (c != 0.0f) {
        acc = _mm256_fmadd_ps(_mm256_set1_ps(c), in[j * in_stride], acc);
      }
    }
    out[i * out_stride] = acc;
  }
}

struct Geometry {
  int64_t H, W, C, tiles_h, tiles_w, tiles;
};

// Input transform of tiles [t0, t1) into V[ξ][(tile - t0)][c] with row stride ld (≥ t1 - t0).
template <int M>
void input_block(const float* x, const Geometry& g, int64_t t0, int64_t t1, float* V, int64_t ld) {
  constexpr int T = Tf<M>::T;
  const int64_t C = g.C;
  alignas(32) __m256 d[T * T], tmp[T * T];
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t tile = t0; tile < t1; ++tile) {
    const int64_t r0 = (tile / g.tiles_w) * M - 1, c0 = (tile % g.tiles_w) * M - 1;
    const bool inside = r0 >= 0 && c0 >= 0 && r0 + T <= g.H && c0 + T <= g.W;
    float* v = V + (tile - t0) * C;
    for (int64_t ch = 0; ch < C; ch += 8) {
      for (int i = 0; i < T; ++i) {
        const int64_t r = r0 + i;
        for (int j = 0; j < T; ++j) {
          const int64_t c = c0 + j;
          d[i * T + j] = (inside || (r >= 0 && r < g.H && c >= 0 && c < g.W))
                             ? _mm256_loadu_ps(x + (r * g.W + c) * C + ch)
                             : zero;
        }
      }
      // tmp = Bᵀ d (over rows), then V = tmp B (over columns).
      for (int j = 0; j < T; ++j) apply<T, T>(Tf<M>::b, d + j, T, tmp + j, T);
      for (int i = 0; i < T; ++i) apply<T, T>(Tf<M>::b, tmp + i * T, 1, d + i * T, 1);
      for (int xi = 0; xi < T * T; ++xi) _mm256_storeu_ps(v + xi * ld * C + ch, d[xi]);
    }
  }
}

// Output transform of tiles [t0, t1) from M[ξ][(tile - t0)][k] (row stride ld), plus bias.
template <int M>
void output_block(const float* Mb, const float* bias, const Geometry& g, int64_t K, int64_t t0,
                  int64_t t1, int64_t ld, float* y) {
  constexpr int T = Tf<M>::T;
  alignas(32) __m256 m[T * T], tmp[M * T], o[M * M];
  for (int64_t tile = t0; tile < t1; ++tile) {
    const int64_t r0 = (tile / g.tiles_w) * M, c0 = (tile % g.tiles_w) * M;
    const float* src = Mb + (tile - t0) * K;
    for (int64_t k = 0; k < K; k += 8) {
      for (int xi = 0; xi < T * T; ++xi) m[xi] = _mm256_loadu_ps(src + xi * ld * K + k);
      for (int j = 0; j < T; ++j) apply<M, T>(Tf<M>::a, m + j, T, tmp + j, T);
      for (int i = 0; i < M; ++i) apply<M, T>(Tf<M>::a, tmp + i * T, 1, o + i * M, 1);
      const __m256 b = bias ? _mm256_loadu_ps(bias + k) : _mm256_setzero_ps();
      for (int i = 0; i < M && r0 + i < g.H; ++i)
        for (int j = 0; j < M && c0 + j < g.W; ++j)
          _mm256_storeu_ps(y + ((r0 + i) * g.W + c0 + j) * K + k, _mm256_add_ps(o[i * M + j], b));
    }
  }
}

// Mo[n][K] = V[n][C] · U[C][K] for n a multiple of 6 and K a multiple of 16 (row-major).
void gemm(const float* V, const float* U, float* Mo, int64_t n, int64_t C, int64_t K) {
  for (int64_t j0 = 0; j0 < K; j0 += 16) {
    for (int64_t r0 = 0; r0 < n; r0 += 6) {
      __m256 acc[6][2];
      for (int i = 0; i < 6; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
      const float* v = V + r0 * C;
      for (int64_t c = 0; c < C; ++c) {
        const __m256 u0 = _mm256_loadu_ps(U + c * K + j0), u1 = _mm256_loadu_ps(U + c * K + j0 + 8);
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) {
          const __m256 b = _mm256_broadcast_ss(v + i * C + c);
          acc[i][0] = _mm256_fmadd_ps(b, u0, acc[i][0]);
          acc[i][1] = _mm256_fmadd_ps(b, u1, acc[i][1]);
        }
      }
      for (int i = 0; i < 6; ++i) {
        _mm256_storeu_ps(Mo + (r0 + i) * K + j0, acc[i][0]);
        _mm256_storeu_ps(Mo + (r0 + i) * K + j0 + 8, acc[i][1]);
      }
    }
  }
}

Geometry geometry(const torch::Tensor& x, int m) {
  TORCH_CHECK(x.dim() == 4 && x.size(0) == 1, "batch-1 NCHW tensor expected");
  TORCH_CHECK(x.scalar_type() == torch::kFloat32, "float32 expected");
  TORCH_CHECK(x.is_contiguous(at::MemoryFormat::ChannelsLast), "channels_last expected");
  TORCH_CHECK(x.size(1) % 8 == 0, "channels must be a multiple of 8");
  Geometry g{x.size(2), x.size(3), x.size(1), 0, 0, 0};
  g.tiles_h = (g.H + m - 1) / m;
  g.tiles_w = (g.W + m - 1) / m;
  g.tiles = g.tiles_h * g.tiles_w;
  return g;
}

torch::Tensor empty_output(const Geometry& g, int64_t K) {
  return torch::empty({1, K, g.H, g.W},
                      torch::TensorOptions().dtype(torch::kFloat32).memory_format(
                          at::MemoryFormat::ChannelsLast));
}

template <int M>
torch::Tensor conv_fused(const torch::Tensor& x, const torch::Tensor& U, const torch::Tensor& bias,
                         int64_t block) {
  constexpr int T = Tf<M>::T;
  const Geometry g = geometry(x, M);
  const int64_t K = U.size(2);
  TORCH_CHECK(U.size(0) == T * T && U.size(1) == g.C && U.is_contiguous(), "U: [t², C, K]");
  TORCH_CHECK(K % 16 == 0 && block % 6 == 0, "K % 16 and block % 6 must be 0");
  torch::Tensor y = empty_output(g, K);
  std::vector<float> V(T * T * block * g.C, 0.0f), Mb(T * T * block * K);
  const float* xp = x.data_ptr<float>();
  const float* up = U.data_ptr<float>();
  const float* bp = bias.defined() ? bias.data_ptr<float>() : nullptr;
  for (int64_t t0 = 0; t0 < g.tiles; t0 += block) {
    const int64_t t1 = std::min(t0 + block, g.tiles);
    const int64_t n = (t1 - t0 + 5) / 6 * 6;  // rows past t1 hold stale tiles, never written out
    input_block<M>(xp, g, t0, t1, V.data(), block);
    for (int xi = 0; xi < T * T; ++xi)
      gemm(V.data() + xi * block * g.C, up + xi * g.C * K, Mb.data() + xi * block * K, n, g.C, K);
    output_block<M>(Mb.data(), bp, g, K, t0, t1, block, y.data_ptr<float>());
  }
  return y;
}

template <int M>
torch::Tensor input_transform(const torch::Tensor& x) {
  constexpr int T = Tf<M>::T;
  const Geometry g = geometry(x, M);
  torch::Tensor V = torch::empty({T * T, g.tiles, g.C}, x.options());
  input_block<M>(x.data_ptr<float>(), g, 0, g.tiles, V.data_ptr<float>(), g.tiles);
  return V;
}

template <int M>
torch::Tensor output_transform(const torch::Tensor& Mt, const torch::Tensor& bias, int64_t H,
                               int64_t W) {
  constexpr int T = Tf<M>::T;
  const int64_t K = Mt.size(2);
  TORCH_CHECK(Mt.size(0) == T * T && Mt.is_contiguous() && K % 8 == 0, "M: [t², tiles, K]");
  Geometry g{H, W, K, (H + M - 1) / M, (W + M - 1) / M, 0};
  g.tiles = g.tiles_h * g.tiles_w;
  TORCH_CHECK(Mt.size(1) == g.tiles, "tile count");
  torch::Tensor y = empty_output(g, K);
  output_block<M>(Mt.data_ptr<float>(), bias.defined() ? bias.data_ptr<float>() : nullptr, g, K,
                  0, g.tiles, g.tiles, y.data_ptr<float>());
  return y;
}

torch::Tensor conv(const torch::Tensor& x, const torch::Tensor& U, const torch::Tensor& bias,
                   int64_t m, int64_t block) {
  return m == 2 ? conv_fused<2>(x, U, bias, block) : conv_fused<4>(x, U, bias, block);
}
torch::Tensor in_tf(const torch::Tensor& x, int64_t m) {
  return m == 2 ? input_transform<2>(x) : input_transform<4>(x);
}
torch::Tensor out_tf(const torch::Tensor& Mt, const torch::Tensor& bias, int64_t m, int64_t H,
                     int64_t W) {
  return m == 2 ? output_transform<2>(Mt, bias, H, W) : output_transform<4>(Mt, bias, H, W);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.def("conv", &conv, "fused blocked Winograd conv with the own GEMM micro-kernel");
  module.def("input_transform", &in_tf, "V[t²][tiles][C] of a channels_last image");
  module.def("output_transform", &out_tf, "channels_last image from M[t²][tiles][K], plus bias");
}
