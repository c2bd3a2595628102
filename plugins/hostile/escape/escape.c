// escape: a hostile layer transform for strata's tests. It tries to write
// outside the layer's root through the first entry of the layer:
//   setting `via`: rewrite (default): the entry's header, renamed to `path`;
//                  replace: a new file at `path`;
//                  hardlink: a hard link whose target is `path`;
//                  finish: keeps every entry, then adds a file at `path`;
//   setting `path`: the name used (default ../escaped-by-plugin).
// The host must refuse every one of them.

#include "layer_transform.h"
#include "plugin.h"

typedef layer_transform_string_t string_t;

static char via[16];
static char *path;
static bool done;

static const char content[] = "escaped\n";

static bool fail(string_t *err, const plugin_line_t *m) {
    layer_transform_string_dup_n(err, m->text, m->len);
    return false;
}

static strata_plugin_types_entry_header_t new_header(const char *name, strata_plugin_types_entry_kind_t kind,
                                                     uint64_t size) {
    strata_plugin_types_entry_header_t h = {0};
    layer_transform_string_dup(&h.path, name);
    h.kind = kind;
    h.size = size;
    h.mode = 0644;
    return h;
}

static strata_plugin_types_replacement_t escaping_file(void) {
    strata_plugin_types_replacement_t r = {0};
    r.header = new_header(path, STRATA_PLUGIN_TYPES_ENTRY_KIND_FILE, sizeof content - 1);
    r.content.len = sizeof content - 1;
    r.content.ptr = malloc(r.content.len);
    memcpy(r.content.ptr, content, r.content.len);
    return r;
}

bool exports_strata_plugin_layer_transformer_begin(strata_plugin_types_settings_t *settings,
                                                   strata_plugin_types_layer_info_t *layer,
                                                   string_t *err) {
    plugin_line_t problem = {0};
    strcpy(via, "rewrite");
    free(path);
    path = plugin_strndup((const uint8_t *)"../escaped-by-plugin", 20);
    done = false;
    for (size_t i = 0; problem.len == 0 && i < settings->len; i++) {
        string_t *key = &settings->ptr[i].f0, *value = &settings->ptr[i].f1;
        if (plugin_str_eq(key->ptr, key->len, "via")) {
            if (plugin_str_eq(value->ptr, value->len, "rewrite") || plugin_str_eq(value->ptr, value->len, "replace") ||
                plugin_str_eq(value->ptr, value->len, "hardlink") || plugin_str_eq(value->ptr, value->len, "finish")) {
                memcpy(via, value->ptr, value->len);
                via[value->len] = 0;
            } else {
                plugin_add_str(&problem, "setting `via`: rewrite, replace, hardlink or finish");
            }
        } else if (plugin_str_eq(key->ptr, key->len, "path")) {
            free(path);
            path = plugin_strndup(value->ptr, value->len);
        } else {
            plugin_add_str(&problem, "unknown setting `");
            plugin_add(&problem, (const char *)key->ptr, key->len);
            plugin_add_str(&problem, "` (escape takes via, path)");
        }
    }
    strata_plugin_types_settings_free(settings);
    strata_plugin_types_layer_info_free(layer);
    return problem.len == 0 || fail(err, &problem);
}

bool exports_strata_plugin_layer_transformer_entries(
    exports_strata_plugin_layer_transformer_list_entry_header_t *batch,
    exports_strata_plugin_layer_transformer_list_decision_t *ret, string_t *err) {
    (void)err;
    size_t n = batch->len;
    strata_plugin_types_decision_t *d = calloc(n ? n : 1, sizeof *d);
    if (d == NULL) __builtin_trap();
    for (size_t i = 0; i < n; i++) d[i].tag = STRATA_PLUGIN_TYPES_DECISION_KEEP;
    if (n > 0 && !done && strcmp(via, "finish") != 0) {
        done = true;
        if (strcmp(via, "rewrite") == 0) {
            d[0].tag = STRATA_PLUGIN_TYPES_DECISION_REWRITE;
            d[0].val.rewrite = batch->ptr[0];
            layer_transform_string_dup(&d[0].val.rewrite.path, path);
            // The old path's memory is freed with the rest of the batch.
            batch->ptr[0] = (strata_plugin_types_entry_header_t){.path = batch->ptr[0].path};
        } else if (strcmp(via, "replace") == 0) {
            d[0].tag = STRATA_PLUGIN_TYPES_DECISION_REPLACE;
            d[0].val.replace = escaping_file();
        } else {
            d[0].tag = STRATA_PLUGIN_TYPES_DECISION_REPLACE;
            d[0].val.replace.header = new_header("escape-link", STRATA_PLUGIN_TYPES_ENTRY_KIND_HARDLINK, 0);
            d[0].val.replace.header.link_target.is_some = true;
            layer_transform_string_dup(&d[0].val.replace.header.link_target.val, path);
        }
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
    if (strcmp(via, "finish") == 0) {
        ret->ptr = malloc(sizeof *ret->ptr);
        ret->ptr[0] = escaping_file();
        ret->len = 1;
    }
    return true;
}
