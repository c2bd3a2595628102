// keep-c: keeps every entry (strata's plugin benchmark: what an entry
// costs to cross into a C guest and back).

#include <stdlib.h>

#include "layer_transform.h"

typedef layer_transform_string_t string_t;

bool exports_strata_plugin_layer_transformer_begin(strata_plugin_types_settings_t *settings,
                                                   strata_plugin_types_layer_info_t *layer,
                                                   string_t *err) {
    (void)err;
    strata_plugin_types_settings_free(settings);
    strata_plugin_types_layer_info_free(layer);
    return true;
}

bool exports_strata_plugin_layer_transformer_entries(
    exports_strata_plugin_layer_transformer_list_entry_header_t *batch,
    exports_strata_plugin_layer_transformer_list_decision_t *ret, string_t *err) {
    size_t n = batch->len;
    strata_plugin_types_decision_t *decisions = calloc(n ? n : 1, sizeof *decisions);
    exports_strata_plugin_layer_transformer_list_entry_header_free(batch);
    if (decisions == NULL) {
        layer_transform_string_dup(err, "keep-c: out of memory");
        return false;
    }
    // calloc's zero is KEEP: every decision is already made.
    ret->ptr = decisions;
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
