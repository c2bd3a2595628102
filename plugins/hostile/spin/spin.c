// spin: a hostile layer transform for strata's tests. Its `entries` never
// returns: the host's deadline must stop it.

#include "layer_transform.h"

typedef layer_transform_string_t string_t;

static volatile uint64_t turns;

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
    (void)batch, (void)ret, (void)err;
    for (;;) turns++;
}

bool exports_strata_plugin_layer_transformer_finish(
    exports_strata_plugin_layer_transformer_list_replacement_t *ret, string_t *err) {
    (void)err;
    ret->ptr = NULL;
    ret->len = 0;
    return true;
}
