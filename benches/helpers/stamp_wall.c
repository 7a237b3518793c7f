/* Benchmark helper: appends "<CLOCK_REALTIME ms> <argument>\n" to the log named by its first
 * argument, in one write() on an O_APPEND descriptor. Wall-clock time, unlike stamp.c, so that
 * benches/cluster can compare a job's start with the `created_at` (ms since the epoch) that the
 * store gave its row: both clocks are this machine's. */
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (argc < 3) return 2;
    char buf[8192];
    int n = snprintf(buf, sizeof buf, "%.3f %s\n", now.tv_sec * 1000.0 + now.tv_nsec / 1e6, argv[2]);
    if (n < 0 || n >= (int)sizeof buf) return 3;
    int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0 || write(fd, buf, (size_t)n) != n) return 4;
    return close(fd) == 0 ? 0 : 5;
}
