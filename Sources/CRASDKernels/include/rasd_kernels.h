// Quantized matrix kernels for x86-64 with AVX2 / AVX-512 VNNI, chosen at run time.
//
// Weight layout (made by RASDModel's repacking): rows in groups of 8, each group stored
// block after block along K (32 elements per block).
//   Q4_1 group-block, 192 bytes: float d[8], float m[8], uint8 nibbles[8][16]
//                                (low nibble = element i, high nibble = element i + 16).
//   Q8_0 group-block, 288 bytes: float d[8], int8 q[8][32].
// Activations: per token, nb blocks of 32 int8 (aq), their scales (ad), ad * sum(q) (as) and
// the integer sums (asum).
//
// Every output element is computed with one fixed sequence of float operations, the one the
// portable Swift kernel uses:  acc = acc + ((d * da) * (float)isum + m * sa)  over blocks in
// order (Q8_0: acc = acc + (d * da) * (float)isum), with exact integer block sums. So results
// are bit-identical across kernels, tile sizes, batch sizes and thread counts.
#ifndef RASD_KERNELS_H
#define RASD_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A spin-wait hint (x86 `pause`), for the worker pool's short busy waits.
static inline void rasd_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/// 0: none of the kernels below can run; 1: AVX2+FMA+F16C; 2: AVX-512 F/BW/VL + VNNI as well.
int rasd_cpu_level(void);

/// out[t * ostride + 8 * g + r] for groups g in [g0, g1), tokens t in [0, ntok).
void rasd_q4_1_avx2(const uint8_t *w, long nb, long g0, long g1, const int8_t *aq, const float *ad,
                    const float *as, long ntok, float *out, long ostride);
void rasd_q4_1_vnni(const uint8_t *w, long nb, long g0, long g1, const int8_t *aq, const float *ad,
                    const float *as, long ntok, float *out, long ostride);
void rasd_q8_0_avx2(const uint8_t *w, long nb, long g0, long g1, const int8_t *aq, const float *ad,
                    const int32_t *asum, long ntok, float *out, long ostride);
void rasd_q8_0_vnni(const uint8_t *w, long nb, long g0, long g1, const int8_t *aq, const float *ad,
                    const int32_t *asum, long ntok, float *out, long ostride);

#ifdef __cplusplus
}
#endif
#endif
