/* Runs corpus files through a fuzz target without libFuzzer, so the corpora
 * (seeds and every past finding) are regression tests in gcc, ASan and
 * valgrind builds. Usage: replay FILE|DIR... */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
run_file(const char *path)
{
	FILE *fp = fopen(path, "rb");
	unsigned char *buf;
	size_t n;

	if (fp == NULL) {
		perror(path);
		return 1;
	}
	buf = malloc(1 << 20);
	n = fread(buf, 1, 1 << 20, fp);
	fclose(fp);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 0;
}

int
main(int argc, char **argv)
{
	int i, files = 0, rc = 0;

	for (i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
			DIR *d = opendir(argv[i]);
			struct dirent *e;
			char p[4096];
			while (d != NULL && (e = readdir(d)) != NULL) {
				if (e->d_name[0] == '.')
					continue;
				snprintf(p, sizeof(p), "%s/%s", argv[i], e->d_name);
				rc |= run_file(p);
				files++;
			}
			if (d != NULL)
				closedir(d);
		} else {
			rc |= run_file(argv[i]);
			files++;
		}
	}
	printf("replayed %d inputs\n", files);
	return rc || files == 0;
}
