/* Probe dangerous syscalls from inside a container and print what each returned.
 *
 * Name probes call a syscall with arguments that do nothing even where it is allowed and
 * privileged (bad pointers, bad descriptors, missing paths, no-op flags). Argument probes
 * make the call a profile must refuse by its arguments, and undo it where it succeeds: a
 * child in new namespaces exits at once, a socket is closed, a personality restored. Both
 * are safe to run in production containers. Output: one line per probe, "name errno" (0
 * when the call succeeded). Static, so it starts with a handful of syscalls any profile
 * allows.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct probe;
typedef int (*probe_fn)(const struct probe *);

struct probe {
    const char *name;
    long nr;
    long a0, a1, a2, a3, a4;
    probe_fn run; /* NULL: make the syscall with a0..a4 */
};

#define MISSING ((long)"/nonexistent-seccomp-tracer-probe")
#define NEW_USER_AND_NET (0x10000000L | 0x40000000L) /* CLONE_NEWUSER | CLONE_NEWNET */
#define ADDR_NO_RANDOMIZE 0x0040000L

struct clone_args_v0 { /* struct clone_args up to CLONE_ARGS_SIZE_VER0 */
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

static int call(const struct probe *p)
{
    return syscall(p->nr, p->a0, p->a1, p->a2, p->a3, p->a4) == -1 ? errno : 0;
}

static int reap(long pid)
{
    if (pid == -1)
        return errno;
    if (pid == 0)
        _exit(0); /* the child, in its new namespaces: leave at once */
    waitpid(pid, NULL, 0);
    return 0;
}

static int clone_child(const struct probe *p)
{
    return reap(syscall(SYS_clone, p->a0 | SIGCHLD, 0, 0, 0, 0));
}

static int clone3_child(const struct probe *p)
{
    struct clone_args_v0 args = {.flags = (uint64_t)p->a0, .exit_signal = SIGCHLD};
    return reap(syscall(SYS_clone3, &args, sizeof(args)));
}

static int open_socket(const struct probe *p)
{
    long fd = syscall(SYS_socket, p->a0, p->a1, p->a2);
    if (fd == -1)
        return errno;
    close(fd);
    return 0;
}

static int set_personality(const struct probe *p)
{
    long before = syscall(SYS_personality, 0xffffffffL);
    if (syscall(SYS_personality, p->a0) == -1)
        return errno;
    if (before != -1)
        syscall(SYS_personality, before);
    return 0;
}

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
    /* argument probes (tracer/verify/run.py ARGUMENT_PROBES names their arguments) */
    {"clone:CLONE_NEWUSER|CLONE_NEWNET", SYS_clone, NEW_USER_AND_NET, .run = clone_child},
    {"clone3:CLONE_NEWUSER|CLONE_NEWNET", SYS_clone3, NEW_USER_AND_NET, .run = clone3_child},
    {"socket:AF_VSOCK", SYS_socket, 40, 1 /* SOCK_STREAM */, 0, .run = open_socket},
    {"socket:AF_ALG", SYS_socket, 38, 5 /* SOCK_SEQPACKET */, 0, .run = open_socket},
    {"socket:AF_PACKET", SYS_socket, 17, 3 /* SOCK_RAW */, 0, .run = open_socket},
    {"socket:AF_NETLINK/NETLINK_ROUTE", SYS_socket, 16, 3, 0, .run = open_socket},
    {"socket:AF_NETLINK/NETLINK_AUDIT", SYS_socket, 16, 3, 9, .run = open_socket},
    {"socket:AF_NETLINK/NETLINK_NETFILTER", SYS_socket, 16, 3, 12, .run = open_socket},
    {"personality:ADDR_NO_RANDOMIZE", SYS_personality, ADDR_NO_RANDOMIZE, .run = set_personality},
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
        int err = p->run ? p->run(p) : call(p);
        printf("%s %d\n", p->name, err);
        fflush(stdout);
    }
    return 0;
}
