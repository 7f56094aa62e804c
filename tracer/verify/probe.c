/* Probe dangerous syscalls from inside a container and print what each returned.
 *
 * Every call is made with arguments that do nothing even where the syscall is allowed and
 * privileged (bad pointers, bad descriptors, missing paths, no-op flags), so the probe is
 * safe to run in production containers. Output: one line per syscall, "name errno" (0 when
 * the call succeeded). Static, so it starts with a handful of syscalls any profile allows.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct probe {
    const char *name;
    long nr;
    long a0, a1, a2, a3, a4;
};

#define MISSING ((long)"/nonexistent-seccomp-tracer-probe")

static const struct probe probes[] = {
    {"mount", SYS_mount, 0, MISSING, 0, 0, 0},
    {"umount2", SYS_umount2, MISSING, 0},
    {"pivot_root", SYS_pivot_root, MISSING, MISSING},
    {"chroot", SYS_chroot, MISSING},
    {"unshare", SYS_unshare, 0},                         /* no flags: a no-op */
    {"setns", SYS_setns, -1, 0},
    {"ptrace", SYS_ptrace, 3 /* PTRACE_PEEKUSER */, 0x7fffffff, 0, 0},
    {"bpf", SYS_bpf, -1, 0, 0},
    {"perf_event_open", SYS_perf_event_open, 0, 0, -1, -1, 0},
    {"keyctl", SYS_keyctl, -1, 0, 0, 0, 0},
    {"add_key", SYS_add_key, 0, 0, 0, 0, 0},
    {"request_key", SYS_request_key, 0, 0, 0, 0},
    {"sethostname", SYS_sethostname, 0, 4096},
    {"init_module", SYS_init_module, 0, 0, 0},
    {"finit_module", SYS_finit_module, -1, 0, 0},
    {"delete_module", SYS_delete_module, MISSING, 0},
    {"kexec_load", SYS_kexec_load, 0, 0, 0, 0xffffffff},
    {"open_by_handle_at", SYS_open_by_handle_at, -1, 0, 0},
    {"userfaultfd", SYS_userfaultfd, -1},
    {"reboot", SYS_reboot, 0, 0, 0, 0},                  /* wrong magic: EINVAL */
    {"swapon", SYS_swapon, MISSING, 0},
    {"process_vm_readv", SYS_process_vm_readv, -1, 0, 0, 0, 0},
    {"io_uring_setup", SYS_io_uring_setup, 0, 0},
    {"syslog", SYS_syslog, -1, 0, 0},
    {"fsopen", SYS_fsopen, 0, 0},
    {"move_mount", SYS_move_mount, -1, 0, -1, 0, 0},
};

int main(int argc, char **argv)
{
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        const struct probe *p = &probes[i];
        int wanted = argc == 1;
        for (int j = 1; j < argc && !wanted; j++)
            wanted = strcmp(argv[j], p->name) == 0;
        if (!wanted)
            continue;
        errno = 0;
        long ret = syscall(p->nr, p->a0, p->a1, p->a2, p->a3, p->a4);
        printf("%s %d\n", p->name, ret == -1 ? errno : 0);
    }
    return 0;
}
