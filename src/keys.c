/*
 * keys: canonical key text and document ids (see keys.h).  SHA-256 comes
 * from OpenSSL's libcrypto.
 */
#include "keys.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

int keys_join(Buf *out, const char *const *parts, size_t n)
{
    if (n == 1)
        return buf_puts(out, parts[0]);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && buf_append(out, ",", 1) < 0)
            return -1;
        for (const char *p = parts[i]; *p; p++) {
            int rc = *p == '%'   ? buf_puts(out, "%25")
                     : *p == ',' ? buf_puts(out, "%2C")
                                 : buf_append(out, p, 1);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

/* Decodes the escape at p ("%25" or "%2C") into *c.  Returns 0 or -1. */
static int unescape(const char *p, char *c)
{
    if (p[1] == '2' && p[2] == '5') {
        *c = '%';
        return 0;
    }
    if (p[1] == '2' && (p[2] == 'C' || p[2] == 'c')) {
        *c = ',';
        return 0;
    }
    return -1;
}

int keys_split(const char *text, size_t n, Buf *out, size_t *starts)
{
    if (n == 0)
        return -1;
    if (n == 1) {
        starts[0] = out->len;
        return buf_append(out, text, strlen(text) + 1);
    }
    size_t k = 0;
    starts[k++] = out->len;
    for (const char *p = text;; p++) {
        if (*p == '\0' || *p == ',') {
            if (buf_append(out, "", 1) < 0)
                return -1;
            if (*p == '\0')
                break;
            if (k == n)
                return -1;
            starts[k++] = out->len;
            continue;
        }
        char c = *p;
        if (c == '%') {
            if (unescape(p, &c) < 0)
                return -1;
            p += 2;
        }
        if (buf_append(out, &c, 1) < 0)
            return -1;
    }
    return k == n ? 0 : -1;
}

bool keys_id_hashed(const char *text)
{
    size_t len = strlen(text);
    return len == 0 || len > KEYS_ID_MAX ||
           strncmp(text, KEYS_HASH_PREFIX, sizeof(KEYS_HASH_PREFIX) - 1) == 0;
}

const char *keys_id(const char *text, char id[KEYS_ID_SIZE])
{
    if (!keys_id_hashed(text)) {
        memcpy(id, text, strlen(text) + 1);
        return id;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_Digest(text, strlen(text), md, &md_len, EVP_sha256(), NULL);
    size_t off = (size_t)snprintf(id, KEYS_ID_SIZE, "%s", KEYS_HASH_PREFIX);
    for (unsigned int i = 0; i < md_len && off + 2 < KEYS_ID_SIZE; i++)
        off += (size_t)snprintf(id + off, KEYS_ID_SIZE - off, "%02x", md[i]);
    return id;
}
