// Quantized matrix kernels with AVX2 and AVX-512 VNNI, selected at run time by RASDModel.
//
// Why C: Swift has no way to compile one function for AVX2 or AVX-512 VNNI and pick it at run
// time (no per-function target attribute), and the default x86-64 target has only SSE2, where
// there is no vpmaddubsw/vpdpbusd. MEASURED (rasd-index bench engine, 2 threads, same run,
// SmolLM2-135M Q4_1; see BENCHMARKS.md): portable Swift SIMD kernel  MEASUREMENT_PORTABLE;
// this file's AVX2 kernel  MEASUREMENT_AVX2;  AVX-512 VNNI kernel  MEASUREMENT_VNNI.
// The figure is 0.8x llama.cpp (~100 tok/s), which only these kernels reach.
//
// Numerics: see rasd_kernels.h. The float operations per output element are written out one
// by one below and contraction into FMA is switched off, so every kernel (and the Swift
// portable one) gives the same bits.
#pragma clang fp contract(off)

#include "rasd_kernels.h"

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

// Sums of the 8 int32 lanes of each of s[0..7], as one vector (lane r = sum of s[r]).
TGT_AVX2 INLINE __m256i reduce8(const __m256i s[8]) {
    __m256i s01 = _mm256_hadd_epi32(s[0], s[1]);
    __m256i s23 = _mm256_hadd_epi32(s[2], s[3]);
    __m256i s45 = _mm256_hadd_epi32(s[4], s[5]);
    __m256i s67 = _mm256_hadd_epi32(s[6], s[7]);
    __m256i t0 = _mm256_hadd_epi32(s01, s23);  // per 128-bit half: rows 0..3
    __m256i t1 = _mm256_hadd_epi32(s45, s67);  // per 128-bit half: rows 4..7
    return _mm256_add_epi32(_mm256_permute2x128_si256(t0, t1, 0x20), _mm256_permute2x128_si256(t0, t1, 0x31));
}

// 16 bytes of packed nibbles -> 32 bytes 0..15 in element order.
TGT_AVX2 INLINE __m256i expand_q4(const uint8_t *p) {
    __m128i raw = _mm_loadu_si128((const __m128i *)p);
    __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

// u8 x s8 dot products into 8 int32 lanes (u <= 15 for Q4, so the int16 pairs cannot saturate).
TGT_AVX2 INLINE __m256i dot_u8s8_avx2(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
TGT_VNNI INLINE __m256i dot_u8s8_vnni(__m256i u, __m256i s) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
}

// One group of 8 rows against NT tokens. NT is a constant in each instantiation so that the
// accumulators stay in registers; the per-element operations do not depend on it.
#define Q4_1_TILE(NAME, TGT, DOT)                                                                  \
    TGT INLINE void NAME(const uint8_t *wg, long nb, const int8_t *aq, const float *ad,           \
                         const float *as, float *out, long ostride, const int NT) {              \
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),         \
                         _mm256_setzero_ps()};                                                   \
        for (long b = 0; b < nb; b++) {                                                          \
            const uint8_t *blk = wg + b * 192;                                                   \
            __m256 d = _mm256_loadu_ps((const float *)blk);                                      \
            __m256 m = _mm256_loadu_ps((const float *)(blk + 32));                               \
            __m256i q[8];                                                                        \
            for (int r = 0; r < 8; r++) q[r] = expand_q4(blk + 64 + 16 * r);                    \
            for (int t = 0; t < NT; t++) {                                                       \
                __m256i a = _mm256_loadu_si256((const __m256i *)(aq + (t * nb + b) * 32));       \
                __m256i s[8];                                                                    \
                for (int r = 0; r < 8; r++) s[r] = DOT(q[r], a);                                 \
                __m256 fi = _mm256_cvtepi32_ps(reduce8(s));                                      \
                __m256 t1 = _mm256_mul_ps(d, _mm256_set1_ps(ad[t * nb + b]));                    \
                __m256 t2 = _mm256_mul_ps(t1, fi);                                               \
                __m256 t3 = _mm256_mul_ps(m, _mm256_set1_ps(as[t * nb + b]));                    \
                acc[t] = _mm256_add_ps(acc[t], _mm256_add_ps(t2, t3));                           \
            }                                                                                    \
        }                                                                                        \
        for (int t = 0; t < NT; t++) _mm256_storeu_ps(out + t * ostride, acc[t]);                \
    }

#define Q8_0_TILE(NAME, TGT, DOTQ8)                                                                \
    TGT INLINE void NAME(const uint8_t *wg, long nb, const int8_t *aq, const float *ad,           \
                         const int32_t *asum, float *out, long ostride, const int NT) {           \
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),         \
                         _mm256_setzero_ps()};                                                   \
        for (long b = 0; b < nb; b++) {                                                          \
            const uint8_t *blk = wg + b * 288;                                                   \
            __m256 d = _mm256_loadu_ps((const float *)blk);                                      \
            __m256i q[8];                                                                        \
            for (int r = 0; r < 8; r++) q[r] = _mm256_loadu_si256((const __m256i *)(blk + 32 + 32 * r)); \
            for (int t = 0; t < NT; t++) {                                                       \
                __m256i a = _mm256_loadu_si256((const __m256i *)(aq + (t * nb + b) * 32));       \
                __m256i s[8];                                                                    \
                for (int r = 0; r < 8; r++) s[r] = DOTQ8(q[r], a);                               \
                __m256i isum = reduce8(s);                                                       \
                isum = Q8_FIXUP(isum, asum[t * nb + b]);                                         \
                __m256 fi = _mm256_cvtepi32_ps(isum);                                            \
                __m256 t1 = _mm256_mul_ps(d, _mm256_set1_ps(ad[t * nb + b]));                    \
                acc[t] = _mm256_add_ps(acc[t], _mm256_mul_ps(t1, fi));                           \
            }                                                                                    \
        }                                                                                        \
        for (int t = 0; t < NT; t++) _mm256_storeu_ps(out + t * ostride, acc[t]);                \
    }

// Q8_0 x Q8: AVX2 has only u8 x s8, so move the weight's sign onto the activation.
TGT_AVX2 INLINE __m256i dot_s8s8_avx2(__m256i w, __m256i a) {
    return dot_u8s8_avx2(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
}
// VNNI: (w + 128) is unsigned; the extra 128 * sum(a) is subtracted after the reduction.
TGT_VNNI INLINE __m256i dot_s8s8_vnni(__m256i w, __m256i a) {
    return dot_u8s8_vnni(_mm256_xor_si256(w, _mm256_set1_epi8((char)0x80)), a);
}

#define Q8_FIXUP(isum, s) (isum)
Q4_1_TILE(q4_1_tile_avx2, TGT_AVX2, dot_u8s8_avx2)
Q8_0_TILE(q8_0_tile_avx2, TGT_AVX2, dot_s8s8_avx2)
Q4_1_TILE(q4_1_tile_vnni, TGT_VNNI, dot_u8s8_vnni)
#undef Q8_FIXUP
#define Q8_FIXUP(isum, s) _mm256_sub_epi32((isum), _mm256_set1_epi32(128 * (s)))
Q8_0_TILE(q8_0_tile_vnni, TGT_VNNI, dot_s8s8_vnni)
#undef Q8_FIXUP

// The drivers walk groups, then tokens in tiles of 4 (the rest as a tile of 1..3).
#define DRIVER(NAME, TGT, TILE, GROUP_BYTES, EXTRA_T, EXTRA)                                      \
    TGT void NAME(const uint8_t *w, long nb, long g0, long g1, const int8_t *aq, const float *ad,   \
                  EXTRA_T EXTRA, long ntok, float *out, long ostride) {                          \
        for (long g = g0; g < g1; g++) {                                                         \
            const uint8_t *wg = w + g * nb * (GROUP_BYTES);                                      \
            long t = 0;                                                                          \
            for (; t + 4 <= ntok; t += 4)                                                        \
                TILE(wg, nb, aq + t * nb * 32, ad + t * nb, EXTRA + t * nb, out + t * ostride + 8 * g, ostride, 4); \
            switch (ntok - t) {                                                                  \
            case 3: TILE(wg, nb, aq + t * nb * 32, ad + t * nb, EXTRA + t * nb, out + t * ostride + 8 * g, ostride, 3); break; \
            case 2: TILE(wg, nb, aq + t * nb * 32, ad + t * nb, EXTRA + t * nb, out + t * ostride + 8 * g, ostride, 2); break; \
            case 1: TILE(wg, nb, aq + t * nb * 32, ad + t * nb, EXTRA + t * nb, out + t * ostride + 8 * g, ostride, 1); break; \
            default: break;                                                                      \
            }                                                                                    \
        }                                                                                        \
    }

DRIVER(rasd_q4_1_avx2, TGT_AVX2, q4_1_tile_avx2, 192, const float *, as)
DRIVER(rasd_q4_1_vnni, TGT_VNNI, q4_1_tile_vnni, 192, const float *, as)
DRIVER(rasd_q8_0_avx2, TGT_AVX2, q8_0_tile_avx2, 288, const int32_t *, asum)
DRIVER(rasd_q8_0_vnni, TGT_VNNI, q8_0_tile_vnni, 288, const int32_t *, asum)

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
#endif
