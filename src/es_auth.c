/*
 * es_auth: the sink URL's credentials and the TLS options (see
 * es_auth.h).
 */
#include "es_auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define SECRET_MAX 4096

/* Frees a string that may hold a secret, wiping it first. */
static void wipe(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* Reads the secret in the file path (what --flag names) into *out,
 * without the line ends around it.  A file others may read is worth a
 * warning.  Returns 0, or -1 with err filled. */
static int read_secret(const char *flag, const char *path, char **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return err_printf(err, errlen, "--%s: cannot read %s: %s", flag, path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        log_warn("--%s: %s may be read by other users (chmod 600 it)", flag, path);
    char buf[SECRET_MAX + 2];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    bool failed = ferror(f);
    fclose(f);
    if (failed || n > SECRET_MAX) {
        explicit_bzero(buf, sizeof(buf));
        return err_printf(err, errlen, "--%s: %s: %s", flag, path,
                          failed ? "read error" : "longer than 4096 bytes");
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    *out = n ? strdup(buf) : NULL;
    explicit_bzero(buf, sizeof(buf));
    if (!n)
        return err_printf(err, errlen, "--%s: %s is empty", flag, path);
    return *out ? 0 : err_printf(err, errlen, "out of memory");
}

/* Whether text is given (neither NULL nor ""). */
static bool given(const char *text)
{
    return text && *text;
}

/* Copies an optional file name after checking it can be read. */
static int take_file(const char *flag, const char *path, char **out, char *err, size_t errlen)
{
    if (!given(path))
        return 0;
    if (access(path, R_OK) != 0)
        return err_printf(err, errlen, "--%s: cannot read %s: %s", flag, path, strerror(errno));
    *out = strdup(path);
    return *out ? 0 : err_printf(err, errlen, "out of memory");
}

/* The URL's authority (between "://" and the path) holds more than one
 * '@': a password with a raw '@', which no parser reads as meant. */
static bool ambiguous_userinfo(const char *url)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    size_t len = strcspn(host, "/?#");
    const char *at = memchr(host, '@', len);
    return at && memchr(at + 1, '@', len - (size_t)(at + 1 - host));
}

/* Splits url into s->base and the credentials it carries (percent-
 * decoded) into *user and *password.  Messages never quote the URL. */
static int parse_url(const char *url, EsSecurity *s, char **user, char **password, char *err,
                     size_t errlen)
{
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return err_printf(err, errlen, "sink url must start with http:// or https://");
    if (ambiguous_userinfo(url))
        return err_printf(err, errlen,
                          "the sink url's credentials hold a raw '@': percent-encode it as %%40, "
                          "or better give --es-user and --es-password-file");
    CURLU *u = curl_url();
    if (!u)
        return err_printf(err, errlen, "out of memory");
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, 0);
    char *base = NULL;
    if (rc == CURLUE_OK) {
        curl_url_get(u, CURLUPART_USER, user, CURLU_URLDECODE);
        curl_url_get(u, CURLUPART_PASSWORD, password, CURLU_URLDECODE);
        curl_url_set(u, CURLUPART_USER, NULL, 0);
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
        rc = curl_url_get(u, CURLUPART_URL, &base, 0);
    }
    curl_url_cleanup(u);
    if (rc != CURLUE_OK)
        return err_printf(err, errlen,
                          "the sink url is not valid (%s); credentials in it must be "
                          "percent-encoded, or given with --es-user and --es-password-file",
                          curl_url_strerror(rc));
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        base[--n] = '\0';
    s->base = strdup(base);
    curl_free(base);
    return s->base ? 0 : err_printf(err, errlen, "out of memory");
}

/* Takes the password from auth (itself, or its file) or from the URL. */
static int choose_password(const EsAuth *a, char **url_password, EsSecurity *s, char *err,
                           size_t errlen)
{
    if (given(a->password) && given(a->password_file))
        return err_printf(err, errlen,
                          "TXIDSYNC_ES_PASSWORD and --es-password-file are both given: use one");
    if (given(a->password)) {
        s->password = strdup(a->password);
        return s->password ? 0 : err_printf(err, errlen, "out of memory");
    }
    if (given(a->password_file))
        return read_secret("es-password-file", a->password_file, &s->password, err, errlen);
    s->password = *url_password;
    *url_password = NULL;
    return 0;
}

/* The user and password: the options', or else the URL's. */
static int load_basic(const EsAuth *a, char **url_user, char **url_password, EsSecurity *s,
                      char *err, size_t errlen)
{
    bool url_has = given(*url_user) || given(*url_password);
    if (url_has && (given(a->user) || given(a->password) || given(a->password_file)))
        return err_printf(err, errlen,
                          "credentials both in the sink url and in --es-user/--es-password-file: "
                          "give them one way");
    if (!given(a->user)) {
        if (!url_has)
            return 0;
        s->user = *url_user ? *url_user : strdup("");
        *url_user = NULL;
        s->password = *url_password;
        *url_password = NULL;
        return s->user ? 0 : err_printf(err, errlen, "out of memory");
    }
    s->user = strdup(a->user);
    if (!s->user)
        return err_printf(err, errlen, "out of memory");
    if (choose_password(a, url_password, s, err, errlen) < 0)
        return -1;
    if (!s->password)
        return err_printf(err, errlen,
                          "--es-user %s has no password: give --es-password-file FILE or "
                          "TXIDSYNC_ES_PASSWORD",
                          a->user);
    return 0;
}

/* The API-key header: the key itself (environment) or from its file. */
static int load_api_key(const EsAuth *a, EsSecurity *s, char *err, size_t errlen)
{
    char *key = NULL;
    if (given(a->api_key) && given(a->api_key_file))
        return err_printf(err, errlen,
                          "TXIDSYNC_ES_API_KEY and --es-api-key-file are both given: use one");
    if (given(a->api_key_file)) {
        if (read_secret("es-api-key-file", a->api_key_file, &key, err, errlen) < 0)
            return -1;
    } else if (given(a->api_key)) {
        key = strdup(a->api_key);
        if (!key)
            return err_printf(err, errlen, "out of memory");
    } else {
        return 0;
    }
    if (s->user) {
        wipe(key);
        return err_printf(err, errlen,
                          "an API key and a user with password are both given: "
                          "use one");
    }
    size_t len = strlen(key) + sizeof("Authorization: ApiKey ");
    s->auth_header = malloc(len);
    if (s->auth_header)
        snprintf(s->auth_header, len, "Authorization: ApiKey %s", key);
    wipe(key);
    return s->auth_header ? 0 : err_printf(err, errlen, "out of memory");
}

int es_security_load(const char *url, const EsAuth *auth, EsSecurity *s, char *err, size_t errlen)
{
    static const EsAuth none;
    const EsAuth *a = auth ? auth : &none;
    char *url_user = NULL, *url_password = NULL;
    memset(s, 0, sizeof(*s));
    int rc = parse_url(url, s, &url_user, &url_password, err, errlen);
    if (rc == 0)
        rc = load_basic(a, &url_user, &url_password, s, err, errlen);
    wipe(url_user);
    wipe(url_password);
    if (rc == 0)
        rc = load_api_key(a, s, err, errlen);
    if (rc == 0)
        rc = take_file("es-ca-file", a->ca_file, &s->ca_file, err, errlen);
    if (rc == 0)
        rc = take_file("es-cert-file", a->cert_file, &s->cert_file, err, errlen);
    if (rc == 0)
        rc = take_file("es-key-file", a->key_file, &s->key_file, err, errlen);
    if (rc == 0 && s->key_file && !s->cert_file)
        rc = err_printf(err, errlen, "--es-key-file needs --es-cert-file");
    s->insecure = a->insecure;
    if (rc < 0)
        es_security_free(s);
    return rc;
}

void es_security_apply(const EsSecurity *s, CURL *h)
{
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (s->user) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, s->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, s->password ? s->password : "");
    }
    if (s->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
    if (s->cert_file)
        curl_easy_setopt(h, CURLOPT_SSLCERT, s->cert_file);
    if (s->key_file)
        curl_easy_setopt(h, CURLOPT_SSLKEY, s->key_file);
    if (s->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

struct curl_slist *es_security_headers(const EsSecurity *s, struct curl_slist *list)
{
    if (!s->auth_header)
        return list;
    return curl_slist_append(list, s->auth_header);
}

void es_security_free(EsSecurity *s)
{
    free(s->base);
    wipe(s->user);
    wipe(s->password);
    wipe(s->auth_header);
    free(s->ca_file);
    free(s->cert_file);
    free(s->key_file);
    memset(s, 0, sizeof(*s));
}
