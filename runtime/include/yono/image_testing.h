// Test hooks of the yono runtime: not part of the API, no stability promise.
// They let tests compare the host SIMD decode with the portable one directly.
#ifndef YONO_IMAGE_TESTING_H_
#define YONO_IMAGE_TESTING_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// 1 if this build has a SIMD decode path and the CPU runs it, else 0.
int yono_testing_simd_available(void);

// Decode vector-order elements [a, b) of a linear PQ record into out[0, b-a):
// m (1..4) int8 sub-codebooks cw[0..m) of K = 256 codewords of s (1..16)
// bytes, index j using cw[j % m]. idx must hold ceil(b / s) indices.
// use_simd = 0 forces the portable path. Returns 1 if the SIMD path was set
// up for the call (use_simd, available, and s/m/length qualify), else 0.
int yono_testing_decode_pq(const uint8_t* idx, const int8_t* const* cw,
                           uint32_t m, uint32_t s, uint32_t a, uint32_t b,
                           uint8_t* out, int use_simd);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // YONO_IMAGE_TESTING_H_
