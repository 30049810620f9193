/* The physical limit the benchmarks compare kvmprobe against: the same ioctls, issued by a
 * plain C loop over the same capability numbers (passed in from kvmprobe.caps.Cap, so this
 * file holds no table). Built by benches/conftest.py with the system cc at session start.
 *
 * Each function runs `reps` passes, so the one Python call that starts it is spread over
 * many passes; the benchmarks divide by `reps`. */

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* One batch pass on an already open fd, `reps` times: what KvmDevice.check_many does. */
int c_batch(int fd, unsigned long request, const long *numbers, int *values, int *errnos,
            int count, int reps)
{
    int failed = 0;
    for (int rep = 0; rep < reps; rep++) {
        failed = 0;
        for (int i = 0; i < count; i++) {
            int r = ioctl(fd, request, (unsigned long)numbers[i]);
            values[i] = r;
            errnos[i] = r < 0 ? errno : 0;
            failed += r < 0;
        }
    }
    return failed;
}

/* A whole uncached probe, `reps` times: what kvmprobe.probe(refresh=True) asks the kernel.
 * Open read-write with O_CLOEXEC, KVM_GET_API_VERSION, one pass, close. Returns the API
 * version of the last pass, or -errno. */
int c_probe(const char *path, unsigned long api_request, unsigned long check_request,
            const long *numbers, int *values, int *errnos, int count, int reps)
{
    int api = 0;
    for (int rep = 0; rep < reps; rep++) {
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        api = ioctl(fd, api_request, 0UL);
        c_batch(fd, check_request, numbers, values, errnos, count, 1);
        close(fd);
    }
    return api;
}
