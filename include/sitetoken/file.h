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

/* A directory the site writes into (the site directory, logs/): refused
 * (STK_E_PERM, a message naming the fix) unless it is a directory owned by
 * the running user and not writable by group or others, so another local
 * user cannot swap or plant files in it (threat model, attacker 5). what
 * names it in the message. */
int stk_dir_check_private(const char *path, const char *what,
    struct stk_error *err);

/* A secret file already open on fd (key file, PIN file): refused
 * (STK_E_PERM) unless owned by the running user and of a mode without any
 * bit in `forbidden` (077: 0600 or stricter). */
int stk_file_check_secret(int fd, const char *path, const char *what,
    mode_t forbidden, struct stk_error *err);

/* For a process that will hold a secret (site key, PIN, TLS key, client
 * token): no core dump (RLIMIT_CORE 0) and not dumpable nor ptrace-able by
 * other processes of the same user (PR_SET_DUMPABLE 0). Call first thing
 * in main(). 0, or -1 with errno when the system refused. */
int stk_process_harden(void);

#ifdef __cplusplus
}
#endif
#endif
