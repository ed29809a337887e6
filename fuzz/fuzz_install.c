/* The agent's seed-style install parser (agent_install_parse): the input is
 * split at newlines into argv[1..]. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "agent.h"

#define FUZZ_ARGS 16

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_install in;
	struct stk_error err;
	char *buf, *argv[FUZZ_ARGS + 2], *p, *nl;
	int argc = 1;
	size_t i;

	if ((buf = malloc(size + 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[0] = (char *)"install";
	for (p = buf; argc <= FUZZ_ARGS; p = nl + 1) {
		argv[argc++] = p;
		if ((nl = strchr(p, '\n')) == NULL)
			break;
		*nl = '\0';
	}
	argv[argc] = NULL;
	if (agent_install_parse(argc, argv, &in, &err) == 0) {
		/* What a parse promises the caller. */
		if (strncasecmp(in.cmg, "https://", 8) != 0 || strlen(in.cmg) >= sizeof(in.cmg))
			abort();
		for (i = 0; in.cmg[i]; i++)
			if ((unsigned char)in.cmg[i] <= 0x20 || (unsigned char)in.cmg[i] >= 0x7f)
				abort();
		if (in.bulk != NULL && (in.bulk_stdin || in.bulk[0] == '\0'))
			abort();
		if (in.code != NULL && strlen(in.code) != 3)
			abort();
	} else if (err.msg[0] == '\0')
		abort();
	agent_install_clear(&in);
	free(buf);
	return 0;
}
