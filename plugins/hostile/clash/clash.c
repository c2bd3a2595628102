// clash: a hostile layer transform for strata's tests. It renames the
// layer's second file onto the path of its first (a rewrite whose new path
// is another entry's): the host must refuse to write two entries at one
// path.

#include "layer_transform.h"
#include "plugin.h"

typedef layer_transform_string_t string_t;

static char *first;
static bool done;

bool exports_strata_plugin_layer_transformer_begin(strata_plugin_types_settings_t *settings,
                                                   strata_plugin_types_layer_info_t *layer,
                                                   string_t *err) {
    (void)err;
    free(first);
    first = NULL;
    done = false;
    strata_plugin_types_settings_free(settings);
    strata_plugin_types_layer_info_free(layer);
    return true;
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
        if (first == NULL) {
            first = plugin_strndup(h->path.ptr, h->path.len);
            continue;
        }
        d[i].tag = STRATA_PLUGIN_TYPES_DECISION_REWRITE;
        d[i].val.rewrite = *h;
        layer_transform_string_dup(&d[i].val.rewrite.path, first);
        // The old path stays in the batch and is freed with it.
        *h = (strata_plugin_types_entry_header_t){.path = h->path};
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
    plugin_line_t l = {0};
    plugin_add_str(&l, done ? "renamed a file onto " : "fewer than two files: nothing renamed onto ");
    plugin_add_str(&l, first ? first : "(none)");
    string_t message = {(uint8_t *)l.text, l.len};
    strata_plugin_log_info(&message);
    ret->ptr = NULL;
    ret->len = 0;
    return true;
}
