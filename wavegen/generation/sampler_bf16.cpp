// The reduced-precision CPU sampler ("cpp-bf16"), built by wavegen/generation/kernel_bf16.py
// and called through ctypes. The step is the one in sampler.cpp (and StepState.step), with:
//
//   * the four weight matrices (conv, out+skip, post1, post2) in bfloat16, two rows packed per
//     32-bit word: word (k/2, j) = bf16(W[k+1][j]) << 16 | bf16(W[k][j]). A word becomes two
//     fp32 weights with one AND and one shift (no vdpbf16ps needed): the weights streamed per
//     sample halve (1.6 MB for the bench model, so each core's half fits its L2);
//   * every product accumulated in fp32 with fused multiply-adds, k in increasing order, two
//     accumulators per output element (even and odd rows, added at the end: dot_column). The AVX-512, AVX2+FMA and scalar (std::fma) paths do
//     exactly these operations, so they agree bit for bit and the scalar path is the exact
//     emulation of the others (tests/test_generate_bf16.py checks it);
//   * the gate's G/2 pairs split in two fixed halves ("parts"): part p owns tanh/sigmoid
//     columns [p·H/2, (p+1)·H/2) of h, and the rows of the out+skip matrix that its z feeds.
//     The out+skip product is the sum of the two parts' partial products, (o_0 + o_1) + bias,
//     whoever computes them; so one thread doing both parts and two threads doing one each
//     give the same bits.
//
// Threads: at batch ≥ threads, threads split the rows and never synchronise (as sampler.cpp).
// At batch < threads (batch 1), two threads form a team on the same rows (WGLRun.split forces
// either way, for measuring): each computes its
// part of every layer, then one spinning barrier per layer publishes the partial products and
// both finish the layer (residual, skip) redundantly; the post-net's second product is split
// by columns and a last barrier per sample publishes the logits, which both sample from
// identically. So a sample costs layers + 1 barriers.
//
// Instruction set: chosen at run time (__builtin_cpu_supports), capped by the caller (WGLRun's
// `level`), so a CPU without AVX-512 or AVX2 is simulated by capping. The library is built
// without -march=native; only the functions marked with a target attribute use wider vectors.
// -ffp-contract=off keeps the compiler from fusing anything besides the explicit FMAs.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define WG_X86 1
#endif

enum { LEVEL_SCALAR = 0, LEVEL_AVX2 = 1, LEVEL_AVX512 = 2 };

struct WGLModel {
    int32_t layers, kernel, R, G, S, Q, ring_total;
    const int32_t* dilation;   // (L,)
    const int32_t* ring_off;   // (L,)
    const int32_t* ring_size;  // (L,)
    const float* embed;        // (Q, R)
    const uint32_t* conv_w;    // (L, 2, k·R/2, G/2) part p: its tanh then its sigmoid columns
    const uint32_t* os_w;      // (L, 2, H/4, R+S) part p: rows p·H/2 … of the out+skip matrix
    const float* os_b;         // (L, R+S)
    const uint32_t* post1_w;   // (S/2, S), pre-scaled by sqrt(1/L)
    const float* post1_b;      // (S,)
    const uint32_t* post2_w;   // (S/2, Q)
    const float* post2_b;      // (Q,)
    const float* decode;       // (Q,)
};

struct WGLRun {
    int32_t batch, steps, threads, level;
    int32_t split;             // 0: team at batch < threads, else rows; 1: rows; 2: team
    int64_t t0;
    float temperature;
    float* rings;              // (B, ring_total, R)
    int64_t* prev;             // (B,)
    const float* cond;         // (B, ., L·G)
    int64_t cond_stride;
    const float* uniform;      // (steps, B) or null
    const int64_t* forced;     // (steps, B) or null
    const int64_t* limit;      // (B,)
    float* audio;              // (B, .)
    int64_t audio_stride;
    int64_t* classes;          // or null
    float* logits;             // (B, ., Q) or null
    double* profile;           // (threads, 2): seconds in the call, seconds waiting; or null
};

// ---- products: Y[r, :N] = fma-accumulate_k X[r, k] · W[k, :N] onto Y's values ----------------

static inline float bf16_lo(uint32_t w) {
    const uint32_t bits = w << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}
static inline float bf16_hi(uint32_t w) {
    const uint32_t bits = w & 0xFFFF0000u;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// One output element, the definition every vector path reproduces: the even rows (low halves
// of the words) accumulate onto s and the odd rows (high halves) onto a second sum from 0, each
// in increasing k, then the two are added. Two independent chains of fused multiply-adds
// instead of one halve the latency a long product waits on at batch 1.
static inline float dot_column(const float* x, const uint32_t* W, int ldw, int K, int j, float s) {
    float odd = 0.0f;
    for (int k2 = 0; k2 < K / 2; ++k2) {
        const uint32_t w = W[(size_t)k2 * ldw + j];
        s = std::fma(x[2 * k2], bf16_lo(w), s);
        odd = std::fma(x[2 * k2 + 1], bf16_hi(w), odd);
    }
    return s + odd;
}

static void mm_scalar(const float* X, int ldx, int rows, const uint32_t* W, int ldw, int K, int N,
                      float* Y, int ldy, int c0 = 0) {
    for (int r = 0; r < rows; ++r)
        for (int j = c0; j < N; ++j)
            Y[(size_t)r * ldy + j] = dot_column(X + (size_t)r * ldx, W, ldw, K, j, Y[(size_t)r * ldy + j]);
}

#if WG_X86
template <int RB, int V>
__attribute__((target("avx512f"))) static inline void blk512(const float* X, int ldx,
                                                             const uint32_t* W, int ldw, int K,
                                                             float* Y, int ldy) {
    const __m512i hi = _mm512_set1_epi32((int)0xFFFF0000u);
    __m512 acc[RB][V], odd[RB][V];
    for (int r = 0; r < RB; ++r)
        for (int v = 0; v < V; ++v) {
            acc[r][v] = _mm512_loadu_ps(Y + (size_t)r * ldy + 16 * v);
            odd[r][v] = _mm512_setzero_ps();
        }
    for (int k2 = 0; k2 < K / 2; ++k2) {
        __m512 lo_w[V], hi_w[V];
        for (int v = 0; v < V; ++v) {
            const __m512i w = _mm512_loadu_si512((const void*)(W + (size_t)k2 * ldw + 16 * v));
            lo_w[v] = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
            hi_w[v] = _mm512_castsi512_ps(_mm512_and_si512(w, hi));
        }
        for (int r = 0; r < RB; ++r) {
            const __m512 x0 = _mm512_set1_ps(X[(size_t)r * ldx + 2 * k2]);
            const __m512 x1 = _mm512_set1_ps(X[(size_t)r * ldx + 2 * k2 + 1]);
            for (int v = 0; v < V; ++v) {
                acc[r][v] = _mm512_fmadd_ps(x0, lo_w[v], acc[r][v]);
                odd[r][v] = _mm512_fmadd_ps(x1, hi_w[v], odd[r][v]);
            }
        }
    }
    for (int r = 0; r < RB; ++r)
        for (int v = 0; v < V; ++v)
            _mm512_storeu_ps(Y + (size_t)r * ldy + 16 * v, _mm512_add_ps(acc[r][v], odd[r][v]));
}

template <int RB>
__attribute__((target("avx512f"))) static void rows512(const float* X, int ldx, const uint32_t* W,
                                                       int ldw, int K, int N, float* Y, int ldy) {
    int c = 0;
    constexpr int V = RB >= 4 ? 2 : 4;  // 2·RB·V accumulators + 2·V weights within 32 registers
    for (; c + 16 * V <= N; c += 16 * V) blk512<RB, V>(X, ldx, W + c, ldw, K, Y + c, ldy);
    for (; c + 16 <= N; c += 16) blk512<RB, 1>(X, ldx, W + c, ldw, K, Y + c, ldy);
    if (c < N) mm_scalar(X, ldx, RB, W, ldw, K, N, Y, ldy, c);
}

__attribute__((target("avx512f"))) static void mm_avx512(const float* X, int ldx, int rows,
                                                         const uint32_t* W, int ldw, int K, int N,
                                                         float* Y, int ldy) {
    int r = 0;
    for (; r + 4 <= rows; r += 4) rows512<4>(X + (size_t)r * ldx, ldx, W, ldw, K, N, Y + (size_t)r * ldy, ldy);
    for (; r + 2 <= rows; r += 2) rows512<2>(X + (size_t)r * ldx, ldx, W, ldw, K, N, Y + (size_t)r * ldy, ldy);
    if (r < rows) rows512<1>(X + (size_t)r * ldx, ldx, W, ldw, K, N, Y + (size_t)r * ldy, ldy);
}

template <int RB, int V>
__attribute__((target("avx2,fma"))) static inline void blk256(const float* X, int ldx,
                                                              const uint32_t* W, int ldw, int K,
                                                              float* Y, int ldy) {
    const __m256i hi = _mm256_set1_epi32((int)0xFFFF0000u);
    __m256 acc[RB][V], odd[RB][V];
    for (int r = 0; r < RB; ++r)
        for (int v = 0; v < V; ++v) {
            acc[r][v] = _mm256_loadu_ps(Y + (size_t)r * ldy + 8 * v);
            odd[r][v] = _mm256_setzero_ps();
        }
    for (int k2 = 0; k2 < K / 2; ++k2) {
        __m256 lo_w[V], hi_w[V];
        for (int v = 0; v < V; ++v) {
            const __m256i w = _mm256_loadu_si256((const __m256i*)(W + (size_t)k2 * ldw + 8 * v));
            lo_w[v] = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
            hi_w[v] = _mm256_castsi256_ps(_mm256_and_si256(w, hi));
        }
        for (int r = 0; r < RB; ++r) {
            const __m256 x0 = _mm256_set1_ps(X[(size_t)r * ldx + 2 * k2]);
            const __m256 x1 = _mm256_set1_ps(X[(size_t)r * ldx + 2 * k2 + 1]);
            for (int v = 0; v < V; ++v) {
                acc[r][v] = _mm256_fmadd_ps(x0, lo_w[v], acc[r][v]);
                odd[r][v] = _mm256_fmadd_ps(x1, hi_w[v], odd[r][v]);
            }
        }
    }
    for (int r = 0; r < RB; ++r)
        for (int v = 0; v < V; ++v)
            _mm256_storeu_ps(Y + (size_t)r * ldy + 8 * v, _mm256_add_ps(acc[r][v], odd[r][v]));
}

template <int RB>
__attribute__((target("avx2,fma"))) static void rows256(const float* X, int ldx, const uint32_t* W,
                                                        int ldw, int K, int N, float* Y, int ldy) {
    int c = 0;
    constexpr int V = RB >= 4 ? 1 : 2;  // 2·RB·V accumulators + 2·V weights within 16 registers
    for (; c + 8 * V <= N; c += 8 * V) blk256<RB, V>(X, ldx, W + c, ldw, K, Y + c, ldy);
    for (; c + 8 <= N; c += 8) blk256<RB, 1>(X, ldx, W + c, ldw, K, Y + c, ldy);
    if (c < N) mm_scalar(X, ldx, RB, W, ldw, K, N, Y, ldy, c);
}

__attribute__((target("avx2,fma"))) static void mm_avx2(const float* X, int ldx, int rows,
                                                        const uint32_t* W, int ldw, int K, int N,
                                                        float* Y, int ldy) {
    int r = 0;
    for (; r + 4 <= rows; r += 4) rows256<4>(X + (size_t)r * ldx, ldx, W, ldw, K, N, Y + (size_t)r * ldy, ldy);
    for (; r + 2 <= rows; r += 2) rows256<2>(X + (size_t)r * ldx, ldx, W, ldw, K, N, Y + (size_t)r * ldy, ldy);
    if (r < rows) rows256<1>(X + (size_t)r * ldx, ldx, W, ldw, K, N, Y + (size_t)r * ldy, ldy);
}
#endif

static void mm(int level, const float* X, int ldx, int rows, const uint32_t* W, int ldw, int K,
               int N, float* Y, int ldy) {
#if WG_X86
    if (level >= LEVEL_AVX512) return mm_avx512(X, ldx, rows, W, ldw, K, N, Y, ldy);
    if (level >= LEVEL_AVX2) return mm_avx2(X, ldx, rows, W, ldw, K, N, Y, ldy);
#endif
    mm_scalar(X, ldx, rows, W, ldw, K, N, Y, ldy);
}

// ---- the rest of the step: as sampler.cpp -----------------------------------------------------

#define WG_INLINE inline __attribute__((always_inline))

static WG_INLINE float wg_exp(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float y = p * r * r + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

// z[j] = tanh(h[j]) · sigmoid(h[P + j]) for j < P (a part's P = H/2 pairs). Element-wise IEEE
// operations without contraction round the same at any vector width, so the three compiled
// copies below (vectorised by the compiler for each instruction set) give the same bits.
static WG_INLINE void gate_body(const float* __restrict h, float* __restrict z, int P) {
    for (int j = 0; j < P; ++j) {
        const float th = 2.0f / (1.0f + wg_exp(-2.0f * h[j])) - 1.0f;
        const float sg = 1.0f / (1.0f + wg_exp(-h[P + j]));
        z[j] = th * sg;
    }
}

static void gate_scalar(const float* h, float* z, int P) { gate_body(h, z, P); }
#if WG_X86
__attribute__((target("avx2,fma"))) static void gate_avx2(const float* h, float* z, int P) {
    gate_body(h, z, P);
}
__attribute__((target("avx512f"))) static void gate_avx512(const float* h, float* z, int P) {
    gate_body(h, z, P);
}
#endif

static void gate(int level, const float* h, float* z, int P) {
#if WG_X86
    if (level >= LEVEL_AVX512) return gate_avx512(h, z, P);
    if (level >= LEVEL_AVX2) return gate_avx2(h, z, P);
#endif
    gate_scalar(h, z, P);
}

struct FlushDenormals {
#if WG_X86
    unsigned int saved = _mm_getcsr();
    FlushDenormals() { _mm_setcsr(saved | 0x8040); }
    ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

// A sense-reversing spinning barrier for a team of `n` threads: a few hundred cycles when both
// threads arrive together; it yields the core after a while so an oversubscribed machine
// (the other thread descheduled) does not burn a whole time slice.
static const int SPINS_BEFORE_YIELD = 256;  // ~10 µs of pause instructions

struct SpinBarrier {
    alignas(64) std::atomic<int> count{0};
    alignas(64) std::atomic<int> phase{0};
    int n = 1;
    void wait() {
        const int p = phase.load(std::memory_order_relaxed);
        if (count.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
            count.store(0, std::memory_order_relaxed);
            phase.store(p + 1, std::memory_order_release);
            return;
        }
        for (int spins = 0; phase.load(std::memory_order_acquire) == p; ++spins) {
#if WG_X86
            _mm_pause();
#endif
            if (spins > SPINS_BEFORE_YIELD) std::this_thread::yield();
        }
    }
};

struct Team {
    int size = 1;              // threads working on the same rows (1 or 2)
    SpinBarrier barrier;
    std::vector<float> o;      // (2 parity, 2 parts, nb, R+S) partial out+skip products
    std::vector<float> lg;     // (nb, Q) logits, columns split between the team
};

using Clock = std::chrono::steady_clock;

// Rows b0 … b1 of the batch; `rank` of a team of team->size threads (parts rank, rank + size …).
static void run_rows(const WGLModel* m, const WGLRun* run, int b0, int b1, int rank, Team* team,
                     double* profile) {
    FlushDenormals flush;
    const auto start = Clock::now();
    double waited = 0.0;
    auto sync = [&]() {
        if (team->size == 1) return;
        if (!profile) return team->barrier.wait();
        const auto a = Clock::now();
        team->barrier.wait();
        waited += std::chrono::duration<double>(Clock::now() - a).count();
    };
    const int L = m->layers, k = m->kernel, R = m->R, G = m->G, S = m->S, Q = m->Q;
    const int H = G / 2, P = H / 2, RS = R + S, KR = k * R, B = run->batch, nb = b1 - b0;
    const int level = run->level;
    const float half = std::sqrt(0.5f);
    std::vector<float> X((size_t)nb * KR), Hb((size_t)nb * H), Z((size_t)nb * P),
        x((size_t)nb * R), skip((size_t)nb * S), p1((size_t)nb * S), cdf(Q);
    float* O = team->o.data();
    float* lg = team->lg.data();
    // Post-net columns of this thread: all of them alone, half each in a team of two.
    const int qc0 = team->size == 1 ? 0 : rank * (Q / 2), qc1 = team->size == 1 ? Q : qc0 + Q / 2;
    std::vector<int64_t> q((size_t)nb);
    for (int r = 0; r < nb; ++r) q[r] = run->prev[b0 + r];
    for (int i = 0; i < run->steps; ++i) {
        const int64_t t = run->t0 + i;
        for (int r = 0; r < nb; ++r)
            std::memcpy(&x[(size_t)r * R], m->embed + (size_t)q[r] * R, sizeof(float) * R);
        std::fill(skip.begin(), skip.end(), 0.0f);
        for (int l = 0; l < L; ++l) {
            const int d = m->dilation[l], size = m->ring_size[l], off = m->ring_off[l];
            float* Ol = O + (size_t)(l & 1) * 2 * nb * RS;
            // Gather the taps: the newest is x itself, the older ones were written by earlier
            // steps (before a barrier the other thread has passed since).
            for (int r = 0; r < nb; ++r) {
                const float* ring = run->rings + (size_t)(b0 + r) * m->ring_total * R;
                for (int j = 0; j < k - 1; ++j) {
                    const int back = (k - 1 - j) * d;
                    const int pos = off + (int)(((t - back) % size + size) % size);
                    std::memcpy(&X[(size_t)r * KR + j * R], ring + (size_t)pos * R, sizeof(float) * R);
                }
                std::memcpy(&X[(size_t)r * KR + (k - 1) * R], &x[(size_t)r * R], sizeof(float) * R);
            }
            for (int part = rank; part < 2; part += team->size) {
                const uint32_t* cw = m->conv_w + ((size_t)l * 2 + part) * (KR / 2) * H;
                const uint32_t* ow = m->os_w + ((size_t)l * 2 + part) * (P / 2) * RS;
                for (int r = 0; r < nb; ++r) {
                    const float* cr = run->cond + (size_t)(b0 + r) * run->cond_stride
                                      + (size_t)i * L * G + (size_t)l * G;
                    std::memcpy(&Hb[(size_t)r * H], cr + part * P, sizeof(float) * P);
                    std::memcpy(&Hb[(size_t)r * H + P], cr + H + part * P, sizeof(float) * P);
                }
                mm(level, X.data(), KR, nb, cw, H, KR, H, Hb.data(), H);
                for (int r = 0; r < nb; ++r) gate(level, &Hb[(size_t)r * H], &Z[(size_t)r * P], P);
                float* Op = Ol + (size_t)part * nb * RS;
                std::fill(Op, Op + (size_t)nb * RS, 0.0f);
                mm(level, Z.data(), P, nb, ow, RS, P, RS, Op, RS);
            }
            sync();  // both parts' partial products are in Ol
            if (rank == 0) {
                for (int r = 0; r < nb; ++r) {
                    float* ring = run->rings + (size_t)(b0 + r) * m->ring_total * R;
                    const int wpos = off + (int)(t % size);
                    std::memcpy(ring + (size_t)wpos * R, &x[(size_t)r * R], sizeof(float) * R);
                }
            }
            const float* bias = m->os_b + (size_t)l * RS;
            for (int r = 0; r < nb; ++r) {
                float* xr = &x[(size_t)r * R];
                float* sr = &skip[(size_t)r * S];
                const float* o0 = Ol + (size_t)r * RS;
                const float* o1 = Ol + (size_t)nb * RS + (size_t)r * RS;
                for (int j = 0; j < R; ++j) xr[j] = (xr[j] + ((o0[j] + o1[j]) + bias[j])) * half;
                for (int j = 0; j < S; ++j) sr[j] += (o0[R + j] + o1[R + j]) + bias[R + j];
            }
        }
        for (int r = 0; r < nb; ++r) {
            float* sr = &skip[(size_t)r * S];
            for (int j = 0; j < S; ++j) sr[j] = sr[j] > 0.0f ? sr[j] : 0.0f;
            std::memcpy(&p1[(size_t)r * S], m->post1_b, sizeof(float) * S);
            std::memcpy(&lg[(size_t)r * Q + qc0], m->post2_b + qc0, sizeof(float) * (qc1 - qc0));
        }
        mm(level, skip.data(), S, nb, m->post1_w, S, S, S, p1.data(), S);
        for (float& v : p1) v = v > 0.0f ? v : 0.0f;
        mm(level, p1.data(), S, nb, m->post2_w + qc0, Q, S, qc1 - qc0, lg + qc0, Q);
        sync();  // the logits are whole
        for (int r = 0; r < nb; ++r) {
            const int b = b0 + r;
            const float* g = &lg[(size_t)r * Q];
            int64_t c = 0;
            if (run->forced) {
                c = run->forced[(size_t)i * B + b];
            } else if (run->temperature <= 0.0f || !run->uniform) {
                float best = g[0];
                for (int j = 1; j < Q; ++j)
                    if (g[j] > best) { best = g[j]; c = j; }
            } else {
                float mx = g[0];
                for (int j = 1; j < Q; ++j) mx = g[j] > mx ? g[j] : mx;
                const float inv = 1.0f / run->temperature;
                float total = 0.0f;
                for (int j = 0; j < Q; ++j) {
                    total += wg_exp((g[j] - mx) * inv);
                    cdf[j] = total;
                }
                const float target = run->uniform[(size_t)i * B + b] * total;
                int64_t count = 0;
                for (int j = 0; j < Q; ++j) count += cdf[j] <= target;
                c = count < Q ? count : Q - 1;
            }
            q[r] = c;
            if (rank == 0) {
                if (run->logits)
                    std::memcpy(run->logits + ((size_t)b * run->audio_stride + i) * Q, g, sizeof(float) * Q);
                run->prev[b] = c;
                run->audio[(size_t)b * run->audio_stride + i] = t < run->limit[b] ? m->decode[c] : 0.0f;
                if (run->classes) run->classes[(size_t)b * run->audio_stride + i] = c;
            }
        }
    }
    if (profile) {
        profile[2 * rank] = std::chrono::duration<double>(Clock::now() - start).count();
        profile[2 * rank + 1] = waited;
    }
}

// Seconds per barrier of two threads doing nothing else: the floor of the team's sync cost.
extern "C" double wg_lp_barrier_seconds(int rounds) {
    SpinBarrier barrier;
    barrier.n = 2;
    std::thread other([&] {
        for (int i = 0; i < rounds; ++i) barrier.wait();
    });
    const auto start = Clock::now();
    for (int i = 0; i < rounds; ++i) barrier.wait();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    other.join();
    return seconds / rounds;
}

extern "C" int64_t wg_lp_sizeof_model() { return sizeof(WGLModel); }
extern "C" int64_t wg_lp_sizeof_run() { return sizeof(WGLRun); }

// The widest instruction set this CPU (and its OS) runs: 2 AVX-512F, 1 AVX2+FMA, 0 neither.
extern "C" int wg_lp_cpu_level() {
#if WG_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return LEVEL_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return LEVEL_AVX2;
#endif
    return LEVEL_SCALAR;
}

// Fewer steps than this at batch < threads run on one thread: starting the team costs ~50 µs.
static const int TEAM_MIN_STEPS = 64;

extern "C" int wg_lp_run(const WGLModel* m, const WGLRun* run) {
    const int B = run->batch, Q = m->Q, RS = m->R + m->S;
    if (run->level < LEVEL_SCALAR || run->level > wg_lp_cpu_level()) return 1;
    const int threads = std::max(1, run->threads);
    const bool team_fits = threads >= 2 && run->steps >= TEAM_MIN_STEPS;
    if (team_fits && (run->split == 2 || (run->split == 0 && B < threads))) {  // two threads, same rows
        Team team;
        team.size = 2;
        team.barrier.n = 2;
        team.o.assign((size_t)4 * B * RS, 0.0f);
        team.lg.assign((size_t)B * Q, 0.0f);
        std::thread other(run_rows, m, run, 0, B, 1, &team, run->profile);
        run_rows(m, run, 0, B, 0, &team, run->profile);
        other.join();
        return 0;
    }
    const int workers = std::max(1, std::min(threads, B));
    const int per = (B + workers - 1) / workers;
    std::vector<Team> teams(workers);
    std::vector<std::thread> pool;
    for (int w = 0; w < workers; ++w) {
        const int b0 = w * per, b1 = std::min(B, b0 + per);
        if (b0 >= b1) continue;
        teams[w].o.assign((size_t)4 * (b1 - b0) * RS, 0.0f);
        teams[w].lg.assign((size_t)(b1 - b0) * Q, 0.0f);
        double* prof = run->profile ? run->profile + 2 * w : nullptr;
        if (w == 0) continue;
        pool.emplace_back(run_rows, m, run, b0, b1, 0, &teams[w], prof);
    }
    run_rows(m, run, 0, std::min(B, per), 0, &teams[0], run->profile);
    for (auto& th : pool) th.join();
    return 0;
}
