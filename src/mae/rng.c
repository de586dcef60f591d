/* The AP-MAE random stream: xoshiro256** seeded through splitmix64, with
 * uniform doubles (53 bits) and Box-Muller normals. Portable and seedable, so
 * initialisation and masks are the same on every machine. */
#include "apmae/mae.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void ap_mae_rng_seed(ap_mae_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t ap_mae_rng_next(ap_mae_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double ap_mae_rng_uniform(ap_mae_rng *r) { return (double)(ap_mae_rng_next(r) >> 11) * 0x1.0p-53; }

double ap_mae_rng_normal(ap_mae_rng *r) {
    double u1 = 1.0 - ap_mae_rng_uniform(r); /* (0, 1]: log stays finite */
    double u2 = ap_mae_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
