/* The GPT-2 ByteLevel alphabet (each byte stands for one printable Unicode
 * character, so token strings are text) and the UTF-8 helpers around it. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* Bytes that stand for themselves: '!'..'~', U+00A1..U+00AC, U+00AE..U+00FF.
 * The other 68 (controls, space, DEL, U+0080..U+00A0, soft hyphen) map in
 * order to U+0100..U+0143. */
static int byte_is_self(unsigned b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174; }

uint32_t tok_byte_to_cp(uint8_t b) {
    if (byte_is_self(b)) return b;
    if (b <= 32) return 256u + b;
    if (b <= 160) return 256u + 33u + (b - 127u);
    return 256u + 33u + 34u; /* 173, the soft hyphen */
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_self(cp) ? (int)cp : -1;
    if (cp <= 288) return (int)(cp - 256);
    if (cp <= 322) return (int)(cp - 289 + 127);
    if (cp == 323) return 173;
    return -1;
}

size_t tok_utf8_put(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t tok_utf8_get(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    size_t k = u[0] < 0x80 ? 1 : u[0] < 0xE0 ? 2 : u[0] < 0xF0 ? 3 : 4;
    if (k > n) k = n; /* only on invalid input: never read past the end */
    uint32_t c = k == 1 ? u[0] : u[0] & (0x7Fu >> k);
    for (size_t i = 1; i < k; i++) c = c << 6 | (u[i] & 0x3Fu);
    *cp = c;
    return k;
}

/* Length of the well-formed UTF-8 sequence at s (Unicode Table 3-7), or 0 with
 * *bad set to the length of the maximal subpart of an ill-formed one: the
 * longest prefix of a well-formed sequence, at least 1 byte. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

size_t tok_utf8_valid_prefix(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, bad;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(u + i, n - i, &bad);
        if (!k) break;
        i += k;
    }
    return i;
}

ap_status ap_utf8_lossy(const char *s, size_t n, char **out, size_t *out_len, ap_error *err) {
    /* Each replaced byte grows to at most 3 bytes (U+FFFD). */
    char *o = ap_malloc(3 * n + 1, err);
    if (!o) return AP_ERR_NOMEM;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, j = 0, bad;
    while (i < n) {
        size_t k = utf8_seq(u + i, n - i, &bad);
        if (k) {
            memcpy(o + j, u + i, k);
            i += k;
            j += k;
        } else {
            memcpy(o + j, "\xEF\xBF\xBD", 3);
            i += bad;
            j += 3;
        }
    }
    o[j] = '\0';
    *out = o;
    *out_len = j;
    return AP_OK;
}

int tok_is_white_space(uint32_t cp) {
    if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
    if (cp < 0x85) return 0;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}
