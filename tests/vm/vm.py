#!/usr/bin/env python3
"""Real-kernel scenarios for oominit in a throwaway VM: cgroup v2 (which this project's machines
lack), group OOM, host-wide OOM, an ancestor's limit, and cgroup v1 on the same kernel.

Every boot is made once per kernel: Debian 12's 6.1, Debian 13's 6.12 and its backports' 6.18
(KERNELS); v1 on 6.1 only, as Debian's 6.12 and 6.18 have no v1 memory controller.

Each boot runs several scenarios. oominit runs in each the way it runs in a container: PID 1 of a
new PID namespace, in a new cgroup namespace, inside a cgroup with a limit (examples/minictr.rs).
A third boot runs the host integration tests (tests/oom.rs, tests/core.rs, built static) on cgroup
v2, which this project's machines cannot give them.
The VM's /init prints marked lines on the serial console; this script checks them, prints one line
per scenario, the detection latencies, and a closing `N passed, N failed` line. On a failure it
shows the serial log of that boot.

Usage: tests/vm/run [-k SUBSTRING] [--kernel 6.1|6.12|6.18]...   (it installs what is missing first)
"""
import argparse
import gzip
import json
import lzma
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("OOMINIT_VM_CACHE", os.path.expanduser("~/.cache/oominit-vm"))
MIB = 1 << 20


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, text=True, capture_output=True, **kw).stdout


# The kernels the scenarios boot, each the newest package of its series in its Debian suite:
# Debian 12's 6.1, Debian 13's 6.12 (the long-term kernel of current distributions and managed
# clouds), and 6.18 from Debian 13's backports: from 6.15 on, a pidfd keeps its process's exit
# status after the reap (PIDFD_INFO_EXIT), which oominit uses to name a leaf its parent reaped.
# Debian builds 6.12 and 6.18 without cgroup v1's memory controller (CONFIG_MEMCG_V1 unset), so
# the v1 scenarios run on 6.1 only.
KERNELS = {"6.1": ("bookworm", True), "6.12": ("trixie", False),   # series: (Debian suite, has v1)
           "6.18": ("trixie-backports", False)}


def apt(suite):
    """apt options that read Debian's SUITE from the mirrors the host's apt already uses (as apt
    itself lists them), with package lists of their own in the cache: the host's sources stay as
    they are."""
    policy = sh("apt-cache policy")
    if " amd64 Packages" not in policy:
        sh("apt-get update -qq")
        policy = sh("apt-cache policy")
    mirrors = {suite: uri for uri, suite in re.findall(r"^\s*\d+ (\S+) (\S+)/main amd64 Packages$", policy, re.M)}
    codename = re.search(r"^VERSION_CODENAME=(\S+)", open("/etc/os-release").read(), re.M)[1]
    if codename not in mirrors:
        raise SystemExit(f"no Debian mirror for {codename} in apt's sources: cannot fetch {suite}'s packages")
    d = os.path.join(CACHE, f"apt-{suite}")
    os.makedirs(f"{d}/lists/partial", exist_ok=True)
    os.makedirs(f"{d}/archives/partial", exist_ok=True)
    keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    signed = f"[signed-by={keyring}] " if os.path.exists(keyring) else ""
    with open(f"{d}/sources.list", "w") as f:
        f.write(f"deb {signed}{mirrors[codename]} {suite} main\n")
        # A release's security suite; backports have none of their own.
        if codename + "-security" in mirrors and "-" not in suite:
            f.write(f"deb {signed}{mirrors[codename + '-security']} {suite}-security main\n")
    opts = (f"-o Dir::Etc::SourceList={d}/sources.list -o Dir::Etc::SourceParts=/nonexistent "
            f"-o Dir::State::Lists={d}/lists -o Dir::Cache={d} -o Dir::Cache::archives={d}/archives "
            f"-o Dir::State::status=/dev/null -o APT::Sandbox::User=root")
    sh(f"apt-get {opts} update -qq")
    return opts


def kernel(series):
    """An uncompressed Debian kernel of SERIES (a KERNELS key), downloaded once and cached."""
    os.makedirs(CACHE, exist_ok=True)
    cached = [f for f in os.listdir(CACHE) if f.startswith(f"vmlinux-{series}.")]
    if cached:
        return os.path.join(CACHE, sorted(cached, key=natural)[-1])
    suite, _ = KERNELS[series]
    opts = apt(suite)
    # linux-image-6.1.0-56-amd64 (Debian 12), linux-image-6.12.118+deb13-amd64 (Debian 13 and its
    # backports); not the cloud or rt flavours.
    pattern = rf"^linux-image-{re.escape(series)}\.[0-9]+(-[0-9]+|\+deb[0-9.]+)-amd64$"
    names = sh(f"apt-cache {opts} search --names-only '{pattern}' | cut -d' ' -f1").split()
    if not names:
        raise SystemExit(f"no package of Linux {series} in Debian {suite}")
    pkg = sorted(names, key=natural)[-1]
    with tempfile.TemporaryDirectory() as tmp:
        sh(f"apt-get {opts} download -q {pkg}", cwd=tmp)
        deb = [f for f in os.listdir(tmp) if f.endswith(".deb")][0]
        sh(f"dpkg-deb --fsys-tarfile {deb} | tar -x --wildcards './boot/vmlinuz-*'", cwd=tmp)
        bootdir = os.path.join(tmp, "boot")
        vmlinuz = os.path.join(bootdir, os.listdir(bootdir)[0])
        data = open(vmlinuz, "rb").read()
    # The package lists (25-30 MB) serve only this download.
    shutil.rmtree(os.path.join(CACHE, f"apt-{suite}"))
    # Booting the compressed image costs 6-8 s of decompression under TCG; the payload inside
    # (XZ in 6.1, zstd in 6.12 and 6.18) decompresses here once. The boot protocol's header says
    # where it is; its last 4 bytes are the decompressed size, appended by the kernel's build.
    setup_sects = data[0x1F1] or 4
    offset, length = struct.unpack_from("<II", data, 0x248)
    payload = data[(setup_sects + 1) * 512 + offset:][:length - 4]
    if payload.startswith(b"\xfd7zXZ\x00"):
        raw = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    elif payload.startswith(b"\x28\xb5\x2f\xfd"):
        raw = subprocess.run(["zstd", "-dc"], input=payload, check=True, capture_output=True).stdout
    else:
        raise SystemExit(f"{pkg}: the kernel's payload is neither XZ nor zstd ({payload[:4].hex()})")
    out = os.path.join(CACHE, f"vmlinux-{pkg.split('-', 2)[2]}")
    with open(out + ".tmp", "wb") as f:
        f.write(raw)
    os.rename(out + ".tmp", out)
    return out


def natural(name):
    """A sort key that orders 6.12.9 before 6.12.10."""
    return [int(x) for x in re.findall(r"\d+", name)]


def build():
    """The static oominit and, beside it in examples/, the static test helpers."""
    return sh(f"{ROOT}/.ci/build-static --examples").strip()


def build_tests():
    """As build(), and the static integration test binaries: {name: (path, [its tests])}."""
    oominit, *paths = sh(f"{ROOT}/.ci/build-static --tests").split()
    tests = {}
    for p in paths:
        listed = sh(f"{p} --list --format terse").splitlines()
        tests[os.path.basename(p).rsplit("-", 1)[0]] = (p, [t[:-len(": test")] for t in listed if t.endswith(": test")])
    return oominit, tests


def runc():
    """Debian's runc and the shared libraries it loads, from the host's own Debian release
    (downloaded once, cached), and the config.json its `runc spec` writes: {"dir", "files":
    {path in the VM: path here}, "spec", "version"}."""
    cached = [f for f in os.listdir(CACHE) if f.startswith("runc-")]
    if not cached:
        with tempfile.TemporaryDirectory() as tmp:
            # runc is dynamic (cgo, for seccomp): libseccomp2, and libc6 for libc and the loader.
            sh("apt-get download -q runc libseccomp2 libc6", cwd=tmp)
            version = [f for f in os.listdir(tmp) if f.startswith("runc_")][0].split("_")[1]
            d = os.path.join(CACHE, f"runc-{version}")
            for deb in os.listdir(tmp):
                sh(f"dpkg-deb -x {deb} {d}.tmp", cwd=tmp)
            os.rename(d + ".tmp", d)
        cached = [os.path.basename(d)]
    d = os.path.join(CACHE, sorted(cached, key=natural)[-1])
    files = {"/usr/sbin/runc": os.path.join(d, "usr/sbin/runc")}
    libdirs = [os.path.join(d, x) for x in ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")]
    # Every library runc needs, and theirs, by the ELF headers: a missing one fails here, in one line.
    todo = [files["/usr/sbin/runc"]]
    interp = re.search(r"interpreter: (\S+?)\]", sh(f"readelf -l {todo[0]}"))[1]
    while todo:
        for lib in re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]", sh(f"readelf -d {todo.pop()}")):
            found = [os.path.join(x, lib) for x in libdirs if os.path.exists(os.path.join(x, lib))]
            if not found:
                raise SystemExit(f"runc needs {lib}, in none of the packages downloaded ({d})")
            if f"/lib/x86_64-linux-gnu/{lib}" not in files:
                files[f"/lib/x86_64-linux-gnu/{lib}"] = os.path.realpath(found[0])
                todo.append(found[0])
    loader = os.path.join(d, "lib/x86_64-linux-gnu", os.path.basename(interp))
    files[interp] = os.path.realpath(loader)
    run = [loader, "--library-path", ":".join(libdirs), files["/usr/sbin/runc"]]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(run + ["spec"], cwd=tmp, check=True)
        spec = json.load(open(os.path.join(tmp, "config.json")))
    version = subprocess.run(run + ["--version"], check=True, capture_output=True, text=True).stdout.split("\n")[0]
    return {"dir": d, "files": files, "spec": spec, "version": version}


# A scenario: the cgroup it needs, oominit's arguments, the command, and checks on the outcome.
class Scenario:
    def __init__(self, name, cmd, limit=None, flags="", oom_group=False, parent_limit=None, ro=False, check=None):
        self.name, self.cmd, self.limit, self.flags = name, cmd, limit, flags
        self.oom_group, self.parent_limit, self.ro, self.check = oom_group, parent_limit, ro, check


class HostTests:
    """A host integration test binary (tests/NAME.rs) run on the VM's cgroup v2: `only` its tests
    named there, else all but `skip` ({test: why}). Its cgroup is made for it, holding nothing
    else, unless `foreign`: then a process not the tests' sits in it too, and the tests must
    make their cgroups beside it (tests/common's second way). `not_on`: {kernel series: why} it
    is not run on, said at every run. `check` sees the outcome."""
    def __init__(self, name, test, only=(), skip=None, foreign=False, memory=True, not_on=None, check=None):
        self.name, self.test, self.only, self.skip = name, test, list(only), skip or {}
        self.foreign, self.memory, self.not_on, self.check = foreign, memory, not_on or {}, check


class Runc:
    """oominit as the process of an OCI bundle that Debian's runc runs, in runc's own defaults
    (`runc spec`: three capabilities, so no CAP_SYS_RESOURCE; the cgroupfs mounted read-only)
    with a cgroup namespace, which Docker and containerd add on cgroup v2. Its cgroup is
    /kubepods/NAME/ctr (a pod's, for the cgroupfs driver) and what a kubelet adds is declared:
    `limit` (linux.resources.memory.limit), `pod_limit` (memory.max of the pod cgroup, which the
    init script makes), `pause` (a sandbox beside the container in the pod, holding 1 MiB at
    oom_score_adj -998, as the pause container does), `oom_group` (memory.oom.group=1 through linux.resources.unified,
    as the kubelet sets it since 1.28), `score` (process.oomScoreAdj: -997 for a Guaranteed pod)
    and `caps` (added capabilities). The kubelet's termination log is bind-mounted too."""
    def __init__(self, name, cmd, limit=None, pod_limit=None, pause=False, oom_group=False, score=None, caps=(),
                 check=None):
        self.name, self.cmd, self.limit, self.pod_limit, self.pause = name, cmd, limit, pod_limit, pause
        self.oom_group, self.score, self.caps, self.check = oom_group, score, list(caps), check

    def config(self, spec):
        c = json.loads(json.dumps(spec))
        p, linux = c["process"], c["linux"]
        p["terminal"] = False
        p["args"] = ["/oominit", "--", *shlex.split(self.cmd)]
        for kind in ("bounding", "effective", "permitted"):
            p["capabilities"][kind] += self.caps
        if self.score is not None:
            p["oomScoreAdj"] = self.score
        c["root"]["path"] = "/ctr/rootfs"
        c["mounts"].append({"destination": "/dev/termination-log", "type": "bind",
                            "source": f"/tmp/tlog-{self.name}", "options": ["rbind", "rw"]})
        linux["namespaces"].append({"type": "cgroup"})
        linux["cgroupsPath"] = f"/kubepods/{self.name}/ctr"
        if self.limit:
            linux["resources"]["memory"] = {"limit": self.limit, "swap": self.limit}
        if self.oom_group:
            linux["resources"]["unified"] = {"memory.oom.group": "1"}
        return c


# Run in the container after the workload: what oominit is given, as the container sees it.
PROBE = """#!/bin/sh
echo "PROBE caps $(grep CapEff /proc/1/status | cut -f2)"
echo "PROBE oom_score_adj $(cat /proc/1/oom_score_adj)"
echo "PROBE cgroup $(cat /proc/self/cgroup)"
echo "PROBE mount $(grep ' /sys/fs/cgroup ' /proc/self/mountinfo)"
"""


def runc_init_script(scenarios, version):
    lines = [
        "#!/bin/busybox sh",
        "/bin/busybox --install -s /bin",
        "mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp",
        # runc keeps its state in /run.
        "mount -t tmpfs run /run",
        "cat /dev/kmsg > /tmp/kmsg &",
        "mount -t cgroup2 cgroup2 /sys/fs/cgroup; echo +memory > /sys/fs/cgroup/cgroup.subtree_control",
        "export CG=/sys/fs/cgroup; mkdir $CG/kubepods; echo +memory > $CG/kubepods/cgroup.subtree_control",
        'echo "@@ UNAME $(uname -r)"',
        f'echo "@@ RUNC $(runc --version | head -n 1) (expected {version})"',
    ]
    for s in scenarios:
        pod = f"$CG/kubepods/{s.name}"
        lines += [f'echo "@@ BEGIN {s.name}"; mkdir {pod}; echo +memory > {pod}/cgroup.subtree_control',
                  f": > /tmp/tlog-{s.name}"]
        if s.pod_limit:
            lines.append(f"echo {s.pod_limit} > {pod}/memory.max")
        if s.pause:
            # The sandbox: 1 MiB charged to the pod, held until the scenario ends, at the
            # oom_score_adj the kubelet gives every sandbox.
            lines += [f"mkdir {pod}/pause",
                      f"sh -c 'echo -998 > /proc/self/oom_score_adj; echo $$ > {pod}/pause/cgroup.procs && "
                      f"exec /memhog 1 1000' > /dev/null & P=$!",
                      f"for i in $(seq 50); do [ $(cat {pod}/pause/memory.current) -ge {MIB} ] && break; sleep 0.1; done",
                      f'echo "@@ PAUSE {s.name} $(cat {pod}/pause/memory.current)"']
        # --no-pivot: pivot_root cannot leave the initramfs (rootfs), as runc's help says.
        lines += captured(s.name, f"runc run --no-pivot --bundle /ctr/{s.name} {s.name}", stderr="/tmp/rec")
        lines += [
            f'while read -r l; do echo "@@ OUT {s.name} $l"; done < /tmp/out',
            # runc removed the container's cgroup: the pod's counters hold the container's too.
            f'echo "@@ COUNTERS {s.name} $(cat {pod}/memory.events)" | tr "\\n" " "; echo',
            f'echo "@@ POD {s.name} $(cat {pod}/memory.events.local)" | tr "\\n" " "; echo',
            f'echo "@@ TLOG {s.name} $(cat /tmp/tlog-{s.name})"',
            # What is left: processes anywhere in the pod but the pause, cgroups, runc's state.
            f'echo "@@ LEFT {s.name} $(cat $(find {pod} -name cgroup.procs ! -path "*/pause/*") | tr "\\n" " ")'
            f'|$(cd {pod} && ls -d */ 2>/dev/null | grep -vx pause/ | tr "\\n" " ")|$(runc list -q | tr "\\n" " ")"',
        ]
        if s.pause:
            lines.append("kill $P; wait $P")
        lines.append("rm -f /tmp/rec /tmp/stamped")
    lines += ['echo "@@ DONE"', "poweroff -f"]
    return "\n".join(lines) + "\n"


def tests_init_script(scenarios):
    lines = [
        "#!/bin/busybox sh",
        "/bin/busybox --install -s /bin",
        "export PATH=/bin",
        "mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp",
        "mount -t cgroup2 cgroup2 /sys/fs/cgroup; echo +memory > /sys/fs/cgroup/cgroup.subtree_control",
        "export CG=/sys/fs/cgroup",
        'echo "@@ UNAME $(uname -r)"',
    ]
    for s in scenarios:
        d = f"$CG/{s.name}"
        lines.append(f'echo "@@ BEGIN {s.name}"; mkdir {d}')
        if not s.memory:
            # The memory controller not offered to the tests' cgroup: its parent does not enable it.
            lines.append(f"mkdir {d}/c")
            d = f"{d}/c"
        if s.foreign:
            lines.append(f"sleep 1000 & F=$!; echo $F > {d}/cgroup.procs")
        args = " ".join(["--exact"] + (s.only or [f"--skip {t}" for t in s.skip]))
        lines += [
            # The shell moves itself into the cgroup and becomes the test binary, which then holds
            # it alone (with the foreign sleep, if any).
            f"OOMINIT_BIN=/oominit OOMINIT_EXAMPLES=/examples timeout -s KILL 300 "
            f"sh -c 'echo $$ > {d}/cgroup.procs && exec \"$@\"' sh /tests/{s.test} {args} > /tmp/out 2> /tmp/err",
            f'echo "@@ RC {s.name} $?"',
            # libtest reports on stdout (the tests' own output, captured, included); stderr has
            # what the tests' children wrote there themselves.
            f'while IFS= read -r l; do echo "@@ OUT {s.name} $l"; done < /tmp/out',
            f'while IFS= read -r l; do echo "@@ ERR {s.name} $l"; done < /tmp/err',
            # What the tests left: the own cgroup's subtree_control and children, and test
            # cgroups left beside it.
            f'echo "@@ LAYOUT {s.name} $(cat {d}/cgroup.subtree_control)|$(cd {d} && ls -d */ 2>/dev/null)|'
            f'$(cd {d}/.. && ls -d oominit-test-*/ 2>/dev/null)" | tr "\\n" " "; echo',
        ]
        if s.foreign:
            lines.append("kill $F; wait $F")
    lines += ['echo "@@ DONE"', "poweroff -f"]
    return "\n".join(lines) + "\n"


def captured(name, command, stderr="/tmp/err"):
    """Shell lines that run COMMAND, which writes oominit's records into the FIFO /tmp/rec (or
    its stderr there, with stderr="/tmp/rec"), and print its exit code, the records stamped with
    their arrival times, its stderr, and what the kernel logged meanwhile."""
    return [
        # The shell holds the FIFO's write end too, so stamp's open() completes and it sees
        # EOF even if oominit never starts.
        # Read-write: opening a FIFO so never blocks (Linux), where a blocking `exec 3>` could be
        # interrupted by SIGCHLD, and a failed exec redirection ends the shell, which is init.
        "rm -f /tmp/err; K=$(wc -l < /tmp/kmsg); /stamp --sync; mkfifo /tmp/rec; exec 3<> /tmp/rec; "
        "/stamp < /tmp/rec > /tmp/stamped 3>&- & S=$!",
        f"timeout -s KILL 60 {command} > /tmp/out 2> {stderr} 3>&-",
        # Only stamp: a bare `wait` would also wait for the `cat /dev/kmsg` that never ends.
        f'echo "@@ RC {name} $?"; exec 3>&-; wait $S',
        f'while read -r l; do echo "@@ REC {name} $l"; done < /tmp/stamped',
        f'[ -f /tmp/err ] && while read -r l; do echo "@@ ERR {name} $l"; done < /tmp/err',
        f"tail -n +$((K+1)) /tmp/kmsg | grep -E 'Killed process|oominit-clock|invoked oom-killer' | while read -r l; do echo \"@@ KMSG {name} $l\"; done",
    ]


def init_script(version, scenarios):
    lines = [
        "#!/bin/busybox sh",
        "/bin/busybox --install -s /bin",
        "mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp",
        "cat /dev/kmsg > /tmp/kmsg &",
    ]
    if version == "v2":
        lines += ["mount -t cgroup2 cgroup2 /sys/fs/cgroup", "echo +memory > /sys/fs/cgroup/cgroup.subtree_control",
                  "CG=/sys/fs/cgroup"]
    else:
        lines += ["mount -t tmpfs cg /sys/fs/cgroup", "mkdir /sys/fs/cgroup/memory",
                  "mount -t cgroup -o memory cgroup /sys/fs/cgroup/memory", "CG=/sys/fs/cgroup/memory"]
    limit_file = "memory.max" if version == "v2" else "memory.limit_in_bytes"
    lines.append(f'echo "@@ UNAME $(uname -r)"')
    for s in scenarios:
        d = f"$CG/{s.name}"
        lines.append(f'echo "@@ BEGIN {s.name}"; mkdir {d}')
        if s.parent_limit:
            # The limit sits on the parent only; oominit's own cgroup has none.
            lines += [f"echo {s.parent_limit} > {d}/{limit_file}", f"echo +memory > {d}/cgroup.subtree_control",
                      f"mkdir {d}/c"]
            d = f"{d}/c"
        if s.limit:
            lines.append(f"echo {s.limit} > {d}/{limit_file}")
        if s.oom_group:
            lines.append(f"echo 1 > {d}/memory.oom.group")
        ro = " ro" if s.ro else ""
        lines += captured(s.name, f"/minictr {d} {version}{ro} -- /oominit --record /tmp/rec {s.flags} -- {s.cmd}")
        lines += [
            f'echo "@@ COUNTERS {s.name} $(cat {d}/memory.events 2>/dev/null || cat {d}/memory.oom_control) " | tr "\\n" " "; echo',
            "rm -f /tmp/rec /tmp/stamped",
        ]
    lines += ['echo "@@ DONE"', "poweroff -f"]
    return "\n".join(lines) + "\n"


def pack(oominit, script, dest, tests=None, bundles=None, extra=None):
    with tempfile.TemporaryDirectory() as d:
        # It becomes the VM's /: mkdtemp's 0700 would bar every user but root from all of it.
        os.chmod(d, 0o755)
        os.makedirs(f"{d}/bin")
        for sub in ("proc", "sys", "dev", "tmp"):
            os.makedirs(f"{d}/{sub}")
        shutil.copy("/bin/busybox", f"{d}/bin/busybox")
        shutil.copy(oominit, f"{d}/oominit")
        for ex in ("memhog", "minictr", "stamp", "workers"):
            shutil.copy(os.path.join(os.path.dirname(oominit), "examples", ex), f"{d}/{ex}")
        for path, src in (extra or {}).items():
            shutil.copy(src, d + path)
        if tests:
            # The test binaries, and every workload where OOMINIT_EXAMPLES points them.
            os.makedirs(f"{d}/tests")
            os.makedirs(f"{d}/examples")
            for name, (path, _) in tests.items():
                shutil.copy(path, f"{d}/tests/{name}")
            for ex in [e[:-len(".rs")] for e in os.listdir(os.path.join(ROOT, "examples")) if e.endswith(".rs")]:
                shutil.copy(os.path.join(os.path.dirname(oominit), "examples", ex), f"{d}/examples/{ex}")
        if bundles:
            # runc and its libraries where they were built to be; one rootfs for every bundle.
            for path, src in bundles["runc"]["files"].items():
                os.makedirs(os.path.dirname(d + path), exist_ok=True)
                shutil.copy(src, d + path)
            os.makedirs(f"{d}/run")
            rootfs = f"{d}/ctr/rootfs"
            for sub in ("bin", "proc", "sys", "dev", "tmp"):
                os.makedirs(f"{rootfs}/{sub}")
            shutil.copy("/bin/busybox", f"{rootfs}/bin/busybox")
            for applet in sh("/bin/busybox --list").split():
                if applet != "busybox":
                    os.symlink("busybox", f"{rootfs}/bin/{applet}")
            shutil.copy(oominit, f"{rootfs}/oominit")
            shutil.copy(os.path.join(os.path.dirname(oominit), "examples", "memhog"), f"{rootfs}/memhog")
            with open(f"{rootfs}/probe", "w") as f:
                f.write(PROBE)
            os.chmod(f"{rootfs}/probe", 0o755)
            for s in bundles["scenarios"]:
                os.makedirs(f"{d}/ctr/{s.name}")
                with open(f"{d}/ctr/{s.name}/config.json", "w") as f:
                    json.dump(s.config(bundles["runc"]["spec"]), f, indent=1)
        with open(f"{d}/init", "w") as f:
            f.write(script)
        os.chmod(f"{d}/init", 0o755)
        cpio = subprocess.run("find . -print0 | cpio --null -o -H newc --quiet", shell=True, cwd=d,
                              check=True, capture_output=True).stdout
    with gzip.open(dest, "wb", compresslevel=1) as f:
        f.write(cpio)


def boot(vmlinux, initrd, mem, timeout=240, append=""):
    """Boots VMLINUX with INITRD; APPEND is added to the kernel's command line."""
    cmd = ["timeout", str(timeout), "qemu-system-x86_64", "-accel", "tcg,tb-size=32", "-m", mem, "-smp", os.environ.get("OOMINIT_VM_SMP", "1"),
           "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio", "-display", "none",
           "-kernel", vmlinux, "-initrd", initrd,
           "-append", ("console=ttyS0 panic=-1 quiet loglevel=1 " + append).strip()]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True)
    return p.stdout.decode("utf-8", "replace").replace("\r", ""), time.monotonic() - t0


def parse(serial):
    """Per scenario: rc, records (with arrival µs), stderr lines, kmsg kills (µs), counters."""
    res = {}
    for line in serial.splitlines():
        m = re.match(r"@@ (RC|REC|ERR|KMSG|COUNTERS|OUT|LAYOUT|POD|TLOG|LEFT|PAUSE) (\S+) ?(.*)$", line)
        if not m:
            continue
        kind, name, rest = m.groups()
        r = res.setdefault(name, {"rc": None, "records": [], "err": [], "kills_us": [], "killed": [], "invoked": [],
                                  "counters": "", "offset_us": 0, "out": [], "layout": None, "pod": {},
                                  "tlog": None, "left": None, "pause": None})
        if kind == "RC":
            r["rc"] = int(rest)
        elif kind == "REC":
            us, _, text = rest.partition(" ")
            try:
                rec = json.loads(text)
                rec["_arrival_us"] = int(us)
                r["records"].append(rec)
            except ValueError:
                # Under runc the records come on stderr, with whatever else is written there.
                r["err"].append(("unparsable record: " if text.startswith("{") else "") + text)
        elif kind == "ERR":
            r["err"].append(rest)
        elif kind == "KMSG" and "oominit-clock" in rest:
            # kmsg's clock minus CLOCK_MONOTONIC, measured just before the scenario ran.
            r["offset_us"] = int(rest.split(",")[2]) - int(rest.rsplit(" ", 1)[1])
        elif kind == "KMSG" and "Killed process" in rest:
            r["kills_us"].append(int(rest.split(",")[2]))
            r["killed"].append(re.search(r"Killed process \d+ \((.*?)\)", rest).group(1))
        elif kind == "KMSG" and "invoked oom-killer" in rest:
            r["invoked"].append(rest.split(";", 1)[1].split(" invoked")[0])
        elif kind == "COUNTERS":
            r["counters"] = rest.strip()
        elif kind == "OUT":
            r["out"].append(rest)
        elif kind == "LAYOUT":
            r["layout"] = [part.split() for part in rest.split("|")]
        elif kind == "POD":
            r["pod"] = dict(zip(rest.split()[0::2], map(int, rest.split()[1::2])))
        elif kind == "TLOG":
            r["tlog"] = rest
        elif kind == "LEFT":
            r["left"] = [part.split() for part in rest.split("|")]
        elif kind == "PAUSE":
            r["pause"] = int(rest)
    return res


class Failed(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failed(what)


def exit_rec(r):
    exits = [x for x in r["records"] if x["event"] == "exit"]
    expect(len(exits) == 1, f"expected one exit record, got {len(exits)}: {r['err']}")
    expect(r["records"][-1]["event"] == "exit", "the exit record is not the last line")
    return exits[0]


def events(r):
    return [x for x in r["records"] if x["event"] == "oom"]


def verdict(v0, rc0, scope, kills0=None, watch=None, n_events0=None, main="sh"):
    def check(r):
        v, rc, kills, n_events = v0, rc0, kills0, n_events0
        e = exit_rec(r)
        # The kernel's own account is the truth: oominit must count exactly the kills it logged.
        expect(e["oom"]["kills"] == len(r["killed"]), f"kills {e['oom']['kills']}, kernel log: {r['killed']}")
        if v == "leaf_oom" and main in r["killed"]:
            # A second OOM, before the first victim's memory was freed, took the main process
            # too. Rare; the kernel decided it, and oominit must say so.
            print(f"note {r['name']}: the kernel also killed the main process ({r['killed']}; OOMs invoked by "
                  f"{r['invoked']}): expecting main_oom")
            # Two kills can then fall between two reads: live events rise, not always by one.
            v, rc, kills, n_events = "main_oom", 137, len(r["killed"]), None
            got = [x["kills"] for x in events(r)]
            expect(got == sorted(set(got)) and got[-1:] == [kills], f"live events {got}, expected rising to {kills}")
        expect(r["rc"] == rc, f"exit code {r['rc']}, expected {rc}")
        expect(e["verdict"] == v, f"verdict {e['verdict']}, expected {v}")
        expect(e["exit_code"] == rc, f"record exit_code {e['exit_code']}, expected {rc}")
        expect(e["oom"]["scope"] == scope, f"scope {e['oom']['scope']}, expected {scope}")
        if kills is not None:
            expect(e["oom"]["kills"] == kills, f"kills {e['oom']['kills']}, expected {kills}")
        if watch is not None:
            expect(e["memory"]["watch"] == watch, f"watch {e['memory']['watch']}, expected {watch}")
        if n_events is not None:
            got = [x["kills"] for x in events(r)]
            expect(got == list(range(1, n_events + 1)), f"live events {got}, expected 1..{n_events}")
        # Never a false name: whoever is named with certainty, the kernel killed (by name; its
        # log has host pids), and no one twice.
        certain = [v for v in e["oom"]["victims"] if not v["uncertain"]]
        left = list(r["killed"])
        for v in certain:
            expect(v["comm"] is None or v["comm"] in left, f"named {v['comm']}, kernel killed {r['killed']}")
            if v["comm"] in left:
                left.remove(v["comm"])
        expect(len({v["pid"] for v in e["oom"]["victims"]}) == len(e["oom"]["victims"]), "a victim named twice")
        expect(e["oom"]["unnamed"] == e["oom"]["kills"] - len(certain), f"unnamed {e['oom']['unnamed']}")
        return e
    return check


def leaf_named(inner):
    """The leaf memhog named: reaped by its own parent (sh), so oominit never saw its status."""
    def check(r):
        e = inner(r)
        victims = e["oom"]["victims"]
        v = [x for x in victims if x["comm"] == "memhog" and not x["uncertain"]]
        leaves = r["killed"].count("memhog")
        # Before 6.15 the kernel keeps no exit status for a pidfd once the process is reaped. A
        # leaf killed and reaped by sh before the kill's wake reaches oominit (cgroup v2
        # announces it up to 10 ms late when `max` events came just before) can only be named
        # as it is there: `vanished`, uncertain, and counted in `unnamed`. Seen in ~1 of 10 runs
        # of v2_three_leaves. Accepted as that and said; a wrong or missing name still fails,
        # and so does a vanished leaf on 6.15+, whose pidfd says how it ended.
        vanished = [x for x in victims if x["source"] == "vanished" and x["uncertain"] and x["comm"] in ("memhog", None)]
        expect(not vanished or natural(r["series"]) < [6, 15], f"vanished on {r['series']}: {vanished}")
        expect(len(v) + len(vanished) == leaves and len(victims) == leaves,
               f"victims {victims}, kernel killed {r['killed']}")
        if vanished:
            print(f"note {r['name']}: {len(vanished)} of {leaves} leaves reaped by sh before oominit looked: "
                  "named `vanished`, uncertain (no pidfd exit status before 6.15)")
        # On one CPU the kill can come before oominit runs at all after the first `max` event:
        # the victim is first seen dying, its memory and argv already gone. Then they are empty,
        # never wrong.
        expect(all(x["argv"] in (["/memhog", "128"], []) and not x["main"] for x in v), f"victims {v}")
        expect(all(x["rss_bytes"] is None or 8 * MIB <= x["rss_bytes"] <= 40 * MIB for x in v), f"rss_bytes {v}")
        expect(e["oom"]["unnamed"] == len(vanished), f"unnamed {e['oom']['unnamed']}")
        return e
    return check


def main_named(inner):
    """The main process named as the victim, with its size as read before the kill."""
    def check(r):
        e = inner(r)
        v = e["oom"]["victims"]
        expect(len(v) == 1 and v[0]["main"] and v[0]["comm"] == "memhog", f"victims {v}")
        # RSS counts file pages too, whose cache may be charged elsewhere: it can pass the limit.
        expect(v[0]["rss_bytes"] and 8 * MIB <= v[0]["rss_bytes"] <= 40 * MIB, f"rss_bytes {v[0]['rss_bytes']}")
        expect(e["oom"]["unnamed"] == 0, f"unnamed {e['oom']['unnamed']}")
        return e
    return check


def clean_figures(r):
    e = verdict("clean", 0, None, 0)(r)
    m = e["memory"]
    expect(m["cgroup"] in ("v1", "v2"), f"cgroup {m['cgroup']}")
    expect(m["limit_bytes"] == 64 * MIB, f"limit_bytes {m['limit_bytes']}")
    expect(m["peak_bytes"] is not None and 16 * MIB <= m["peak_bytes"] <= 64 * MIB, f"peak_bytes {m['peak_bytes']}")


def group_protected(r):
    # oominit at -1000 is spared by the group kill; sh, sleep and memhog are not.
    e = exit_rec(r)
    expect(r["rc"] == 137, f"exit code {r['rc']}")
    expect(e["verdict"] == "main_oom", f"verdict {e['verdict']}")
    # The kernel counts the first victim again in the group walk only if it still has its memory
    # (__oom_kill_process skips a task without an mm): when it exited first, the counters say
    # oom_kill 3, oom_group_kill 1 for the same three deaths, and oominit's oom_kill minus
    # oom_group_kill says 2. A known undercount (seen twice in about fifteen runs), not hidden:
    # accepted only when the final counters show exactly that, and said.
    c = dict(zip(r["counters"].split()[0::2], r["counters"].split()[1::2]))
    undercount = c.get("oom_kill") == "3" and c.get("oom_group_kill") == "1"
    if undercount and e["oom"]["kills"] == 2:
        print(f"note {r['name']}: the first victim exited before the group walk re-counted it "
              f"(cgroup: {r['counters']}): oominit reports 2 kills for 3 deaths")
    else:
        expect(e["oom"]["kills"] == 3, f"kills {e['oom']['kills']}, expected 3 (sh, sleep, memhog)")
    expect(e["oom"]["counters"]["oom_group_kill"] == 1, f"oom_group_kill {e['oom']['counters']}")
    return e


def group_unprotected(r):
    # Without -1000, oominit is one more task of the group: the kernel kills it with the rest.
    expect(r["rc"] == 137, f"minictr saw {r['rc']}, expected oominit killed (137)")
    expect(not [x for x in r["records"] if x["event"] == "exit"], "an exit record from a killed oominit?")


def libtest(r):
    """The test binary's own account, against its list: exactly the tests meant to run ran, and
    passed; any not run here is said, with why."""
    s, listed = r["scenario"], r["listed"]
    meant = s.only or [t for t in listed if t not in s.skip]
    expect(set(meant) <= set(listed), f"no such tests: {set(meant) - set(listed)}")
    ran = dict(re.findall(r"^test (\S+) \.\.\. (\S+)$", "\n".join(r["out"]), re.M))
    summary = [l for l in r["out"] if l.startswith("test result: ")]
    failed = sorted(t for t, how in ran.items() if how != "ok")
    expect(not failed, f"not ok: {failed}")
    expect(r["rc"] == 0 and summary and summary[-1].startswith("test result: ok."),
           f"exit code {r['rc']}, {summary or 'no test result'}")
    expect(sorted(ran) == sorted(meant), f"ran {sorted(ran)}, expected {sorted(meant)}")
    n = re.search(r"(\d+) passed; (\d+) failed; (\d+) ignored; \d+ measured; (\d+) filtered out", summary[-1])
    expect(n and [int(x) for x in n.groups()] == [len(meant), 0, 0, len(listed) - len(meant)], summary[-1])
    r["summary"] = f"{len(meant)} of {len(listed)} tests passed" + "".join(
        f"; not run here: {t} ({why})" for t, why in s.skip.items())


def layout(control, own, beside):
    """After the tests: the own cgroup's subtree_control and child cgroups, and test cgroups left
    beside it (patterns)."""
    def check(r):
        got = r["layout"]
        expect(got is not None, "no layout")
        want = [control, own, beside]
        for what, g, w in zip(("subtree_control", "children", "test cgroups beside it"), got, want):
            expect(len(g) == len(w) and all(re.fullmatch(p, x) for p, x in zip(w, g)), f"{what}: {g}, expected {w}")
    return check


def both(*checks):
    def check(r):
        for c in checks:
            c(r)
    return check


def one_line_failure(r):
    """Without a memory controller for their cgroup, the tests fail, each with one line saying so."""
    out = r["out"]
    expect(r["rc"] == 101, f"exit code {r['rc']}, expected libtest's 101")
    expect(any(re.fullmatch(r"test \S+ \.\.\. FAILED", l) for l in out), "no test failed")
    why = [i for i, l in enumerate(out) if l.startswith("these tests need root and a memory controller")]
    expect(len(why) == len(r["scenario"].only), f"{len(why)} messages for {len(r['scenario'].only)} tests")
    for i in why:
        expect("memory.events" in out[i], f"does not name what is missing: {out[i]}")
        after = out[i + 1] if i + 1 < len(out) else ""
        expect(after == "" or after.startswith(("note:", "stack backtrace:")), f"more than one line: {out[i:i + 3]}")
    r["summary"] = f"fails with: {out[why[0]]}"


def in_runc(inner, score=0, sys_resource=False):
    """INNER, and what runc gave oominit and left behind: when the command ran /probe, oominit's
    capabilities (CAP_SYS_RESOURCE only if added) and oom_score_adj, the cgroup namespace's root
    as its cgroup, the cgroupfs read-only; the kubelet's termination log holding the compact
    exit record, or nothing when there was none; no process, cgroup or runc state left."""
    def check(r):
        inner(r)
        expect(r["tlog"] is not None and r["left"] is not None, "no account of the termination log or what was left")
        if r["scenario"].pause:
            expect(r["pause"] is not None and r["pause"] >= MIB, f"the pause holds {r['pause']} bytes, expected 1 MiB")
        probe = dict(l.split(" ", 2)[1:] for l in r["out"] if l.startswith("PROBE ") and l.count(" ") >= 2)
        if "/probe" in r["scenario"].cmd:
            expect(len(probe) == 4, f"the probe's lines: {r['out']}")
            caps = int(probe["caps"], 16)
            expect(bool(caps & 1 << 24) == sys_resource, f"CapEff {probe['caps']}: CAP_SYS_RESOURCE {'missing' if sys_resource else 'granted'}")
            expect(not caps & 1 << 21, f"CapEff {probe['caps']}: CAP_SYS_ADMIN")
            expect(probe["oom_score_adj"] == str(score), f"oom_score_adj {probe['oom_score_adj']}, expected {score}")
            expect(probe["cgroup"] == "0::/", f"/proc/self/cgroup {probe['cgroup']}")
            mount = probe["mount"].split()
            expect(mount[3] == "/" and "ro" in mount[5].split(",") and mount[mount.index("-") + 1] == "cgroup2",
                   f"cgroupfs: {probe['mount']}")
        exits = [x for x in r["records"] if x["event"] == "exit"]
        if exits:
            t = json.loads(r["tlog"]) if r["tlog"].startswith("{") else None
            expect(t and len(r["tlog"]) < 1024 and (t["verdict"], t["exit_code"]) == (exits[0]["verdict"], exits[0]["exit_code"]),
                   f"termination log {r['tlog']!r}")
        else:
            # Nothing, or the pre-mortem oominit wrote as the cgroup reached its limit.
            t = json.loads(r["tlog"]) if r["tlog"].startswith("{") else None
            expect(r["tlog"] == "" or (t and t["event"] == "limit" and len(r["tlog"]) < 1024),
                   f"termination log {r['tlog']!r} without an exit record")
        expect(r["left"] == [[], [], []], f"left behind: processes {r['left'][0]}, cgroups {r['left'][1]}, runc {r['left'][2]}")
        if exits and not r.get("summary"):
            o = exits[0]["oom"]
            r["summary"] = (f"{exits[0]['verdict']}, scope {o['scope']}, {o['kills']} kills ({o['kills'] - o['unnamed']} named), "
                            f"watch {exits[0]['memory']['watch']}; pod's own: oom {r['pod'].get('oom')}")
    return check


def group_killed(r):
    """The group kill takes oominit too: it cannot go below the -997 runc set (no CAP_SYS_RESOURCE)."""
    expect(r["rc"] == 137, f"runc exited {r['rc']}, expected 137")
    # The walk kills oominit, and sh and sleep unless they have already died with the PID
    # namespace, oominit's: the kernel passes over a task that has no memory left (seen on 6.1).
    # Either way nothing is left (in_runc).
    expect(r["killed"][:1] == ["memhog"] and "oominit" in r["killed"] and set(r["killed"]) <= {"memhog", "oominit", "sh", "sleep"},
           f"kernel killed {r['killed']}")
    expect(not [x for x in r["records"] if x["event"] == "exit"], "an exit record from a killed oominit?")
    # Killed in the same walk as the others: a live event can only come if oominit ran in between.
    for e in events(r):
        expect(e["kills"] <= len(r["killed"]), f"live event {e}")
    # What survives is the pre-mortem in the termination log: the hog's memory, before the kill.
    # On the VM's one TCG CPU oominit does not always run between the hog's first `max` event
    # and the group kill (6.12: 1 run in 3; 6.1: 1 in 5, in CI): then there is none, and the
    # suite says so. The host test a_pre_mortem_survives_when_oominit_is_killed_with_the_rest
    # requires it.
    t = json.loads(r["tlog"]) if (r["tlog"] or "").startswith("{") else None
    if t is None:
        r["summary"] = f"{len(events(r))} live events, no exit record; kernel killed {sorted(r['killed'])}; NO pre-mortem this run"
        return
    expect(t is not None and t["event"] == "limit", f"no pre-mortem in the termination log: {r['tlog']!r}")
    b = t["breakdown"]
    expect(b["anon_bytes"] >= 16 * MIB and t["largest"][:1] and t["largest"][0]["comm"] == "memhog",
           f"pre-mortem {json.dumps(t)}")
    r["summary"] = (f"{len(events(r))} live events, no exit record; kernel killed {sorted(r['killed'])}; "
                    f"pre-mortem: anon {b['anon_bytes'] >> 20} MiB, largest {t['largest'][0]['comm']}")


def hit(inner, limit_bytes, pod):
    """Whose limit was hit, by the kernel's counters: the pod's (its own `oom` rose, and none of
    the container's, as oominit's counters show) when POD, else the container's alone. oominit's
    limit is the container's, if any."""
    def check(r):
        e = inner(r)
        own, pods = e["oom"]["counters"]["oom"], r["pod"].get("oom", 0)
        expect((pods >= 1 and own == 0) if pod else (pods == 0 and own >= 1),
               f"oom: the container's {own}, the pod's own {pods}; expected the {'pod' if pod else 'container'} to be hit")
        expect(e["memory"]["limit_bytes"] == limit_bytes, f"limit_bytes {e['memory']['limit_bytes']}, expected {limit_bytes}")
        return e
    return check


HOG = "/memhog"
V2 = [
    Scenario("v2_main_oom", f"{HOG} 128", limit="32M", check=main_named(verdict("main_oom", 137, "limit", 1, "inotify", 1))),
    Scenario("v2_leaf_oom", f"sh -c '{HOG} 128; exit 0'", limit="32M", check=leaf_named(verdict("leaf_oom", 0, "limit", 1, "inotify", 1))),
    Scenario("v2_leaf_strict", f"sh -c '{HOG} 128; exit 0'", limit="32M", flags="--strict",
             check=verdict("leaf_oom", 137, "limit", 1)),
    Scenario("v2_three_leaves", f"sh -c '{HOG} 128; {HOG} 128; {HOG} 128; exit 0'", limit="32M",
             check=leaf_named(verdict("leaf_oom", 0, "limit", 3, "inotify", 3))),
    Scenario("v2_clean", f"{HOG} 16", limit="64M", check=clean_figures),
    Scenario("v2_group_protected", f"sh -c 'sleep 100 & {HOG} 128; wait'", limit="32M", oom_group=True,
             check=group_protected),
    Scenario("v2_group_unprotected", f"sh -c 'sleep 100 & {HOG} 128; wait'", limit="32M", oom_group=True,
             flags="--no-oom-protect", check=group_unprotected),
    Scenario("v2_ancestor_limit", f"{HOG} 128", parent_limit="32M", check=verdict("main_oom", 137, "ancestor", 1)),
    # Last: a host-wide OOM in a 128 MiB VM, no limit anywhere.
    Scenario("v2_host_oom", f"sh -c '{HOG} 1024; exit 0'", check=verdict("leaf_oom", 0, "host", 1)),
]
V1 = [
    Scenario("v1_main_oom", f"{HOG} 128", limit="32M", check=main_named(verdict("main_oom", 137, "limit", 1, "eventfd", 1))),
    Scenario("v1_leaf_oom", f"sh -c '{HOG} 128; exit 0'", limit="32M", check=leaf_named(verdict("leaf_oom", 0, "limit", 1, "eventfd", 1))),
    Scenario("v1_three_leaves", f"sh -c '{HOG} 128; {HOG} 128; {HOG} 128; exit 0'", limit="32M",
             check=leaf_named(verdict("leaf_oom", 0, "limit", 3, "eventfd", 3))),
    Scenario("v1_read_only", f"sh -c '{HOG} 128; exit 0'", limit="32M", ro=True,
             check=verdict("leaf_oom", 0, "limit", 1, "exits")),
    Scenario("v1_clean", f"{HOG} 16", limit="64M", check=clean_figures),
]


# Under runc. Docker's shape first: a limit on the container, no more.
RUNC = [
    Runc("runc_leaf_oom", f"sh -c '{HOG} 128; /probe; exit 0'", limit=32 * MIB,
         check=in_runc(leaf_named(verdict("leaf_oom", 0, "limit", 1, "inotify", 1)))),
    Runc("runc_main_oom", f"{HOG} 128", limit=32 * MIB, check=in_runc(main_named(verdict("main_oom", 137, "limit", 1)))),
    # Kubernetes' since 1.28 (a Guaranteed pod): the group kill takes every process, oominit too.
    Runc("runc_group", f"sh -c 'sleep 100 & {HOG} 128; wait'", limit=32 * MIB, oom_group=True, score=-997,
         check=in_runc(group_killed)),
    # The same with CAP_SYS_RESOURCE added: oominit goes to -1000, is spared, and reports.
    Runc("runc_group_sys_resource", f"sh -c 'sleep 100 & {HOG} 128; wait'", limit=32 * MIB, oom_group=True, score=-997,
         caps=["CAP_SYS_RESOURCE"], check=in_runc(group_protected)),
    # A pod limit above the container's (a pod of several containers): the container's is hit.
    Runc("runc_pod_above", f"sh -c '{HOG} 128; exit 0'", limit=32 * MIB, pod_limit=48 * MIB,
         check=in_runc(hit(verdict("leaf_oom", 0, "limit", 1), 32 * MIB, pod=False))),
    # A limit on the pod only (pod-level resources): the kills come from outside the container.
    Runc("runc_pod_limit", f"sh -c '{HOG} 128; /probe; exit 0'", pod_limit=32 * MIB,
         check=in_runc(hit(verdict("leaf_oom", 0, "ancestor", 1), None, pod=True))),
    # One container whose limit equals the pod's, the pause beside it: the pod's counter is hit
    # first (containerd#6323).
    Runc("runc_pod_equal", f"sh -c '{HOG} 128; /probe; exit 0'", limit=32 * MIB, pod_limit=32 * MIB, pause=True,
         score=-997, check=in_runc(hit(verdict("leaf_oom", 0, "limit", 1), 32 * MIB, pod=True), score=-997)),
    # Equal limits and nothing else in the pod: the pod's counter still runs out first, as the
    # kernel charges a cgroup's own per-CPU data to its parent (256 KiB seen in the pod after a
    # mkdir of an empty child, on 6.1 and 6.12).
    Runc("runc_pod_equal_alone", f"sh -c '{HOG} 128; exit 0'", limit=32 * MIB, pod_limit=32 * MIB, score=-997,
         check=in_runc(hit(verdict("leaf_oom", 0, "limit", 1), 32 * MIB, pod=True))),
]


NO_TTY = "needs util-linux script and procps ps, which busybox lacks; runs on the host"
NO_DISK = "needs a disk-backed file; the VM's only filesystems keep files in memory; runs on the host"
NO_STRACE = "needs strace, which the VM's busybox lacks; runs on the host"
# On the VM's one TCG CPU the hog of this test can fill 32 MiB and be killed before oominit runs
# at its first `max` event: then no reading at the limit comes before the kill, and no pre-mortem
# is written (2 runs in about 20 on 6.1). The rest of tests/oom.rs, which failed 2 to 4 tests a
# run on 6.12 while v2 waited for the first `max` event to follow anything, passes there since
# oominit follows v2's processes from start (6 runs of 6). Issue 12; it runs on the host on every
# CI run.
ONE_CPU_PREMORTEM = "on the VM's one TCG CPU the hog can be killed before oominit's first wake at the limit; runs on the host"
# v2 gives no wake below the limit: --pre-oom-stop's first reading is at the first `max` event,
# and in the VM nothing is reclaimable there (no disk-backed page cache), so the kill follows in
# milliseconds and the signal races it. Run on the host (v1, a threshold at the fraction).
V2_NO_WAKE_BELOW = "v2 wakes only at the limit, where the VM has nothing to reclaim: the signal races the kill"
TESTS = [
    # A cgroup of its own: the tests move into a leaf of it and enable memory for its children.
    HostTests("v2_tests_oom", "oom",
              skip={"page_cache_alone_is_no_oom": NO_DISK,
                    "a_pre_mortem_survives_when_oominit_is_killed_with_the_rest": ONE_CPU_PREMORTEM,
                    "memory_the_kernel_cannot_reclaim_at_the_limit_is_warned_of_once": NO_DISK,
                    "pre_oom_stop_never_fires_on_page_cache": NO_DISK,
                    "oominit_unmaps_no_memory_of_its_own": NO_STRACE,
                    "records_after_a_kill_map_no_new_memory": NO_STRACE,
                    "pre_oom_stop_lets_main_exit_cleanly_before_any_kill": V2_NO_WAKE_BELOW,
                    "pre_oom_stop_sends_one_signal_and_leaves_the_rest_to_the_kernel": V2_NO_WAKE_BELOW},
              check=both(libtest, layout(["memory"], [r"oominit-tests-\d+/"], []))),
    HostTests("v2_tests_core", "core", skip={"child_gets_the_terminal_foreground": NO_TTY},
              check=both(libtest, layout([], [], []))),
    # A process not the tests' in their cgroup: they make their cgroups beside it, under the root.
    HostTests("v2_tests_oom_beside", "oom", foreign=True,
              only=["main_process_oom_killed", "earlier_kills_and_limit_hits_are_not_counted"],
              check=both(libtest, layout([], [], []))),
    HostTests("v2_tests_no_memory", "oom", memory=False, only=["clean_run_reports_peak_and_limit"],
              check=one_line_failure),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="", help="run only scenarios whose name contains this")
    ap.add_argument("--kernel", action="append", choices=sorted(KERNELS, key=natural),
                    help="boot only this kernel series (repeatable; default: every one)")
    a = ap.parse_args()
    boots = []
    for series in a.kernel or sorted(KERNELS, key=natural):
        for version, scenarios in (("v2", V2), ("v1", V1), ("runc", RUNC), ("v2 tests", TESTS)):
            chosen = [s for s in scenarios if a.k in s.name]
            for s in [s for s in chosen if series in getattr(s, "not_on", {})]:
                print(f"# not run on {series}: {s.name} ({s.not_on[series]})")
                chosen.remove(s)
            if chosen and (version != "v1" or KERNELS[series][1]):
                boots.append((series, version, chosen))
    vmlinux = {series: kernel(series) for series in sorted({b[0] for b in boots})}
    tests = {}
    if any(v == "v2 tests" for _, v, _ in boots):
        oominit, tests = build_tests()
    else:
        oominit = build()
    passed = failed = 0
    latencies = []
    details = {}
    for series, version, scenarios in boots:
        with tempfile.TemporaryDirectory() as tmp:
            initrd = os.path.join(tmp, "initramfs.cpio.gz")
            if version == "v2 tests":
                # More memory: the test binaries live in the initramfs, and a test whose limit
                # failed to apply should fail on its own asserts, not start a host-wide OOM.
                pack(oominit, tests_init_script(scenarios), initrd, tests)
                serial, took = boot(vmlinux[series], initrd, "256M", timeout=900)
            elif version == "runc":
                # More memory: runc (9 MB) in the initramfs, and copied into a memfd at each start.
                r = runc()
                pack(oominit, runc_init_script(scenarios, r["version"]), initrd, bundles={"runc": r, "scenarios": scenarios})
                serial, took = boot(vmlinux[series], initrd, "256M")
            else:
                pack(oominit, init_script(version, scenarios), initrd)
                serial, took = boot(vmlinux[series], initrd, "128M")
        print(f"# {version} boot on {series}: {len(scenarios)} scenarios in {took:.1f} s, kernel "
              + (re.search(r"@@ UNAME (\S+)", serial) or [None, "?"])[1]
              + (f"; {(re.search(r'@@ RUNC (.*)', serial) or [None, 'runc did not start'])[1]}" if version == "runc" else ""))
        results = parse(serial)
        boot_failed = "@@ DONE" not in serial
        for s in scenarios:
            r = results.get(s.name)
            try:
                expect(r is not None and r["rc"] is not None, "scenario did not run to the end")
                r["name"], r["scenario"], r["series"] = f"{s.name} [{series}]", s, series
                if isinstance(s, HostTests):
                    expect(s.test in tests, f"no test binary {s.test} (built: {sorted(tests)})")
                    r["listed"] = tests[s.test][1]
                s.check(r)
                passed += 1
                print(f"ok   {s.name} [{series}]  rc={r['rc']}  " + (r.get("summary") or f"cgroup: {r['counters']}"))
            except Failed as e:
                failed += 1
                boot_failed = True
                print(f"FAIL {s.name} [{series}]: {e}")
                if r:
                    for x in r["records"]:
                        print(f"       record: {json.dumps({k: v for k, v in x.items() if k != '_arrival_us'})}")
                    for x in r["err"]:
                        print(f"       stderr: {x}")
                    print(f"       cgroup: {r['counters']}")
                    # libtest's own report of what failed, and how
                    failures = [i for i, x in enumerate(r["out"]) if x == "failures:"]
                    for x in r["out"][failures[0]:][:80] if failures else r["out"][-20:]:
                        print(f"       libtest: {x}")
            if r:
                details[s.name, series] = r
                evs = events(r)
                for k, kill_us in enumerate(r["kills_us"], start=1):
                    ev = [x for x in evs if x["kills"] >= k]
                    if ev:
                        latencies.append((f"{s.name} [{series}]", k, (ev[0]["_arrival_us"] - (kill_us - r["offset_us"])) / 1000.0))
        if boot_failed:
            print(f"--- serial log of the {version} boot on {series} ---\n{serial}\n--- end of serial log ---")
    if latencies:
        print("# OOM detection latency, kernel's 'Killed process' (/dev/kmsg, clock offset corrected) to oominit's live event:")
        for name, k, ms in latencies:
            print(f"#   {name} kill {k}: {ms:.1f} ms")
        ms = sorted(x[2] for x in latencies)
        print(f"#   median {ms[len(ms) // 2]:.1f} ms, max {ms[-1]:.1f} ms over {len(ms)} kills (TCG, not asserted)")
    for (name, series), r in details.items():
        if name in ("v2_group_protected", "v2_group_unprotected"):
            e = [x for x in r["records"] if x["event"] == "exit"]
            print(f"# {name} [{series}]: rc={r['rc']} exit record: {json.dumps(e[0]['oom']) if e else 'none'}; cgroup: {r['counters']}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
