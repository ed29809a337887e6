/* sitetoken — small files: whole-file reads and atomic replacement, shared by
 * the site, the server front end and the agent. */
#ifndef SITETOKEN_FILE_H
#define SITETOKEN_FILE_H

#include <stddef.h>
#include <sys/types.h>
#include "sitetoken/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* At most `max` bytes of `path` as a NUL-terminated buffer (malloc'd; the
 * caller frees it, with OPENSSL_cleanse first when it may hold a secret).
 * *len (may be NULL) gets the bytes read. NULL when the file cannot be
 * opened or read, or memory is short; errno says why. */
char *stk_file_read(const char *path, size_t max, size_t *len);

/* Replace `path` atomically: write `path`.tmp (created with `mode`, never
 * through an existing file or link), fsync, rename over `path`. A crash
 * leaves the old file or the new one, never a partial one. */
int stk_file_write(const char *path, const void *data, size_t len, mode_t mode,
    struct stk_error *err);

#ifdef __cplusplus
}
#endif
#endif
