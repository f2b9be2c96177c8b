#!/usr/bin/env python3
"""How often oominit names exactly the processes the kernel OOM-killed (issue 5's measure).

A stress-like workload (examples/workers.rs: a parent forks 4 workers that each touch 40 MiB under
a 96 MiB limit, and reaps each the moment it dies, so oominit never sees their exit status) runs
R times under oominit as PID 1 of a PID namespace. The workload prints the pid of every worker it
reaped dead of SIGKILL: that is the truth. A run counts as exact when the exit record's victims are
exactly those workers (pid and comm), none marked uncertain, and `unnamed` is 0. Then R runs where
the workers touch 10 MiB each (no OOM): a run counts as clean when no victim is named at all.

`bench/victims [--runs R] [--host-only | --vm-only] [--smp N]`: cgroup v1 on this machine (a child
of the caller's memory cgroup), then cgroup v2 in the VM of tests/vm (Debian 6.1 under TCG, 512 MiB,
N CPUs, 1 by default).
Prints one line per failed run and a summary per kernel. Not part of `cargo test`: a measure, not
a pass/fail check (it exits 1 only when a run could not be made at all).
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "vm"))
import vm  # noqa: E402  (the VM suite's kernel, build, pack and boot)

WORKERS, OOM_MIB, CLEAN_MIB, LIMIT = 4, 40, 10, "96M"


def judge(kind, out_lines, records, tally, label):
    """Compare one run's truth (the workload's output) with its exit record."""
    killed = {int(l.split()[1]) for l in out_lines if l.startswith("killed ")}
    exits = [r for r in records if r.get("event") == "exit"]
    if len(exits) != 1:
        tally["broken"] += 1
        print(f"{label}: {len(exits)} exit records; workload said {out_lines}")
        return
    oom = exits[0]["oom"]
    victims = oom["victims"]
    for v in victims:
        tally["source " + v["source"] + (" (uncertain)" if v["uncertain"] else "")] += 1
    named = {v["pid"] for v in victims if not v["uncertain"] and v["comm"] == "workers"}
    if kind == "oom":
        tally["kills"] += len(killed)
        exact = named == killed and len(victims) == len(killed) and oom["unnamed"] == 0 and killed
        tally["exact" if exact else "wrong"] += 1
        if not exact:
            print(f"{label}: killed {sorted(killed)}, record names {json.dumps(victims)} unnamed {oom['unnamed']}")
    else:
        clean = not victims and oom["kills"] == 0 and not killed
        tally["clean" if clean else "wrong"] += 1
        if not clean:
            print(f"{label}: killed {sorted(killed)}, kills {oom['kills']}, record names {json.dumps(victims)}")


def summary(name, oom, clean, runs):
    print(f"# {name}: {oom['exact']}/{runs} OOM runs named exactly the killed workers "
          f"({oom['kills']} kills; wrong {oom['wrong']}, broken {oom['broken']}); "
          f"{clean['clean']}/{runs} runs without an OOM named no victim")
    print("#   sources: " + ", ".join(f"{k[7:]} {v}" for k, v in sorted(oom.items()) if k.startswith("source ")))


def host(oominit, workers, runs):
    own = next(l.split(":", 2)[2] for l in open("/proc/self/cgroup").read().splitlines() if ":memory:" in l)
    base = "/sys/fs/cgroup/memory" + own
    tallies = {}
    for kind, mib in (("oom", OOM_MIB), ("clean", CLEAN_MIB)):
        tally = tallies[kind] = collections.Counter()
        for i in range(runs):
            cg = os.path.join(base, f"oominit-victims-{os.getpid()}-{kind}-{i}")
            os.mkdir(cg)
            try:
                for f in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
                    if os.path.exists(os.path.join(cg, f)):
                        open(os.path.join(cg, f), "w").write(LIMIT)
                p = subprocess.run(
                    ["sh", "-c", f'echo $$ > {cg}/cgroup.procs && exec "$@"', "sh", "unshare", "--pid", "--fork",
                     "--mount-proc", oominit, "--record", "stderr", "--", workers, str(WORKERS), str(mib)],
                    capture_output=True, text=True, timeout=60)
            finally:
                os.rmdir(cg)
            records = [json.loads(l) for l in p.stderr.splitlines() if l.startswith('{"event"')]
            judge(kind, p.stdout.splitlines(), records, tally, f"v1 {kind} run {i}")
    return tallies


def in_vm(oominit, runs):
    lines = [
        "#!/bin/busybox sh",
        "/bin/busybox --install -s /bin",
        "mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp",
        "mount -t cgroup2 cgroup2 /sys/fs/cgroup; echo +memory > /sys/fs/cgroup/cgroup.subtree_control",
        'echo "@@ UNAME $(uname -r)"',
    ]
    for kind, mib in (("oom", OOM_MIB), ("clean", CLEAN_MIB)):
        lines += [
            f"i=0; while [ $i -lt {runs} ]; do",
            f"  d=/sys/fs/cgroup/{kind}$i; mkdir $d; echo {LIMIT} > $d/memory.max",
            f"  /minictr $d v2 -- /oominit --record /tmp/rec -- /workers {WORKERS} {mib} > /tmp/out 2> /tmp/err",
            f'  sed "s/^/@@ OUT {kind} $i /" /tmp/out; sed "s/^/@@ REC {kind} $i /" /tmp/rec; rm -f /tmp/rec',
            "  rmdir $d; i=$((i+1))",
            "done",
        ]
    lines += ['echo "@@ DONE"', "poweroff -f"]
    with tempfile.TemporaryDirectory() as tmp:
        initrd = os.path.join(tmp, "initramfs.cpio.gz")
        vm.pack(oominit, "\n".join(lines) + "\n", initrd)
        serial, took = vm.boot(vm.kernel("6.1"), initrd, "512M", timeout=1800)
    kernel = (re.search(r"@@ UNAME (\S+)", serial) or [None, "?"])[1]
    print(f"# VM: {2 * runs} runs in {took:.0f} s, kernel {kernel}")
    if "@@ DONE" not in serial:
        print(serial[-4000:])
        raise SystemExit("the VM did not finish its runs")
    runs_out = collections.defaultdict(lambda: ([], []))
    for m in re.finditer(r"^@@ (OUT|REC) (\w+) (\d+) (.*)$", serial, re.M):
        what, kind, i, text = m.groups()
        out, recs = runs_out[(kind, int(i))]
        if what == "OUT":
            out.append(text)
        else:
            try:
                recs.append(json.loads(text))
            except ValueError:
                pass
    tallies = {}
    for kind in ("oom", "clean"):
        tally = tallies[kind] = collections.Counter()
        for i in range(runs):
            out, recs = runs_out[(kind, i)]
            judge(kind, out, recs, tally, f"v2 {kind} run {i}")
    return tallies, kernel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--host-only", action="store_true")
    ap.add_argument("--vm-only", action="store_true")
    ap.add_argument("--smp", type=int, default=1, help="the VM's CPUs (TCG); 1 by default, as in tests/vm")
    a = ap.parse_args()
    os.environ["OOMINIT_VM_SMP"] = str(a.smp)
    oominit = vm.build()
    workers = os.path.join(os.path.dirname(oominit), "examples", "workers")
    if not a.vm_only:
        t = host(oominit, workers, a.runs)
        summary(f"cgroup v1, this machine (kernel {os.uname().release})", t["oom"], t["clean"], a.runs)
    if not a.host_only:
        t, kernel = in_vm(oominit, a.runs)
        summary(f"cgroup v2, VM (kernel {kernel}, {a.smp} CPU)", t["oom"], t["clean"], a.runs)


if __name__ == "__main__":
    main()
