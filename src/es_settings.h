/*
 * es_settings: the settings rows of EsAuth (es.h), shared by every
 * program that talks to a sink cluster, so that the daemon and the
 * checker take the same flags, variables and config keys.
 */
#ifndef TXIDSYNC_ES_SETTINGS_H
#define TXIDSYNC_ES_SETTINGS_H

#include "es.h"
#include "settings.h"

/* The rows for the EsAuth lvalue a, each with the settings flags fl and
 * its help text after the literal pre ("per table: "). */
#define ES_AUTH_SETTINGS(a, fl, pre)                                                               \
    {"es-user",                                                                                    \
     SETTING_STRING,                                                                               \
     "",                                                                                           \
     "TXIDSYNC_ES_USER",                                                                           \
     "USER",                                                                                       \
     pre "basic-auth user of the sink (its password from --es-password-file or "                   \
         "TXIDSYNC_ES_PASSWORD; prefer this to credentials in --es-url, which ps shows)",          \
     NULL,                                                                                         \
     0,                                                                                            \
     0,                                                                                            \
     &(a).user,                                                                                    \
     (fl)},                                                                                        \
        {"es-password-file",                                                                       \
         SETTING_STRING,                                                                           \
         "",                                                                                       \
         "TXIDSYNC_ES_PASSWORD_FILE",                                                              \
         "FILE",                                                                                   \
         pre "file holding the --es-user's password (one line; chmod 600)",                        \
         NULL,                                                                                     \
         0,                                                                                        \
         0,                                                                                        \
         &(a).password_file,                                                                       \
         (fl)},                                                                                    \
        {"es-password",                                                                            \
         SETTING_STRING,                                                                           \
         "",                                                                                       \
         "TXIDSYNC_ES_PASSWORD",                                                                   \
         NULL,                                                                                     \
         pre "the --es-user's password itself",                                                    \
         NULL,                                                                                     \
         0,                                                                                        \
         0,                                                                                        \
         &(a).password,                                                                            \
         (fl) | SETTING_NO_FLAG},                                                                  \
        {"es-api-key-file",                                                                        \
         SETTING_STRING,                                                                           \
         "",                                                                                       \
         "TXIDSYNC_ES_API_KEY_FILE",                                                               \
         "FILE",                                                                                   \
         pre "file holding an API key, sent as 'Authorization: ApiKey KEY' (the "                  \
             "base64 of id:key)",                                                                  \
         NULL,                                                                                     \
         0,                                                                                        \
         0,                                                                                        \
         &(a).api_key_file,                                                                        \
         (fl)},                                                                                    \
        {"es-api-key",                                                                             \
         SETTING_STRING,                                                                           \
         "",                                                                                       \
         "TXIDSYNC_ES_API_KEY",                                                                    \
         NULL,                                                                                     \
         pre "the API key itself",                                                                 \
         NULL,                                                                                     \
         0,                                                                                        \
         0,                                                                                        \
         &(a).api_key,                                                                             \
         (fl) | SETTING_NO_FLAG},                                                                  \
        {"es-ca-file",                                                                             \
         SETTING_STRING,                                                                           \
         "",                                                                                       \
         "TXIDSYNC_ES_CA_FILE",                                                                    \
         "FILE",                                                                                   \
         pre "CA certificates (PEM) that verify an https sink; default: the system's",             \
         NULL,                                                                                     \
         0,                                                                                        \
         0,                                                                                        \
         &(a).ca_file,                                                                             \
         (fl)},                                                                                    \
        {"es-cert-file",                                                                           \
         SETTING_STRING,                                                                           \
         "",                                                                                       \
         NULL,                                                                                     \
         "FILE",                                                                                   \
         pre "client certificate (PEM) for an https sink that asks for one",                       \
         NULL,                                                                                     \
         0,                                                                                        \
         0,                                                                                        \
         &(a).cert_file,                                                                           \
         (fl)},                                                                                    \
        {"es-key-file",                                                                            \
         SETTING_STRING,                                                                           \
         "",                                                                                       \
         NULL,                                                                                     \
         "FILE",                                                                                   \
         pre "the client certificate's private key (PEM)",                                         \
         NULL,                                                                                     \
         0,                                                                                        \
         0,                                                                                        \
         &(a).key_file,                                                                            \
         (fl)},                                                                                    \
    {                                                                                              \
        "es-insecure", SETTING_BOOL, "false", NULL, NULL,                                          \
            pre "do not verify the https sink's certificate or host name (anyone on the "          \
                "path can then read and change what is sent; logged as a warning at start)",       \
            NULL, 0, 0, &(a).insecure, (fl)                                                        \
    }

#endif
