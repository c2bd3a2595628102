// balloon: a hostile layer transform for strata's tests. Its `entries`
// allocates 1 MiB after 1 MiB, writing every page and keeping them all,
// until the host's memory cap stops it: a refused memory.grow traps (the
// host's choice) or makes malloc fail, and then balloon traps itself, as
// a program out of memory would abort.

#include "layer_transform.h"
#include "plugin.h"

typedef layer_transform_string_t string_t;

// The chain of every block allocated, so that none can be optimised away.
static void *volatile chain;

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
    for (;;) {
        void **block = malloc(1 << 20);
        if (block == NULL) __builtin_trap();
        memset(block, 0xb1, 1 << 20);
        *block = chain;
        chain = block;
    }
}

bool exports_strata_plugin_layer_transformer_finish(
    exports_strata_plugin_layer_transformer_list_replacement_t *ret, string_t *err) {
    (void)err;
    ret->ptr = NULL;
    ret->len = 0;
    return true;
}
