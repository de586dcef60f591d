/* StarCoder2 config.json: parse with Hugging Face's defaults, then validate. */
#include "apmae/lm.h"

#include <string.h>

/* Hugging Face Starcoder2Config defaults, used for keys a config.json omits. */
static const ap_lm_config k_hf_defaults = {
    .vocab_size = 49152,
    .hidden_size = 3072,
    .intermediate_size = 12288,
    .num_layers = 30,
    .num_heads = 24,
    .num_kv_heads = 2,
    .max_position_embeddings = 4096,
    .rope_theta = 10000.0,
    .norm_epsilon = 1e-5,
    .sliding_window = 0,
    .use_bias = 1,
    .tie_word_embeddings = 1,
};

static ap_status get_int_field(const cJSON *root, const char *key, const char *file, int dflt, int *out,
                               ap_error *err) {
    int64_t v;
    ap_status st = ap_json_int_opt(root, key, file, dflt, &v, err);
    if (st) return st;
    if (v < 0 || v > (int64_t)1 << 30)
        return ap_fail(err, AP_ERR_FORMAT, "%s: field '%s' = %lld is out of range", file, key, (long long)v);
    *out = (int)v;
    return AP_OK;
}

static ap_status check_model_type(const cJSON *root, const char *file, ap_error *err) {
    const char *type = NULL, *act = NULL;
    ap_status st = ap_json_str(root, "model_type", file, 0, &type, err);
    if (st) return st;
    if (type && strcmp(type, "starcoder2") != 0)
        return ap_fail(err, AP_ERR_FORMAT, "%s: model_type '%s' is not supported (apmae runs 'starcoder2')", file,
                       type);
    st = ap_json_str(root, "hidden_act", file, 0, &act, err);
    if (st) return st;
    if (act && strcmp(act, "gelu_pytorch_tanh") != 0 && strcmp(act, "gelu_new") != 0)
        return ap_fail(err, AP_ERR_FORMAT, "%s: hidden_act '%s' is not supported (expected gelu_pytorch_tanh)",
                       file, act);
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (scaling && !cJSON_IsNull(scaling))
        return ap_fail(err, AP_ERR_FORMAT, "%s: rope_scaling is not supported", file);
    return AP_OK;
}

ap_status ap_lm_config_load(const char *path, ap_lm_config *cfg, ap_error *err) {
    cJSON *root = NULL;
    ap_status st = ap_json_load(path, &root, err);
    if (st) return st;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ap_fail(err, AP_ERR_FORMAT, "%s: expected a JSON object", path);
    }
    *cfg = k_hf_defaults;
    int64_t window = 0;
    if ((st = check_model_type(root, path, err)) ||
        (st = get_int_field(root, "vocab_size", path, cfg->vocab_size, &cfg->vocab_size, err)) ||
        (st = get_int_field(root, "hidden_size", path, cfg->hidden_size, &cfg->hidden_size, err)) ||
        (st = get_int_field(root, "intermediate_size", path, cfg->intermediate_size, &cfg->intermediate_size,
                            err)) ||
        (st = get_int_field(root, "num_hidden_layers", path, cfg->num_layers, &cfg->num_layers, err)) ||
        (st = get_int_field(root, "num_attention_heads", path, cfg->num_heads, &cfg->num_heads, err)) ||
        (st = get_int_field(root, "num_key_value_heads", path, cfg->num_heads, &cfg->num_kv_heads, err)) ||
        (st = get_int_field(root, "max_position_embeddings", path, cfg->max_position_embeddings,
                            &cfg->max_position_embeddings, err)) ||
        (st = ap_json_num_opt(root, "rope_theta", path, cfg->rope_theta, &cfg->rope_theta, err)) ||
        (st = ap_json_num_opt(root, "norm_epsilon", path, cfg->norm_epsilon, &cfg->norm_epsilon, err)) ||
        (st = ap_json_int_opt(root, "sliding_window", path, 0, &window, err)) ||
        (st = ap_json_bool_opt(root, "use_bias", path, cfg->use_bias, &cfg->use_bias, err)) ||
        (st = ap_json_bool_opt(root, "tie_word_embeddings", path, cfg->tie_word_embeddings,
                               &cfg->tie_word_embeddings, err))) {
        cJSON_Delete(root);
        return st;
    }
    cJSON_Delete(root);
    cfg->sliding_window = window > 0 && window < (int64_t)1 << 30 ? (int)window : 0;
    cfg->head_dim = cfg->num_heads > 0 ? cfg->hidden_size / cfg->num_heads : 0;
    return ap_lm_config_validate(cfg, path, err);
}

ap_status ap_lm_config_validate(const ap_lm_config *c, const char *file, ap_error *err) {
    if (c->vocab_size < 1 || c->hidden_size < 1 || c->intermediate_size < 1 || c->num_layers < 1 ||
        c->num_heads < 1 || c->num_kv_heads < 1)
        return ap_fail(err, AP_ERR_FORMAT, "%s: sizes must be positive (vocab %d, hidden %d, layers %d, heads %d)",
                       file, c->vocab_size, c->hidden_size, c->num_layers, c->num_heads);
    if (c->hidden_size % c->num_heads != 0)
        return ap_fail(err, AP_ERR_FORMAT, "%s: hidden_size %d is not divisible by num_attention_heads %d", file,
                       c->hidden_size, c->num_heads);
    if (c->num_heads % c->num_kv_heads != 0)
        return ap_fail(err, AP_ERR_FORMAT, "%s: num_attention_heads %d is not divisible by num_key_value_heads %d",
                       file, c->num_heads, c->num_kv_heads);
    if (c->head_dim % 2 != 0)
        return ap_fail(err, AP_ERR_FORMAT, "%s: head_dim %d must be even for rotary embeddings", file, c->head_dim);
    if (!(c->rope_theta > 0) || !(c->norm_epsilon > 0))
        return ap_fail(err, AP_ERR_FORMAT, "%s: rope_theta and norm_epsilon must be positive", file);
    if (c->max_position_embeddings < 1)
        return ap_fail(err, AP_ERR_FORMAT, "%s: max_position_embeddings must be positive", file);
    return AP_OK;
}
