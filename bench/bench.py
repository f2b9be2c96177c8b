#!/usr/bin/env python3
"""oominit against tini (tini-static), dumb-init and catatonit, every figure measured in the same
run, interleaved: binary size, start-and-exit, idle RSS and wakeups (as PID 1 and not), a burst of
orphaned zombies, signal forwarding latency; and, for oominit alone, OOM detection latency and the
cost of its exit record. Prints one table with medians and ratios against tini-static, and checks
the budgets. No timing here is asserted by `cargo test`.

Usage: bench/run [--rounds N] [--calls N] [--idle-seconds S] [--zombies N] [--burst-rounds N]
                 [--signals N] [--ooms N]
"""
import argparse
import ctypes
import os
import select
import signal
import statistics
import subprocess
import sys
import time

import at_limit
import limited

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = None  # beside the oominit binary, set in main()
INITS = {
    "oominit": None,  # from --oominit
    "tini-static": "/usr/bin/tini-static",
    "dumb-init": "/usr/bin/dumb-init",
    "catatonit": "/usr/bin/catatonit",
}


# oominit without its event loop: see argv().
SIGWAIT = "oominit, ulimit -n 3"


def argv(name, as_pid1=False):
    """How each init is invoked: tini needs -s when it is not PID 1 (the budget compares with
    `tini-static -s`); the others need nothing."""
    if name == SIGWAIT:
        # With three descriptors oominit cannot make its signalfd and epoll set, and waits as
        # tini does (sigtimedwait): what the event loop costs a forwarded signal.
        return ["sh", "-c", 'ulimit -n 3 && exec "$0" -- "$@"', INITS["oominit"]]
    extra = ["-s"] if name == "tini-static" and not as_pid1 else []
    return [INITS[name]] + extra + ["--"]


def spawn_wait(cmd, env=None):
    pid = os.posix_spawn(cmd[0], cmd, env or os.environ)
    return os.waitpid(pid, 0)[1]


def start_exit(cmd, calls):
    times = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        status = spawn_wait(cmd)
        times.append((time.perf_counter_ns() - t0) / 1000)
        if status != 0:
            sys.exit(f"{cmd} exited with status {status}")
    return statistics.median(times)


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def ctxt(pid):
    return status_kb(pid, "voluntary_ctxt_switches") + status_kb(pid, "nonvoluntary_ctxt_switches")


def child_of(pid):
    """unshare's forked child: the init, PID 1 of the new namespace."""
    for _ in range(500):
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    sys.exit("unshare did not start the init")


def in_pidns(cmd):
    return ["unshare", "--pid", "--fork", "--mount-proc"] + cmd


# Where nothing wakes it below the limit (cgroup v2), oominit lists its cgroup 18 times in its
# first 10 s, as an application starts its workers: idle is after that.
START_UP = 10


def idle_all(seconds):
    """Every init idle at once (they do nothing), as PID 1 and not: RSS in kB, wakeups/minute."""
    procs = {}
    for name in INITS:
        for pid1 in (False, True):
            cmd = argv(name, pid1) + ["sleep", str(seconds + START_UP + 10)]
            p = subprocess.Popen(in_pidns(cmd) if pid1 else cmd, stderr=subprocess.DEVNULL)
            procs[(name, pid1)] = p
    pids = {k: (child_of(p.pid) if k[1] else p.pid) for k, p in procs.items()}
    time.sleep(1.0)
    rss = {k: status_kb(pid, "VmRSS") for k, pid in pids.items()}
    time.sleep(START_UP)
    c0 = {k: ctxt(pid) for k, pid in pids.items()}
    time.sleep(seconds)
    wake = {k: (ctxt(pid) - c0[k]) * 60.0 / seconds for k, pid in pids.items()}
    for p in procs.values():
        p.kill()
        p.wait()
    return rss, wake


def zombie_burst(name, n):
    """CPU time (ms) the init spends as PID 1 while n orphaned zombies are handed to it, and how
    many were left unreaped."""
    cmd = in_pidns(argv(name, True) + [os.path.join(EXAMPLES, "orphans"), str(n), "1.5"])
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    init = child_of(p.pid)
    line = p.stdout.readline().strip()  # printed once every zombie is gone (or 20 s passed)
    with open(f"/proc/{init}/schedstat") as f:
        cpu_ns = int(f.read().split()[0])
    p.wait()
    left = int(line.split("left=")[1]) if "left=" in line else -1
    return cpu_ns / 1e6, left


def signal_latency(name, count):
    """SIGTERM to the init until the child's sigwait returns, all pinned to CPU 0: µs samples."""
    os.sched_setaffinity(0, {0})
    p = subprocess.Popen(["taskset", "-c", "0"] + argv(name) + [os.path.join(EXAMPLES, "sigstamp")],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(0.05)
        samples = []
        for _ in range(count):
            t0 = time.monotonic_ns()
            os.kill(p.pid, signal.SIGTERM)
            t1 = int(p.stdout.readline())
            samples.append((t1 - t0) / 1000)
        os.kill(p.pid, signal.SIGINT)
        p.wait(timeout=5)
    finally:
        if p.poll() is None:
            p.kill()
        os.sched_setaffinity(0, set(range(os.cpu_count())))
    return samples


def own_memory_cgroup():
    for line in open("/proc/self/cgroup"):
        parts = line.strip().split(":", 2)
        if "memory" in parts[1].split(","):
            return "/sys/fs/cgroup/memory" + parts[2]
    return None


def oom_latency(oominit, runs):
    """Kernel's 'Killed process' (/dev/kmsg, corrected to CLOCK_MONOTONIC) to the arrival of
    oominit's live event, for a leaf killed under a 32 MiB cgroup v1 limit: ms samples."""
    base = own_memory_cgroup()
    if not base:
        return None
    cg = os.path.join(base, f"oominit-bench-{os.getpid()}")
    os.mkdir(cg)
    samples = []
    try:
        with open(os.path.join(cg, "memory.limit_in_bytes"), "w") as f:
            f.write("32M")
        kmsg = os.open("/dev/kmsg", os.O_RDWR | os.O_NONBLOCK)
        hog = os.path.join(EXAMPLES, "memhog")
        for _ in range(runs):
            os.lseek(kmsg, 0, os.SEEK_END)
            mark = time.monotonic_ns() // 1000
            os.write(kmsg, f"oominit-bench-clock {mark}\n".encode())
            script = f"echo $$ > {cg}/cgroup.procs && exec {oominit} --record stdout -- sh -c '{hog} 128 >/dev/null; exit 0'"
            p = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            arrival = None
            for line in p.stdout:
                if b'"event":"oom"' in line and arrival is None:
                    arrival = time.monotonic_ns() // 1000
            p.wait()
            offset, killed = None, None
            while True:
                try:
                    rec = os.read(kmsg, 8192).decode(errors="replace")
                except BlockingIOError:
                    break
                ts = int(rec.split(",")[2])
                if "oominit-bench-clock" in rec:
                    offset = ts - int(rec.rsplit(" ", 1)[1])
                elif "Killed process" in rec and killed is None:
                    killed = ts
            if arrival and killed and offset is not None:
                samples.append((arrival - (killed - offset)) / 1000)
        os.close(kmsg)
    finally:
        limited.remove_cgroup(cg)
    return samples


def in_mount_ns(fn, drop_cgroupfs):
    """Run fn() in a forked child with its own mount namespace, with or without cgroupfs; both
    variants run the same way, so only the cgroup differs. Returns fn()'s result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        ok = libc.unshare(0x00020000) == 0  # CLONE_NEWNS
        ok = ok and libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None) == 0  # MS_REC|MS_PRIVATE
        ok = ok and (not drop_cgroupfs or libc.umount2(b"/sys/fs/cgroup", 2) == 0)  # MNT_DETACH
        os.write(w, repr(fn() if ok else None).encode())
        os._exit(0)
    os.close(w)
    out = os.read(r, 4096).decode()
    os.waitpid(pid, 0)
    return eval(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--oominit", required=True)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--idle-seconds", type=float, default=20)
    ap.add_argument("--zombies", type=int, default=5000)
    # 3000: with 300 the median moved by 5-10% from run to run on a shared machine.
    ap.add_argument("--signals", type=int, default=3000)
    ap.add_argument("--ooms", type=int, default=10)
    ap.add_argument("--burst-rounds", type=int, default=5)
    a = ap.parse_args()
    INITS["oominit"] = a.oominit
    global EXAMPLES
    EXAMPLES = os.path.join(os.path.dirname(a.oominit), "examples")
    names = list(INITS)
    os.dup2(os.open("/dev/null", os.O_WRONLY), 2)  # the inits' own stderr (oominit's record)
    rows = []  # (measure, {init: value}, budget on oominit/tini, unit note)

    rows.append(("static binary size (bytes)", {n: os.path.getsize(INITS[n]) for n in names}, 0.71))

    se = {n: [] for n in names + ["/bin/true"]}
    for r in range(a.rounds):
        order = names[r % len(names):] + names[:r % len(names)]  # rotate: drift hits all alike
        for n in order:
            se[n].append(start_exit(argv(n) + ["/bin/true"], a.calls))
        se["/bin/true"].append(start_exit(["/bin/true"], a.calls))
    rows.append(("start-and-exit, INIT -- /bin/true (µs, median)", {n: statistics.median(se[n]) for n in names}, 1.0))
    true_us = statistics.median(se["/bin/true"])

    rss, wake = idle_all(a.idle_seconds)
    for pid1 in (False, True):
        where = "as PID 1" if pid1 else "not PID 1"
        rows.append((f"idle RSS, {where} (kB)", {n: rss[(n, pid1)] for n in names}, 1.0))
        rows.append((f"idle wakeups per minute, {where}", {n: wake[(n, pid1)] for n in names}, "zero"))

    # The bursts and the signal samples in rotating rounds too: one block per init would let a
    # moment of load on the shared machine land on one init only.
    cpu, left = {n: [] for n in names}, {n: 0 for n in names}
    lat = {n: [] for n in names + [SIGWAIT]}
    for r in range(a.burst_rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            ms, k = zombie_burst(n, a.zombies)
            cpu[n].append(ms)
            left[n] = max(left[n], k)
            lat[n] += signal_latency(n, max(1, a.signals // a.burst_rounds))
        lat[SIGWAIT] += signal_latency(SIGWAIT, max(1, a.signals // a.burst_rounds))
    rows.append((f"{a.zombies} orphaned zombies as PID 1: init CPU (ms, median of {a.burst_rounds})",
                 {n: statistics.median(cpu[n]) for n in names}, 1.0))
    rows.append((f"{a.zombies} orphaned zombies: most left unreaped", left, "zero"))

    rows.append(("SIGTERM forwarding latency, one CPU (µs, median)", {n: statistics.median(lat[n]) for n in names}, 1.0))
    rows.append(("SIGTERM forwarding latency, one CPU (µs, p99)",
                 {n: sorted(lat[n])[int(len(lat[n]) * 0.99) - 1] for n in names}, None))

    width = 60
    print(f"{'measure':{width}} " + " ".join(f"{n:>12}" for n in names) + f" {'oominit/tini':>12}  budget")
    missed = []
    for measure, vals, budget in rows:
        o, t = vals["oominit"], vals["tini-static"]
        ratio = o / t if t else (0.0 if o == 0 else float("inf"))
        verdict = ""
        if budget == "zero":
            verdict = "0: " + ("ok" if o == 0 else "MISSED")
            missed += [measure] if o != 0 else []
        elif budget is not None:
            verdict = f"<= {budget}: " + ("ok" if ratio <= budget else "MISSED")
            missed += [f"{measure} ({ratio:.3f})"] if ratio > budget else []
        print(f"{measure:{width}} " + " ".join(f"{vals[n]:12.1f}" for n in names) + f" {ratio:12.3f}  {verdict}")
    print(f"{'/bin/true alone (µs, median)':{width}} {true_us:12.1f}")

    print("\noominit alone:")
    ooms = oom_latency(a.oominit, a.ooms)
    if ooms:
        s = sorted(ooms)
        print(f"  OOM detection latency, kernel kill to live event (cgroup v1, this host): median {statistics.median(s):.2f} ms, "
              f"max {s[-1]:.2f} ms over {len(s)} kills")
    else:
        print("  OOM detection latency: not measured (needs root, a cgroup v1 memory cgroup and /dev/kmsg)")
    loop, fallback = statistics.median(lat["oominit"]), statistics.median(lat[SIGWAIT])
    print(f"  SIGTERM forwarding latency without the event loop (ulimit -n 3: sigtimedwait, as tini): median "
          f"{fallback:.1f} µs against {loop:.1f} µs with it (tini-static {statistics.median(lat['tini-static']):.1f}): "
          f"epoll over a signalfd costs {loop - fallback:.1f} µs a forwarded signal")
    cmd = [a.oominit, "--", "/bin/true"]
    with_cg, without_cg = [], []
    for _ in range(max(3, a.rounds // 2)):
        w = in_mount_ns(lambda: start_exit(cmd, a.calls), False)
        wo = in_mount_ns(lambda: start_exit(cmd, a.calls), True)
        if w is not None and wo is not None:
            with_cg.append(w)
            without_cg.append(wo)
    if without_cg:
        w, wo = statistics.median(with_cg), statistics.median(without_cg)
        print(f"  start-and-exit with a memory cgroup {w:.1f} µs, without cgroupfs {wo:.1f} µs: "
              f"finding and watching the cgroup costs {w - wo:.1f} µs per container start "
              f"(the record itself is written either way)")
    print("\nstart-and-exit under a 256 MiB memory limit, INIT -- /bin/true (µs, median of round medians; bench/limited.py):")
    for place, got in limited.measure(a.oominit, EXAMPLES, a.rounds, max(20, a.calls // 2)):
        if isinstance(got, str):
            print(f"  {place:34} {got}")
            missed.append(f"start-and-exit, {place}: {got}")
            continue
        ratio = got["oominit"] / got["tini-static"]
        verdict = "ok" if ratio <= 1.0 else "MISSED"
        print(f"  {place:34} oominit {got['oominit']:9.1f}  tini-static {got['tini-static']:9.1f}  ratio {ratio:.3f}  <= 1.0: {verdict}")
        if ratio > 1.0:
            missed.append(f"start-and-exit, {place} ({ratio:.3f})")
    print("\nat the limit on cgroup v2, the VM (bench/at_limit.py: memory.high events while a loop allocates):")
    r = at_limit.measure(a.oominit, 30)
    if isinstance(r, str):
        print(f"  {r}")
    else:
        print(f"  {r['events']} high/max events in {r['seconds']} s, oominit woke {r['wakes']} times: oominit "
              f"{r['oominit_ms']:.0f} ms of CPU ({100 * r['share_of_cpu']:.2f}% of one CPU), the workload "
              f"{r['workload_ms']:.0f} ms; OOM kills {r['kills']}")
    print(f"\nrounds={a.rounds} calls/round={a.calls} idle={a.idle_seconds}s zombies={a.zombies} signals={a.signals} "
          f"kernel={os.uname().release} cpus={os.cpu_count()}")
    print("dumb-init is Debian's dynamically linked build: its size excludes glibc, its RSS includes shared pages.")
    if missed:
        print("budgets missed: " + "; ".join(missed))
        return 1
    print("all budgets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
