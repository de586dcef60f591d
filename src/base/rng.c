/* Seedable randomness: xoshiro256** seeded through splitmix64, uniform and
 * normal draws, and hashes for deriving independent seeds (per file, per
 * task, per tensor). */
#include "apmae/base.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void ap_rng_seed(ap_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ap_rng_next(ap_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t ap_rng_below(ap_rng *r, uint64_t n) {
    /* Rejection sampling: draws above the largest multiple of n would make
     * small values more likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = ap_rng_next(r);
    while (x >= limit);
    return x % n;
}

uint64_t ap_hash_mix(uint64_t a, uint64_t b) {
    uint64_t x = a ^ (b * 0xD6E8FEB86659FD93ull);
    return splitmix64(&x);
}

uint64_t ap_hash_bytes(const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001B3ull;
    }
    return h;
}

double ap_rng_uniform(ap_rng *r) { return (double)(ap_rng_next(r) >> 11) * 0x1.0p-53; }

double ap_rng_normal(ap_rng *r) {
    double u1 = 1.0 - ap_rng_uniform(r); /* (0, 1]: log stays finite */
    double u2 = ap_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
