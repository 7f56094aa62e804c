// seccomp-tracer recorder: counts every syscall and capability check of one cgroup v2, and
// the arguments that decide danger for a few syscalls.
//
// All aggregation happens here, in per-CPU counters and bounded hash maps; user space only
// reads the maps every interval. The program reads no kernel struct field: only tracepoint
// arguments, the architecture's register frame (struct pt_regs is the syscall ABI: the loader
// passes its offsets), user memory the caller handed to the syscall, and helpers. So it
// compiles against any recent headers and runs on any node kernel.
//
// One program runs for every syscall of every process on the node: syscall_exit, on the
// sys_exit raw tracepoint. Everyone else pays only the question "is this task in the target
// cgroup?", answered from a per-CPU cache most of the time (see target_slot_cached); the
// target's calls pay a register load, one per-CPU increment and a few comparisons. Argument
// recording happens only for the ten syscalls that carry dangerous arguments, after those.
// Where the kernel has BTF the loader attaches it as a BTF raw tracepoint (tp_btf): the
// verifier then knows the frame is the kernel's own struct pt_regs and turns the register
// reads into plain loads; elsewhere each read is a bpf_probe_read_kernel() call, which costs
// about as much as the whole program on a VM with return-thunk mitigations.
//
// Configured by the loader with -D:
//   TARGET_CGROUP_ID  cgroup v2 id (inode) of the container; every process in it counts
//   POD_MODE          1: the target is every process under one ancestor cgroup (a pod's),
//                     which the loader names later, in `settings` (pod_cgroup_id, pod_level):
//                     the program is loaded before the pod exists. Each leaf cgroup under it
//                     (a container, the sandbox) gets a slot of its own the first time one of
//                     its tasks is seen, here in the kernel, so nothing is missed between a
//                     container's cgroup being made and user space noticing; counters and
//                     the runtime gate are per slot. 0: TARGET_CGROUP_ID only, slot 0.
//   N_SLOTS           slots (1 unless POD_MODE)
//   GATE_RUNC         1: count into phase RUNTIME until the runtime hands over to the
//                     workload (seccomp filter installed, or the first exec), see below
//   GATE_FIRST_PHASE  the gate's phase at the target's first event: PHASE_RUNTIME for a
//                     container watched from before `runc create`; PHASE_HANDOVER for one
//                     attached while `created` (its filter is in place, only the hand-over
//                     to the first exec is left)
//   CAP_KPROBE        1: capability checks from a kprobe on cap_capable (drops no-audit
//                     checks); 0: from the capability:cap_capable tracepoint
//   TP_BTF            1: syscall_exit is loaded as tp_btf and loads registers directly;
//                     0: a plain raw tracepoint that reads them with bpf_probe_read_kernel
//   EXIT_FROM_TASK_REGS 1: count exit/exit_group at sched_process_exit from the task's
//                     registers (kernel 5.15+ with BTF); 0: at their own entry tracepoints
//   REGS_NR_OFFSET, REGS_NR_SIZE, REGS_ARG0_OFFSET..REGS_ARG5_OFFSET: the syscall number
//                     and arguments in struct pt_regs (tracer/recorder/constants.py)
//   CLONE_FLAGS_ARG   which argument of clone holds its flags (1 on s390x, else 0)
//   MAX_NR, N_PHASES, N_RESULTS, N_LOST and the index macros: tracer/recorder/constants.py
//   CAP_MAP_ENTRIES, ARG_MAP_ENTRIES, CONNECT_MAP_ENTRIES, CONNECT_ADDR_LEN: map bounds

#include <uapi/linux/ptrace.h>
#include <uapi/asm-generic/errno-base.h>
#include <asm/unistd.h>

// RESULT_*, PHASE_*, LOST_*, OUTCOME_*, MAX_NR, N_*, REGS_*: -D flags from
// tracer/recorder/constants.py (the one source for both sides).

// Defaults for the switches a single-cgroup recording leaves out.
#ifndef POD_MODE
#define POD_MODE 0
#endif
#ifndef N_SLOTS
#define N_SLOTS 1
#endif
#ifndef GATE_FIRST_PHASE
#define GATE_FIRST_PHASE PHASE_RUNTIME
#endif

#define SECCOMP_SET_MODE_FILTER 1
#define PR_SET_SECCOMP 22
#define SECCOMP_MODE_FILTER 2
#define ENOSYS_ 38
#define MAX_ERRNO_ 4095
#define SOCK_FLAGS_ (00004000 | 02000000)  // SOCK_NONBLOCK | SOCK_CLOEXEC
#define AF_UNIX_ 1
#define AF_INET_ 2
#define AF_INET6_ 10
#define FAMILY_UNREADABLE 0xffff

// The capabilities one syscall checked: which were granted, which denied, and what the
// denials led to (a denied outcome, from the call's result). The loader expands the sets into
// (phase, capability, syscall, outcome) rows; keeping them whole here means one map update
// per syscall that checked anything, and no loop over capabilities for the verifier.
struct cap_key {
    u16 nr;
    u8 phase;
    u8 denied_outcome;
    u32 slot;
    u64 granted;
    u64 denied;
};

// Capabilities checked (and their verdicts) since the thread's current syscall began.
struct pending_caps {
    u64 granted;
    u64 denied;
    u32 slot;
    u32 pad;
};

// Written by this program only; one per slot (container).
struct state {
    u32 gate_phase;  // PHASE_RUNTIME until the filter install, PHASE_HANDOVER until the exec, then PHASE_STARTUP
    u32 seen;        // 1 once any syscall of the slot returned (see syscall_exit)
};

// Written by the loader only (zero = startup, nothing attached yet, no pod).
struct settings {
    u32 load;        // 1 once the recording switched to phase LOAD
    u32 attached;    // 1 once every program is attached (see note_cap_check)
    u64 pod_cgroup_id;  // POD_MODE: the pod's cgroup, 0 until the loader found it
    u32 pod_level;      // POD_MODE: its depth below the cgroup2 root (root = 0)
    u32 pad;
};

// One aggregated argument row. values[] per syscall (see record_arguments); tgid only for
// ioctl, whose descriptor the loader resolves to the device it names.
struct arg_key {
    u16 nr;
    u8 phase;
    u8 pad0;
    u16 err;         // errno the call returned, 0 when it succeeded
    u16 pad1;
    u32 tgid;
    u32 slot;
    u64 values[3];
};

struct connect_key {
    u8 phase;
    u8 path_length;  // bytes of addr that are the AF_UNIX path (addr holds a fixed-size read)
    u16 err;
    u16 family;
    u16 port;        // network byte order, as the caller passed it
    u8 addr[CONNECT_ADDR_LEN];  // IPv4 / IPv6 address, or the start of an AF_UNIX path
    u32 slot;
};

// [slot][phase][nr][result] -> count. RESULT_CALLS counts every completed call.
BPF_PERCPU_ARRAY(syscall_counts, u64, N_SLOTS * N_PHASES * MAX_NR * N_RESULTS);
BPF_PERCPU_ARRAY(lost, u64, N_LOST);
BPF_ARRAY(state, struct state, N_SLOTS);
BPF_ARRAY(settings, struct settings, 1);
BPF_ARRAY(pending_threads, s64, 1);  // threads with capability checks awaiting their sys_exit
BPF_HASH(slots, u64, u32, N_SLOTS);  // POD_MODE: leaf cgroup id -> slot
BPF_HASH(slot_owners, u32, u64, N_SLOTS);  // POD_MODE: slot -> the leaf cgroup id that claimed it
BPF_HASH(cap_checks, struct cap_key, u64, CAP_MAP_ENTRIES);
BPF_HASH(pending, u32, struct pending_caps, 16384);
BPF_HASH(arg_counts, struct arg_key, u64, ARG_MAP_ENTRIES);
BPF_HASH(connect_counts, struct connect_key, u64, CONNECT_MAP_ENTRIES);
BPF_RINGBUF_OUTPUT(descriptors, 16);

static __always_inline void count_lost(u32 reason);

#if POD_MODE
// The slot of a leaf cgroup under the pod, made on first sight: the first free slot number
// is claimed in slot_owners (an insert that fails when another cgroup holds it; no atomic
// whose result is read, which older BPF targets lack). Two CPUs may race for one new cgroup:
// the loser's claimed number stays unused.
static __always_inline u32 slot_of(u64 leaf)
{
    u32 *known = slots.lookup(&leaf);
    if (known)
        return *known + 1;
#pragma unroll
    for (u32 i = 0; i < N_SLOTS; i++) {
        u32 fresh = i;
        if (slot_owners.insert(&fresh, &leaf) != 0)
            continue;
        if (slots.insert(&leaf, &fresh) == 0)
            return fresh + 1;
        known = slots.lookup(&leaf);
        return known ? *known + 1 : 0;
    }
    count_lost(LOST_CONTAINER_SLOTS_FULL);
    return 0;
}

// 0: not in the target; else the task's slot + 1.
static __always_inline u32 target_slot(void)
{
    u32 zero = 0;
    struct settings *set = settings.lookup(&zero);
    if (!set || !set->pod_cgroup_id)
        return 0;
    if (bpf_get_current_ancestor_cgroup_id(set->pod_level) != set->pod_cgroup_id)
        return 0;
    return slot_of(bpf_get_current_cgroup_id());
}
#else
static __always_inline u32 target_slot(void)
{
    return bpf_get_current_cgroup_id() == TARGET_CGROUP_ID;
}
#endif

// bpf_get_current_cgroup_id() is a helper call that costs about half of an empty program.
// (In POD_MODE a miss costs the ancestor helper, and for the pod's own tasks a slot lookup.)
// A task's register frame sits at a fixed place on its kernel stack for its whole life and
// no two live tasks share one, so its address identifies the task: each CPU remembers the
// last task it asked about and the answer. A task's cgroup changes only when it is migrated
// (cgroup_attach_task, cgroup_transfer_tasks) or created (sched_process_fork, which also
// covers CLONE_INTO_CGROUP and a new task reusing a freed stack); each of those bumps the
// generation, and an answer from an older generation is asked again.
struct verdict {
    u64 frame;
    u64 generation;
    u64 slot;  // target_slot()'s answer
};
BPF_PERCPU_ARRAY(verdicts, struct verdict, 1);
BPF_ARRAY(generation, u64, 1);

static __always_inline u32 target_slot_cached(u64 frame)
{
    u32 zero = 0;
    struct verdict *cached = verdicts.lookup(&zero);
    u64 *current_generation = generation.lookup(&zero);
    if (!cached || !current_generation)
        return target_slot();
    u64 now = *current_generation;
    if (cached->frame == frame && cached->generation == now)
        return cached->slot;
    u32 answer = target_slot();
    cached->frame = frame;
    cached->generation = now;
    cached->slot = answer;
    return answer;
}

static __always_inline void cgroups_may_have_changed(void)
{
    u32 zero = 0;
    u64 *current_generation = generation.lookup(&zero);
    if (current_generation)
        __sync_fetch_and_add(current_generation, 1);
}

RAW_TRACEPOINT_PROBE(sched_process_fork)
{
    cgroups_may_have_changed();
    return 0;
}

RAW_TRACEPOINT_PROBE(cgroup_attach_task)
{
    cgroups_may_have_changed();
    return 0;
}

RAW_TRACEPOINT_PROBE(cgroup_transfer_tasks)
{
    cgroups_may_have_changed();
    return 0;
}

static __always_inline void count_lost(u32 reason)
{
    u64 *n = lost.lookup(&reason);
    if (n)
        (*n)++;
}

// ---------------------------------------------------------------- registers

#if REGS_NR_SIZE == 8
typedef s64 nr_register;
#else
typedef s32 nr_register;
#endif

// The syscall number from any register frame (the task's own at exit), through the helper.
static __always_inline int probe_syscall_nr(void *regs, long *nr)
{
    nr_register value = -1;
    int err = bpf_probe_read_kernel(&value, sizeof(value), regs + REGS_NR_OFFSET);
    *nr = value;
    return err;
}

#if TP_BTF
// Offsets are constants after inlining, as the verifier requires for these loads. (The
// frame travels as an integer so that bcc does not rewrite the loads into helper calls.)
static __always_inline int read_syscall_nr(void *regs, long *nr)
{
    *nr = *(volatile nr_register *)((u64)regs + REGS_NR_OFFSET);
    return 0;
}

static __always_inline u64 read_register(void *regs, u64 offset)
{
    return *(volatile u64 *)((u64)regs + offset);
}
#else
static __always_inline int read_syscall_nr(void *regs, long *nr)
{
    return probe_syscall_nr(regs, nr);
}

static __always_inline u64 read_register(void *regs, u64 offset)
{
    u64 value = 0;
    bpf_probe_read_kernel(&value, 8, regs + offset);
    return value;
}
#endif

// The full 64-bit register, exactly what seccomp compares.
static __always_inline u64 read_arg(void *regs, u32 index)
{
    u64 offset;
    switch (index) {
    case 0: offset = REGS_ARG0_OFFSET; break;
    case 1: offset = REGS_ARG1_OFFSET; break;
    case 2: offset = REGS_ARG2_OFFSET; break;
    case 3: offset = REGS_ARG3_OFFSET; break;
    case 4: offset = REGS_ARG4_OFFSET; break;
    default: offset = REGS_ARG5_OFFSET; break;
    }
    return read_register(regs, offset);
}

// ---------------------------------------------------------------- phases

static __always_inline u32 current_phase(struct state *st, struct settings *set)
{
#if GATE_RUNC
    if (st->gate_phase < PHASE_STARTUP)
        return st->gate_phase;
#endif
    return set->load ? PHASE_LOAD : PHASE_STARTUP;
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
static __always_inline int is_exec(long nr)
{
    // The exec must be allowed by the filter: it opens the gates before it is counted.
    return nr == __NR_execve || nr == __NR_execveat;
}

// A new task (process or thread) first returns to user space from the call that made it,
// with 0: that call is its parent's, counted (with its arguments) at the parent's return.
static __always_inline int is_new_task_return(long nr, long ret)
{
    if (ret != 0)
        return 0;
#ifdef __NR_fork
    if (nr == __NR_fork || nr == __NR_vfork)
        return 1;
#endif
    return nr == __NR_clone || nr == __NR_clone3;
}

// Only seccomp(SECCOMP_SET_MODE_FILTER) and prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)
// install a filter; their arguments are still in the registers at exit.
static __always_inline int installed_filter(void *regs, long nr, long ret)
{
    if (ret < 0)
        return 0;
    if (nr == __NR_seccomp)
        return read_arg(regs, 0) == SECCOMP_SET_MODE_FILTER;
    if (nr == __NR_prctl)
        return read_arg(regs, 0) == PR_SET_SECCOMP && read_arg(regs, 1) == SECCOMP_MODE_FILTER;
    return 0;
}

// ---------------------------------------------------------------- counters

static __always_inline void increment(u32 index)
{
    u64 *n = syscall_counts.lookup(&index);
    if (n)
        (*n)++;
}

static __always_inline void count_syscall(u32 slot, u32 phase, u32 nr, long ret)
{
    if (slot >= N_SLOTS)
        return;
    u32 row = ((slot * N_PHASES + phase) * MAX_NR + nr) * N_RESULTS;
    increment(row + RESULT_CALLS);
    if (ret >= 0)
        return;
    if (ret == -EPERM)
        increment(row + RESULT_EPERM);
    else if (ret == -EACCES)
        increment(row + RESULT_EACCES);
    else if (ret == -ENOSYS_)
        increment(row + RESULT_ENOSYS);
}

// Attribute the capability checks made during this syscall to it and to its result.
static __always_inline void flush_pending_caps(s64 *waiting, u32 tid, u32 phase, u32 nr, long ret)
{
    struct pending_caps *p = pending.lookup(&tid);
    if (!p)
        return;
    struct cap_key key = {.nr = nr, .phase = phase, .slot = p->slot, .granted = p->granted, .denied = p->denied};
    pending.delete(&tid);
    __sync_fetch_and_add(waiting, -1);

    key.denied_outcome = OUTCOME_DENIED_NO_EFFECT;
    if (ret == -EPERM || ret == -EACCES)
        key.denied_outcome = OUTCOME_DENIED_FAILED;
    else if (ret < 0)
        key.denied_outcome = OUTCOME_DENIED_OTHER_ERROR;

    u64 zero = 0;
    u64 *n = cap_checks.lookup_or_try_init(&key, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        count_lost(LOST_CAP_MAP_FULL);
}

// ---------------------------------------------------------------- arguments

static __always_inline int records_arguments(long nr)
{
    switch (nr) {
    case __NR_clone:
    case __NR_clone3:
    case __NR_unshare:
    case __NR_setns:
    case __NR_socket:
    case __NR_socketpair:
    case __NR_personality:
    case __NR_prctl:
    case __NR_ioctl:
    case __NR_connect:
        return 1;
    }
    return 0;
}

static __always_inline u16 errno_of(long ret)
{
    return ret < 0 && ret >= -MAX_ERRNO_ ? (u16)-ret : 0;
}

static __always_inline void count_argument(struct arg_key *key)
{
    u64 *n = arg_counts.lookup(key);
    if (n) {
        __sync_fetch_and_add(n, 1);
        return;
    }
    u64 one = 1;
    if (arg_counts.insert(key, &one) != 0) {
        n = arg_counts.lookup(key);  // another CPU inserted it meanwhile
        if (n)
            __sync_fetch_and_add(n, 1);
        else
            count_lost(LOST_ARG_MAP_FULL);
        return;
    }
    // A new ioctl row: the loader names its descriptor through /proc at once, while the
    // process still holds it.
    if (key->tgid)
        descriptors.ringbuf_output(key, sizeof(*key), 0);
}

static __always_inline void record_connect(void *regs, u32 slot, u32 phase, long ret)
{
    struct connect_key key = {.phase = phase, .err = errno_of(ret), .slot = slot};
    void *address = (void *)read_arg(regs, 1);
    u64 length = read_arg(regs, 2);
    if (bpf_probe_read_user(&key.family, sizeof(key.family), address) != 0) {
        key.family = FAMILY_UNREADABLE;
    } else if (key.family == AF_INET_) {
        bpf_probe_read_user(&key.port, 2, address + 2);
        bpf_probe_read_user(key.addr, 4, address + 4);
    } else if (key.family == AF_INET6_) {
        bpf_probe_read_user(&key.port, 2, address + 2);
        bpf_probe_read_user(key.addr, 16, address + 8);
    } else if (key.family == AF_UNIX_ && length > 2) {
        key.path_length = length - 2 < CONNECT_ADDR_LEN ? length - 2 : CONNECT_ADDR_LEN;
        if (bpf_probe_read_user(key.addr, CONNECT_ADDR_LEN, address + 2) != 0)
            key.path_length = 0;
    }
    u64 zero = 0;
    u64 *n = connect_counts.lookup_or_try_init(&key, &zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    else
        count_lost(LOST_CONNECT_MAP_FULL);
}

// values[] per syscall: clone, unshare: flags; clone3: flags read from the clone_args the
// caller passed (values[2] = 1 when unreadable); setns: nstype; socket, socketpair: family,
// type without SOCK_NONBLOCK/SOCK_CLOEXEC, protocol; personality: persona; prctl: option;
// ioctl: request, descriptor (with tgid). Registers are kept whole: a 32-bit argument may
// arrive sign-extended, and seccomp compares all 64 bits.
static __always_inline void record_arguments(void *regs, u32 slot, u32 phase, long nr, long ret)
{
    struct arg_key key = {.nr = nr, .phase = phase, .err = errno_of(ret), .slot = slot};
    switch (nr) {
    case __NR_clone:
        if (ret == 0)  // the child's return from the same call: the parent counts it
            return;
        key.values[0] = read_arg(regs, CLONE_FLAGS_ARG);
        break;
    case __NR_clone3:
        if (ret == 0)
            return;
        if (bpf_probe_read_user(&key.values[0], 8, (void *)read_arg(regs, 0)) != 0)
            key.values[2] = 1;
        break;
    case __NR_setns:
        key.values[0] = read_arg(regs, 1);
        break;
    case __NR_socket:
    case __NR_socketpair:
        key.values[0] = read_arg(regs, 0);
        key.values[1] = read_arg(regs, 1) & ~(u64)SOCK_FLAGS_;
        key.values[2] = read_arg(regs, 2);
        break;
    case __NR_ioctl:
        key.tgid = bpf_get_current_pid_tgid() >> 32;
        key.values[0] = read_arg(regs, 1);
        key.values[1] = read_arg(regs, 0);
        break;
    case __NR_connect:
        record_connect(regs, slot, phase, ret);
        return;
    default:  // unshare, personality, prctl
        key.values[0] = read_arg(regs, 0);
    }
    count_argument(&key);
}

// ---------------------------------------------------------------- programs

// sys_exit(struct pt_regs *regs, long ret); attached by the loader (see TP_BTF).
int syscall_exit(u64 *ctx)
{
    u32 slot = target_slot_cached(ctx[0]);
    if (!slot)
        return 0;
    slot -= 1;
    void *regs = (void *)ctx[0];
    long ret = (long)ctx[1];
    long nr;
    if (read_syscall_nr(regs, &nr) != 0) {
        count_lost(LOST_REGISTERS_UNREADABLE);
        return 0;
    }
    // rt_sigreturn restores the interrupted context, including orig_ax = -1, so its exit
    // reports -1 (and the restored register as "result"). Nothing else reaches here with
    // -1 unless a ptracer cancels a syscall.
    if (nr == -1) {
        nr = __NR_rt_sigreturn;
        ret = 0;
    }
    u32 zero = 0;
    struct state *st = state.lookup(&slot);
    struct settings *set = settings.lookup(&zero);
    s64 *waiting = pending_threads.lookup(&zero);
    if (!st || !set || !waiting)
        return 0;
#if GATE_RUNC
    // runc writes its init's pid into the cgroup as soon as that process's exec of runc
    // itself is past the point of no return, which can be before the exec returns: an
    // exec that is the target's very first event is runc's own, not the workload's.
    if (st->gate_phase < PHASE_STARTUP && is_exec(nr) && st->seen)
        st->gate_phase = PHASE_STARTUP;
    if (!st->seen) {
        st->seen = 1;
        if (st->gate_phase < GATE_FIRST_PHASE)
            st->gate_phase = GATE_FIRST_PHASE;
    }
#endif
    u32 phase = current_phase(st, set);

    if (*waiting)
        flush_pending_caps(waiting, (u32)bpf_get_current_pid_tgid(), phase, (u64)nr < MAX_NR ? nr : MAX_NR - 1, ret);

    if ((u64)nr >= MAX_NR) {
        count_lost(LOST_SYSCALL_NR_OUT_OF_RANGE);
        return 0;
    }
    if (is_new_task_return(nr, ret))
        return 0;
    count_syscall(slot, phase, nr, ret);
    if (records_arguments(nr))
        record_arguments(regs, slot, phase, nr, ret);
#if GATE_RUNC
    if (st->gate_phase == PHASE_RUNTIME && installed_filter(regs, nr, ret))
        st->gate_phase = PHASE_HANDOVER;
#endif
    return 0;
}

// exit and exit_group never return, so sys_exit never sees them; the workload still needs
// them allowed (glibc's _exit falls through to a crashing instruction when they fail).
static __always_inline void count_exit(u32 slot, long nr)
{
    u32 zero = 0;
    struct state *st = state.lookup(&slot);
    struct settings *set = settings.lookup(&zero);
    if (st && set)
        count_syscall(slot, current_phase(st, set), nr, 0);
}

#if EXIT_FROM_TASK_REGS
// Every exiting task passes here once; its registers still hold the syscall it is in. A task
// killed by a signal holds another number (or -1), so only real exit/exit_group calls count,
// and no program runs at any syscall's entry.
RAW_TRACEPOINT_PROBE(sched_process_exit)
{
    u32 slot = target_slot();
    if (!slot)
        return 0;
    void *regs = (void *)bpf_task_pt_regs(bpf_get_current_task_btf());
    long nr;
    if (probe_syscall_nr(regs, &nr) != 0) {
        count_lost(LOST_REGISTERS_UNREADABLE);
        return 0;
    }
    if (nr == __NR_exit || nr == __NR_exit_group)
        count_exit(slot - 1, nr);
    return 0;
}
#else
TRACEPOINT_PROBE(syscalls, sys_enter_exit_group)
{
    u32 slot = target_slot();
    if (slot)
        count_exit(slot - 1, __NR_exit_group);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_exit)
{
    u32 slot = target_slot();
    if (slot)
        count_exit(slot - 1, __NR_exit);
    return 0;
}
#endif

// Capability checks a task makes after it entered exit/exit_group (or while a fatal signal
// kills it) never reach a sys_exit. The task's last trace is its free, which runs later in
// another context: attribute what it left pending to exit_group there.
TRACEPOINT_PROBE(sched, sched_process_free)
{
    u32 tid = args->pid;
    u32 zero = 0;
    s64 *waiting = pending_threads.lookup(&zero);
    if (!waiting || !*waiting)
        return 0;
    struct pending_caps *p = pending.lookup(&tid);
    if (!p)
        return 0;
    u32 slot = p->slot;
    struct state *st = state.lookup(&slot);
    struct settings *set = settings.lookup(&zero);
    if (st && set)
        flush_pending_caps(waiting, tid, current_phase(st, set), __NR_exit_group, 0);
    return 0;
}

static __always_inline void note_cap_check(u32 slot, int cap, int granted)
{
    // The programs attach one by one. A check noted before the sys_exit and process-free
    // programs are attached could be left pending forever (its thread may exit meanwhile),
    // so checks count only once the loader says every program is in place.
    u32 zero = 0;
    struct settings *set = settings.lookup(&zero);
    s64 *waiting = pending_threads.lookup(&zero);
    if (!waiting || !set || !set->attached)
        return;
    if (cap < 0 || cap >= 64) {
        count_lost(LOST_CAP_OUT_OF_RANGE);
        return;
    }
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct pending_caps *p = pending.lookup(&tid);
    if (!p) {
        struct pending_caps fresh = {.slot = slot};
        if (pending.insert(&tid, &fresh) != 0) {
            count_lost(LOST_PENDING_MAP_FULL);
            return;
        }
        __sync_fetch_and_add(waiting, 1);
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
    u32 slot;
};
BPF_HASH(cap_in_flight, u32, struct cap_call, 16384);

int cap_capable_entry(struct pt_regs *ctx, const void *cred, const void *ns, int cap,
                        unsigned int opts)
{
    // A no-audit check is one whose outcome the kernel itself treats as advisory
    // (e.g. CAP_SYS_ADMIN in mmap's overcommit accounting): not evidence of need.
    u32 slot = target_slot();
    if (!slot || (opts & CAP_OPT_NOAUDIT))
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct cap_call call = {.cap = cap, .slot = slot - 1};
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
    u32 slot = call->slot;
    cap_in_flight.delete(&tid);
    note_cap_check(slot, cap, PT_REGS_RC(ctx) == 0);
    return 0;
}
#else
TRACEPOINT_PROBE(capability, cap_capable)
{
    u32 slot = target_slot();
    if (slot)
        note_cap_check(slot - 1, args->cap, args->ret == 0);
    return 0;
}
#endif
