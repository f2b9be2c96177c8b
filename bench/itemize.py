"""What each step of oominit's start-up costs where the command shares oominit's CPU, and what
is left without any of them: the figures behind BENCHMARKS.md's account of start-and-exit under
a limit (issue 15).

Where the command has a CPU of its own, the steps oominit takes after the clone (while the
command execs) cost nothing in start-and-exit. Where it shares oominit's CPU (a one-CPU VM, a
container pinned with --cpuset-cpus, Docker's cpu cgroup on this host) they are in series with it.
Each step buys something, named below; this measures what, by skipping one at a time in a build
patched for that (bench/itemize.patch, applied by bench/itemize to a scratch copy). Never a
build to ship: a skipped step breaks the guarantee it is there for.

Every variant is a hard link to one patched binary (under TCG, copies would each be translated
anew), spawned by examples/spawnloop in rotating order with tini-static, `INIT -- /bin/true`
under a 256 MiB limit: this host's v1 cgroup in a cpu cgroup of its own; the same pinned to one
CPU; the VM of tests/vm (6.1, one emulated CPU, v2).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import limited

TINI = limited.TINI
# (name in the binary's file name, what the step buys)
STEPS = [
    ("lock", "the image locked in memory: oominit's code is never paged out and read back at a full cgroup"),
    ("stack", "the stack's pages touched: a deep call at the limit faults in nothing"),
    ("score", "oom_score_adj -1000: the kernel picks the command, not the init"),
    ("host", "/proc/vmstat and /proc/meminfo opened and read: host-wide reclaim told from a limit's"),
    ("reserve", "the reserve and the listings' buffers touched: room to name victims at the limit"),
    ("dryrun", "a record of the longest kind serialized: the writer's buffer already grown"),
    ("follow", "the main process followed (pidfd, /proc/PID/stat): main named when it is the victim"),
    ("watch", "the OOM notification (inotify, or eventfd and thresholds on v1): kills seen live"),
]
ALL = ",".join(s for s, _ in STEPS)
# No cgroup at all: what an init with an exit record costs, none of the watch.
RECORD_ONLY = "cgroup,lock,stack,score,host,dryrun"


def variants():
    """[(label, file name)]: the full start-up, each step skipped alone, all of them, no cgroup."""
    out = [("full start-up", "oominit-skip-none")]
    out += [(f"without {s}", f"oominit-skip-{s}") for s, _ in STEPS]
    out += [("without all eight", f"oominit-skip-{ALL}"), ("exit record only, no cgroup", f"oominit-skip-{RECORD_ONLY}")]
    return out


def loop_args(spawnloop, rounds, calls, where):
    args = [spawnloop, str(rounds), str(calls)]
    for _, name in variants():
        args += ["::", os.path.join(where, name), "--", "/bin/true"]
    return args + ["::", "/tini-static" if where == "/" else TINI, "-s", "--", "/bin/true"]


def parse(out):
    got = {}
    for m in re.finditer(r"spawnloop (\d+\.\d+) (\S+)", out):
        got[os.path.basename(m.group(2))] = float(m.group(1))
    return got


def on_host(itemized, spawnloop, rounds, calls, one_cpu):
    mount, own = limited.memory_mount()
    cpu = limited.cpu_cgroup()
    if not own or not cpu:
        return "not measured: needs this host's cgroup v1 memory and cpu controllers"
    with tempfile.TemporaryDirectory() as d:
        for _, name in variants():
            os.link(itemized, os.path.join(d, name))
        name = f"oominit-itemize-{os.getpid()}"
        cg, cpu = os.path.join(own, name), os.path.join(cpu, name)
        os.mkdir(cg)
        os.mkdir(cpu)
        try:
            with open(os.path.join(cg, "memory.limit_in_bytes"), "w") as f:
                f.write(limited.LIMIT)
            pin = "taskset -c 0 " if one_cpu else ""
            args = " ".join(f"'{a}'" for a in loop_args(spawnloop, rounds, calls, d))
            script = f"echo $$ > {cg}/cgroup.procs && echo $$ > {cpu}/cgroup.procs && exec {pin}{args}"
            p = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
            return parse(p.stdout) or f"not measured: {p.stderr.strip()[-300:]}"
        finally:
            limited.remove_cgroup(cg)
            limited.remove_cgroup(cpu)


def in_vm(oominit, itemized, spawnloop, rounds, calls):
    sys.path.insert(0, os.path.join(limited.ROOT, "tests", "vm"))
    import vm
    if not shutil.which("qemu-system-x86_64"):
        return "not measured: qemu-system-x86_64 missing (bench/itemize installs it)"
    links = "; ".join(f"ln /itemized '/{name}'" for _, name in variants())
    args = " ".join(f"'{a}'" for a in loop_args("/spawnloop", rounds, calls, "/"))
    script = "\n".join([
        "#!/bin/busybox sh",
        "/bin/busybox --install -s /bin",
        "mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp",
        "mount -t cgroup2 cgroup2 /sys/fs/cgroup; echo +memory > /sys/fs/cgroup/cgroup.subtree_control",
        f"mkdir /sys/fs/cgroup/lim; echo {limited.LIMIT} > /sys/fs/cgroup/lim/memory.max",
        links,
        f"sh -c 'echo $$ > /sys/fs/cgroup/lim/cgroup.procs; exec {args}' 2>/dev/null",
        'echo "@@ DONE"', "poweroff -f", ""])
    with tempfile.TemporaryDirectory() as tmp:
        initrd = os.path.join(tmp, "initramfs.cpio.gz")
        vm.pack(oominit, script, initrd, extra={"/tini-static": TINI, "/spawnloop": spawnloop, "/itemized": itemized})
        serial, _ = vm.boot(vm.kernel("6.1"), initrd, "512M", timeout=1800)
    return parse(serial) or f"not measured: the VM printed {serial[-300:]!r}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--oominit", required=True, help="the release build (its examples/ beside it)")
    ap.add_argument("--itemized", required=True, help="the build with bench/itemize.patch")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--no-vm", action="store_true")
    a = ap.parse_args()
    spawnloop = os.path.join(os.path.dirname(a.oominit), "examples", "spawnloop")
    places = [
        ("v1, own cpu cgroup", on_host(a.itemized, spawnloop, a.rounds, a.calls, one_cpu=False)),
        ("v1, one CPU", on_host(a.itemized, spawnloop, a.rounds, a.calls, one_cpu=True)),
    ]
    if not a.no_vm:
        places.append(("v2, VM (TCG)", in_vm(a.oominit, a.itemized, spawnloop, a.rounds, max(20, a.calls // 2))))
    print(f"INIT -- /bin/true under a {limited.LIMIT} limit, µs (median of round medians), and the step's cost:"
          " the full start-up less the start-up without it")
    for place, got in places:
        if isinstance(got, str):
            print(f"  {place}: {got}")
    measured = [(p, g) for p, g in places if isinstance(g, dict)]
    if not measured:
        return 1
    head = "".join(f"{p:>26}" for p, _ in measured)
    print(f"{'':32}{head}")
    for label, name in variants() + [("tini-static -s", "tini-static")]:
        cells = ""
        for _, got in measured:
            full, t, tini = got.get("oominit-skip-none"), got.get(name), got.get("tini-static")
            if t is None or not full or not tini:
                cells += f"{'-':>26}"
                continue
            cost = f"{full - t:+8.0f}" if name != "oominit-skip-none" and name != "tini-static" else " " * 8
            cells += f"{t:9.0f} {cost} ({t / tini:5.3f})"
        print(f"{label:32}{cells}")
    print("(the ratio in brackets: against tini-static in the same run)")
    for s, why in STEPS:
        print(f"  {s:8} {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
