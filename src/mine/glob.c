/* Path globs for corpus selection: `*` and `?` stay within a path segment,
 * `**` crosses segments (`**` followed by `/` also matches zero segments),
 * `[...]` is a character class (`[!...]` or `[^...]` negated, `a-z` ranges). */
#include "apmae/mine.h"

/* Matches one class starting at p (just after '['); returns the pattern
 * position after the closing ']' and sets *hit, or NULL when unterminated. */
static const char *match_class(const char *p, char c, int *hit) {
    int negate = *p == '!' || *p == '^';
    if (negate) p++;
    int found = 0;
    const char *q = p;
    /* A ']' right after the opening is a literal member. */
    do {
        if (!*q) return NULL;
        if (q[1] == '-' && q[2] && q[2] != ']') {
            if ((unsigned char)c >= (unsigned char)q[0] && (unsigned char)c <= (unsigned char)q[2]) found = 1;
            q += 3;
        } else {
            if (c == *q) found = 1;
            q++;
        }
    } while (*q != ']');
    *hit = found != negate;
    return q + 1;
}

int ap_glob_match(const char *p, const char *s) {
    while (*p) {
        if (p[0] == '*' && p[1] == '*') {
            while (*p == '*') p++;
            if (*p == '/') { /* "**\/": zero or more whole segments */
                p++;
                for (const char *t = s;;) {
                    if (ap_glob_match(p, t)) return 1;
                    while (*t && *t != '/') t++;
                    if (!*t) return 0;
                    t++;
                }
            }
            for (const char *t = s;; t++) {
                if (ap_glob_match(p, t)) return 1;
                if (!*t) return 0;
            }
        }
        if (*p == '*') {
            p++;
            for (const char *t = s;; t++) {
                if (ap_glob_match(p, t)) return 1;
                if (!*t || *t == '/') return 0;
            }
        }
        if (!*s) return 0;
        if (*p == '?') {
            if (*s == '/') return 0;
        } else if (*p == '[' && *s != '/') {
            int hit;
            const char *after = match_class(p + 1, *s, &hit);
            if (after) {
                if (!hit) return 0;
                p = after;
                s++;
                continue;
            }
            if (*s != '[') return 0; /* unterminated: a literal '[' */
        } else if (*p != *s) {
            return 0;
        }
        p++;
        s++;
    }
    return *s == '\0';
}
