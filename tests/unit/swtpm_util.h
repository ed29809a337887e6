/* A real swtpm for the unit tests (test_tpm, test_key_contract): started and
 * stopped by the swtpm-setup scripts the demo and CI use, killed even when a
 * test aborts, and the TPM's loaded handles counted from a fresh
 * connection (swtpm has no resource manager to hide a leak). */
#ifndef STK_SWTPM_UTIL_H
#define STK_SWTPM_UTIL_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#ifndef STK_SRC_DIR
#error "STK_SRC_DIR must name the source tree (for swtpm-setup/)"
#endif

/* The header's TPM2_TRANSIENT_FIRST shifts an int into the sign bit (UB). */
#define TRANSIENT_FIRST 0x80000000u
#define HMAC_SESSION_FIRST 0x02000000u

static volatile pid_t swtpm_pids[4];

static inline void
swtpm_kill_all(int sig)
{
	size_t i;

	for (i = 0; i < sizeof(swtpm_pids) / sizeof(swtpm_pids[0]); i++)
		if (swtpm_pids[i] > 0)
			kill(swtpm_pids[i], SIGTERM);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Stop every swtpm we started if the test program dies on a signal. */
static inline void
swtpm_guard(void)
{
	signal(SIGABRT, swtpm_kill_all);
	signal(SIGSEGV, swtpm_kill_all);
	signal(SIGTERM, swtpm_kill_all);
	signal(SIGINT, swtpm_kill_all);
}

static inline void
swtpm_track(const char *state, int add)
{
	char path[1024];
	FILE *fp;
	long pid = 0;
	size_t i;

	snprintf(path, sizeof(path), "%s/swtpm.pid", state);
	if ((fp = fopen(path, "r")) == NULL)
		return;
	if (fscanf(fp, "%ld", &pid) != 1)
		pid = 0;
	fclose(fp);
	for (i = 0; pid > 0 && i < sizeof(swtpm_pids) / sizeof(swtpm_pids[0]); i++) {
		if (add && swtpm_pids[i] == 0) {
			swtpm_pids[i] = (pid_t)pid;
			return;
		}
		if (!add && swtpm_pids[i] == (pid_t)pid)
			swtpm_pids[i] = 0;
	}
}

static inline int
swtpm_start(const char *state, char *tcti, size_t len)
{
	char cmd[1100], path[1024];
	FILE *fp;
	int n;

	snprintf(cmd, sizeof(cmd), "bash %s/swtpm-setup/swtpm-start.sh '%s' >/dev/null",
	    STK_SRC_DIR, state);
	if (system(cmd) != 0)
		return -1;
	swtpm_track(state, 1);
	snprintf(path, sizeof(path), "%s/tcti", state);
	if ((fp = fopen(path, "r")) == NULL)
		return -1;
	n = fgets(tcti, (int)len, fp) != NULL ? 0 : -1;
	fclose(fp);
	tcti[strcspn(tcti, "\n")] = '\0';
	return n;
}

static inline void
swtpm_stop(const char *state)
{
	char cmd[1100];

	swtpm_track(state, 0);
	snprintf(cmd, sizeof(cmd), "bash %s/swtpm-setup/swtpm-stop.sh '%s'",
	    STK_SRC_DIR, state);
	if (system(cmd) != 0)
		fprintf(stderr, "swtpm-stop failed for %s\n", state);
}

/* TPM2_Startup again under open contexts (what a TPM reboot or a resource
 * manager restart looks like): swtpm's control channel is the next port. */
static inline int
swtpm_reset(const char *tcti)
{
	char cmd[256];
	int port;

	if (sscanf(tcti, "swtpm:host=127.0.0.1,port=%d", &port) != 1)
		return -1;
	snprintf(cmd, sizeof(cmd), "swtpm_ioctl --tcp 127.0.0.1:%d -i", port + 1);
	return system(cmd) == 0 ? 0 : -1;
}

/* Handles of one type the TPM holds right now, seen from a fresh connection. */
static inline int
tpm_count_handles(const char *tcti_conf, TPM2_HANDLE first)
{
	TSS2_TCTI_CONTEXT *tcti = NULL;
	ESYS_CONTEXT *ectx = NULL;
	TPMS_CAPABILITY_DATA *cap = NULL;
	TPMI_YES_NO more = 0;
	int n = -1;

	if (Tss2_TctiLdr_Initialize(tcti_conf, &tcti) != 0)
		return -1;
	if (Esys_Initialize(&ectx, tcti, NULL) == 0 &&
	    Esys_GetCapability(ectx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
	    TPM2_CAP_HANDLES, first, TPM2_MAX_CAP_HANDLES, &more, &cap) == 0)
		n = (int)cap->data.handles.count;
	Esys_Free(cap);
	Esys_Finalize(&ectx);
	Tss2_TctiLdr_Finalize(&tcti);
	return n;
}

/* Nothing loaded: no transient object, no session. */
static inline int
tpm_is_clean(const char *tcti)
{
	return tpm_count_handles(tcti, TRANSIENT_FIRST) == 0 &&
	    tpm_count_handles(tcti, HMAC_SESSION_FIRST) == 0;
}

#endif
