/*
 * es_auth: how the client reaches a secured cluster.  Turns the sink URL
 * and the EsAuth options (es.h) into what every transfer sets: the URL
 * without credentials, basic-auth user and password, an API-key header,
 * the CA, client certificate and key, or no verification at all.
 *
 * Secrets come from files, the environment or the URL's userinfo; none
 * is ever part of a message, and a malformed URL is refused without
 * echoing it (its userinfo may hold a password).  The private half of
 * es.c, used by no other file.
 */
#ifndef TXIDSYNC_ES_AUTH_H
#define TXIDSYNC_ES_AUTH_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "es.h"

typedef struct EsSecurity {
    char *base;        /* scheme://host:port[/prefix] without credentials or trailing '/' */
    char *user;        /* NULL: no basic auth */
    char *password;    /* with user; wiped when freed */
    char *auth_header; /* "Authorization: ApiKey ...", NULL: none; wiped when freed */
    char *ca_file, *cert_file, *key_file; /* NULL: libcurl's defaults / none */
    bool insecure;                        /* no certificate or host name verification */
} EsSecurity;

/* Fills *s from url and auth (NULL: none).  Returns 0, or -1 with err
 * filled (naming the option at fault, never a secret). */
int es_security_load(const char *url, const EsAuth *auth, EsSecurity *s, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Sets the security options of *s on the transfer h. */
void es_security_apply(const EsSecurity *s, CURL *h);

/* Adds the API-key header (if any) to list; returns the list, NULL when
 * out of memory. */
struct curl_slist *es_security_headers(const EsSecurity *s, struct curl_slist *list);

void es_security_free(EsSecurity *s);

#endif
