"""A container that sits at its memory limit is not idle: on cgroup v2 the kernel raises an event
in memory.events at every charge past `memory.max` or `memory.high` (at most one notification per
10 ms, cgroup_file_notify), and oominit wakes on each. What that costs oominit, against what the
workload itself burns, in the VM of tests/vm (cgroup v2, Debian 6.1, one TCG CPU).

The VM has no block device (Debian's kernel builds loop and virtio-blk as modules), so there is
no page cache to fill; the same stream of events comes from `memory.high` instead: a process
holds 20 MiB above a 16 MiB `memory.high` while a loop allocates and frees 4 MiB again and again,
each allocation charged past `high` (reclaimed, throttled, and notified) for SECONDS seconds.
Printed: the events raised, oominit's wakes (context switches), its CPU time and the workload's
(the cgroup's cpu.stat less oominit's), and oominit's share of one CPU.
"""
import os
import re
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(oominit, seconds=30):
    sys.path.insert(0, os.path.join(ROOT, "tests", "vm"))
    import vm
    script = "\n".join([
        "#!/bin/busybox sh",
        "/bin/busybox --install -s /bin",
        "mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp",
        "mount -t cgroup2 cgroup2 /sys/fs/cgroup; echo +memory > /sys/fs/cgroup/cgroup.subtree_control",
        "C=/sys/fs/cgroup/lim; mkdir $C; echo 64M > $C/memory.max; echo 16M > $C/memory.high",
        # The workload: 20 MiB held, 4 MiB allocated and freed in a loop, until the file says stop.
        f"printf '/memhog 20 {seconds + 60} >/dev/null & P=$!\\nwhile [ ! -e /tmp/stop ]; do /memhog 4 >/dev/null; done\\nkill $P\\n' > /tmp/work.sh",
        "sh -c 'echo $$ > /sys/fs/cgroup/lim/cgroup.procs; exec /oominit -- sh /tmp/work.sh' 2>/tmp/rec &",
        "sleep 3",
        "O=$(cat $C/cgroup.procs | head -n 1)",
        'read -r _ _ _ _ _ _ _ _ _ _ _ _ _ u0 s0 _ < /proc/$O/stat',
        "w0=$(grep -h ctxt_switches /proc/$O/status | awk '{s+=$2} END {print s}')",
        "c0=$(grep usage_usec $C/cpu.stat | cut -d' ' -f2)",
        "e0=$(grep -E '^(high|max) ' $C/memory.events | awk '{s+=$2} END {print s}')",
        f"sleep {seconds}",
        'read -r _ _ _ _ _ _ _ _ _ _ _ _ _ u1 s1 _ < /proc/$O/stat',
        "w1=$(grep -h ctxt_switches /proc/$O/status | awk '{s+=$2} END {print s}')",
        "c1=$(grep usage_usec $C/cpu.stat | cut -d' ' -f2)",
        "e1=$(grep -E '^(high|max) ' $C/memory.events | awk '{s+=$2} END {print s}')",
        'echo "@@ AT_LIMIT oominit_ticks=$((u1 + s1 - u0 - s0)) wakes=$((w1 - w0)) cgroup_usec=$((c1 - c0)) events=$((e1 - e0)) hz=$(getconf CLK_TCK 2>/dev/null || echo 100)"',
        "touch /tmp/stop; wait",
        'echo "@@ KILLS $(grep oom_kill $C/memory.events)"',
        'echo "@@ DONE"', "poweroff -f", ""])
    with tempfile.TemporaryDirectory() as tmp:
        initrd = os.path.join(tmp, "initramfs.cpio.gz")
        vm.pack(oominit, script, initrd)
        serial, _ = vm.boot(vm.kernel("6.1"), initrd, "512M", timeout=seconds + 300)
    m = re.search(r"@@ AT_LIMIT oominit_ticks=(\d+) wakes=(\d+) cgroup_usec=(\d+) events=(\d+) hz=(\d+)", serial)
    if not m:
        return f"not measured: the VM printed {serial[-400:]!r}"
    ticks, wakes, cg_usec, events, hz = map(int, m.groups())
    oominit_ms = ticks * 1000 / hz
    workload_ms = max(cg_usec / 1000 - oominit_ms, 0)
    kills = re.search(r"@@ KILLS oom_kill (\d+)", serial)
    return {
        "seconds": seconds, "events": events, "wakes": wakes, "oominit_ms": oominit_ms,
        "workload_ms": workload_ms, "share_of_cpu": oominit_ms / (seconds * 1000),
        "kills": int(kills.group(1)) if kills else None,
    }


if __name__ == "__main__":
    r = measure(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 30)
    print(r)
