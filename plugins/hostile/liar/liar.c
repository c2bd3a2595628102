// liar: a hostile layer transform for strata's tests. It replaces the
// layer's first file with a header that keeps the file's size and content
// `extra` bytes longer (setting `extra`, default 16; negative: shorter).
// The host must refuse a replacement whose content is not its header's
// size.

#include "layer_transform.h"
#include "plugin.h"

typedef layer_transform_string_t string_t;

static int64_t extra;
static bool done;

bool exports_strata_plugin_layer_transformer_begin(strata_plugin_types_settings_t *settings,
                                                   strata_plugin_types_layer_info_t *layer,
                                                   string_t *err) {
    plugin_line_t problem = {0};
    extra = 16;
    done = false;
    for (size_t i = 0; problem.len == 0 && i < settings->len; i++) {
        string_t *key = &settings->ptr[i].f0, *value = &settings->ptr[i].f1;
        if (!plugin_str_eq(key->ptr, key->len, "extra")) {
            plugin_add_str(&problem, "unknown setting (liar takes extra)");
        } else if (!plugin_parse_i64(value->ptr, value->len, &extra) || extra == 0) {
            plugin_add_str(&problem, "setting `extra`: a whole number of bytes, not 0");
        }
    }
    strata_plugin_types_settings_free(settings);
    strata_plugin_types_layer_info_free(layer);
    if (problem.len > 0) layer_transform_string_dup_n(err, problem.text, problem.len);
    return problem.len == 0;
}

bool exports_strata_plugin_layer_transformer_entries(
    exports_strata_plugin_layer_transformer_list_entry_header_t *batch,
    exports_strata_plugin_layer_transformer_list_decision_t *ret, string_t *err) {
    (void)err;
    size_t n = batch->len;
    strata_plugin_types_decision_t *d = calloc(n ? n : 1, sizeof *d);
    if (d == NULL) __builtin_trap();
    for (size_t i = 0; i < n; i++) {
        strata_plugin_types_entry_header_t *h = &batch->ptr[i];
        d[i].tag = STRATA_PLUGIN_TYPES_DECISION_KEEP;
        if (done || h->kind != STRATA_PLUGIN_TYPES_ENTRY_KIND_FILE) continue;
        int64_t length = (int64_t)h->size + extra;
        if (length < 0) length = 0;
        d[i].tag = STRATA_PLUGIN_TYPES_DECISION_REPLACE;
        d[i].val.replace.header = *h;
        d[i].val.replace.content.len = (size_t)length;
        d[i].val.replace.content.ptr = malloc(length ? (size_t)length : 1);
        if (d[i].val.replace.content.ptr == NULL) __builtin_trap();
        memset(d[i].val.replace.content.ptr, 'L', (size_t)length);
        // The header moved into the decision.
        *h = (strata_plugin_types_entry_header_t){0};
        done = true;
    }
    exports_strata_plugin_layer_transformer_list_entry_header_free(batch);
    ret->ptr = d;
    ret->len = n;
    return true;
}

bool exports_strata_plugin_layer_transformer_finish(
    exports_strata_plugin_layer_transformer_list_replacement_t *ret, string_t *err) {
    (void)err;
    ret->ptr = NULL;
    ret->len = 0;
    return true;
}
