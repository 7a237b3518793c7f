/* Test helper: appends its arguments (after the first, the log path) to the log as one record,
 * in a single write() on an O_APPEND descriptor, so concurrent jobs never interleave.
 * Record: for each argument, its length in decimal, ':', its bytes; then '\n'.
 * ARGVDUMP_SLEEP_MS, if set, makes it sleep first (a stand-in for a slow converter). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *sleep_ms = getenv("ARGVDUMP_SLEEP_MS");
    if (sleep_ms) {
        long ms = atol(sleep_ms);
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
    size_t size = 2;
    for (int i = 2; i < argc; i++) size += strlen(argv[i]) + 24;
    char *buf = malloc(size);
    if (!buf) return 3;
    size_t used = 0;
    for (int i = 2; i < argc; i++) {
        size_t len = strlen(argv[i]);
        used += (size_t)sprintf(buf + used, "%zu:", len);
        memcpy(buf + used, argv[i], len);
        used += len;
    }
    buf[used++] = '\n';
    int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) return 4;
    if (write(fd, buf, used) != (ssize_t)used) return 5;
    return close(fd) == 0 ? 0 : 6;
}
