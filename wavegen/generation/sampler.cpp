// The compiled CPU sampler loop, built by wavegen/generation/kernel_cpp.py with the machine's C++
// compiler (GCC 9+ or clang; C++17, no torch headers) and called through ctypes.
//
// It runs `steps` whole sampling steps for a batch inside one call, so Python and ATen dispatch
// cost nothing per sample. The maths is exactly StepState.step (the reference in step.py):
//
//     x = embed[prev]
//     for each layer l:  ring_l[t] = x
//                        h = cond[t, l] + [x_{t-(k-1)d} ... x_t] @ conv_w[l]        (B, G)
//                        z = tanh(h[:G/2]) * sigmoid(h[G/2:])                       (B, G/2)
//                        o = z @ os_w[l] + os_b[l]                                  (B, R+S)
//                        x = (x + o[:R]) * sqrt(1/2);   skip += o[R:]
//     logits = relu(relu(skip) @ post1_w + post1_b) @ post2_w + post2_b             (B, Q)
//
// Batch rows are independent, so threads split the rows and never synchronise. Matrix products
// are register-blocked loops (rows x 32 columns) that the compiler vectorises; tanh and sigmoid
// use a branch-free exp (Cephes polynomial, ~1e-7 relative error) so they vectorise too. Every
// sum runs in order with one rounding per operation (-std=c++17 leaves fused multiply-adds off),
// which the numba kernel (kernel_numba.py) reproduces bit for bit.
#include <cstdint>
#include <cstring>
#include <cmath>
#include <thread>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#include <vector>
#include <algorithm>

struct WGModel {
    int32_t layers, kernel, R, G, S, Q, ring_total;
    const int32_t* dilation;   // (L,)
    const int32_t* ring_off;   // (L,) first ring row of each layer
    const int32_t* ring_size;  // (L,) (k-1)*d + 1 rows
    const float* embed;        // (Q, R)
    const float* conv_w;       // (L, k*R, G) taps stacked oldest first
    const float* os_w;         // (L, G/2, R+S) residual and skip projections fused
    const float* os_b;         // (L, R+S)
    const float* post1_w;      // (S, S), pre-scaled by sqrt(1/L)
    const float* post1_b;      // (S,)
    const float* post2_w;      // (S, Q)
    const float* post2_b;      // (Q,)
    const float* decode;       // (Q,) mu-law class -> sample value
};

struct WGRun {
    int32_t batch, steps, threads;
    int64_t t0;                // absolute time of the first step
    float temperature;         // <= 0: argmax
    float* rings;              // (B, ring_total, R) state
    int64_t* prev;             // (B,) state: class of the previous sample
    const float* cond;         // (B, ., L*G) conditioning incl. conv bias and speaker term
    int64_t cond_stride;       // floats between batch rows of cond
    const float* uniform;      // (steps, B) in [0, 1), or null for argmax / forcing
    const int64_t* forced;     // (steps, B) teacher-forced classes, or null
    const int64_t* limit;      // (B,) absolute end time of each row (output 0 after it)
    float* audio;              // (B, .) output samples
    int64_t audio_stride;      // steps between rows of audio, classes and logits
    int64_t* classes;          // (B, .) output classes, or null
    float* logits;             // (B, ., Q) output logits (row stride audio_stride·Q), or null
};

// exp(x) to ~1e-7 relative error (Cephes expf), written without calls or branches so that
// loops over it vectorise: round-to-nearest by the 1.5·2^23 trick, 2^n built in the exponent bits.
static inline float wg_exp(float x) {
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
    std::memcpy(&scale, &bits, sizeof scale);  // 2^n; memcpy is the portable bit cast
    return y * scale;
}

// z = tanh(h[:H]) * sigmoid(h[H:]), with tanh(a) = 2·sigmoid(2a) − 1.
static void gate(const float* __restrict h, float* __restrict z, int H) {
    for (int j = 0; j < H; ++j) {
        const float th = 2.0f / (1.0f + wg_exp(-2.0f * h[j])) - 1.0f;
        const float sg = 1.0f / (1.0f + wg_exp(-h[H + j]));
        z[j] = th * sg;
    }
}

// Y[r, :N] += X[r, :K] @ W[K, N] for RB rows; 32 columns at a time held in registers.
template <int RB>
static inline void gemm_rows(const float* X, int ldx, const float* W, int K, int N,
                             float* Y, int ldy) {
    int c0 = 0;
    for (; c0 + 32 <= N; c0 += 32) {
        float acc[RB][32];
        for (int r = 0; r < RB; ++r)
            for (int j = 0; j < 32; ++j) acc[r][j] = Y[r * ldy + c0 + j];
        for (int i = 0; i < K; ++i) {
            const float* w = W + (size_t)i * N + c0;
            for (int r = 0; r < RB; ++r) {
                const float xv = X[r * ldx + i];
                for (int j = 0; j < 32; ++j) acc[r][j] += xv * w[j];
            }
        }
        for (int r = 0; r < RB; ++r)
            for (int j = 0; j < 32; ++j) Y[r * ldy + c0 + j] = acc[r][j];
    }
    for (; c0 < N; ++c0) {
        for (int r = 0; r < RB; ++r) {
            float s = Y[r * ldy + c0];
            for (int i = 0; i < K; ++i) s += X[r * ldx + i] * W[(size_t)i * N + c0];
            Y[r * ldy + c0] = s;
        }
    }
}

// Every row block streams all of W, so the last 1-3 rows go as one block too: a thread's share
// of a small (compacted) batch is rarely a multiple of 4. A row's sums are the same whatever block
// it is in, so the output does not depend on how the batch is split.
static void gemm(const float* X, int ldx, const float* W, int K, int N, float* Y, int ldy,
                 int rows) {
    int r = 0;
    for (; r + 4 <= rows; r += 4) gemm_rows<4>(X + r * ldx, ldx, W, K, N, Y + r * ldy, ldy);
    X += r * ldx;
    Y += r * ldy;
    switch (rows - r) {
        case 3: gemm_rows<3>(X, ldx, W, K, N, Y, ldy); break;
        case 2: gemm_rows<2>(X, ldx, W, K, N, Y, ldy); break;
        case 1: gemm_rows<1>(X, ldx, W, K, N, Y, ldy); break;
    }
}

// Denormals make x86 float arithmetic ~100x slower; flush them to zero in this thread.
struct FlushDenormals {
#if defined(__SSE__)
    unsigned int saved = _mm_getcsr();
    FlushDenormals() { _mm_setcsr(saved | 0x8040); }  // FTZ | DAZ
    ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

static void run_rows(const WGModel* m, const WGRun* run, int b0, int b1) {
    FlushDenormals flush;
    const int L = m->layers, k = m->kernel, R = m->R, G = m->G, S = m->S, Q = m->Q;
    const int H = G / 2, RS = R + S, KR = k * R, B = run->batch, nb = b1 - b0;
    const float half = std::sqrt(0.5f);
    std::vector<float> X((size_t)nb * KR), Hb((size_t)nb * G), Z((size_t)nb * H),
        O((size_t)nb * RS), x((size_t)nb * R), skip((size_t)nb * S), p1((size_t)nb * S),
        lg((size_t)nb * Q);
    for (int i = 0; i < run->steps; ++i) {
        const int64_t t = run->t0 + i;
        for (int r = 0; r < nb; ++r) {
            const int64_t c = run->prev[b0 + r];
            std::memcpy(&x[(size_t)r * R], m->embed + (size_t)c * R, sizeof(float) * R);
        }
        std::fill(skip.begin(), skip.end(), 0.0f);
        for (int l = 0; l < L; ++l) {
            const int d = m->dilation[l], size = m->ring_size[l], off = m->ring_off[l];
            const int wpos = off + (int)(t % size);
            for (int r = 0; r < nb; ++r) {
                float* ring = run->rings + (size_t)(b0 + r) * m->ring_total * R;
                const float* xr = &x[(size_t)r * R];
                std::memcpy(ring + (size_t)wpos * R, xr, sizeof(float) * R);
                for (int j = 0; j < k; ++j) {
                    const int back = (k - 1 - j) * d;
                    const int pos = off + (int)(((t - back) % size + size) % size);
                    std::memcpy(&X[(size_t)r * KR + j * R], ring + (size_t)pos * R,
                                sizeof(float) * R);
                }
                const float* cr = run->cond + (size_t)(b0 + r) * run->cond_stride
                                  + (size_t)i * L * G + (size_t)l * G;
                std::memcpy(&Hb[(size_t)r * G], cr, sizeof(float) * G);
            }
            gemm(X.data(), KR, m->conv_w + (size_t)l * KR * G, KR, G, Hb.data(), G, nb);
            for (int r = 0; r < nb; ++r) {
                gate(&Hb[(size_t)r * G], &Z[(size_t)r * H], H);
                std::memcpy(&O[(size_t)r * RS], m->os_b + (size_t)l * RS, sizeof(float) * RS);
            }
            gemm(Z.data(), H, m->os_w + (size_t)l * H * RS, H, RS, O.data(), RS, nb);
            for (int r = 0; r < nb; ++r) {
                float* xr = &x[(size_t)r * R];
                float* sr = &skip[(size_t)r * S];
                const float* o = &O[(size_t)r * RS];
                for (int j = 0; j < R; ++j) xr[j] = (xr[j] + o[j]) * half;
                for (int j = 0; j < S; ++j) sr[j] += o[R + j];
            }
        }
        for (int r = 0; r < nb; ++r) {
            float* sr = &skip[(size_t)r * S];
            for (int j = 0; j < S; ++j) sr[j] = sr[j] > 0.0f ? sr[j] : 0.0f;
            std::memcpy(&p1[(size_t)r * S], m->post1_b, sizeof(float) * S);
            std::memcpy(&lg[(size_t)r * Q], m->post2_b, sizeof(float) * Q);
        }
        gemm(skip.data(), S, m->post1_w, S, S, p1.data(), S, nb);
        for (size_t j = 0; j < p1.size(); ++j) p1[j] = p1[j] > 0.0f ? p1[j] : 0.0f;
        gemm(p1.data(), S, m->post2_w, S, Q, lg.data(), Q, nb);
        for (int r = 0; r < nb; ++r) {
            const int b = b0 + r;
            const float* g = &lg[(size_t)r * Q];
            if (run->logits)
                std::memcpy(run->logits + ((size_t)b * run->audio_stride + i) * Q, g, sizeof(float) * Q);
            int64_t q = 0;
            if (run->forced) {
                q = run->forced[(size_t)i * B + b];
            } else if (run->temperature <= 0.0f || !run->uniform) {
                float best = g[0];
                for (int j = 1; j < Q; ++j)
                    if (g[j] > best) { best = g[j]; q = j; }
            } else {
                float mx = g[0];
                for (int j = 1; j < Q; ++j) mx = g[j] > mx ? g[j] : mx;
                const float inv = 1.0f / run->temperature;
                float* cdf = &lg[(size_t)r * Q];  // overwritten in place: logits are done
                for (int j = 0; j < Q; ++j) cdf[j] = wg_exp((g[j] - mx) * inv);
                float total = 0.0f;
                for (int j = 0; j < Q; ++j) {
                    total += cdf[j];
                    cdf[j] = total;
                }
                const float target = run->uniform[(size_t)i * B + b] * total;
                int64_t count = 0;
                for (int j = 0; j < Q; ++j) count += cdf[j] <= target;
                q = count < Q ? count : Q - 1;
            }
            const bool live = t < run->limit[b];
            run->prev[b] = q;
            run->audio[(size_t)b * run->audio_stride + i] = live ? m->decode[q] : 0.0f;
            if (run->classes) run->classes[(size_t)b * run->audio_stride + i] = q;
        }
    }
}

// Sizes of the structs, checked against the ctypes mirrors in kernel_cpp.py at load time.
extern "C" int64_t wg_sizeof_model() { return sizeof(WGModel); }
extern "C" int64_t wg_sizeof_run() { return sizeof(WGRun); }

extern "C" int wg_run(const WGModel* m, const WGRun* run) {
    const int B = run->batch;
    const int threads = std::max(1, std::min(run->threads, B));
    if (threads == 1) {
        run_rows(m, run, 0, B);
        return 0;
    }
    std::vector<std::thread> pool;
    const int per = (B + threads - 1) / threads;
    for (int w = 0; w < threads; ++w) {
        const int b0 = w * per, b1 = std::min(B, b0 + per);
        if (b0 < b1) pool.emplace_back(run_rows, m, run, b0, b1);
    }
    for (auto& th : pool) th.join();
    return 0;
}
