"""Start-and-exit where containers run: under a 256 MiB memory limit, oominit against tini-static in
the same place and the same run (examples/spawnloop spawns both in rotating order and prints the
median of each round's median). Every container has a limit, and what oominit does at start
depends on it (the watch, the thresholds on v1, the reserve, the listings behind a read-only
cgroupfs), so the unlimited figure of the main table is not the whole story.

Places: this host's memory cgroup with a writable cgroupfs (v1 here: systemd-nspawn, LXC,
privileged containers); the same behind a read-only cgroupfs (a mount namespace, as Docker mounts
it); the writable one in a cpu cgroup of its own, and pinned to one CPU; inside a real Docker container (`docker exec` into a FROM scratch container run with -m 256m);
cgroup v2 in the VM of tests/vm (TCG: slow, but both inits alike). A place that cannot be measured
says why in one line instead of a figure.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINI = "/usr/bin/tini-static"
LIMIT = "256M"


def loop_args(spawnloop, rounds, calls, oominit, tini, true):
    return [spawnloop, str(rounds), str(calls), "::", oominit, "--", *true, "::", tini, "-s", "--", *true]


def parse(out):
    """spawnloop's lines: {init: µs}, oominit's and tini-static's."""
    got = {}
    for m in re.finditer(r"spawnloop (\d+\.\d+) (\S+)", out):
        name = "tini-static" if "tini" in os.path.basename(m.group(2)) else "oominit"
        got[name] = float(m.group(1))
    return got if len(got) == 2 else None


def memory_mount():
    """This host's v1 memory controller: (its mount point, this process's cgroup directory)."""
    for line in open("/proc/self/cgroup"):
        _, controllers, path = line.strip().split(":", 2)
        if "memory" in controllers.split(","):
            return "/sys/fs/cgroup/memory", "/sys/fs/cgroup/memory" + path
    return None, None


def cpu_cgroup():
    """This process's cgroup directory in the v1 cpu controller, or None."""
    for line in open("/proc/self/cgroup"):
        _, controllers, path = line.strip().split(":", 2)
        if "cpu" in controllers.split(",") and os.path.isdir("/sys/fs/cgroup/cpu"):
            return "/sys/fs/cgroup/cpu" + path
    return None


def on_host(oominit, spawnloop, rounds, calls, read_only, cpu_group=False, one_cpu=False):
    """`cpu_group`: in a cpu cgroup of its own too, as Docker puts a container (CFS group
    scheduling may then keep the command on the init's CPU). `one_cpu`: everything pinned to
    CPU 0 (taskset), as in a one-CPU VM or a container run with --cpuset-cpus=0: the init's own
    work at start can never be done beside the command's exec."""
    mount, own = memory_mount()
    if not own:
        return "not measured: no cgroup v1 memory controller here (cgroup v2 is measured in the VM)"
    cpu = cpu_cgroup() if cpu_group else None
    if cpu_group and not cpu:
        return "not measured: no cgroup v1 cpu controller here"
    name = f"oominit-bench-limit-{os.getpid()}"
    cg = os.path.join(own, name)
    os.mkdir(cg)
    if cpu:
        cpu = os.path.join(cpu, name)
        os.mkdir(cpu)
    try:
        with open(os.path.join(cg, "memory.limit_in_bytes"), "w") as f:
            f.write(LIMIT)
        args = " ".join(loop_args(spawnloop, rounds, calls, oominit, TINI, ["/bin/true"]))
        ro = f"mount -o remount,bind,ro {mount} && ! touch {cg}/cgroup.procs 2>/dev/null && " if read_only else ""
        join_cpu = f"echo $$ > {cpu}/cgroup.procs && " if cpu else ""
        pin = "taskset -c 0 " if one_cpu else ""
        script = f"echo $$ > {cg}/cgroup.procs && {join_cpu}{ro}exec {pin}{args}"
        cmd = (["unshare", "--mount"] if read_only else []) + ["sh", "-c", script]
        p = subprocess.run(cmd, capture_output=True, text=True)
        return parse(p.stdout) or f"not measured: {p.stderr.strip()[-300:]}"
    finally:
        remove_cgroup(cg)
        if cpu:
            remove_cgroup(cpu)


def remove_cgroup(cg):
    """rmdir, retried for a while: the kernel frees a cgroup some time after its last process."""
    for _ in range(50):
        try:
            os.rmdir(cg)
            return
        except OSError:
            time.sleep(0.05)


def in_docker(oominit, spawnloop, rounds, calls):
    if not shutil.which("docker") or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "not measured: no Docker engine"
    tag = f"oominit-bench/limited:{os.getpid()}"
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(f"{d}/bin")
        for sub in ("proc", "sys", "dev", "tmp"):
            os.makedirs(f"{d}/{sub}")
        shutil.copy("/bin/busybox", f"{d}/bin/busybox")
        os.symlink("busybox", f"{d}/bin/true")
        os.symlink("busybox", f"{d}/bin/sleep")
        for src, dst in ((oominit, "oominit"), (TINI, "tini-static"), (spawnloop, "spawnloop")):
            shutil.copy(src, f"{d}/{dst}")
        tar = subprocess.run(["tar", "-C", d, "-c", "."], capture_output=True, check=True).stdout
        subprocess.run(["docker", "import", "-", tag], input=tar, capture_output=True, check=True)
    cid = None
    try:
        cid = subprocess.run(["docker", "run", "-d", "-m", LIMIT, "--memory-swap", LIMIT, tag, "/bin/sleep", "600"],
                             capture_output=True, text=True, check=True).stdout.strip()
        p = subprocess.run(["docker", "exec", cid, *loop_args("/spawnloop", rounds, calls, "/oominit", "/tini-static", ["/bin/true"])],
                           capture_output=True, text=True)
        return parse(p.stdout) or f"not measured: {p.stderr.strip()[-300:]}"
    finally:
        if cid:
            subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def in_vm(oominit, spawnloop, rounds, calls):
    sys.path.insert(0, os.path.join(ROOT, "tests", "vm"))
    try:
        import vm
    except ImportError as e:
        return f"not measured: {e}"
    if not shutil.which("qemu-system-x86_64"):
        return "not measured: qemu-system-x86_64 missing (bench/run installs it)"
    args = " ".join(loop_args("/spawnloop", rounds, calls, "/oominit", "/tini-static", ["/bin/true"]))
    script = "\n".join([
        "#!/bin/busybox sh",
        "/bin/busybox --install -s /bin",
        "mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp",
        "mount -t cgroup2 cgroup2 /sys/fs/cgroup; echo +memory > /sys/fs/cgroup/cgroup.subtree_control",
        f"mkdir /sys/fs/cgroup/lim; echo {LIMIT} > /sys/fs/cgroup/lim/memory.max",
        f"sh -c 'echo $$ > /sys/fs/cgroup/lim/cgroup.procs; exec {args}' 2>/dev/null",
        'echo "@@ DONE"', "poweroff -f", ""])
    with tempfile.TemporaryDirectory() as tmp:
        initrd = os.path.join(tmp, "initramfs.cpio.gz")
        vm.pack(oominit, script, initrd, extra={"/tini-static": TINI, "/spawnloop": spawnloop})
        serial, _ = vm.boot(vm.kernel("6.1"), initrd, "512M", timeout=900)
    return parse(serial) or f"not measured: the VM printed {serial[-300:]!r}"


def measure(oominit, examples, rounds, calls):
    """[(place, {init: µs} or why not)]"""
    spawnloop = os.path.join(examples, "spawnloop")
    return [
        ("v1 cgroupfs writable", on_host(oominit, spawnloop, rounds, calls, read_only=False)),
        ("v1 cgroupfs read-only", on_host(oominit, spawnloop, rounds, calls, read_only=True)),
        ("v1 writable, own cpu cgroup", on_host(oominit, spawnloop, rounds, calls, False, cpu_group=True)),
        ("v1 writable, one CPU", on_host(oominit, spawnloop, rounds, calls, False, one_cpu=True)),
        ("Docker container (v1, read-only)", in_docker(oominit, spawnloop, rounds, calls)),
        ("cgroup v2, VM (6.1, TCG)", in_vm(oominit, spawnloop, max(3, rounds // 2), max(20, calls // 4))),
    ]
