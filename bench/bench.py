#!/usr/bin/env python3
"""oominit against tini-static, measured in one run, interleaved: size, start-and-exit, idle RSS,
idle wakeups. Prints a table with medians and ratios against tini-static, and checks the budgets.

Usage: bench/run [--rounds N] [--calls N] [--idle-seconds S]   (bench/run builds and installs first)
No timing here is asserted by `cargo test`: these machines are shared; only ratios from one run mean
anything.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

def spawn_wait(argv):
    pid = os.posix_spawn(argv[0], argv, os.environ)
    _, status = os.waitpid(pid, 0)
    return status

def init_argv(init, as_pid1=False):
    """tini runs with -s when not PID 1, as the budgets say; oominit needs no flag for that."""
    return [init] + (["-s"] if "tini" in os.path.basename(init) and not as_pid1 else []) + ["--"]

def start_exit(init, calls):
    """Median wall time of one `INIT -- /bin/true` over `calls` calls, in microseconds."""
    argv = (init_argv(init) if init else []) + ["/bin/true"]
    times = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        status = spawn_wait(argv)
        times.append((time.perf_counter_ns() - t0) / 1000)
        if status != 0:
            sys.exit(f"{argv} exited with status {status}")
    return statistics.median(times)

def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)

def ctxt(pid):
    return proc_status(pid, "voluntary_ctxt_switches") + proc_status(pid, "nonvoluntary_ctxt_switches")

def init_pid(proc, as_pid1):
    """The init's host pid: the process itself, or unshare's forked child when it runs as PID 1."""
    if not as_pid1:
        return proc.pid
    for _ in range(200):
        try:
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    sys.exit("unshare did not start the init")

def idle(init, as_pid1, seconds):
    """(RSS in kB, wakeups per minute) of the init sitting idle in front of `sleep`."""
    argv = init_argv(init, as_pid1) + ["sleep", str(seconds + 5)]
    if as_pid1:
        argv = ["unshare", "--pid", "--fork", "--mount-proc"] + argv
    proc = subprocess.Popen(argv)
    try:
        pid = init_pid(proc, as_pid1)
        time.sleep(0.5)
        rss = proc_status(pid, "VmRSS")
        c0 = ctxt(pid)
        time.sleep(seconds)
        wakeups = (ctxt(pid) - c0) * 60.0 / seconds
        return rss, wakeups
    finally:
        proc.kill()
        proc.wait()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--oominit", required=True)
    ap.add_argument("--tini", default="/usr/bin/tini-static")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--idle-seconds", type=float, default=5)
    a = ap.parse_args()
    inits = {"oominit": a.oominit, "tini-static": a.tini}

    rows = []
    size = {k: os.path.getsize(v) for k, v in inits.items()}
    rows.append(("static binary size (bytes)", size["oominit"], size["tini-static"], 0.71))

    # Paired A/B rounds, order alternating, so drift on a shared machine hits both alike.
    se = {k: [] for k in inits}
    base = []
    for r in range(a.rounds):
        order = list(inits) if r % 2 == 0 else list(reversed(inits))
        for k in order:
            se[k].append(start_exit(inits[k], a.calls))
        base.append(start_exit(None, a.calls))
    med = {k: statistics.median(v) for k, v in se.items()}
    rows.append(("start-and-exit, INIT -- /bin/true (us, median)", med["oominit"], med["tini-static"], 1.0))
    true_med = statistics.median(base)

    for as_pid1 in (False, True):
        where = "as PID 1" if as_pid1 else "not PID 1"
        res = {}
        for k in (["oominit", "tini-static"] if as_pid1 else ["tini-static", "oominit"]):
            res[k] = idle(inits[k], as_pid1, a.idle_seconds)
        rows.append((f"idle RSS, {where} (kB)", res["oominit"][0], res["tini-static"][0], 1.0))
        rows.append((f"idle wakeups/min, {where}", res["oominit"][1], res["tini-static"][1], None))

    print(f"{'measure':52} {'oominit':>12} {'tini-static':>12} {'ratio':>7}  budget")
    failed = []
    for name, o, t, budget in rows:
        ratio = o / t if t else float("inf") if o else 1.0
        verdict = ""
        if budget is not None:
            verdict = f"<= {budget}: " + ("ok" if ratio <= budget else "MISSED")
            if ratio > budget:
                failed.append(name)
        elif "wakeups" in name:
            verdict = "0: " + ("ok" if o == 0 else "MISSED")
            if o != 0:
                failed.append(name)
        print(f"{name:52} {o:12.1f} {t:12.1f} {ratio:7.3f}  {verdict}")
    print(f"{'(/bin/true alone, us, median)':52} {true_med:12.1f}")
    print(f"rounds={a.rounds} calls/round={a.calls} idle={a.idle_seconds}s kernel={os.uname().release} cpus={os.cpu_count()}")
    if failed:
        print("budgets missed: " + "; ".join(failed))
        return 1
    print("all budgets met")
    return 0

if __name__ == "__main__":
    sys.exit(main())
