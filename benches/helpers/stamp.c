/* Benchmark helper: appends "<CLOCK_MONOTONIC ns> <argument>\n" to the log named by its first
 * argument, in one write() on an O_APPEND descriptor. The writer in watch_latency.py stamps each
 * file's close on the same clock, so the difference is close -> command-start latency. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (argc < 3) return 2;
    char buf[8192];
    int n = snprintf(buf, sizeof buf, "%lld %s\n", (long long)now.tv_sec * 1000000000LL + now.tv_nsec, argv[2]);
    if (n < 0 || n >= (int)sizeof buf) return 3;
    int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0 || write(fd, buf, (size_t)n) != n) return 4;
    return close(fd) == 0 ? 0 : 5;
}
