// seccomp-tracer recorder: counts every syscall and capability check of one cgroup v2.
//
// All aggregation happens here, in per-CPU counters; user space only reads the maps every
// interval. The program reads no kernel struct field: only tracepoint/kprobe arguments and
// helpers, so it compiles against any recent headers and runs on any node kernel.
//
// Configured by the loader with -D:
//   TARGET_CGROUP_ID  cgroup v2 id (inode) of the container; every process in it counts
//   GATE_RUNC         1: count into phase RUNTIME until the runtime hands over to the
//                     workload (seccomp filter installed, or the first exec), see below
//   CAP_KPROBE        1: capability checks from a kprobe on cap_capable (drops no-audit
//                     checks); 0: from the capability:cap_capable tracepoint
//   MAX_NR, N_PHASES, N_RESULTS, N_LOST and the index macros: tracer/recorder/constants.py
//   CAP_MAP_ENTRIES   distinct (phase, capability, syscall, outcome) rows kept

#include <uapi/linux/ptrace.h>
#include <uapi/asm-generic/errno-base.h>
#include <asm/unistd.h>

// RESULT_*, PHASE_*, LOST_*, OUTCOME_*, CONTROL_*, MAX_NR, N_*: -D flags from
// tracer/recorder/constants.py (the one source for both sides).

#define SECCOMP_SET_MODE_FILTER 1
#define PR_SET_SECCOMP 22
#define SECCOMP_MODE_FILTER 2
#define ENOSYS_ 38

struct cap_key {
    u16 nr;
    u8 cap;
    u8 outcome;
    u8 phase;
    u8 pad[3];
};

// Capabilities checked (and their verdicts) since the thread's current syscall began.
struct pending_caps {
    u64 granted;
    u64 denied;
};

// [phase][nr][result] -> count. RESULT_CALLS counts every completed call.
BPF_PERCPU_ARRAY(syscall_counts, u64, N_PHASES * MAX_NR * N_RESULTS);
BPF_PERCPU_ARRAY(lost, u64, N_LOST);
// CONTROL_PHASE: phase set by user space; CONTROL_ARMED: 1 once calls run under the
// container's filter; CONTROL_EXECED: 1 once the workload's first exec began;
// CONTROL_PENDING: number of threads with capability checks awaiting their sys_exit;
// CONTROL_ATTACHED: 1 once every program is attached (see note_cap_check).
BPF_ARRAY(control, u64, 5);
BPF_HASH(cap_checks, struct cap_key, u64, CAP_MAP_ENTRIES);
BPF_HASH(pending, u32, struct pending_caps, 16384);
BPF_HASH(installing_filter, u32, u8, 1024);

static __always_inline int in_target(void)
{
    return bpf_get_current_cgroup_id() == TARGET_CGROUP_ID;
}

static __always_inline void count_lost(u32 reason)
{
    u64 *n = lost.lookup(&reason);
    if (n)
        (*n)++;
}

static __always_inline u64 control_get(u32 slot)
{
    u64 *v = control.lookup(&slot);
    return v ? *v : 0;
}

static __always_inline void control_set(u32 slot, u64 value)
{
    control.update(&slot, &value);
}

static __always_inline void control_add(u32 slot, s64 delta)
{
    u64 *v = control.lookup(&slot);
    if (v)
        __sync_fetch_and_add(v, delta);
}

static __always_inline void count_syscall(u32 phase, u32 nr, u32 result)
{
    u32 index = (phase * MAX_NR + nr) * N_RESULTS + result;
    u64 *n = syscall_counts.lookup(&index);
    if (n)
        (*n)++;
}

static __always_inline void count_cap(u32 phase, u32 nr, u32 cap, u32 outcome)
{
    struct cap_key key = {.nr = nr, .cap = cap, .outcome = outcome, .phase = phase};
    u64 zero = 0;
    u64 *n = cap_checks.lookup_or_try_init(&key, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        count_lost(LOST_CAP_MAP_FULL);
}

// Attribute the capability checks made during this syscall to it and to its result.
static __always_inline void flush_pending_caps(u32 tid, u32 phase, u32 nr, long ret)
{
    struct pending_caps *p = pending.lookup(&tid);
    if (!p)
        return;
    u64 granted = p->granted, denied = p->denied;
    pending.delete(&tid);
    control_add(CONTROL_PENDING, -1);

    u32 denied_outcome = OUTCOME_DENIED_NO_EFFECT;
    if (ret == -EPERM || ret == -EACCES)
        denied_outcome = OUTCOME_DENIED_FAILED;
    else if (ret < 0)
        denied_outcome = OUTCOME_DENIED_OTHER_ERROR;

    for (u32 cap = 0; cap < 64; cap++) {
        u64 bit = 1ULL << cap;
        if (granted & bit)
            count_cap(phase, nr, cap, OUTCOME_GRANTED);
        if (denied & bit)
            count_cap(phase, nr, cap, denied_outcome);
    }
}

// The runtime gates. runc's init does its privileged setup (mount, pivot_root, sethostname,
// keyctl, capset, ...) inside the container's cgroup before it execs the workload: phase
// RUNTIME, which no profile includes. From the moment runc installs the container's seccomp
// filter, everything it still does runs under that filter (runc 1.1 with noNewPrivileges:
// reopening its exec fifo, its Go runtime's futex/epoll/nanosleep, then execve): phase
// HANDOVER, which the seccomp profile must allow. When the recording runs unconfined there
// is no filter install, and the exec itself is the hand-over. The exec opens the workload's
// phases (STARTUP, then LOAD). Capability checks follow the same phases: those made in
// HANDOVER (runc reopening /proc/self/fd as a non-root user checks CAP_DAC_OVERRIDE) are the
// runtime's, not the workload's.
static __always_inline int gate_opens_before(u32 nr)
{
    // The exec must be allowed by the filter: it opens the gates before it is counted.
    return nr == __NR_execve || nr == __NR_execveat;
}

static __always_inline int gate_opens_after(u32 tid, u32 nr, long ret)
{
    if (nr != __NR_seccomp && nr != __NR_prctl)
        return 0;
    u8 *installing = installing_filter.lookup(&tid);
    if (!installing)
        return 0;
    installing_filter.delete(&tid);
    return ret >= 0;
}

static __always_inline u32 current_phase(void)
{
    if (!control_get(CONTROL_ARMED))
        return PHASE_RUNTIME;
    if (!control_get(CONTROL_EXECED))
        return PHASE_HANDOVER;
    u32 phase = (u32)control_get(CONTROL_PHASE);
    return phase >= PHASE_STARTUP && phase < N_PHASES ? phase : PHASE_STARTUP;
}

TRACEPOINT_PROBE(raw_syscalls, sys_exit)
{
    if (!in_target())
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u32 nr = (u32)args->id;
    long ret = args->ret;
    // rt_sigreturn restores the interrupted context, including orig_ax = -1, so its exit
    // reports id -1 (and the restored register as "result"). Nothing else reaches here with
    // -1 unless a ptracer cancels a syscall.
    if (args->id == -1) {
        nr = __NR_rt_sigreturn;
        ret = 0;
    }

    if (gate_opens_before(nr) && !control_get(CONTROL_EXECED)) {
        control_set(CONTROL_ARMED, 1);
        control_set(CONTROL_EXECED, 1);
    }
    u32 phase = current_phase();

    if (control_get(CONTROL_PENDING))
        flush_pending_caps(tid, phase, nr < MAX_NR ? nr : MAX_NR - 1, ret);

    if (nr >= MAX_NR) {
        count_lost(LOST_SYSCALL_NR_OUT_OF_RANGE);
        return 0;
    }
    count_syscall(phase, nr, RESULT_CALLS);
    if (ret == -EPERM)
        count_syscall(phase, nr, RESULT_EPERM);
    else if (ret == -EACCES)
        count_syscall(phase, nr, RESULT_EACCES);
    else if (ret == -ENOSYS_)
        count_syscall(phase, nr, RESULT_ENOSYS);

    if (!control_get(CONTROL_ARMED) && gate_opens_after(tid, nr, ret))
        control_set(CONTROL_ARMED, 1);
    return 0;
}

// exit and exit_group never return, so sys_exit never sees them; the workload still needs
// them allowed (glibc's _exit falls through to a crashing instruction when they fail).
// Their own tracepoints fire for nothing else.
TRACEPOINT_PROBE(syscalls, sys_enter_exit_group)
{
    if (in_target())
        count_syscall(current_phase(), __NR_exit_group, RESULT_CALLS);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_exit)
{
    if (in_target())
        count_syscall(current_phase(), __NR_exit, RESULT_CALLS);
    return 0;
}

// Capability checks a task makes after it entered exit/exit_group (or while a fatal signal
// kills it) never reach a sys_exit. The task's last trace is its free, which runs later in
// another context: attribute what it left pending to exit_group there.
TRACEPOINT_PROBE(sched, sched_process_free)
{
    u32 tid = args->pid;
    if (control_get(CONTROL_PENDING) && pending.lookup(&tid))
        flush_pending_caps(tid, current_phase(), __NR_exit_group, 0);
    return 0;
}

#if GATE_RUNC
// Only these two syscalls can install a seccomp filter; their own tracepoints cost nothing
// for any other syscall.
static __always_inline void note_filter_install(void)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    u8 one = 1;
    if (installing_filter.update(&tid, &one) != 0)
        count_lost(LOST_GATE_MAP_FULL);
}

TRACEPOINT_PROBE(syscalls, sys_enter_seccomp)
{
    if (in_target() && args->op == SECCOMP_SET_MODE_FILTER)
        note_filter_install();
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_prctl)
{
    if (in_target() && args->option == PR_SET_SECCOMP && args->arg2 == SECCOMP_MODE_FILTER)
        note_filter_install();
    return 0;
}
#endif

static __always_inline void note_cap_check(int cap, int granted)
{
    // The programs attach one by one. A check noted before the sys_exit and process-free
    // programs are attached could be left pending forever (its thread may exit meanwhile),
    // so checks count only once the loader says every program is in place.
    if (!control_get(CONTROL_ATTACHED))
        return;
    if (cap < 0 || cap >= 64) {
        count_lost(LOST_CAP_OUT_OF_RANGE);
        return;
    }
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct pending_caps *p = pending.lookup(&tid);
    if (!p) {
        struct pending_caps fresh = {};
        if (pending.insert(&tid, &fresh) != 0) {
            count_lost(LOST_PENDING_MAP_FULL);
            return;
        }
        control_add(CONTROL_PENDING, 1);
        p = pending.lookup(&tid);
        if (!p)
            return;
    }
    if (granted)
        __sync_fetch_and_or(&p->granted, 1ULL << cap);
    else
        __sync_fetch_and_or(&p->denied, 1ULL << cap);
}

#if CAP_KPROBE
// int cap_capable(const struct cred *cred, struct user_namespace *ns, int cap, unsigned int opts)
#define CAP_OPT_NOAUDIT 0x2
struct cap_call {
    int cap;
};
BPF_HASH(cap_in_flight, u32, struct cap_call, 16384);

int cap_capable_entry(struct pt_regs *ctx, const void *cred, const void *ns, int cap,
                        unsigned int opts)
{
    // A no-audit check is one whose outcome the kernel itself treats as advisory
    // (e.g. CAP_SYS_ADMIN in mmap's overcommit accounting): not evidence of need.
    if (!in_target() || (opts & CAP_OPT_NOAUDIT))
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct cap_call call = {.cap = cap};
    cap_in_flight.update(&tid, &call);
    return 0;
}

int cap_capable_return(struct pt_regs *ctx)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct cap_call *call = cap_in_flight.lookup(&tid);
    if (!call)
        return 0;
    int cap = call->cap;
    cap_in_flight.delete(&tid);
    note_cap_check(cap, PT_REGS_RC(ctx) == 0);
    return 0;
}
#else
TRACEPOINT_PROBE(capability, cap_capable)
{
    if (in_target())
        note_cap_check(args->cap, args->ret == 0);
    return 0;
}
#endif
