// Quantized matrix kernels for x86-64 with AVX2 / AVX-512 VNNI, chosen at run time.
//
// Weight layout (made by RASDModel's repacking): rows in groups of 8, each group stored block
// after block along K (32 weights per block). Inside a group-block the 8 rows are interleaved
// in 4-byte words, so that one 32-byte vector holds 4 consecutive weights of each of the 8 rows
// and a dot product with a broadcast 4-byte slice of the input leaves row r's partial sum in
// lane r: no horizontal reductions.
//   Q4_1 group-block, 160 bytes: f16 d[8], f16 m[8], then 4 vectors of 32 bytes; in vector c,
//        bytes 4r..4r+3 are the GGUF bytes 4c..4c+3 of row r (low nibble: weight 4c+j, high
//        nibble: weight 16+4c+j).
//   Q8_0 group-block, 272 bytes: f16 d[8], then 8 vectors of 32 bytes; in vector c, bytes
//        4r..4r+3 are weights 4c..4c+3 of row r.
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
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/// A spin-wait hint (x86 `pause`), for the worker pool's short busy waits.
static inline void rasd_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/// Returns freed heap pages to the OS (glibc's malloc_trim; elsewhere nothing).
static inline void rasd_release_free_heap(void) {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

/// Prefetch hints for the suffix sorting of datastore builds. Swift has no prefetch instruction;
/// in SA-IS's induction scans, prefetching the text symbol of the entry 64 slots ahead and the
/// bucket slot 32 ahead took the CPU time of sorting 30 M tokens from 3.7-4.5 s to 2.9-3.3 s
/// (alternating runs, 2026-11-27, shared 2-core EPYC).
static inline void rasd_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }
static inline void rasd_prefetch_write(const void *p) { __builtin_prefetch(p, 1, 3); }

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

/// Attention of one query head over its visible keys: slots 0..<committed, then the slots in
/// `chain`. keys/values point at the head's first float in slot 0; slot s is at s * stride.
/// Writes hd floats to out; `scores` is scratch for committed + chain_count floats.
///
/// Float order (the portable Swift path repeats it exactly): dot products and the softmax sum
/// accumulate 8 lanes (lane i takes elements i, i+8, ...), fold lanes as
/// ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)), then add the tail in order; exp is rasd's polynomial
/// (see rasd_exp); probabilities are e * (1 / sum); out += p * v per key in position order.
void rasd_attention_avx2(const float *q, const float *keys, const float *values, long stride, long committed,
                         const int32_t *chain, long chain_count, long hd, float scale, float *scores, float *out);

/// Attention of nq queries over one KV head's F16 cache (slot s at keys/values + s * stride, hd
/// halves). Query j is query head j % group of node j / group: its hd floats are at
/// q + (j / group) * q_stride + (j % group) * hd (the query heads sharing a KV head are
/// consecutive), its output goes to the same place under out with out_stride. Every query sees
/// slots 0..<committed, then its node's chain chains[chain_start[n] ..< chain_start[n + 1]]. The
/// queries of a call share each pass over the committed keys and values (the heads of a group
/// and the nodes of a tree read the cache once between them). `scores` holds nq rows of
/// scores_stride floats (at least committed + the longest chain).
///
/// Float order per query (the portable Swift path repeats it): each score is a dot product by
/// fused multiply-adds (8 lanes over the head, folded as fold8, the tail in order) times scale,
/// committed slots then the chain; the softmax as in rasd_attention_avx2, then each probability
/// is e * (1 / sum); out = 0, then out = fma(p, v, out) per key in that order. Which queries
/// share a call or a pass changes no value.
void rasd_attention_f16_avx2(const float *q, long q_stride, long group, long nq, const uint16_t *keys,
                             const uint16_t *values, long stride, long committed, const int32_t *chains,
                             const int32_t *chain_start, long hd, float scale, float *scores, long scores_stride,
                             float *out, long out_stride);

/// rasd_attention_f16_avx2 for CPUs with AVX-512 (VL): the same values, more queries sharing
/// each pass over the cache.
void rasd_attention_f16_avx512(const float *q, long q_stride, long group, long nq, const uint16_t *keys,
                               const uint16_t *values, long stride, long committed, const int32_t *chains,
                               const int32_t *chain_start, long hd, float scale, float *scores, long scores_stride,
                               float *out, long out_stride);

/// dst[i] = src[i] as F16 bits, rounded to nearest even (the KV cache's storage).
void rasd_store_f16_avx2(const float *src, uint16_t *dst, long n);

/// gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i] (SwiGLU), exp as rasd_exp.
void rasd_swiglu_avx2(float *gate, const float *up, long n);

/// Rows row0..<row1 of x (row r at x + r * stride) to 8 bits per 32-block, exactly as
/// QuantizedActivations.quantize does it: q = roundf(x / (max|x| / 127)) (ties away from zero),
/// d = the scale and s = d * sum(q) rounded to F16 and back, sums = sum(q); block b of row r at
/// index r * blocks + b.
void rasd_quantize_avx2(const float *x, long row0, long row1, long stride, long blocks, int8_t *q, float *d,
                        float *s, int32_t *sums);

/// out = softmax(x) over n floats: e = exp(x - max) as in rasd_attention_avx2's softmax (the sum
/// in 8 lanes, folded, then the tail in order), then out[i] = e[i] * (1 / sum).
void rasd_softmax_avx2(const float *x, float *out, long n);

/// exp(x) for x <= 0 as rasd computes it everywhere (Cephes polynomial, no FMA; ~2 ulp; inputs
/// below -87.3 give about 1e-38 instead of 0).
float rasd_exp(float x);

#ifdef __cplusplus
}
#endif
#endif
