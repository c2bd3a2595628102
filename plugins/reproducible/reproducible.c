// reproducible: a strata layer transform that makes every entry's header
// the same whatever machine built the layer: modification time = the
// setting `source-date-epoch` (default 0, as SOURCE_DATE_EPOCH), owner and
// group 0. Content is kept as it is (never read); nothing is dropped.

#include "layer_transform.h"
#include "plugin.h"

typedef layer_transform_string_t string_t;

static int64_t epoch;
static uint64_t rewritten, seen;
static uint32_t layer_index, layer_count;

static bool fail(string_t *err, const plugin_line_t *message) {
    layer_transform_string_dup_n(err, message->text, message->len);
    return false;
}

bool exports_strata_plugin_layer_transformer_begin(strata_plugin_types_settings_t *settings,
                                                   strata_plugin_types_layer_info_t *layer,
                                                   string_t *err) {
    plugin_line_t problem = {0};
    epoch = 0;
    rewritten = seen = 0;
    layer_index = layer->index;
    layer_count = layer->count;
    for (size_t i = 0; problem.len == 0 && i < settings->len; i++) {
        string_t *key = &settings->ptr[i].f0, *value = &settings->ptr[i].f1;
        if (plugin_str_eq(key->ptr, key->len, "source-date-epoch")) {
            if (!plugin_parse_i64(value->ptr, value->len, &epoch) || epoch < 0) {
                plugin_add_str(&problem, "setting `source-date-epoch`: `");
                plugin_add(&problem, (const char *)value->ptr, value->len);
                plugin_add_str(&problem, "` is not a whole number of seconds since 1970");
            }
        } else {
            plugin_add_str(&problem, "unknown setting `");
            plugin_add(&problem, (const char *)key->ptr, key->len);
            plugin_add_str(&problem, "` (reproducible takes source-date-epoch)");
        }
    }
    strata_plugin_types_settings_free(settings);
    strata_plugin_types_layer_info_free(layer);
    return problem.len == 0 || fail(err, &problem);
}

bool exports_strata_plugin_layer_transformer_entries(
    exports_strata_plugin_layer_transformer_list_entry_header_t *batch,
    exports_strata_plugin_layer_transformer_list_decision_t *ret, string_t *err) {
    strata_plugin_types_decision_t *decisions = calloc(batch->len ? batch->len : 1, sizeof *decisions);
    if (decisions == NULL) {
        plugin_line_t m = {0};
        plugin_add_str(&m, "out of memory for a batch of ");
        plugin_add_u64(&m, batch->len);
        exports_strata_plugin_layer_transformer_list_entry_header_free(batch);
        return fail(err, &m);
    }
    for (size_t i = 0; i < batch->len; i++) {
        strata_plugin_types_entry_header_t *h = &batch->ptr[i];
        seen++;
        if (h->mtime == epoch && h->uid == 0 && h->gid == 0) {
            decisions[i].tag = STRATA_PLUGIN_TYPES_DECISION_KEEP;
            strata_plugin_types_entry_header_free(h);
            continue;
        }
        // The header moves into the decision, whose memory the bindings
        // free once the host has read it.
        h->mtime = epoch;
        h->uid = h->gid = 0;
        decisions[i].tag = STRATA_PLUGIN_TYPES_DECISION_REWRITE;
        decisions[i].val.rewrite = *h;
        rewritten++;
    }
    // An empty list's pointer is not an allocation (cabi_realloc of 0 bytes).
    if (batch->len > 0) free(batch->ptr);
    ret->ptr = decisions;
    ret->len = batch->len;
    return true;
}

bool exports_strata_plugin_layer_transformer_finish(
    exports_strata_plugin_layer_transformer_list_replacement_t *ret, string_t *err) {
    (void)err;
    plugin_line_t l = {0};
    plugin_add_str(&l, "layer ");
    plugin_add_u64(&l, layer_index + 1);
    plugin_add_str(&l, "/");
    plugin_add_u64(&l, layer_count);
    plugin_add_str(&l, ": rewrote ");
    plugin_add_u64(&l, rewritten);
    plugin_add_str(&l, " of ");
    plugin_add_u64(&l, seen);
    plugin_add_str(&l, " headers (mtime ");
    plugin_add_i64(&l, epoch);
    plugin_add_str(&l, ", owner 0:0)");
    string_t message = {(uint8_t *)l.text, l.len};
    strata_plugin_log_info(&message);
    ret->ptr = NULL;
    ret->len = 0;
    return true;
}
