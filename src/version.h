/* version: the one place the release number is written. */
#ifndef TXIDSYNC_VERSION_H
#define TXIDSYNC_VERSION_H
#define TXIDSYNC_VERSION "0.1.0"
#endif
