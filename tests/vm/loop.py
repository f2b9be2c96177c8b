#!/usr/bin/env python3
"""A flake hunt, not part of CI: one VM boot runs a test binary of tests/ over and over on cgroup v2,
and for every run that fails prints the failures and what the kernel logged meanwhile (every OOM
report, whose first line names the task that invoked the OOM killer, and its call trace).

    python3 tests/vm/loop.py [-n RUNS] [--kernel 6.1|6.12|6.18] [--test oom|core] [TEST...]

Without TEST names, the binary's tests run as in the VM suite (its skip list). Session 11 found
two of oominit's own charges at a full cgroup this way (docs/headroom.md): 25 runs of tests/oom.rs
take about 8 minutes. Run tests/vm/run once first: it installs qemu and busybox.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vm  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=25, help="runs of the test binary in the one boot")
    ap.add_argument("--kernel", default="6.1", choices=sorted(vm.KERNELS, key=vm.natural))
    ap.add_argument("--test", default="oom", help="the test binary: tests/TEST.rs")
    ap.add_argument("names", nargs="*", help="run only these tests (exact names)")
    a = ap.parse_args()
    oominit, tests = vm.build_tests()
    suite = [t for t in vm.TESTS if t.test == a.test and t.memory and not t.foreign and not t.only]
    skip = suite[0].skip if suite else {}
    args = " ".join(["--exact"] + (a.names or [f"--skip {t}" for t in skip]))
    script = "\n".join([
        "#!/bin/busybox sh",
        "/bin/busybox --install -s /bin",
        "export PATH=/bin",
        "mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp",
        "mount -t cgroup2 cgroup2 /sys/fs/cgroup; echo +memory > /sys/fs/cgroup/cgroup.subtree_control",
        "cat /dev/kmsg > /tmp/kmsg &",
        'echo "@@ UNAME $(uname -r)"',
        # A cgroup of its own for each run: the tests leave theirs with memory offered to children.
        f"i=0; while [ $i -lt {a.n} ]; do i=$((i+1)); K=$(wc -l < /tmp/kmsg); d=/sys/fs/cgroup/run$i; mkdir $d",
        f"OOMINIT_BIN=/oominit OOMINIT_EXAMPLES=/examples timeout -s KILL 300 "
        f"sh -c 'echo $$ > '$d'/cgroup.procs && exec \"$@\"' sh /tests/{a.test} {args} > /tmp/out 2> /tmp/err; rc=$?",
        'echo "@@ RUN $i rc=$rc $(grep -c "\\.\\.\\. ok" /tmp/out) ok"',
        # The lines after `panicked at` hold the assertion's message (a record can take several);
        # backtrace lines are left out. Call trace lines marked `?` are stack leftovers, not the path.
        'if [ $rc != 0 ]; then grep -E -A8 "FAILED|panicked" /tmp/out | grep -v "^ *[0-9]*: \\|^ *at " | head -40 | sed "s/^/@@ OUT /"; '
        'tail -n +$((K+1)) /tmp/kmsg | grep -v -E "; \\? " | sed "s/^/@@ KMSG /"; fi',
        "done",
        'echo "@@ DONE"',
        "poweroff -f",
    ]) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        initrd = os.path.join(tmp, "initramfs.cpio.gz")
        vm.pack(oominit, script, initrd, tests)
        serial, took = vm.boot(vm.kernel(a.kernel), initrd, "256M", timeout=60 + 120 * a.n)
    lines = [line for line in serial.splitlines() if line.startswith("@@")]
    print("\n".join(lines))
    runs = [line for line in lines if line.startswith("@@ RUN ")]
    failed = [line for line in runs if " rc=0 " not in line]
    print(f"# {len(runs)} runs in {took:.0f} s, {len(failed)} failed" + ("" if "@@ DONE" in serial else "; the boot did not finish"))
    return 1 if failed or "@@ DONE" not in serial else 0


if __name__ == "__main__":
    sys.exit(main())
