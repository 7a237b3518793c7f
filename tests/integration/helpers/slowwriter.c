/* Test helper: a writer that stalls halfway, as a copy from a busy file server or a paused
 * render does. Usage: slowwriter write|mmap PATH FIRST TOTAL READY GO
 * Writes FIRST bytes of 'a' to PATH, creates the file READY, waits (up to 300 s) until the
 * file GO exists, then writes 'b' up to TOTAL bytes and closes. In `mmap` mode the file is
 * sized to TOTAL and written through a shared mapping; its descriptor is closed before the
 * stall, so only the mapping keeps it open for writing. */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>

static int touch(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    return close(fd);
}

static int wait_for(const char *path) {
    struct timespec ts = { 0, 10 * 1000000L };
    for (int i = 0; i < 30000; i++) {
        if (access(path, F_OK) == 0) return 0;
        nanosleep(&ts, NULL);
    }
    return -1;
}

static int write_all(int fd, char byte, size_t count) {
    char buf[65536];
    memset(buf, byte, sizeof buf);
    while (count > 0) {
        size_t n = count < sizeof buf ? count : sizeof buf;
        ssize_t w = write(fd, buf, n);
        if (w <= 0) return -1;
        count -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 7) return 2;
    const char *mode = argv[1], *path = argv[2], *ready = argv[5], *go = argv[6];
    size_t first = strtoul(argv[3], NULL, 10), total = strtoul(argv[4], NULL, 10);
    if (strcmp(mode, "write") == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write_all(fd, 'a', first) != 0) return 3;
        if (touch(ready) != 0 || wait_for(go) != 0) return 4;
        if (write_all(fd, 'b', total - first) != 0) return 5;
        return close(fd) == 0 ? 0 : 6;
    }
    if (strcmp(mode, "mmap") == 0) {
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || ftruncate(fd, (off_t)total) != 0) return 3;
        char *map = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) return 3;
        close(fd);
        memset(map, 'a', first);
        if (touch(ready) != 0 || wait_for(go) != 0) return 4;
        memset(map + first, 'b', total - first);
        if (msync(map, total, MS_SYNC) != 0) return 5;
        return munmap(map, total) == 0 ? 0 : 6;
    }
    return 2;
}
