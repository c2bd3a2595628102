// future: a layer transform built against the contract's next version,
// strata:plugin@0.2.0 (its build makes that copy of the WIT and of the
// bindings). A host of 0.1.0 must refuse it by name when loading it. Were
// it loaded, it would keep every entry.

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
    (void)err;
    size_t n = batch->len;
    strata_plugin_types_decision_t *decisions = calloc(n ? n : 1, sizeof *decisions);
    if (decisions == NULL) __builtin_trap();
    for (size_t i = 0; i < n; i++) decisions[i].tag = STRATA_PLUGIN_TYPES_DECISION_KEEP;
    ret->len = n;
    ret->ptr = decisions;
    exports_strata_plugin_layer_transformer_list_entry_header_free(batch);
    return true;
}

bool exports_strata_plugin_layer_transformer_finish(
    exports_strata_plugin_layer_transformer_list_replacement_t *ret, string_t *err) {
    (void)err;
    ret->ptr = NULL;
    ret->len = 0;
    return true;
}
