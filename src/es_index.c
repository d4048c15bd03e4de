/*
 * es_index: the indices themselves (see es.h): creating one with
 * txidsync's mapping and owner, reading what it holds and who feeds it,
 * claiming, deleting and flushing it.  The requests go through es_call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es.h"
#include "json.h"
#include "log.h"

#define ADMIN_RESPONSE_MAX ((size_t)4 << 20)

/* The request path "/<index><suffix>", index escaped, into path.
 * Returns 0, or -1 with err filled. */
static int index_path(EsClient *c, const char *index, const char *suffix, char *path,
                      size_t pathlen, char *err, size_t errlen)
{
    char *ix = es_escape(c, index);
    if (!ix)
        return err_printf(err, errlen, "out of memory");
    int n = snprintf(path, pathlen, "/%s%s", ix, suffix);
    free(ix);
    if (n < 0 || (size_t)n >= pathlen)
        return err_printf(err, errlen, "index name too long: %.100s", index);
    return 0;
}

/* The value under the first member of a response ({"<real index>": X}),
 * at path below X, or NULL. */
static yajl_val first_member_at(yajl_val v, const char **path, yajl_type type)
{
    if (!YAJL_IS_OBJECT(v) || YAJL_GET_OBJECT(v)->len < 1)
        return NULL;
    return yajl_tree_get(YAJL_GET_OBJECT(v)->values[0], path, type);
}

/* GETs path into a parsed tree (*out, freed by the caller).  A 404 is
 * ES_OK with *out NULL. */
static EsResult get_tree(EsClient *c, const char *path, yajl_val *out, char *err, size_t errlen)
{
    Buf resp;
    buf_init(&resp, ADMIN_RESPONSE_MAX);
    long status = 0;
    *out = NULL;
    EsResult r = es_call(c, "GET", path, NULL, &status, &resp, err, errlen);
    if (r != ES_OK && status == 404)
        r = ES_OK;
    else if (r == ES_OK && !(*out = yajl_tree_parse(buf_str(&resp), NULL, 0))) {
        err_printf(err, errlen, "GET %s%s: response not understood", es_client_url(c), path);
        r = ES_FAIL;
    }
    buf_free(&resp);
    return r;
}

/* GETs "/<index><suffix>" into a parsed tree (as get_tree); path gets
 * the request path, for messages and a later PUT. */
static EsResult get_index(EsClient *c, const char *index, const char *suffix, char *path,
                          size_t pathlen, yajl_val *out, char *err, size_t errlen)
{
    *out = NULL;
    if (index_path(c, index, suffix, path, pathlen, err, errlen) < 0)
        return ES_FAIL;
    return get_tree(c, path, out, err, errlen);
}

/* The document count of an existing index, refreshed first when it
 * looks empty (recent writes are not counted before a refresh). */
static EsResult count_documents(EsClient *c, const char *index, long long *n, char *err,
                                size_t errlen)
{
    char path[1024];
    static const char *count_path[] = {"count", NULL};
    for (int pass = 0; pass < 2; pass++) {
        yajl_val v = NULL;
        EsResult r = get_index(c, index, "/_count", path, sizeof(path), &v, err, errlen);
        if (r != ES_OK)
            return r;
        yajl_val cnt = v ? yajl_tree_get(v, count_path, yajl_t_number) : NULL;
        *n = cnt && YAJL_IS_INTEGER(cnt) ? YAJL_GET_INTEGER(cnt) : -1;
        yajl_tree_free(v);
        if (*n != 0 || pass == 1)
            return ES_OK;
        r = es_refresh(c, index, err, errlen);
        if (r != ES_OK)
            return r;
    }
    return ES_OK;
}

/* Reads _meta.txidsync.owner and the translog durability of an index. */
static EsResult read_owner_durability(EsClient *c, const char *index, EsIndexInfo *info, char *err,
                                      size_t errlen)
{
    char path[1024];
    static const char *owner_path[] = {"mappings", "_meta", "txidsync", "owner", NULL};
    static const char *set_path[] = {"settings", "index", "translog", "durability", NULL};
    static const char *def_path[] = {"defaults", "index", "translog", "durability", NULL};
    yajl_val v = NULL;
    EsResult r = get_index(c, index, "/_mapping", path, sizeof(path), &v, err, errlen);
    if (r != ES_OK)
        return r;
    yajl_val o = first_member_at(v, owner_path, yajl_t_string);
    snprintf(info->owner, sizeof(info->owner), "%s", o ? YAJL_GET_STRING(o) : "");
    yajl_tree_free(v);
    r = get_index(c, index, "/_settings?include_defaults=true", path, sizeof(path), &v, err,
                  errlen);
    if (r != ES_OK)
        return r;
    yajl_val d = first_member_at(v, set_path, yajl_t_string);
    if (!d)
        d = first_member_at(v, def_path, yajl_t_string);
    snprintf(info->durability, sizeof(info->durability), "%s", d ? YAJL_GET_STRING(d) : "");
    yajl_tree_free(v);
    return ES_OK;
}

EsResult es_index_info(EsClient *c, const char *index, EsIndexInfo *info, char *err, size_t errlen)
{
    memset(info, 0, sizeof(*info));
    info->documents = -1;
    EsResult r = es_index_exists(c, index, &info->exists, err, errlen);
    if (r != ES_OK || !info->exists)
        return r;
    r = count_documents(c, index, &info->documents, err, errlen);
    if (r == ES_OK)
        r = read_owner_durability(c, index, info, err, errlen);
    return r;
}

/* Writes {"txidsync":{"owner":owner}} members into an open _meta map. */
static bool gen_owner(yajl_gen g, const char *owner)
{
    return json_gen_cstr(g, "txidsync") && yajl_gen_map_open(g) == yajl_gen_status_ok &&
           json_gen_cstr(g, "owner") && json_gen_cstr(g, owner) &&
           yajl_gen_map_close(g) == yajl_gen_status_ok;
}

/* Writes "name": {"type": type}, searchable or (indexed false) only kept
 * in _source. */
static bool gen_field(yajl_gen g, const char *name, const char *type, bool indexed)
{
    return json_gen_cstr(g, name) && yajl_gen_map_open(g) == yajl_gen_status_ok &&
           json_gen_cstr(g, "type") && json_gen_cstr(g, type) &&
           (indexed ||
            (json_gen_cstr(g, "index") && yajl_gen_bool(g, 0) == yajl_gen_status_ok &&
             json_gen_cstr(g, "doc_values") && yajl_gen_bool(g, 0) == yajl_gen_status_ok)) &&
           yajl_gen_map_close(g) == yajl_gen_status_ok;
}

/* Writes the mapping of the metadata member: "txidsync": {...}.  The
 * table is the same in every document of an index: kept, not indexed. */
static bool gen_meta_mapping(yajl_gen g)
{
    return json_gen_cstr(g, "txidsync") && yajl_gen_map_open(g) == yajl_gen_status_ok &&
           json_gen_cstr(g, "properties") && yajl_gen_map_open(g) == yajl_gen_status_ok &&
           gen_field(g, "key", "keyword", true) && gen_field(g, "table", "keyword", false) &&
           gen_field(g, "txid", "long", true) && gen_field(g, "version", "long", true) &&
           yajl_gen_map_close(g) == yajl_gen_status_ok &&
           yajl_gen_map_close(g) == yajl_gen_status_ok;
}

/* Writes the members of object obj (NULL: none) but skip and skip2. */
static bool gen_members(yajl_gen g, yajl_val obj, const char *skip, const char *skip2)
{
    bool ok = true;
    for (size_t i = 0; ok && obj && YAJL_IS_OBJECT(obj) && i < YAJL_GET_OBJECT(obj)->len; i++) {
        const char *k = YAJL_GET_OBJECT(obj)->keys[i];
        if ((skip && !strcmp(k, skip)) || (skip2 && !strcmp(k, skip2)))
            continue;
        ok = json_gen_cstr(g, k) && json_gen_tree(g, YAJL_GET_OBJECT(obj)->values[i], 2);
    }
    return ok;
}

/* Whether the user's settings set the number of replicas (flat, dotted
 * or nested under "index"). */
static bool sets_replicas(yajl_val settings)
{
    static const char *flat[] = {"number_of_replicas", NULL};
    static const char *dotted[] = {"index.number_of_replicas", NULL};
    static const char *nested[] = {"index", "number_of_replicas", NULL};
    return settings && (yajl_tree_get(settings, flat, yajl_t_any) ||
                        yajl_tree_get(settings, dotted, yajl_t_any) ||
                        yajl_tree_get(settings, nested, yajl_t_any));
}

/* Writes "settings": the user's, plus shards and replicas. */
static bool gen_settings(yajl_gen g, yajl_val settings, int replicas, bool state)
{
    char rep[16];
    snprintf(rep, sizeof(rep), "%d", replicas);
    return json_gen_cstr(g, "settings") && yajl_gen_map_open(g) == yajl_gen_status_ok &&
           gen_members(g, settings, NULL, NULL) &&
           (!state || (json_gen_cstr(g, "number_of_shards") &&
                       yajl_gen_number(g, "1", 1) == yajl_gen_status_ok)) &&
           (sets_replicas(settings) ||
            (json_gen_cstr(g, "number_of_replicas") &&
             yajl_gen_number(g, rep, strlen(rep)) == yajl_gen_status_ok)) &&
           yajl_gen_map_close(g) == yajl_gen_status_ok;
}

/* Writes "mappings": the user's, plus the owner and the metadata field. */
static bool gen_mappings(yajl_gen g, yajl_val mappings, bool state, const char *owner)
{
    static const char *meta_path[] = {"_meta", NULL};
    static const char *props_path[] = {"properties", NULL};
    yajl_val meta = mappings ? yajl_tree_get(mappings, meta_path, yajl_t_object) : NULL;
    yajl_val props = mappings ? yajl_tree_get(mappings, props_path, yajl_t_object) : NULL;
    bool ok = json_gen_cstr(g, "mappings") && yajl_gen_map_open(g) == yajl_gen_status_ok &&
              gen_members(g, mappings, "_meta", "properties");
    if (ok && state)
        ok = json_gen_cstr(g, "dynamic") && yajl_gen_bool(g, 0) == yajl_gen_status_ok;
    if (ok && (owner || meta))
        ok = json_gen_cstr(g, "_meta") && yajl_gen_map_open(g) == yajl_gen_status_ok &&
             gen_members(g, meta, "txidsync", NULL) && (!owner || gen_owner(g, owner)) &&
             yajl_gen_map_close(g) == yajl_gen_status_ok;
    return ok && json_gen_cstr(g, "properties") && yajl_gen_map_open(g) == yajl_gen_status_ok &&
           gen_members(g, props, "txidsync", NULL) && (state || gen_meta_mapping(g)) &&
           yajl_gen_map_close(g) == yajl_gen_status_ok &&
           yajl_gen_map_close(g) == yajl_gen_status_ok;
}

/* The body that creates a data index (state false) or a state index,
 * over the user's body (NULL: none). */
static int create_body(Buf *out, int replicas, bool state, const char *owner, yajl_val body)
{
    static const char *settings_path[] = {"settings", NULL};
    static const char *mappings_path[] = {"mappings", NULL};
    static const char *aliases_path[] = {"aliases", NULL};
    yajl_val settings = body ? yajl_tree_get(body, settings_path, yajl_t_object) : NULL;
    yajl_val mappings = body ? yajl_tree_get(body, mappings_path, yajl_t_object) : NULL;
    yajl_val aliases = body ? yajl_tree_get(body, aliases_path, yajl_t_object) : NULL;
    JsonGen jg;
    if (json_gen_open(&jg, out) != 0)
        return -1;
    yajl_gen g = jg.g;
    bool ok = yajl_gen_map_open(g) == yajl_gen_status_ok &&
              gen_settings(g, settings, replicas, state) && gen_mappings(g, mappings, state, owner);
    if (ok && aliases)
        ok = json_gen_cstr(g, "aliases") && json_gen_tree(g, aliases, 1);
    ok = ok && yajl_gen_map_close(g) == yajl_gen_status_ok;
    return json_gen_close(&jg, ok);
}

EsResult es_ensure_index(EsClient *c, const char *index, int replicas, bool state,
                         const char *owner, yajl_val body, char *err, size_t errlen)
{
    bool exists = false;
    EsResult r = es_index_exists(c, index, &exists, err, errlen);
    if (r != ES_OK || exists)
        return r;
    char path[1024];
    Buf text, resp;
    buf_init(&text, ADMIN_RESPONSE_MAX);
    buf_init(&resp, ADMIN_RESPONSE_MAX);
    long status = 0;
    if (index_path(c, index, "", path, sizeof(path), err, errlen) < 0) {
        r = ES_FAIL;
    } else if (create_body(&text, replicas, state, owner, body) != 0) {
        err_printf(err, errlen, "out of memory");
        r = ES_FAIL;
    } else {
        r = es_call(c, "PUT", path, buf_str(&text), &status, &resp, err, errlen);
        /* Another process may have created it in between. */
        if (r == ES_FAIL && status == 400 &&
            strstr(buf_str(&resp), "resource_already_exists_exception"))
            r = ES_OK;
    }
    buf_free(&text);
    buf_free(&resp);
    return r;
}

EsResult es_claim_index(EsClient *c, const char *index, const char *owner, char *err, size_t errlen)
{
    static const char *meta_path[] = {"mappings", "_meta", NULL};
    char path[1024];
    yajl_val v = NULL;
    EsResult r = get_index(c, index, "/_mapping", path, sizeof(path), &v, err, errlen);
    if (r != ES_OK)
        return r;
    yajl_val meta = first_member_at(v, meta_path, yajl_t_object);
    Buf body, resp;
    buf_init(&body, ADMIN_RESPONSE_MAX);
    buf_init(&resp, ADMIN_RESPONSE_MAX);
    JsonGen jg;
    bool ok = json_gen_open(&jg, &body) == 0;
    if (ok) {
        yajl_gen g = jg.g;
        ok = yajl_gen_map_open(g) == yajl_gen_status_ok && json_gen_cstr(g, "_meta") &&
             yajl_gen_map_open(g) == yajl_gen_status_ok;
        for (size_t i = 0; ok && meta && i < YAJL_GET_OBJECT(meta)->len; i++) {
            if (strcmp(YAJL_GET_OBJECT(meta)->keys[i], "txidsync") != 0)
                ok = json_gen_cstr(g, YAJL_GET_OBJECT(meta)->keys[i]) &&
                     json_gen_tree(g, YAJL_GET_OBJECT(meta)->values[i], 2);
        }
        ok = ok && gen_owner(g, owner) && yajl_gen_map_close(g) == yajl_gen_status_ok &&
             json_gen_cstr(g, "properties") && yajl_gen_map_open(g) == yajl_gen_status_ok &&
             gen_meta_mapping(g) && yajl_gen_map_close(g) == yajl_gen_status_ok &&
             yajl_gen_map_close(g) == yajl_gen_status_ok;
        ok = json_gen_close(&jg, ok) == 0;
    }
    yajl_tree_free(v);
    if (!ok) {
        err_printf(err, errlen, "cannot build the _meta of index %s", index);
        r = ES_FAIL;
    } else {
        r = es_call(c, "PUT", path, buf_str(&body), NULL, &resp, err, errlen);
    }
    buf_free(&body);
    buf_free(&resp);
    return r;
}

EsResult es_delete_index(EsClient *c, const char *index, bool *existed, char *err, size_t errlen)
{
    char path[1024];
    Buf resp;
    long status = 0;
    *existed = false;
    if (index_path(c, index, "", path, sizeof(path), err, errlen) < 0)
        return ES_FAIL;
    buf_init(&resp, ADMIN_RESPONSE_MAX);
    EsResult r = es_call(c, "DELETE", path, NULL, &status, &resp, err, errlen);
    buf_free(&resp);
    if (r != ES_OK && status == 404)
        return ES_OK;
    *existed = r == ES_OK;
    return r;
}

EsResult es_flush(EsClient *c, const char *index, char *err, size_t errlen)
{
    char path[1024];
    Buf resp;
    if (index_path(c, index, "/_flush", path, sizeof(path), err, errlen) < 0)
        return ES_FAIL;
    buf_init(&resp, ADMIN_RESPONSE_MAX);
    EsResult r = es_call(c, "POST", path, NULL, NULL, &resp, err, errlen);
    buf_free(&resp);
    return r;
}
