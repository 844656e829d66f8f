// Quantized matrix kernels with AVX2 and AVX-512 VNNI, selected at run time by RASDModel.
//
// Why C: Swift has no way to compile one function for AVX2 or AVX-512 VNNI and pick it at run
// time (no per-function target attribute), and the default x86-64 target has only SSE2, where
// there is no vpmaddubsw/vpdpbusd. Measured with `rasd-index bench engine` (SmolLM2-135M Q4_1,
// 2 threads, one run, 2026-11-27 20:55 UTC, quiet 2-core EPYC), decode / prompt tok/s:
//   portable Swift SIMD (same layout, same numerics)    30.5 /   39.0
//   AVX2 (this file)                                   251.6 / 1139.0
//   AVX-512 VNNI (this file)                           277.2 / 1822.7
// llama.cpp does 115.5 / 305.0 in the same run; the issue asks for 0.8x / 0.5x of it, which the
// portable path misses by 3-4x. The attention, quantization and SwiGLU kernels are here for the
// same reason: in Swift on the default target (4-wide SSE2, exp and F16 conversions as library
// calls) attention took 17% of a 64-node verify after 64 tokens, in C 9%; quantization took 8%
// and SwiGLU 4% of a 16-node verify, in C 3% and 2% (perf). Their Swift twins give the same bits.
//
// Numerics: see rasd_kernels.h. The float operations per output element are written out one
// by one below and contraction into FMA is switched off, so every kernel (and the Swift
// portable one) gives the same bits.
#pragma clang fp contract(off)

#include "rasd_kernels.h"

#define EXP_LO -87.3f
#define EXP_HI 88.7f
#define MAGIC 12582912.0f  // 1.5 * 2^23: x + MAGIC - MAGIC rounds to nearest even

// rasd_exp and exp8 (and PortableMath.exp in Swift) perform the same operations in the same order.
float rasd_exp(float x) {
    x = x < EXP_LO ? EXP_LO : (x > EXP_HI ? EXP_HI : x);
    float n = (x * 1.44269504088896341f + MAGIC) - MAGIC;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * (r * r);
    y = y + r;
    y = y + 1.0f;
    float bias = n + MAGIC;
    int32_t bits;
    __builtin_memcpy(&bits, &bias, 4);
    int32_t e = (bits - 0x4B400000 + 127) << 23;
    float scale;
    __builtin_memcpy(&scale, &e, 4);
    return y * scale;
}


#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>

#define TGT_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TGT_VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define INLINE static inline __attribute__((always_inline))

int rasd_cpu_level(void) {
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")))
        return 0;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
        return 2;
    return 1;
}

// 8 F16 values -> 8 floats (exact).
TGT_AVX2 INLINE __m256 load_h8(const uint8_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

// The 4-byte input slice at p in every 32-bit lane (folds into an embedded broadcast operand).
TGT_AVX2 INLINE __m256i bcast4(const int8_t *p) {
    int32_t v;
    __builtin_memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// Integer block sums for 8 interleaved rows: lane r = sum over the 32 weights of row r times
// the input block a. w[k] holds weights 4k..4k+3 of each row.
TGT_AVX2 INLINE __m256i isum_q4_avx2(const __m256i w[8], const int8_t *a) {
    // u4 x s8 pairs are at most 2 * 15 * 127, so 8 of them still fit in int16.
    __m256i s = _mm256_maddubs_epi16(w[0], bcast4(a));
    for (int k = 1; k < 8; k++) s = _mm256_add_epi16(s, _mm256_maddubs_epi16(w[k], bcast4(a + 4 * k)));
    return _mm256_madd_epi16(s, _mm256_set1_epi16(1));
}
// Two accumulators halve the dependency chain of vpdpbusd (integer sums: order is free).
TGT_VNNI INLINE __m256i isum_q4_vnni(const __m256i w[8], const int8_t *a) {
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
    for (int k = 0; k < 8; k += 2) {
        s0 = _mm256_dpbusd_epi32(s0, w[k], bcast4(a + 4 * k));
        s1 = _mm256_dpbusd_epi32(s1, w[k + 1], bcast4(a + 4 * k + 4));
    }
    return _mm256_add_epi32(s0, s1);
}
// Q8_0: wp[k] is the weight prepared once per block (AVX2: |w|; VNNI: w + 128 as unsigned).
TGT_AVX2 INLINE __m256i isum_q8_avx2(const __m256i w[8], const __m256i wp[8], const int8_t *a, int32_t asum) {
    __m256i s = _mm256_setzero_si256();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int k = 0; k < 8; k++) {
        __m256i signed_a = _mm256_sign_epi8(bcast4(a + 4 * k), w[k]);  // the weight's sign moved onto a
        s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(wp[k], signed_a), ones));
    }
    (void)asum;
    return s;
}
TGT_VNNI INLINE __m256i isum_q8_vnni(const __m256i w[8], const __m256i wp[8], const int8_t *a, int32_t asum) {
    __m256i s0 = _mm256_set1_epi32(-128 * asum), s1 = _mm256_setzero_si256();  // removes the +128 offset exactly
    for (int k = 0; k < 8; k += 2) {
        s0 = _mm256_dpbusd_epi32(s0, wp[k], bcast4(a + 4 * k));
        s1 = _mm256_dpbusd_epi32(s1, wp[k + 1], bcast4(a + 4 * k + 4));
    }
    (void)w;
    return _mm256_add_epi32(s0, s1);
}
TGT_AVX2 INLINE __m256i prep_q8_avx2(__m256i w) { return _mm256_sign_epi8(w, w); }
TGT_VNNI INLINE __m256i prep_q8_vnni(__m256i w) { return _mm256_xor_si256(w, _mm256_set1_epi8((char)0x80)); }

// Batches of 4 or more tokens are compute-bound, and the weights come from DRAM (92 MiB for
// SmolLM2, beyond the L3): asking for the block 2 KiB ahead took 8 tokens x 94 MB of Q4_1 rows
// from 10.1 to 8.7 ms on one core (scratch benchmark, 2026-11-27). For 1-2 tokens, which are
// memory-bound, it cost 3-15%, so only the first tile of a batch of 4 or more prefetches.
#define PREFETCH_DISTANCE 2048
INLINE void prefetch_ahead(const uint8_t *blk, int bytes) {
    for (int o = 0; o < bytes; o += 64) _mm_prefetch((const char *)blk + PREFETCH_DISTANCE + o, _MM_HINT_T0);
}

// One group of 8 rows against NT tokens (NT is a constant in each instantiation so that the
// accumulators stay in registers; the per-element operations do not depend on it).
#define Q4_1_TILE(NAME, TGT, ISUM)                                                                 \
    TGT INLINE void NAME(const uint8_t *wg, long nb, const int8_t *aq, const float *ad,           \
                         const float *as, const int32_t *unused, float *out, long ostride, const int NT,  \
                         const int PF) {                                                         \
        (void)unused;                                                                            \
        const __m256i mask = _mm256_set1_epi8(0x0f);                                             \
        __m256 acc[16];                                                                          \
        _Pragma("clang loop unroll(full)") for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();                               \
        for (long b = 0; b < nb; b++) {                                                          \
            const uint8_t *blk = wg + b * 160;                                                   \
            if (PF) prefetch_ahead(blk, 160);                                                    \
            __m256 d = load_h8(blk), m = load_h8(blk + 16);                                      \
            __m256i w[8];                                                                        \
            _Pragma("clang loop unroll(full)") for (int c = 0; c < 4; c++) {                    \
                __m256i v = _mm256_loadu_si256((const __m256i *)(blk + 32 + 32 * c));            \
                w[c] = _mm256_and_si256(v, mask);                                                \
                w[c + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);                      \
            }                                                                                    \
            _Pragma("clang loop unroll(full)") for (int t = 0; t < NT; t++) {                                                       \
                __m256 fi = _mm256_cvtepi32_ps(ISUM(w, aq + (t * nb + b) * 32));                 \
                __m256 t1 = _mm256_mul_ps(d, _mm256_set1_ps(ad[t * nb + b]));                    \
                __m256 t2 = _mm256_mul_ps(t1, fi);                                               \
                __m256 t3 = _mm256_mul_ps(m, _mm256_set1_ps(as[t * nb + b]));                    \
                acc[t] = _mm256_add_ps(acc[t], _mm256_add_ps(t2, t3));                           \
            }                                                                                    \
        }                                                                                        \
        _Pragma("clang loop unroll(full)") for (int t = 0; t < NT; t++) _mm256_storeu_ps(out + t * ostride, acc[t]);                \
    }

#define Q8_0_TILE(NAME, TGT, ISUM, PREP)                                                           \
    TGT INLINE void NAME(const uint8_t *wg, long nb, const int8_t *aq, const float *ad,           \
                         const float *unused, const int32_t *asum, float *out, long ostride, const int NT, \
                         const int PF) {                                                         \
        (void)unused;                                                                            \
        __m256 acc[16];                                                                          \
        _Pragma("clang loop unroll(full)") for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();                               \
        for (long b = 0; b < nb; b++) {                                                          \
            const uint8_t *blk = wg + b * 272;                                                   \
            if (PF) prefetch_ahead(blk, 272);                                                    \
            __m256 d = load_h8(blk);                                                             \
            __m256i w[8], wp[8];                                                                 \
            _Pragma("clang loop unroll(full)") for (int k = 0; k < 8; k++) {                    \
                w[k] = _mm256_loadu_si256((const __m256i *)(blk + 16 + 32 * k));                \
                wp[k] = PREP(w[k]);                                                              \
            }                                                                                    \
            _Pragma("clang loop unroll(full)") for (int t = 0; t < NT; t++) {                                                       \
                __m256 fi = _mm256_cvtepi32_ps(ISUM(w, wp, aq + (t * nb + b) * 32, asum[t * nb + b])); \
                __m256 t1 = _mm256_mul_ps(d, _mm256_set1_ps(ad[t * nb + b]));                    \
                acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(t1, fi));                           \
            }                                                                                    \
        }                                                                                        \
        _Pragma("clang loop unroll(full)") for (int t = 0; t < NT; t++) _mm256_storeu_ps(out + t * ostride, acc[t]);                \
    }

Q4_1_TILE(q4_1_tile_avx2, TGT_AVX2, isum_q4_avx2)
Q4_1_TILE(q4_1_tile_vnni, TGT_VNNI, isum_q4_vnni)
Q8_0_TILE(q8_0_tile_avx2, TGT_AVX2, isum_q8_avx2, prep_q8_avx2)
Q8_0_TILE(q8_0_tile_vnni, TGT_VNNI, isum_q8_vnni, prep_q8_vnni)

// The drivers walk groups, then tokens in tiles of MAXT (the rest as one smaller tile).
// AVX2 has 16 vector registers, so its tiles are 4 tokens. AVX-512 has 32, enough for 16
// accumulators beside a group-block's 8 weight vectors without spilling. 16 rather than 8
// matters when the weights come from DRAM: with two tiles of 8, the first pulls the group in
// at twice the bandwidth the machine has and the second leaves memory idle. The Q8_0 output
// head (49,152 x 576) against 16 tokens on 2 threads, weights flushed from the caches, medians
// of 41: 3.0-4.5 ms with tiles of 8, 1.9-2.7 ms with 16 (4 alternating runs, 2026-11-28).
#define TILE_CALL(TILE, NT) TILE(wg, nb, aq + t * nb * 32, ad + t * nb, as ? as + t * nb : 0, asum ? asum + t * nb : 0, out + t * ostride + 8 * g, ostride, NT, prefetch && t == 0)
#define DRIVER(TILE, GROUP_BYTES, MAXT)                                                            \
    const int prefetch = ntok >= 4;                                                              \
    for (long g = g0; g < g1; g++) {                                                             \
        const uint8_t *wg = w + g * nb * (GROUP_BYTES);                                          \
        for (long t = 0; t < ntok;) {                                                            \
            long left = ntok - t;                                                                \
            int nt = left < (MAXT) ? (int)left : (MAXT);                                         \
            switch (nt) {                                                                        \
            case 16: TILE_CALL(TILE, 16); break;                                                 \
            case 15: TILE_CALL(TILE, 15); break;                                                 \
            case 14: TILE_CALL(TILE, 14); break;                                                 \
            case 13: TILE_CALL(TILE, 13); break;                                                 \
            case 12: TILE_CALL(TILE, 12); break;                                                 \
            case 11: TILE_CALL(TILE, 11); break;                                                 \
            case 10: TILE_CALL(TILE, 10); break;                                                 \
            case 9: TILE_CALL(TILE, 9); break;                                                   \
            case 8: TILE_CALL(TILE, 8); break;                                                   \
            case 7: TILE_CALL(TILE, 7); break;                                                   \
            case 6: TILE_CALL(TILE, 6); break;                                                   \
            case 5: TILE_CALL(TILE, 5); break;                                                   \
            case 4: TILE_CALL(TILE, 4); break;                                                   \
            case 3: TILE_CALL(TILE, 3); break;                                                   \
            case 2: TILE_CALL(TILE, 2); break;                                                   \
            default: TILE_CALL(TILE, 1); break;                                                  \
            }                                                                                    \
            t += nt;                                                                             \
        }                                                                                        \
    }

TGT_AVX2 void rasd_q4_1_avx2(const uint8_t *w, long nb, long g0, long g1, const int8_t *aq, const float *ad,
                             const float *as, long ntok, float *out, long ostride) {
    const int32_t *asum = 0;
    DRIVER(q4_1_tile_avx2, 160, 4)
}
TGT_VNNI void rasd_q4_1_vnni(const uint8_t *w, long nb, long g0, long g1, const int8_t *aq, const float *ad,
                             const float *as, long ntok, float *out, long ostride) {
    const int32_t *asum = 0;
    DRIVER(q4_1_tile_vnni, 160, 16)
}
TGT_AVX2 void rasd_q8_0_avx2(const uint8_t *w, long nb, long g0, long g1, const int8_t *aq, const float *ad,
                             const int32_t *asum, long ntok, float *out, long ostride) {
    const float *as = 0;
    DRIVER(q8_0_tile_avx2, 272, 4)
}
TGT_VNNI void rasd_q8_0_vnni(const uint8_t *w, long nb, long g0, long g1, const int8_t *aq, const float *ad,
                             const int32_t *asum, long ntok, float *out, long ostride) {
    const float *as = 0;
    DRIVER(q8_0_tile_vnni, 272, 16)
}

// MARK: attention

TGT_AVX2 INLINE __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
    const __m256 magic = _mm256_set1_ps(MAGIC);
    __m256 n = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), magic), magic);
    __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(-2.12194440e-4f)));
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(5.0000001201e-1f));
    __m256 y = _mm256_mul_ps(p, _mm256_mul_ps(r, r));
    y = _mm256_add_ps(y, r);
    y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_castps_si256(_mm256_add_ps(n, magic));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(bits, _mm256_set1_epi32(0x4B400000)), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

// ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7))
TGT_AVX2 INLINE float fold8(__m256 v) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // [l0+l4, l1+l5, l2+l6, l3+l7]
    __m128 t = _mm_add_ps(h, _mm_movehl_ps(h, h));                                   // [(l0+l4)+(l2+l6), (l1+l5)+(l3+l7), ..]
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

// fold8 of eight vectors at once: lane j of the result is fold8 of the j-th of (A, C, E, G, B,
// D, F, H), the same additions in the same order (first l_i + l_i+4 for each vector, then
// (h0 + h2) and (h1 + h3), then their sum) with shuffles in place of a horizontal fold per
// vector. A tree's scores were about a fifth of its attention operations in their folds.
TGT_AVX2 INLINE __m256 fold8x8(__m256 A, __m256 B, __m256 C, __m256 D, __m256 E, __m256 F, __m256 G, __m256 H) {
#define HALVES(X, Y) _mm256_add_ps(_mm256_permute2f128_ps(X, Y, 0x20), _mm256_permute2f128_ps(X, Y, 0x31))
    __m256 ab = HALVES(A, B), cd = HALVES(C, D), ef = HALVES(E, F), gh = HALVES(G, H);  // [hA | hB] ...
#undef HALVES
    // [hA0+hA2, hA1+hA3, hC0+hC2, hC1+hC3 | the same for B, D], and for E, G | F, H.
    __m256 t1 = _mm256_add_ps(_mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
    __m256 t2 = _mm256_add_ps(_mm256_shuffle_ps(ef, gh, _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(ef, gh, _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm256_add_ps(_mm256_shuffle_ps(t1, t2, _MM_SHUFFLE(2, 0, 2, 0)), _mm256_shuffle_ps(t1, t2, _MM_SHUFFLE(3, 1, 3, 1)));
}

TGT_AVX2 INLINE float dot_avx2(const float *a, const float *b, long n) {
    __m256 acc = _mm256_setzero_ps();
    long i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    float total = fold8(acc);
    for (; i < n; i++) total = total + a[i] * b[i];
    return total;
}

// scores[j] = exp(scores[j] - maximum) for j < count (8 lanes, then the tail), returns
// 1 / their sum (lanes folded as fold8, then the tail in order).
TGT_AVX2 INLINE float exp_normalizer(float *scores, long count, float maximum) {
    __m256 vmax = _mm256_set1_ps(maximum), acc = _mm256_setzero_ps();
    long j = 0;
    for (; j + 8 <= count; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(scores + j), vmax));
        _mm256_storeu_ps(scores + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = fold8(acc);
    for (; j < count; j++) {
        float e = rasd_exp(scores[j] - maximum);
        scores[j] = e;
        sum = sum + e;
    }
    return 1.0f / sum;
}

TGT_AVX2 void rasd_softmax_avx2(const float *x, float *out, long n) {
    __m256 vmax = _mm256_set1_ps(-__builtin_inff());
    long i = 0;
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    float lanes[8], maximum = -__builtin_inff();
    _mm256_storeu_ps(lanes, vmax);
    for (int l = 0; l < 8; l++) maximum = lanes[l] > maximum ? lanes[l] : maximum;
    for (; i < n; i++) maximum = x[i] > maximum ? x[i] : maximum;
    if (out != x) __builtin_memcpy(out, x, (size_t)n * sizeof(float));
    float inverse = exp_normalizer(out, n, maximum);
    __m256 vinverse = _mm256_set1_ps(inverse);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(out + i), vinverse));
    for (; i < n; i++) out[i] = out[i] * inverse;
}

TGT_AVX2 void rasd_attention_avx2(const float *q, const float *keys, const float *values, long stride, long committed,
                                  const int32_t *chain, long chain_count, long hd, float scale, float *scores, float *out) {
    long count = committed + chain_count;
    float maximum = -__builtin_inff();
    // Four keys at a time: four independent accumulation chains, each in the one fixed order.
    long j = 0;
    for (; j + 4 <= count; j += 4) {
        const float *k[4];
        for (int u = 0; u < 4; u++) k[u] = keys + (j + u < committed ? j + u : chain[j + u - committed]) * stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        long i = 0;
        for (; i + 8 <= hd; i += 8) {
            __m256 qv = _mm256_loadu_ps(q + i);
            a0 = _mm256_add_ps(a0, _mm256_mul_ps(qv, _mm256_loadu_ps(k[0] + i)));
            a1 = _mm256_add_ps(a1, _mm256_mul_ps(qv, _mm256_loadu_ps(k[1] + i)));
            a2 = _mm256_add_ps(a2, _mm256_mul_ps(qv, _mm256_loadu_ps(k[2] + i)));
            a3 = _mm256_add_ps(a3, _mm256_mul_ps(qv, _mm256_loadu_ps(k[3] + i)));
        }
        float d[4] = {fold8(a0), fold8(a1), fold8(a2), fold8(a3)};
        for (int u = 0; u < 4; u++) {
            for (long t = i; t < hd; t++) d[u] = d[u] + q[t] * k[u][t];
            float s = d[u] * scale;
            scores[j + u] = s;
            maximum = s > maximum ? s : maximum;
        }
    }
    for (; j < count; j++) {
        long slot = j < committed ? j : chain[j - committed];
        float s = dot_avx2(q, keys + slot * stride, hd) * scale;
        scores[j] = s;
        maximum = s > maximum ? s : maximum;
    }
    float inverse = exp_normalizer(scores, count, maximum);
    if (hd == 64) {
        // The usual head size: the 64 outputs stay in registers across all keys (the general
        // loop below reloads and stores them for every key). Same operations, same bits.
        __m256 o[8];
        for (int i = 0; i < 8; i++) o[i] = _mm256_setzero_ps();
        for (long k = 0; k < count; k++) {
            long slot = k < committed ? k : chain[k - committed];
            const float *v = values + slot * stride;
            __m256 vp = _mm256_set1_ps(scores[k] * inverse);
            for (int i = 0; i < 8; i++) o[i] = _mm256_add_ps(o[i], _mm256_mul_ps(vp, _mm256_loadu_ps(v + 8 * i)));
        }
        for (int i = 0; i < 8; i++) _mm256_storeu_ps(out + 8 * i, o[i]);
        return;
    }
    for (long i = 0; i < hd; i++) out[i] = 0;
    for (long k = 0; k < count; k++) {
        long slot = k < committed ? k : chain[k - committed];
        const float *v = values + slot * stride;
        float p = scores[k] * inverse;
        __m256 vp = _mm256_set1_ps(p);
        long i = 0;
        for (; i + 8 <= hd; i += 8)
            _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(out + i), _mm256_mul_ps(vp, _mm256_loadu_ps(v + i))));
        for (; i < hd; i++) out[i] = out[i] + p * v[i];
    }
}

// MARK: attention over an F16 KV cache

// 8 floats of F16 row r at element i (widening is exact).
TGT_AVX2 INLINE __m256 load8_h(const uint16_t *r, long i) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(r + i))); }

// Attention over the KV cache uses fused multiply-adds (explicit _mm256_fmadd_ps, and fmaf in
// the portable twin): half the operations of multiply-then-add, in the two loops where a tree
// over a long context spends its attention time.
//
// Scores of 4 keys for NQ queries (1 to 4, a constant at each call site): per (query, key) 8
// lanes accumulate q * k by FMA over the 8-wide chunks, fold as fold8, then the tail by fmaf in
// order, then times scale. The accumulators are independent, so the blocking changes no value;
// it lets the queries share each widened key.
TGT_AVX2 INLINE void qk4(const float *const q[4], const uint16_t *const k[4], long hd, float scale, float *const d[4],
                         const int NQ) {
    __m256 a[4][4];
    for (int w = 0; w < NQ; w++)
        for (int u = 0; u < 4; u++) a[w][u] = _mm256_setzero_ps();
    long i = 0;
    for (; i + 8 <= hd; i += 8) {
        __m256 kv[4] = {load8_h(k[0], i), load8_h(k[1], i), load8_h(k[2], i), load8_h(k[3], i)};
        for (int w = 0; w < NQ; w++) {
            __m256 qv = _mm256_loadu_ps(q[w] + i);
            for (int u = 0; u < 4; u++) a[w][u] = _mm256_fmadd_ps(qv, kv[u], a[w][u]);
        }
    }
    if (i == hd) {
        // No tail: fold 8 accumulators (two queries' 4 keys) at once, in fold8's order.
        const __m256 vscale = _mm256_set1_ps(scale);
        for (int w = 0; w < NQ; w += 2) {
            const int w2 = w + 1 < NQ ? w + 1 : w;
            __m256 r = _mm256_mul_ps(fold8x8(a[w][0], a[w2][0], a[w][1], a[w2][1], a[w][2], a[w2][2], a[w][3], a[w2][3]), vscale);
            _mm_storeu_ps(d[w], _mm256_castps256_ps128(r));
            if (w + 1 < NQ) _mm_storeu_ps(d[w + 1], _mm256_extractf128_ps(r, 1));
        }
        return;
    }
    for (int w = 0; w < NQ; w++) {
        for (int u = 0; u < 4; u++) {
            float dot = fold8(a[w][u]);
            for (long t = i; t < hd; t++) dot = __builtin_fmaf(q[w][t], _cvtsh_ss(k[u][t]), dot);
            d[w][u] = dot * scale;
        }
    }
}

// Scores of `count` consecutive key rows (row r at keys + r * kstride) for the NQ queries q[w],
// into d[w][0..<count].
TGT_AVX2 INLINE void qk_rows(const float *const q[4], const uint16_t *keys, long kstride, long count, long hd, float scale,
                             float *const d[4], const int NQ) {
    long r = 0;
    for (; r + 4 <= count; r += 4) {
        const uint16_t *k[4] = {keys + r * kstride, keys + (r + 1) * kstride, keys + (r + 2) * kstride, keys + (r + 3) * kstride};
        float *dst[4] = {d[0] + r, NQ > 1 ? d[1] + r : 0, NQ > 2 ? d[2] + r : 0, NQ > 3 ? d[3] + r : 0};
        qk4(q, k, hd, scale, dst, NQ);
    }
    for (; r < count; r++) {
        float f[4][4];
        const uint16_t *row = keys + r * kstride;
        const uint16_t *k[4] = {row, row, row, row};
        float *dst[4] = {f[0], f[1], f[2], f[3]};
        qk4(q, k, hd, scale, dst, NQ);
        for (int w = 0; w < NQ; w++) d[w][r] = f[w][0];
    }
}

// out[w] = fma(p[w][k], v_k, out[w]) for `count` value rows (row k at v + k * vstride) in row
// order, for NQ queries (1 or 2) sharing each widened value. 64-wide heads keep the outputs in
// registers: 8 per query (two queries need AVX-512's 32 registers).
TGT_AVX2 INLINE void pv(float *const out[2], const float *const p[2], const uint16_t *v, long vstride, long count, long hd,
                        const int NQ) {
    if (hd == 64) {
        __m256 o[2][8];
        for (int w = 0; w < NQ; w++)
            for (int i = 0; i < 8; i++) o[w][i] = _mm256_loadu_ps(out[w] + 8 * i);
        for (long k = 0; k < count; k++) {
            __m256 vk[8];
            for (int i = 0; i < 8; i++) vk[i] = load8_h(v + k * vstride, 8 * i);
            for (int w = 0; w < NQ; w++) {
                __m256 a = _mm256_set1_ps(p[w][k]);
                for (int i = 0; i < 8; i++) o[w][i] = _mm256_fmadd_ps(a, vk[i], o[w][i]);
            }
        }
        for (int w = 0; w < NQ; w++)
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(out[w] + 8 * i, o[w][i]);
        return;
    }
    for (int w = 0; w < NQ; w++) {
        for (long k = 0; k < count; k++) {
            __m256 a = _mm256_set1_ps(p[w][k]);
            const uint16_t *vk = v + k * vstride;
            long i = 0;
            for (; i + 8 <= hd; i += 8) _mm256_storeu_ps(out[w] + i, _mm256_fmadd_ps(a, load8_h(vk, i), _mm256_loadu_ps(out[w] + i)));
            for (; i < hd; i++) out[w][i] = __builtin_fmaf(p[w][k], _cvtsh_ss(vk[i]), out[w][i]);
        }
    }
}

#define KV_BLOCK 64

// The body of both attention entry points: QK queries share each pass over a block of keys,
// PV queries each pass over a block of values (constants at each call site). Which queries share
// a pass changes no value. Query j is head j % group of node j / group.
TGT_AVX2 INLINE void attention_f16(const float *q, long q_stride, long group, long nq, const uint16_t *keys,
                                   const uint16_t *values, long stride, long committed, const int32_t *chains,
                                   const int32_t *chain_start, long hd, float scale, float *scores, long scores_stride,
                                   float *out, long out_stride, const int QK, const int PV) {
#define QUERY(j) (q + ((j) / group) * q_stride + ((j) % group) * hd)
#define OUTPUT(j) (out + ((j) / group) * out_stride + ((j) % group) * hd)
    // Committed keys one block at a time (it stays in L1 while every query of the item reads
    // it), QK queries per pass sharing each widened key.
    for (long b0 = 0; b0 < committed; b0 += KV_BLOCK) {
        long count = committed - b0 < KV_BLOCK ? committed - b0 : KV_BLOCK;
        for (long j = 0; j < nq; j += QK) {
            const float *qs[4];
            float *rows[4];
            for (int w = 0; w < 4; w++) {
                long jw = j + w < nq ? j + w : j;  // unused lanes repeat query j (not stored)
                qs[w] = QUERY(jw);
                rows[w] = scores + jw * scores_stride + b0;
            }
            long left = nq - j;
            if (QK >= 4 && left >= 4) qk_rows(qs, keys + b0 * stride, stride, count, hd, scale, rows, 4);
            else if (QK >= 3 && left >= 3) qk_rows(qs, keys + b0 * stride, stride, count, hd, scale, rows, 3);
            else if (QK >= 2 && left >= 2) qk_rows(qs, keys + b0 * stride, stride, count, hd, scale, rows, 2);
            else qk_rows(qs, keys + b0 * stride, stride, count, hd, scale, rows, 1);
            if (left < QK) break;
        }
    }
    // Each query's own chain, then its softmax, in the order of rasd_attention_avx2.
    for (long j = 0; j < nq; j++) {
        const float *qs[4] = {QUERY(j), 0, 0, 0};
        float *row = scores + j * scores_stride;
        long node = j / group, chain_count = chain_start[node + 1] - chain_start[node];
        const int32_t *chain = chains + chain_start[node];
        for (long c = 0; c < chain_count; c++) {
            float *dst[4] = {row + committed + c, 0, 0, 0};
            qk_rows(qs, keys + chain[c] * stride, stride, 1, hd, scale, dst, 1);
        }
        long total = committed + chain_count;
        float maximum = -__builtin_inff();
        for (long k = 0; k < total; k++) maximum = row[k] > maximum ? row[k] : maximum;
        float inverse = exp_normalizer(row, total, maximum);
        for (long k = 0; k < total; k++) row[k] = row[k] * inverse;
        float *oj = OUTPUT(j);
        for (long i = 0; i < hd; i++) oj[i] = 0;
    }
    // Values in key order: the committed ones, then each query's chain.
    for (long b0 = 0; b0 < committed; b0 += KV_BLOCK) {
        long count = committed - b0 < KV_BLOCK ? committed - b0 : KV_BLOCK;
        for (long j = 0; j < nq; j += PV) {
            float *os[2] = {OUTPUT(j), j + 1 < nq ? OUTPUT(j + 1) : 0};
            const float *ps[2] = {scores + j * scores_stride + b0, scores + (j + 1) * scores_stride + b0};
            if (PV >= 2 && j + 1 < nq) pv(os, ps, values + b0 * stride, stride, count, hd, 2);
            else pv(os, ps, values + b0 * stride, stride, count, hd, 1);
        }
    }
    for (long j = 0; j < nq; j++) {
        float *os[2] = {OUTPUT(j), 0};
        long node = j / group;
        const int32_t *chain = chains + chain_start[node];
        for (long c = 0; c < chain_start[node + 1] - chain_start[node]; c++) {
            const float *ps[2] = {scores + j * scores_stride + committed + c, 0};
            pv(os, ps, values + chain[c] * stride, stride, 1, hd, 1);
        }
    }
#undef QUERY
#undef OUTPUT
}

TGT_AVX2 void rasd_attention_f16_avx2(const float *q, long q_stride, long group, long nq, const uint16_t *keys,
                                      const uint16_t *values, long stride, long committed, const int32_t *chains,
                                      const int32_t *chain_start, long hd, float scale, float *scores, long scores_stride,
                                      float *out, long out_stride) {
    attention_f16(q, q_stride, group, nq, keys, values, stride, committed, chains, chain_start, hd, scale, scores,
                  scores_stride, out, out_stride, 2, 1);
}

// With AVX-512's 32 vector registers, 4 queries share each widened key and 2 each widened
// value; AVX2's 16 allow 2 and 1. Tree attention after 1,000 tokens (scratch probe, 4
// alternating runs, medians): 4 nodes 3.57 -> 3.39 ms, 8 nodes 7.25 -> 6.62 ms, 16 nodes
// 13.2 -> 13.0 ms. Widening was not the main cost; folding each score's 8 lanes was (fold8x8
// now folds 8 scores at once: 2-5% off trees after 1,024 tokens, 3 alternating runs).
TGT_VNNI void rasd_attention_f16_avx512(const float *q, long q_stride, long group, long nq, const uint16_t *keys,
                                        const uint16_t *values, long stride, long committed, const int32_t *chains,
                                        const int32_t *chain_start, long hd, float scale, float *scores,
                                        long scores_stride, float *out, long out_stride) {
    attention_f16(q, q_stride, group, nq, keys, values, stride, committed, chains, chain_start, hd, scale, scores,
                  scores_stride, out, out_stride, 4, 2);
}

TGT_AVX2 void rasd_store_f16_avx2(const float *src, uint16_t *dst, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

// MARK: activations

TGT_AVX2 void rasd_swiglu_avx2(float *gate, const float *up, long n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 e = exp8(_mm256_xor_ps(g, sign));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) gate[i] = gate[i] / (1.0f + rasd_exp(-gate[i])) * up[i];
}

TGT_AVX2 void rasd_quantize_avx2(const float *x, long row0, long row1, long stride, long blocks, int8_t *q, float *d,
                                 float *s, int32_t *sums) {
    const __m256i absMask = _mm256_set1_epi32(0x7FFFFFFF);
    const __m256 magic = _mm256_set1_ps(MAGIC), half = _mm256_set1_ps(0.5f), minusHalf = _mm256_set1_ps(-0.5f);
    const __m256 signMask = _mm256_set1_ps(-0.0f), zero = _mm256_setzero_ps();
    const __m256i magicBits = _mm256_set1_epi32(0x4B400000);
    for (long row = row0; row < row1; row++) {
        for (long b = 0; b < blocks; b++) {
            const float *src = x + row * stride + b * 32;
            __m256 xv[4];
            __m256i amax = _mm256_setzero_si256();
            for (int c = 0; c < 4; c++) {
                xv[c] = _mm256_loadu_ps(src + 8 * c);
                amax = _mm256_max_epu32(amax, _mm256_and_si256(_mm256_castps_si256(xv[c]), absMask));
            }
            __m128i m4 = _mm_max_epu32(_mm256_castsi256_si128(amax), _mm256_extracti128_si256(amax, 1));
            m4 = _mm_max_epu32(m4, _mm_shuffle_epi32(m4, 0x4E));
            m4 = _mm_max_epu32(m4, _mm_shuffle_epi32(m4, 0xB1));
            float scale = _mm_cvtss_f32(_mm_castsi128_ps(m4)) / 127.0f;
            float inverse = scale != 0 ? 1.0f / scale : 0.0f;
            __m256 inv = _mm256_set1_ps(inverse);
            __m256i v[4], total = _mm256_setzero_si256();
            for (int c = 0; c < 4; c++) {
                // roundf as QuantizedActivations.quantize does it: nearest-even by the magic
                // number, then exact ties moved away from zero.
                __m256 y = _mm256_mul_ps(xv[c], inv);
                __m256 even = _mm256_sub_ps(_mm256_add_ps(y, magic), magic);
                __m256 diff = _mm256_andnot_ps(signMask, _mm256_sub_ps(y, even));
                __m256 away = _mm256_add_ps(y, _mm256_blendv_ps(minusHalf, half, _mm256_cmp_ps(y, zero, _CMP_GT_OQ)));
                __m256 r = _mm256_blendv_ps(even, away, _mm256_cmp_ps(diff, half, _CMP_EQ_OQ));
                v[c] = _mm256_sub_epi32(_mm256_castps_si256(_mm256_add_ps(r, magic)), magicBits);
                total = _mm256_add_epi32(total, v[c]);
            }
            // int32 -> int8 keeping the low byte of each lane (the values are within +-127).
            __m256i w01 = _mm256_packs_epi32(v[0], v[1]), w23 = _mm256_packs_epi32(v[2], v[3]);
            __m256i bytes = _mm256_packs_epi16(w01, w23);
            bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(q + (row * blocks + b) * 32), bytes);
            __m128i t4 = _mm_add_epi32(_mm256_castsi256_si128(total), _mm256_extracti128_si256(total, 1));
            t4 = _mm_add_epi32(t4, _mm_shuffle_epi32(t4, 0x4E));
            t4 = _mm_add_epi32(t4, _mm_shuffle_epi32(t4, 0xB1));
            int32_t sum = _mm_cvtsi128_si32(t4);
            // Scales rounded to F16 (nearest even), as Float(Float16(x)) does.
            __m128 pair = _mm_setr_ps(scale, scale * (float)sum, 0, 0);
            __m128 rounded = _mm_cvtph_ps(_mm_cvtps_ph(pair, _MM_FROUND_TO_NEAREST_INT));
            d[row * blocks + b] = _mm_cvtss_f32(rounded);
            s[row * blocks + b] = _mm_cvtss_f32(_mm_shuffle_ps(rounded, rounded, 1));
            sums[row * blocks + b] = sum;
        }
    }
}

#else  // not x86-64 with clang: only the portable Swift kernels run.

int rasd_cpu_level(void) { return 0; }
void rasd_q4_1_avx2(const uint8_t *w, long nb, long g0, long g1, const int8_t *aq, const float *ad,
                    const float *as, long ntok, float *out, long ostride) {}
void rasd_q4_1_vnni(const uint8_t *w, long nb, long g0, long g1, const int8_t *aq, const float *ad,
                    const float *as, long ntok, float *out, long ostride) {}
void rasd_q8_0_avx2(const uint8_t *w, long nb, long g0, long g1, const int8_t *aq, const float *ad,
                    const int32_t *asum, long ntok, float *out, long ostride) {}
void rasd_q8_0_vnni(const uint8_t *w, long nb, long g0, long g1, const int8_t *aq, const float *ad,
                    const int32_t *asum, long ntok, float *out, long ostride) {}
void rasd_attention_avx2(const float *q, const float *keys, const float *values, long stride, long committed,
                         const int32_t *chain, long chain_count, long hd, float scale, float *scores, float *out) {}
void rasd_swiglu_avx2(float *gate, const float *up, long n) {}
void rasd_softmax_avx2(const float *x, float *out, long n) {}
void rasd_attention_f16_avx2(const float *q, long q_stride, long group, long nq, const uint16_t *keys, const uint16_t *values,
                             long stride, long committed, const int32_t *chains, const int32_t *chain_start,
                             long hd, float scale, float *scores, long scores_stride, float *out, long out_stride) {}
void rasd_attention_f16_avx512(const float *q, long q_stride, long group, long nq, const uint16_t *keys, const uint16_t *values,
                               long stride, long committed, const int32_t *chains, const int32_t *chain_start,
                               long hd, float scale, float *scores, long scores_stride, float *out, long out_stride) {}
void rasd_store_f16_avx2(const float *src, uint16_t *dst, long n) {}
void rasd_quantize_avx2(const float *x, long row0, long row1, long stride, long blocks, int8_t *q, float *d,
                        float *s, int32_t *sums) {}
#endif
