// fresh: a strata tag filter that decides from what the registry says
// about each tag, asked through the host's `registry` functions: it keeps
// a tag whose image was created at or after the setting `since` (RFC 3339,
// UTC, as configs write it), that carries every label given as a setting
// `label` (`KEY=VALUE`), and, when the setting `platform` is given
// (`os/arch[/variant]`), that has that platform. A dropped tag's reason
// names the fact that decided, with the tag's digest.

#include "tag_filter.h"
#include "plugin.h"

typedef tag_filter_string_t string_t;

static bool fail(string_t *err, const plugin_line_t *message) {
    tag_filter_string_dup_n(err, message->text, message->len);
    return false;
}

static bool eq(const string_t *a, const string_t *b) {
    return a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0;
}

// A question to the registry failed: the whole filter fails with it.
static bool asked(plugin_line_t *problem, const char *what, const string_t *tag, string_t *answer) {
    plugin_add_str(problem, what);
    plugin_add_str(problem, " of ");
    plugin_add(problem, (const char *)tag->ptr, tag->len);
    plugin_add_str(problem, ": ");
    plugin_add(problem, (const char *)answer->ptr, answer->len);
    tag_filter_string_free(answer);
    return false;
}

typedef struct {
    const string_t *since, *platform;
    const tag_filter_tuple2_string_string_t *settings;
    size_t nsettings;
} rules_t;

// Decides on one tag; false when the registry could not answer (problem
// says why). On a drop, `why` holds the reason.
static bool decide(const rules_t *r, string_t *tag, bool *keep, plugin_line_t *why, plugin_line_t *problem) {
    string_t digest, err;
    if (!strata_plugin_registry_digest(tag, &digest, &err)) return asked(problem, "digest", tag, &err);
    *keep = true;

    tag_filter_option_string_t created;
    if (!strata_plugin_registry_created(tag, &created, &err)) {
        tag_filter_string_free(&digest);
        return asked(problem, "created", tag, &err);
    }
    if (r->since != NULL) {
        size_t n = created.is_some ? created.val.len : 0;
        size_t m = r->since->len < n ? r->since->len : n;
        int order = created.is_some ? memcmp(created.val.ptr, r->since->ptr, m) : -1;
        if (order == 0 && n < r->since->len) order = -1;
        if (order < 0) {
            *keep = false;
            if (created.is_some) {
                plugin_add_str(why, "created ");
                plugin_add(why, (const char *)created.val.ptr, created.val.len);
                plugin_add_str(why, ", before ");
                plugin_add(why, (const char *)r->since->ptr, r->since->len);
            } else {
                plugin_add_str(why, "no creation time");
            }
        }
    }
    tag_filter_option_string_free(&created);

    if (*keep) {
        tag_filter_list_tuple2_string_string_t labels;
        if (!strata_plugin_registry_labels(tag, &labels, &err)) {
            tag_filter_string_free(&digest);
            return asked(problem, "labels", tag, &err);
        }
        for (size_t i = 0; *keep && i < r->nsettings; i++) {
            const string_t *key = &r->settings[i].f0, *value = &r->settings[i].f1;
            if (!plugin_str_eq(key->ptr, key->len, "label")) continue;
            const uint8_t *cut = memchr(value->ptr, '=', value->len);
            size_t klen = cut ? (size_t)(cut - value->ptr) : value->len;
            bool found = false;
            for (size_t j = 0; !found && j < labels.len; j++) {
                const string_t *k = &labels.ptr[j].f0, *v = &labels.ptr[j].f1;
                found = k->len == klen && memcmp(k->ptr, value->ptr, klen) == 0 &&
                        (cut == NULL || (v->len == value->len - klen - 1 &&
                                         memcmp(v->ptr, cut + 1, v->len) == 0));
            }
            if (!found) {
                *keep = false;
                plugin_add_str(why, "no label ");
                plugin_add(why, (const char *)value->ptr, value->len);
            }
        }
        tag_filter_list_tuple2_string_string_free(&labels);
    }

    if (*keep && r->platform != NULL) {
        tag_filter_list_string_t platforms;
        if (!strata_plugin_registry_platforms(tag, &platforms, &err)) {
            tag_filter_string_free(&digest);
            return asked(problem, "platforms", tag, &err);
        }
        bool found = false;
        for (size_t j = 0; !found && j < platforms.len; j++) found = eq(&platforms.ptr[j], r->platform);
        if (!found) {
            *keep = false;
            plugin_add_str(why, "not for ");
            plugin_add(why, (const char *)r->platform->ptr, r->platform->len);
            plugin_add_str(why, " (");
            for (size_t j = 0; j < platforms.len; j++) {
                if (j) plugin_add_str(why, ", ");
                plugin_add(why, (const char *)platforms.ptr[j].ptr, platforms.ptr[j].len);
            }
            plugin_add_str(why, ")");
        }
        tag_filter_list_string_free(&platforms);
    }
    if (!*keep) {
        plugin_add_str(why, " [");
        plugin_add(why, (const char *)digest.ptr, digest.len < 19 ? digest.len : 19);
        plugin_add_str(why, "]");
    }
    tag_filter_string_free(&digest);
    return true;
}

bool exports_strata_plugin_tag_filterer_filter(tag_filter_string_t *repository, tag_filter_list_string_t *tags,
                                               exports_strata_plugin_tag_filterer_settings_t *settings,
                                               exports_strata_plugin_tag_filterer_list_verdict_t *ret,
                                               tag_filter_string_t *err) {
    plugin_line_t problem = {0};
    rules_t rules = {.settings = settings->ptr, .nsettings = settings->len};
    for (size_t i = 0; problem.len == 0 && i < settings->len; i++) {
        const string_t *key = &settings->ptr[i].f0, *value = &settings->ptr[i].f1;
        if (plugin_str_eq(key->ptr, key->len, "since")) {
            rules.since = value;
        } else if (plugin_str_eq(key->ptr, key->len, "platform")) {
            rules.platform = value;
        } else if (!plugin_str_eq(key->ptr, key->len, "label")) {
            plugin_add_str(&problem, "unknown setting `");
            plugin_add(&problem, (const char *)key->ptr, key->len);
            plugin_add_str(&problem, "` (fresh takes since, label, platform)");
        }
    }
    strata_plugin_types_verdict_t *verdicts = NULL;
    if (problem.len == 0) {
        verdicts = calloc(tags->len ? tags->len : 1, sizeof *verdicts);
        if (verdicts == NULL) plugin_add_str(&problem, "out of memory");
    }
    size_t kept = 0;
    for (size_t i = 0; problem.len == 0 && i < tags->len; i++) {
        plugin_line_t why = {0};
        bool keep = false;
        if (!decide(&rules, &tags->ptr[i], &keep, &why, &problem)) break;
        verdicts[i].tag = tags->ptr[i];
        tags->ptr[i] = (string_t){0};
        verdicts[i].keep = keep;
        kept += keep;
        if (!keep) {
            verdicts[i].reason.is_some = true;
            tag_filter_string_dup_n(&verdicts[i].reason.val, why.text, why.len);
        }
    }
    if (problem.len == 0) {
        plugin_line_t line = {0};
        plugin_add(&line, (const char *)repository->ptr, repository->len);
        plugin_add_str(&line, ": kept ");
        plugin_add_u64(&line, kept);
        plugin_add_str(&line, " of ");
        plugin_add_u64(&line, tags->len);
        string_t message = {(uint8_t *)line.text, line.len};
        strata_plugin_log_info(&message);
    }
    size_t count = tags->len;
    tag_filter_list_string_free(tags);
    tag_filter_string_free(repository);
    exports_strata_plugin_tag_filterer_settings_free(settings);
    if (problem.len != 0) {
        if (verdicts != NULL) {
            for (size_t i = 0; i < count; i++) strata_plugin_types_verdict_free(&verdicts[i]);
            free(verdicts);
        }
        return fail(err, &problem);
    }
    ret->ptr = verdicts;
    ret->len = count;
    return true;
}
