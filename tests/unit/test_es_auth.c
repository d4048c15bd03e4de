/*
 * Unit tests of es_auth: credentials taken out of the URL (percent-
 * decoded), a raw '@' in the password refused without any of it in the
 * message, the options' user and password file, the API-key header, and
 * the conflicts between them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "es_auth.h"

static char err[512];

static void test_url_credentials(void **state)
{
    (void)state;
    EsSecurity s;
    assert_int_equal(es_security_load("https://elastic:p%40ss%3Aw0rd@127.0.0.1:9200/", NULL, &s,
                                      err, sizeof(err)),
                     0);
    assert_string_equal(s.base, "https://127.0.0.1:9200");
    assert_string_equal(s.user, "elastic");
    assert_string_equal(s.password, "p@ss:w0rd");
    assert_null(s.auth_header);
    es_security_free(&s);
    assert_int_equal(es_security_load("http://127.0.0.1:9200/prefix//", NULL, &s, err, sizeof(err)),
                     0);
    assert_string_equal(s.base, "http://127.0.0.1:9200/prefix");
    assert_null(s.user);
    es_security_free(&s);
}

static void test_raw_at_refused_without_echo(void **state)
{
    (void)state;
    EsSecurity s;
    assert_int_equal(
        es_security_load("http://elastic:p@ss:w0rd@127.0.0.1:9200", NULL, &s, err, sizeof(err)),
        -1);
    assert_non_null(strstr(err, "percent-encode"));
    assert_null(strstr(err, "ss:w0rd"));
    assert_null(strstr(err, "elastic"));
    assert_int_equal(es_security_load("ftp://x", NULL, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "http:// or https://"));
    assert_int_equal(es_security_load("http://sec:ret@[::1", NULL, &s, err, sizeof(err)), -1);
    assert_null(strstr(err, "ret"));
}

/* A file of the secret text, mode 600; returns its path (static). */
static const char *secret_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/test_es_auth.%d", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, 0600);
    return path;
}

static void test_options(void **state)
{
    (void)state;
    EsSecurity s;
    const char *pw = secret_file("s3cret:@x\n");
    EsAuth a = {.user = "txidsync", .password_file = pw, .ca_file = pw};
    assert_int_equal(es_security_load("https://h:9200", &a, &s, err, sizeof(err)), 0);
    assert_string_equal(s.user, "txidsync");
    assert_string_equal(s.password, "s3cret:@x"); /* the line end is not part of it */
    assert_string_equal(s.ca_file, pw);
    es_security_free(&s);

    EsAuth no_password = {.user = "txidsync"};
    assert_int_equal(es_security_load("https://h", &no_password, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "has no password"));

    assert_int_equal(es_security_load("https://u:p@h", &a, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "give them one way"));

    EsAuth both = {.user = "u", .password = "x", .password_file = pw};
    assert_int_equal(es_security_load("https://h", &both, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "both given"));

    EsAuth key = {.api_key_file = secret_file("aWQ6a2V5\n")};
    assert_int_equal(es_security_load("https://h", &key, &s, err, sizeof(err)), 0);
    assert_string_equal(s.auth_header, "Authorization: ApiKey aWQ6a2V5");
    assert_null(s.user);
    es_security_free(&s);

    EsAuth empty = {.user = "u", .password_file = secret_file("\n")};
    assert_int_equal(es_security_load("https://h", &empty, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "is empty"));

    EsAuth missing = {.ca_file = "/nonexistent/ca.pem"};
    assert_int_equal(es_security_load("https://h", &missing, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--es-ca-file: cannot read /nonexistent/ca.pem"));

    EsAuth key_alone = {.key_file = pw};
    assert_int_equal(es_security_load("https://h", &key_alone, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "needs --es-cert-file"));
    unlink(pw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_credentials),
        cmocka_unit_test(test_raw_at_refused_without_echo),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
