/* The mining tasks of docs/mining.md: names, selection lists and the regexes. */
#include "apmae/mine.h"

#include <stdlib.h>
#include <string.h>

static const char *const k_task_names[AP_TASK_COUNT] = {
    "identifiers",     "string_literals",        "boolean_literals",  "numeric_literals",
    "function_call",   "function_name",          "closing_bracket",   "eol",
    "keywords",        "mathematical_operators", "boolean_operators", "assignment_operators",
    "stop",            "random",                 "noise",
};

const char *ap_task_name(ap_task t) { return (unsigned)t < AP_TASK_COUNT ? k_task_names[t] : "?"; }

int ap_task_from_name(const char *name, ap_task *t) {
    for (int i = 0; i < AP_TASK_COUNT; i++)
        if (strcmp(name, k_task_names[i]) == 0) {
            *t = (ap_task)i;
            return 0;
        }
    return -1;
}

int ap_task_is_syntax(ap_task t) { return t <= AP_TASK_FUNCTION_NAME; }
int ap_task_is_regex(ap_task t) { return t >= AP_TASK_CLOSING_BRACKET && t <= AP_TASK_STOP; }

ap_status ap_task_parse_list(const char *s, int selected[AP_TASK_COUNT], ap_error *err) {
    memset(selected, 0, AP_TASK_COUNT * sizeof *selected);
    char valid[512] = "all";
    for (int i = 0; i < AP_TASK_COUNT; i++) {
        strcat(valid, ", ");
        strcat(valid, k_task_names[i]);
    }
    if (!s || !*s) return ap_fail(err, AP_ERR_ARG, "--tasks: empty list; valid tasks: %s", valid);
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char name[64];
        ap_task t;
        if (n == 0 || n >= sizeof name)
            return ap_fail(err, AP_ERR_ARG, "--tasks: empty or overlong item in '%s'; valid tasks: %s", s, valid);
        memcpy(name, p, n);
        name[n] = '\0';
        if (strcmp(name, "all") == 0) {
            for (int i = 0; i < AP_TASK_COUNT; i++) selected[i] = 1;
        } else if (ap_task_from_name(name, &t) == 0) {
            selected[t] = 1;
        } else {
            return ap_fail(err, AP_ERR_ARG, "--tasks: unknown task '%s'; valid tasks: %s", name, valid);
        }
        if (!comma) break;
        p = comma + 1;
    }
    return AP_OK;
}

/* Keywords in docs/mining.md order ("throws" before "throw" so that the unbounded
 * reference alternation takes the longer word). */
#define KEYWORDS                                                                                              \
    "abstract|assert|break|case|catch|continue|default|do|else|enum|exports|extends|final|finally|for|if|" \
    "implements|import|instanceof|interface|module|native|new|package|private|protected|public|requires|"   \
    "return|static|super|switch|synchronized|this|throws|throw|transient|try|void|volatile|while"

/* A character that can continue a Java identifier (letters, marks, digits,
 * connectors such as `_`, currency symbols such as `$`): the default mode's
 * word boundary, so `if` is not found in `modifier`, `ifé` or `$if`. */
#define JAVA_WORD "[\\p{L}\\p{M}\\p{N}\\p{Pc}\\p{Sc}]"

/* ++ -- *= /= %=; <= >= not part of a shift (<<=, >>=, >>>=); < > not part of a
 * shift or <= >=; + - not part of ++ -- += -= ->; * / % not followed by =. */
#define MATH_OPERATORS                                                                           \
    "\\+\\+|--|\\*=|/=|%=|(?<!<)<=|(?<!>)>=|(?<!<)<(?![<=])|(?<!>)>(?![>=])|(?<!\\+)\\+(?![+=])|" \
    "(?<!-)-(?![-=>])|[*/%](?!=)"

const char *ap_task_regex(ap_task t, ap_compat compat) {
    int ref = compat == AP_COMPAT_REFERENCE;
    switch (t) {
    case AP_TASK_CLOSING_BRACKET: return "\\}|\\)|\\]";
    case AP_TASK_EOL: return ";\\n";
    case AP_TASK_KEYWORDS: return ref ? KEYWORDS : "(?<!" JAVA_WORD ")(?:" KEYWORDS ")(?!" JAVA_WORD ")";
    case AP_TASK_MATHEMATICAL_OPERATORS: return ref ? MATH_OPERATORS "|\\\\" : MATH_OPERATORS;
    case AP_TASK_BOOLEAN_OPERATORS: return "!=|==|&&|\\|\\||!(?!=)";
    case AP_TASK_ASSIGNMENT_OPERATORS: return ">>=|<<=|\\+=|-=|\\*=|/=|%=|&=|\\|=|\\^=";
    case AP_TASK_STOP: return "\\.";
    default: return NULL;
    }
}

void ap_spans_free(ap_spans *s) {
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}
