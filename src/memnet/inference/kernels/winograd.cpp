// Winograd F(4×4, 3×3) convolution for the 3×3, stride-1 convs of memnet's inference network:
// fp32, channels_last (NHWC) batches, AVX2 + FMA, threads from the OpenMP runtime that PyTorch
// has already loaded (the same libgomp.so.1, so both share one pool of threads).
//
// F(4×4, 3×3) computes a 4×4 output tile from a 6×6 input tile with 36 multiplies per channel
// pair instead of 144 (Lavin & Gray 2016). The three stages run over blocks of tiles so that a
// block's transformed input V and products M stay in the L2 cache; transforming the whole image
// first and multiplying afterwards was measured slower than direct convolution
// (benchmarks/winograd.md), because V and M then go through DRAM.
//   V[ξ][tile][c] = (Bᵀ d B)_ξ                       input transform, a vector of channels at a time
//   M[ξ][tile][k] = Σ_c V[ξ][tile][c] · U[ξ][c][k]   36 GEMMs, own 6×16 micro-kernel
//   y = Aᵀ M A + bias (+ add) (ReLU)                 output transform and the fused epilogue
// U = G g Gᵀ is computed once per weight by the caller (memnet.inference.winograd, in float64).
// Training's weight gradient runs the same tiles backwards (memnet_winograd_weight_grad):
//   dM[ξ][tile][k] = (A dy Aᵀ)_ξ                      the output gradient's 4×4 tile, transformed
//   dU[ξ][c][k] = Σ_tiles V[ξ][tile][c] · dM[ξ][tile][k]   36 GEMMs reducing over tiles
// and the caller takes dg = Gᵀ dU G (in float64).
//
// Plain C with no PyTorch headers, so that a machine's compiler builds it in seconds; the
// caller passes data pointers of tensors it has checked (dtype, layout, sizes).
#include "simd.h"
#include <omp.h>
#include <stdint.h>

#include <algorithm>
#include <memory>

namespace {

using simd::vec;

constexpr int M = 4;  // output tile side
constexpr int T = 6;  // input tile side, M + 3 - 1

constexpr float BT[T][T] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                            {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
constexpr float AT[M][T] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};

// The output-gradient transform of the weight gradient: A = (Aᵀ)ᵀ, 6×4.
constexpr float A[T][M] = {{1, 0, 0, 0}, {1, 1, 1, 1}, {1, -1, 1, -1},
                           {1, 2, 4, 8}, {1, -2, 4, -8}, {0, 0, 0, 1}};

// out(i, Σ_j mat[i][j] · in(j)) over vectors; the compiler drops zero entries and turns ±1 into
// adds because the loops are unrolled over constant matrices. `in` and `out` may read and write
// the kernel's buffers directly (a pass's first input loaded from memory, its last output
// stored), which saves a copy of every tile through the stack.
template <int R, int Cn, const float (&Mat)[R][Cn], typename In, typename Out>
inline void apply_with(In in, Out out) {
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    vec acc = simd::zero();
#pragma GCC unroll 8
    for (int j = 0; j < Cn; ++j) {
      const float c = Mat[i][j];
      if (c == 1.0f) {
        acc = simd::add(acc, in(j));
      } else if (c == -1.0f) {
        acc = simd::sub(acc, in(j));
      } else if (c != 0.0f) {
        acc = simd::fmadd(simd::set1(c), in(j), acc);
      }
    }
    out(i, acc);
  }
}

// out[i·os] = Σ_j mat[i][j] in[j·is], vectors held in arrays.
template <int R, int Cn, const float (&Mat)[R][Cn]>
inline void apply(const vec* in, int is, vec* out, int os) {
  apply_with<R, Cn, Mat>([&](int j) { return in[j * is]; },
                         [&](int i, vec v) { out[i * os] = v; });
}

struct Shape {
  int64_t height_in, width, channels, out_channels, pad_top;
  int64_t height_out, tiles_h, tiles_w, tiles_per_image;
};

// Where tile `tile` (counted over the whole batch) starts: its image and its output row/column.
struct Tile {
  int64_t image, row, col;
};

inline Tile locate(const Shape& s, int64_t tile) {
  const int64_t image = tile / s.tiles_per_image, local = tile % s.tiles_per_image;
  return {image, (local / s.tiles_w) * M, (local % s.tiles_w) * M};
}

// A tensor's rows as the kernel addresses them: row r of image `image` is at first + r · pitch
// for r < split, and at second + (r - split) · pitch after; a streamed strip's ring buffer
// (memnet.inference.streaming) stores its rows in two such runs when they wrap. A plain
// tensor has split = its height. Images follow each other `image_floats` apart.
template <typename F>
struct Rows {
  F* first;
  F* second;
  int64_t split, pitch, image_floats;
  F* row(int64_t image, int64_t r) const {
    return (r < split ? first + r * pitch : second + (r - split) * pitch) + image * image_floats;
  }
};

// V[ξ][i][c] for tiles t0 + i, i < t1 - t0; ld = rows of each ξ slice. With `scale` and
// `shift` (C each) every input sample is first activated, relu(scale·x + shift) (an eval
// BatchNorm and its ReLU), and the zero padding stays zero. `where` holds t1 - t0 Tiles: the
// block's tiles are located once, not once per channel vector (three integer divisions each).
void input_block(const Rows<const float>& x, const float* scale, const float* shift,
                 const Shape& s, int64_t t0, int64_t t1, float* V, int64_t ld, Tile* where) {
  const int64_t C = s.channels;
  alignas(64) vec col[T], tmp[T * T];
  const vec zero = simd::zero();
  for (int64_t tile = t0; tile < t1; ++tile) where[tile - t0] = locate(s, tile);
  // A channel vector at a time over the block's tiles, so that a tile can take the first pass
  // of its left neighbour's last two columns: neighbours in a tile row share two input columns,
  // and Bᵀ d transforms each column on its own. The operations on each value are the same as
  // for a tile on its own, so the result is the same to the bit.
  for (int64_t ch = 0; ch < C; ch += simd::lanes) {
    const vec a = scale ? simd::load(scale + ch) : zero;
    const vec b = shift ? simd::load(shift + ch) : zero;
    Tile before{-1, -1, -1};
    for (int64_t tile = t0; tile < t1; ++tile) {
      const Tile at = where[tile - t0];
      // Output row r reads input rows r - pad_top .. r - pad_top + 2; columns are zero-padded.
      const int64_t r0 = at.row - s.pad_top, c0 = at.col - 1;
      const bool inside = r0 >= 0 && c0 >= 0 && r0 + T <= s.height_in && c0 + T <= s.width;
      const float* row[T];
      for (int i = 0; i < T; ++i) {
        const int64_t r = r0 + i;
        row[i] = r >= 0 && r < s.height_in ? x.row(at.image, r) : nullptr;
      }
      const bool shares = at.image == before.image && at.row == before.row &&
                          at.col == before.col + M;
      if (shares) {
        for (int i = 0; i < T; ++i) {
          tmp[i * T] = tmp[i * T + M];
          tmp[i * T + 1] = tmp[i * T + M + 1];
        }
      }
      for (int j = shares ? T - M : 0; j < T; ++j) {
        const int64_t c = c0 + j;
        for (int i = 0; i < T; ++i) {
          const bool valid = inside || (row[i] && c >= 0 && c < s.width);
          vec value = valid ? simd::load(row[i] + c * C + ch) : zero;
          if (scale && valid) value = simd::max(simd::fmadd(value, a, b), zero);
          col[i] = value;
        }
        apply<T, T, BT>(col, 1, tmp + j, T);  // column j of Bᵀ d
      }
      float* v = V + (tile - t0) * C + ch;
      for (int i = 0; i < T; ++i)  // (Bᵀ d) B, row i, stored straight into V[ξ = 6i + j]
        apply_with<T, T, BT>([&](int j) { return tmp[i * T + j]; }, [&](int j, vec value) {
          simd::store(v + (i * T + j) * ld * C, value);
        });
      before = at;
    }
  }
}

// Mo[n][K] = V[n][C] · U[C][K], n a multiple of 6, K of NV vectors: a 6 × NV-vector block of
// accumulators per pass over C (NV = 2: 12 of AVX2's 16 registers; NV = 4: 24 of AVX-512's 32,
// so that each load of U feeds 6 multiplies and each broadcast of V 4). U comes packed by
// pack_panels: the NV vectors of K that a pass reads are one run, [K / (NV·lanes)][C][NV·lanes],
// and each pass prefetches the run ahead of it. With U as [C][K] a pass read one cache line
// every K floats, and the 36 slices of a block (576 KB at 64 channels) came from the L2 at the
// stride's pace (with the transforms' direct loads and stores, the conv ran 1.12-1.23× faster
// on a 2-core Zen 3 machine: benchmarks/winograd.md).
template <int NV>
void gemm_by(const float* V, const float* U, float* Mo, int64_t n, int64_t C, int64_t K) {
  constexpr int W = NV * simd::lanes;  // floats of one panel row
  constexpr int AHEAD = 1024;          // floats prefetched ahead: one 64 × 16 panel of AVX2
  for (int64_t j0 = 0; j0 < K; j0 += W) {
    const float* panel = U + j0 * C;
    for (int64_t r0 = 0; r0 < n; r0 += 6) {
      vec acc[6][NV];
#pragma GCC unroll 6
      for (int i = 0; i < 6; ++i)
#pragma GCC unroll 4
        for (int q = 0; q < NV; ++q) acc[i][q] = simd::zero();
      const float* v = V + r0 * C;
      for (int64_t c = 0; c < C; ++c) {
        const float* u_row = panel + c * W;
#pragma GCC unroll 4
        for (int line = 0; line < W; line += 16) __builtin_prefetch(u_row + AHEAD + line);
        vec u[NV];
#pragma GCC unroll 4
        for (int q = 0; q < NV; ++q) u[q] = simd::load(u_row + q * simd::lanes);
#pragma GCC unroll 6
        for (int i = 0; i < 6; ++i) {
          const vec b = simd::set1(v[i * C + c]);
#pragma GCC unroll 4
          for (int q = 0; q < NV; ++q) acc[i][q] = simd::fmadd(b, u[q], acc[i][q]);
        }
      }
#pragma GCC unroll 6
      for (int i = 0; i < 6; ++i)
#pragma GCC unroll 4
        for (int q = 0; q < NV; ++q)
          simd::store(Mo + (r0 + i) * K + j0 + q * simd::lanes, acc[i][q]);
    }
  }
}

// Whether K takes the 4-vector-wide block: the widest AVX-512's registers hold (the sums are the
// same either way); both GEMMs choose by it.
inline bool four_vectors(int64_t K) { return simd::lanes == 16 && K % (4 * simd::lanes) == 0; }

void gemm(const float* V, const float* U, float* Mo, int64_t n, int64_t C, int64_t K) {
  if (four_vectors(K))
    gemm_by<4>(V, U, Mo, n, C, K);
  else
    gemm_by<2>(V, U, Mo, n, C, K);
}

// One [C][K] slice of U as gemm_by reads it: [K / w][C][w], w the floats of its pass.
void pack_panels(const float* U, int64_t C, int64_t K, float* packed) {
  const int64_t w = (four_vectors(K) ? 4 : 2) * simd::lanes;
  for (int64_t j0 = 0; j0 < K; j0 += w)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t j = 0; j < w; ++j) packed[j0 * C + c * w + j] = U[c * K + j0 + j];
}

// y = Aᵀ M A + bias, then + add (which may be y itself), then ReLU, for tiles [t0, t1).
// `add` may be null (add.first).
void output_block(const float* Mb, const float* bias, const Rows<const float>& add, int relu,
                  const Shape& s, int64_t t0, int64_t t1, int64_t ld, const Rows<float>& y) {
  const int64_t K = s.out_channels;
  alignas(64) vec tmp[M * T];
  const vec zero = simd::zero();
  for (int64_t tile = t0; tile < t1; ++tile) {
    const Tile at = locate(s, tile);
    const int rows = static_cast<int>(std::min<int64_t>(M, s.height_out - at.row));
    const int cols = static_cast<int>(std::min<int64_t>(M, s.width - at.col));
    float* out[M];
    const float* plus[M];
    for (int i = 0; i < rows; ++i) {
      out[i] = y.row(at.image, at.row + i) + at.col * K;
      plus[i] = add.first ? add.row(at.image, at.row + i) + at.col * K : nullptr;
    }
    const float* src = Mb + (tile - t0) * K;
    for (int64_t k = 0; k < K; k += simd::lanes) {
      for (int j = 0; j < T; ++j)  // Aᵀ M, column j, loaded from M[ξ = j + 6i]
        apply_with<M, T, AT>([&](int i) { return simd::load(src + (j + i * T) * ld * K + k); },
                             [&](int i, vec value) { tmp[i * T + j] = value; });
      const vec b = bias ? simd::load(bias + k) : zero;
      for (int i = 0; i < rows; ++i)  // (Aᵀ M) A, row i, through the epilogue into y
        apply_with<M, T, AT>([&](int j) { return tmp[i * T + j]; }, [&](int j, vec value) {
          if (j >= cols) return;
          value = simd::add(value, b);
          if (plus[i]) value = simd::add(value, simd::load(plus[i] + j * K + k));
          if (relu) value = simd::max(value, zero);
          simd::store(out[i] + j * K + k, value);
        });
    }
  }
}

// dM[ξ][i][k] = (A dy Aᵀ)_ξ of the output gradient's tiles t0 + i, i < t1 - t0, with the
// samples past the image's last row or column (a partial tile) taken as 0; ld as input_block.
void grad_output_block(const float* dy, const Shape& s, int64_t t0, int64_t t1, float* dM,
                       int64_t ld) {
  const int64_t K = s.out_channels;
  alignas(64) vec g[M * M], tmp[T * M], m[T * T];
  const vec zero = simd::zero();
  for (int64_t tile = t0; tile < t1; ++tile) {
    const Tile at = locate(s, tile);
    const float* image = dy + at.image * s.height_out * s.width * K;
    float* out = dM + (tile - t0) * K;
    for (int64_t k = 0; k < K; k += simd::lanes) {
      for (int i = 0; i < M; ++i) {
        for (int j = 0; j < M; ++j) {
          const int64_t r = at.row + i, c = at.col + j;
          g[i * M + j] = r < s.height_out && c < s.width
                             ? simd::load(image + (r * s.width + c) * K + k)
                             : zero;
        }
      }
      for (int j = 0; j < M; ++j) apply<T, M, A>(g + j, M, tmp + j, M);          // A dy
      for (int i = 0; i < T; ++i) apply<T, M, A>(tmp + i * M, 1, m + i * T, 1);  // (A dy) Aᵀ
      for (int xi = 0; xi < T * T; ++xi) simd::store(out + xi * ld * K + k, m[xi]);
    }
  }
}

// dU[C][K] += V[n][C]ᵀ · D[n][K]: 4 rows of dU × NV vectors of accumulators, summed over the
// block's n tiles in order (so every run adds in the same order).
template <int NV>
void gemm_tn_by(const float* V, const float* D, float* dU, int64_t n, int64_t C, int64_t K) {
  constexpr int CR = 4;
  for (int64_t j0 = 0; j0 < K; j0 += NV * simd::lanes) {
    for (int64_t c0 = 0; c0 < C; c0 += CR) {
      vec acc[CR][NV];
#pragma GCC unroll 4
      for (int i = 0; i < CR; ++i)
#pragma GCC unroll 4
        for (int q = 0; q < NV; ++q)
          acc[i][q] = simd::load(dU + (c0 + i) * K + j0 + q * simd::lanes);
      for (int64_t r = 0; r < n; ++r) {
        vec d[NV];
#pragma GCC unroll 4
        for (int q = 0; q < NV; ++q) d[q] = simd::load(D + r * K + j0 + q * simd::lanes);
#pragma GCC unroll 4
        for (int i = 0; i < CR; ++i) {
          const vec b = simd::set1(V[r * C + c0 + i]);
#pragma GCC unroll 4
          for (int q = 0; q < NV; ++q) acc[i][q] = simd::fmadd(b, d[q], acc[i][q]);
        }
      }
#pragma GCC unroll 4
      for (int i = 0; i < CR; ++i)
#pragma GCC unroll 4
        for (int q = 0; q < NV; ++q)
          simd::store(dU + (c0 + i) * K + j0 + q * simd::lanes, acc[i][q]);
    }
  }
}

void gemm_tn(const float* V, const float* D, float* dU, int64_t n, int64_t C, int64_t K) {
  if (four_vectors(K))
    gemm_tn_by<4>(V, D, dU, n, C, K);
  else
    gemm_tn_by<2>(V, D, dU, n, C, K);
}

}  // namespace

extern "C" {

// Floats per vector in this build (8: AVX2, 16: AVX-512): the channel counts must be multiples.
int memnet_vector_lanes() { return simd::lanes; }

// How many tiles one block holds for C input and K output channels: V and M of a block take
// 36·block·(C + K) floats, kept within `cache_bytes`; a multiple of 6 (the micro-kernel's rows).
int64_t memnet_winograd_block(int64_t C, int64_t K, int64_t cache_bytes) {
  const int64_t per_tile = T * T * (C + K) * static_cast<int64_t>(sizeof(float));
  return std::max<int64_t>(6, cache_bytes / per_tile / 6 * 6);
}

// packed[36][...] = U[36][C][K] laid out as memnet_winograd_conv reads it (each slice in the
// runs of its GEMM passes, which depend on this build's vectors). Same channel rules as the
// conv; returns 0, or -1 when they do not fit.
int memnet_winograd_pack(const float* U, int64_t C, int64_t K, float* packed) {
  if (C % simd::lanes || K % (2 * simd::lanes) || C <= 0 || K <= 0) return -1;
  for (int xi = 0; xi < T * T; ++xi) pack_panels(U + xi * C * K, C, K, packed + xi * C * K);
  return 0;
}

// y[n][H_out][W][K] = conv(x[n][H_in][W][C]) with U[36][C][K] as memnet_winograd_pack packs
// it, H_out = H_in + pad_top + pad_bottom - 2: one zero row padded above (pad_top = 1) or
// below, else x carries that row of context itself (a strip of a taller image); 1, 1 is a
// 'same' conv. `scale` and `shift` (C,
// both or neither) activate the input first, relu(scale·x + shift); `bias` (K) and `add`
// (y's shape, may alias y) may be null. x, add and y each hold their first `*_split` rows at
// their pointer and the rest at `*_second` (the two runs of a ring buffer; n = 1 then), or all
// of them at the pointer with split ≥ their height. C and K multiples of simd::lanes and of
// twice that (8 and 16 for AVX2, 16 and 32 for AVX-512); returns 0, or -1 when the shapes do
// not fit.
int memnet_winograd_conv(const float* x, const float* x_second, int64_t x_split, int64_t n,
                         int64_t height_in, int64_t width, int64_t C, int64_t pad_top,
                         int64_t pad_bottom, const float* scale, const float* shift,
                         const float* U, int64_t K, const float* bias, const float* add,
                         const float* add_second, int64_t add_split, float* y, float* y_second,
                         int64_t y_split, int relu, int threads, int64_t block) {
  const int64_t height_out = height_in + pad_top + pad_bottom - 2;
  const bool split = x_split < height_in || (add && add_split < height_out) || y_split < height_out;
  if (C % simd::lanes || K % (2 * simd::lanes) || block % 6 || block <= 0 || height_out <= 0 ||
      width <= 0 || n <= 0 || pad_top < 0 || pad_top > 1 || pad_bottom < 0 || pad_bottom > 1 ||
      !scale != !shift || (split && n != 1) || x_split < 0 || add_split < 0 || y_split < 0)
    return -1;
  const Rows<const float> input{x, x_second, x_split, width * C, height_in * width * C};
  const Rows<const float> plus{add, add_second, add_split, width * K, height_out * width * K};
  const Rows<float> output{y, y_second, y_split, width * K, height_out * width * K};
  Shape s{height_in, width, C, K, pad_top, height_out, (height_out + M - 1) / M,
          (width + M - 1) / M, 0};
  s.tiles_per_image = s.tiles_h * s.tiles_w;
  const int64_t tiles = n * s.tiles_per_image;
  const int64_t blocks = (tiles + block - 1) / block;
  const int workers = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, blocks)));
#pragma omp parallel num_threads(workers)
  {
    // Each thread's own V and M; rows past a partial block's last tile are never written out.
    std::unique_ptr<float[]> V(new float[T * T * block * C]());
    std::unique_ptr<float[]> Mb(new float[T * T * block * K]);
    std::unique_ptr<Tile[]> where(new Tile[block]);
    // Blocks are dealt out in turn (thread t takes blocks t, t + threads, ...), not in one run
    // each: with runs, one thread had the lower tile rows of every strip of the streamed
    // memnet-sr (32 channels), its output stores took twice as long as the other thread's
    // (perf), and the other waited at the barrier. Dealt in turn, the threads are even and
    // `memnet restore` of a 12 Mpx photo is 4-5 % faster (benchmarks/winograd.md).
#pragma omp for schedule(static, 1)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t t0 = b * block, t1 = std::min(t0 + block, tiles);
      const int64_t rows = (t1 - t0 + 5) / 6 * 6;
      input_block(input, scale, shift, s, t0, t1, V.get(), block, where.get());
      for (int xi = 0; xi < T * T; ++xi)
        gemm(V.get() + xi * block * C, U + xi * C * K, Mb.get() + xi * block * K, rows, C, K);
      output_block(Mb.get(), bias, plus, relu, s, t0, t1, block, output);
    }
  }
  return 0;
}

// dU[36][C][K] = the weight gradient of a 'same' conv (padding 1, 1) in the Winograd domain, for
// its input x[n][H][W][C] (with `scale` and `shift`, the conv's input is relu(scale·x + shift),
// as memnet_winograd_conv reads it) and output gradient dy[n][H][W][K]: the caller turns it into the
// [K][C][3][3] gradient, dg = Gᵀ dU G. Each thread sums its own blocks' products; the threads'
// sums are then added in thread order, so a run with the same threads gives the same result.
// C and K as memnet_winograd_conv takes them; returns 0, or -1 when the shapes do not fit.
int memnet_winograd_weight_grad(const float* x, int64_t n, int64_t height, int64_t width,
                                int64_t C, const float* scale, const float* shift,
                                const float* dy, int64_t K, float* dU, int threads,
                                int64_t block) {
  if (C % simd::lanes || K % (2 * simd::lanes) || block <= 0 || height <= 0 || width <= 0 ||
      n <= 0 || !scale != !shift)
    return -1;
  Shape s{height, width, C, K, 1, height, (height + M - 1) / M, (width + M - 1) / M, 0};
  s.tiles_per_image = s.tiles_h * s.tiles_w;
  const int64_t tiles = n * s.tiles_per_image;
  const int64_t blocks = (tiles + block - 1) / block;
  const int workers = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, blocks)));
  const int64_t size = T * T * C * K;
  const Rows<const float> input{x, x, height, width * C, height * width * C};
  std::unique_ptr<float[]> sums(new float[workers * size]());
#pragma omp parallel num_threads(workers)
  {
    std::unique_ptr<float[]> V(new float[T * T * block * C]);
    std::unique_ptr<float[]> D(new float[T * T * block * K]);
    std::unique_ptr<Tile[]> where(new Tile[block]);
    float* mine = sums.get() + omp_get_thread_num() * size;
#pragma omp for schedule(static, 1)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t t0 = b * block, t1 = std::min(t0 + block, tiles);
      input_block(input, scale, shift, s, t0, t1, V.get(), block, where.get());
      grad_output_block(dy, s, t0, t1, D.get(), block);
      for (int xi = 0; xi < T * T; ++xi)
        gemm_tn(V.get() + xi * block * C, D.get() + xi * block * K, mine + xi * C * K, t1 - t0,
                C, K);
    }
  }
  for (int64_t i = 0; i < size; ++i) {
    float total = sums[i];
    for (int w = 1; w < workers; ++w) total += sums[w * size + i];
    dU[i] = total;
  }
  return 0;
}

}  // extern "C"
