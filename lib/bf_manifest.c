/* bf_manifest: the complete-status body (see bf_manifest.h). */
#include "bf_manifest.h"
#include "bf_oo.h"

#include <apr_strings.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

const char *bf_manifest_file_url(apr_pool_t *p, const char *base_url,
                                 const char *job_id, const char *name)
{
    return apr_pstrcat(p, base_url, "/bulkfiles/", job_id, "/", name, NULL);
}

static int by_type_part(const void *a, const void *b)
{
    const bf_manifest_file_t *x = *(bf_manifest_file_t *const *)a;
    const bf_manifest_file_t *y = *(bf_manifest_file_t *const *)b;
    int c = strcmp(x->type ? x->type : "", y->type ? y->type : "");

    if (c)
        return c;
    if (x->part != y->part)
        return x->part < y->part ? -1 : 1;
    return strcmp(x->name, y->name);
}

const char *bf_manifest_json(apr_pool_t *p, const bf_manifest_t *m)
{
    json_object *root = json_object_new_object();
    json_object *output = json_object_new_array();
    json_object *deleted = json_object_new_array();
    json_object *error = json_object_new_array();
    const bf_manifest_file_t **sorted;
    const char *s;
    int i, n = m->files ? m->files->nelts : 0;

    sorted = apr_pcalloc(p, sizeof(*sorted) * (size_t)(n + 1));
    for (i = 0; i < n; i++)
        sorted[i] = &APR_ARRAY_IDX(m->files, i, bf_manifest_file_t);
    if (n > 1)
        qsort(sorted, (size_t)n, sizeof(*sorted), by_type_part);

    json_object_object_add(root, "transactionTime",
                           json_object_new_string(m->transaction_time));
    json_object_object_add(root, "request", json_object_new_string(m->request));
    json_object_object_add(root, "requiresAccessToken",
                           json_object_new_boolean(m->requires_token));
    if (m->organized_by)
        json_object_object_add(root, "outputOrganizedBy",
                               json_object_new_string(m->organized_by));
    for (i = 0; i < n; i++) {
        const bf_manifest_file_t *f = sorted[i];
        json_object *item = json_object_new_object(), *to = output;

        const char *type = f->type;

        if (strcmp(f->kind, "deleted") == 0) {
            to = deleted;
            type = "Bundle"; /* R54: transaction Bundles of DELETEs */
        } else if (strcmp(f->kind, "error") == 0) {
            to = error;
            type = "OperationOutcome"; /* R56 */
        } else if (m->organized_by) {
            type = NULL; /* R53: organized items SHALL NOT have type */
        }
        if (type)
            json_object_object_add(item, "type", json_object_new_string(type));
        json_object_object_add(item, "url",
                               json_object_new_string(bf_manifest_file_url(
                                   p, m->base_url, m->job_id, f->name)));
        if (f->continues_in && to == output)
            json_object_object_add(
                item, "continuesInFile",
                json_object_new_string(bf_manifest_file_url(
                    p, m->base_url, m->job_id, f->continues_in)));
        json_object_object_add(item, "count", json_object_new_int64(f->count));
        json_object_array_add(to, item);
    }
    json_object_object_add(root, "output", output);
    if (json_object_array_length(deleted) > 0)
        json_object_object_add(root, "deleted", deleted);
    else
        json_object_put(deleted);
    json_object_object_add(root, "error", error);
    if (m->next_url) {
        json_object *link = json_object_new_array(),
                    *l = json_object_new_object();

        json_object_object_add(l, "relation", json_object_new_string("next"));
        json_object_object_add(l, "url", json_object_new_string(m->next_url));
        json_object_array_add(link, l);
        json_object_object_add(root, "link", link);
    }
    s = bf_json_to_pool(p, root);
    json_object_put(root);
    return s;
}
