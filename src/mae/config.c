/* AP-MAE config: built-in configs, config.json load/save, validation. */
#include "apmae/io.h"
#include "apmae/mae.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* mask_ratio is not in the published config table; 0.75 is the MAE value the published
 * model family inherits. */
static const struct {
    const char *name;
    ap_mae_config cfg;
} k_builtin[] = {
    {"tiny", {64, 16, 0.75, 128, 12, 8, 64, 512, 128, 8, 8, 64, 512, 1e-12, 0, AP_MAE_SCALER_LOG_NORMALIZE}},
    {"paper", {256, 32, 0.75, 512, 24, 16, 64, 2048, 512, 8, 8, 64, 2048, 1e-12, 0, AP_MAE_SCALER_LOG_NORMALIZE}},
    {"small", {256, 32, 0.75, 128, 4, 4, 32, 512, 128, 2, 4, 32, 512, 1e-12, 0, AP_MAE_SCALER_LOG_NORMALIZE}},
};

static const char *k_scaler_names[] = {"log_normalize", "none", "log"};

const char *ap_mae_scaler_name(ap_mae_scaler s) {
    return (unsigned)s < sizeof k_scaler_names / sizeof *k_scaler_names ? k_scaler_names[s] : "?";
}

int ap_mae_grid(const ap_mae_config *cfg) { return cfg->max_length / cfg->patch_size; }
int ap_mae_num_tril(const ap_mae_config *cfg) {
    int g = ap_mae_grid(cfg);
    return g * (g + 1) / 2;
}
int ap_mae_num_masked(const ap_mae_config *cfg) { return (int)floor(cfg->mask_ratio * ap_mae_num_tril(cfg)); }

ap_status ap_mae_config_builtin(const char *name, ap_mae_config *cfg, ap_error *err) {
    for (size_t i = 0; i < sizeof k_builtin / sizeof *k_builtin; i++)
        if (strcmp(name, k_builtin[i].name) == 0) {
            *cfg = k_builtin[i].cfg;
            return AP_OK;
        }
    return ap_fail(err, AP_ERR_ARG, "unknown AP-MAE config '%s' (built-in: tiny, paper, small; or a config.json)",
                   name);
}

static ap_status check_range(const char *what, const char *field, int64_t v, int64_t lo, int64_t hi, ap_error *err) {
    if (v < lo || v > hi)
        return ap_fail(err, AP_ERR_FORMAT, "%s: %s = %lld is outside %lld..%lld", what, field, (long long)v,
                       (long long)lo, (long long)hi);
    return AP_OK;
}

ap_status ap_mae_config_validate(const ap_mae_config *c, const char *what, ap_error *err) {
    const struct {
        const char *name;
        int v, hi;
    } f[] = {
        {"max_length", c->max_length, 16384},      {"patch_size", c->patch_size, 16384},
        {"encoder_dim", c->encoder_dim, 65536},    {"encoder_layers", c->encoder_layers, 1024},
        {"encoder_heads", c->encoder_heads, 1024}, {"encoder_dim_head", c->encoder_dim_head, 65536},
        {"encoder_mlp_dim", c->encoder_mlp_dim, 1 << 20}, {"decoder_dim", c->decoder_dim, 65536},
        {"decoder_layers", c->decoder_layers, 1024}, {"decoder_heads", c->decoder_heads, 1024},
        {"decoder_dim_head", c->decoder_dim_head, 65536}, {"decoder_mlp_dim", c->decoder_mlp_dim, 1 << 20},
    };
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
    {
        ap_status st = check_range(what, f[i].name, f[i].v, 1, f[i].hi, err);
        if (st) return st;
    }
    if (c->max_length % c->patch_size != 0)
        return ap_fail(err, AP_ERR_FORMAT, "%s: max_length %d is not divisible by patch_size %d", what,
                       c->max_length, c->patch_size);
    if (ap_mae_grid(c) > 256)
        return ap_fail(err, AP_ERR_FORMAT, "%s: max_length / patch_size = %d patches per side (at most 256)", what,
                       ap_mae_grid(c));
    int T = ap_mae_num_tril(c), M = ap_mae_num_masked(c);
    if (!(c->mask_ratio > 0 && c->mask_ratio < 1) || M < 1 || M >= T)
        return ap_fail(err, AP_ERR_FORMAT,
                       "%s: mask_ratio %g masks %d of the %d lower-triangle patches (need at least 1, fewer than all)",
                       what, c->mask_ratio, M, T);
    if (!(c->layer_norm_eps > 0 && c->layer_norm_eps < 1))
        return ap_fail(err, AP_ERR_FORMAT, "%s: layer_norm_eps %g must be in (0, 1)", what, c->layer_norm_eps);
    if ((unsigned)c->scaler > AP_MAE_SCALER_LOG) return ap_fail(err, AP_ERR_FORMAT, "%s: unknown scaler", what);
    return AP_OK;
}

static ap_status get_int(const cJSON *o, const char *key, const char *file, int *out, ap_error *err) {
    int64_t v;
    ap_status st = ap_json_int(o, key, file, &v, err);
    if (st) return st;
    if (v < 0 || v > (1 << 24)) return check_range(file, key, v, 0, 1 << 24, err);
    *out = (int)v;
    return AP_OK;
}

static ap_status parse(const cJSON *o, const char *file, ap_mae_config *c, ap_error *err) {
    const char *s = NULL;
    ap_status st = ap_json_str(o, "model_type", file, 0, &s, err);
    if (st) return st;
    if (s && strcmp(s, "ap_mae") != 0)
        return ap_fail(err, AP_ERR_FORMAT, "%s: model_type is '%s', expected 'ap_mae'", file, s);
    if ((st = ap_json_str(o, "hidden_act", file, 0, &s, err))) return st;
    if (s && strcmp(s, "gelu") != 0)
        return ap_fail(err, AP_ERR_FORMAT, "%s: hidden_act '%s' is not supported (only 'gelu', the erf form)", file,
                       s);
    const struct {
        const char *key;
        int *dst;
    } ints[] = {
        {"max_length", &c->max_length},           {"patch_size", &c->patch_size},
        {"encoder_dim", &c->encoder_dim},         {"encoder_layers", &c->encoder_layers},
        {"encoder_heads", &c->encoder_heads},     {"encoder_dim_head", &c->encoder_dim_head},
        {"encoder_mlp_dim", &c->encoder_mlp_dim}, {"decoder_dim", &c->decoder_dim},
        {"decoder_layers", &c->decoder_layers},   {"decoder_heads", &c->decoder_heads},
        {"decoder_dim_head", &c->decoder_dim_head}, {"decoder_mlp_dim", &c->decoder_mlp_dim},
    };
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        if ((st = get_int(o, ints[i].key, file, ints[i].dst, err))) return st;
    if ((st = ap_json_num(o, "mask_ratio", file, &c->mask_ratio, err))) return st;
    if ((st = ap_json_num_opt(o, "layer_norm_eps", file, 1e-12, &c->layer_norm_eps, err))) return st;
    if ((st = ap_json_bool_opt(o, "qkv_bias", file, 0, &c->qkv_bias, err))) return st;
    if ((st = ap_json_str(o, "attention_scaler", file, 0, &s, err))) return st;
    c->scaler = AP_MAE_SCALER_LOG_NORMALIZE;
    if (s) {
        size_t i = 0;
        while (i < sizeof k_scaler_names / sizeof *k_scaler_names && strcmp(s, k_scaler_names[i]) != 0) i++;
        if (i == sizeof k_scaler_names / sizeof *k_scaler_names)
            return ap_fail(err, AP_ERR_FORMAT, "%s: attention_scaler '%s' is not one of log_normalize, none, log",
                           file, s);
        c->scaler = (ap_mae_scaler)i;
    }
    return ap_mae_config_validate(c, file, err);
}

ap_status ap_mae_config_load(const char *path, ap_mae_config *cfg, ap_error *err) {
    char *file = ap_path_is_dir(path) ? ap_path_join(path, "config.json", err) : ap_strdup(path, err);
    if (!file) return AP_ERR_NOMEM;
    cJSON *o = NULL;
    ap_status st = ap_json_load(file, &o, err);
    if (st == AP_OK && !cJSON_IsObject(o)) st = ap_fail(err, AP_ERR_FORMAT, "%s: not a JSON object", file);
    if (st == AP_OK) {
        ap_mae_config c = {0};
        st = parse(o, file, &c, err);
        if (st == AP_OK) *cfg = c;
    }
    cJSON_Delete(o);
    free(file);
    return st;
}

ap_status ap_mae_config_resolve(const char *name_or_path, ap_mae_config *cfg, ap_error *err) {
    for (size_t i = 0; i < sizeof k_builtin / sizeof *k_builtin; i++)
        if (strcmp(name_or_path, k_builtin[i].name) == 0) return ap_mae_config_builtin(name_or_path, cfg, err);
    if (!ap_path_exists(name_or_path))
        return ap_fail(err, AP_ERR_ARG, "config '%s' is neither a built-in (tiny, paper, small) nor a file",
                       name_or_path);
    return ap_mae_config_load(name_or_path, cfg, err);
}

ap_status ap_mae_config_save(const char *path, const ap_mae_config *c, ap_error *err) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return ap_fail(err, AP_ERR_NOMEM, "%s: out of memory", path);
    cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
    if (arch) cJSON_AddItemToArray(arch, cJSON_CreateString("APMAE"));
    cJSON_AddStringToObject(o, "model_type", "ap_mae");
    cJSON_AddNumberToObject(o, "max_length", c->max_length);
    cJSON_AddNumberToObject(o, "patch_size", c->patch_size);
    cJSON_AddNumberToObject(o, "mask_ratio", c->mask_ratio);
    cJSON_AddNumberToObject(o, "encoder_dim", c->encoder_dim);
    cJSON_AddNumberToObject(o, "encoder_layers", c->encoder_layers);
    cJSON_AddNumberToObject(o, "encoder_heads", c->encoder_heads);
    cJSON_AddNumberToObject(o, "encoder_dim_head", c->encoder_dim_head);
    cJSON_AddNumberToObject(o, "encoder_mlp_dim", c->encoder_mlp_dim);
    cJSON_AddNumberToObject(o, "decoder_dim", c->decoder_dim);
    cJSON_AddNumberToObject(o, "decoder_layers", c->decoder_layers);
    cJSON_AddNumberToObject(o, "decoder_heads", c->decoder_heads);
    cJSON_AddNumberToObject(o, "decoder_dim_head", c->decoder_dim_head);
    cJSON_AddNumberToObject(o, "decoder_mlp_dim", c->decoder_mlp_dim);
    cJSON_AddStringToObject(o, "hidden_act", "gelu");
    cJSON_AddNumberToObject(o, "layer_norm_eps", c->layer_norm_eps);
    cJSON_AddBoolToObject(o, "qkv_bias", c->qkv_bias);
    cJSON_AddStringToObject(o, "attention_scaler", ap_mae_scaler_name(c->scaler));
    ap_status st = ap_json_save(path, o, err);
    cJSON_Delete(o);
    return st;
}
