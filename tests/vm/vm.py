#!/usr/bin/env python3
"""Real-kernel scenarios for oominit in a throwaway VM: cgroup v2 (which this project's machines
lack), group OOM, host-wide OOM, an ancestor's limit, and cgroup v1 on the same kernel.

Every boot is made once per kernel: Debian 12's 6.1 and Debian 13's 6.12 (KERNELS); v1 on 6.1
only, as Debian's 6.12 has no v1 memory controller.

Each boot runs several scenarios. oominit runs in each the way it runs in a container: PID 1 of a
new PID namespace, in a new cgroup namespace, inside a cgroup with a limit (examples/minictr.rs).
A third boot runs the host integration tests (tests/oom.rs, tests/core.rs, built static) on cgroup
v2, which this project's machines cannot give them.
The VM's /init prints marked lines on the serial console; this script checks them, prints one line
per scenario, the detection latencies, and a closing `N passed, N failed` line. On a failure it
shows the serial log of that boot.

Usage: tests/vm/run [-k SUBSTRING] [--kernel 6.1|6.12]...   (it installs what is missing first)
"""
import argparse
import gzip
import json
import lzma
import os
import re
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


# The kernels the scenarios boot, each the newest package of its series in its Debian release:
# Debian 12's 6.1, and Debian 13's 6.12 (the long-term kernel of current distributions and managed
# clouds). Debian builds 6.12 without cgroup v1's memory controller (CONFIG_MEMCG_V1 unset), so
# the v1 scenarios run on 6.1 only.
KERNELS = {"6.1": ("bookworm", True), "6.12": ("trixie", False)}   # series: (Debian suite, has v1)


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
        if codename + "-security" in mirrors:
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
    # linux-image-6.1.0-56-amd64 (Debian 12), linux-image-6.12.118+deb13-amd64 (Debian 13); not
    # the cloud or rt flavours.
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
    # Booting the compressed image costs 6-8 s of decompression under TCG; the payload inside
    # (XZ in 6.1, zstd in 6.12) decompresses here once. The boot protocol's header says where it
    # is; its last 4 bytes are the decompressed size, appended by the kernel's build.
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


# A scenario: the cgroup it needs, oominit's arguments, the command, and checks on the outcome.
class Scenario:
    def __init__(self, name, cmd, limit=None, flags="", oom_group=False, parent_limit=None, ro=False, check=None):
        self.name, self.cmd, self.limit, self.flags = name, cmd, limit, flags
        self.oom_group, self.parent_limit, self.ro, self.check = oom_group, parent_limit, ro, check


class HostTests:
    """A host integration test binary (tests/NAME.rs) run on the VM's cgroup v2: `only` its tests
    named there, else all but `skip` ({test: why}). Its cgroup is made for it, holding nothing
    else, unless `foreign`: then a process not the tests' sits in it too, and the tests must
    make their cgroups beside it (tests/common's second way). `check` sees the outcome."""
    def __init__(self, name, test, only=(), skip=None, foreign=False, memory=True, check=None):
        self.name, self.test, self.only, self.skip = name, test, list(only), skip or {}
        self.foreign, self.memory, self.check = foreign, memory, check


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
        lines += [
            # The shell holds the FIFO's write end too, so stamp's open() completes and it sees
            # EOF even if oominit never starts.
            # Read-write: opening a FIFO so never blocks (Linux), where a blocking `exec 3>` could be
            # interrupted by SIGCHLD, and a failed exec redirection ends the shell, which is init.
            f"K=$(wc -l < /tmp/kmsg); /stamp --sync; mkfifo /tmp/rec; exec 3<> /tmp/rec; /stamp < /tmp/rec > /tmp/stamped 3>&- & S=$!",
            f"timeout -s KILL 60 /minictr {d} {version}{ro} -- /oominit --record /tmp/rec {s.flags} -- {s.cmd} "
            f"> /tmp/out 2> /tmp/err 3>&-",
            # Only stamp: a bare `wait` would also wait for the `cat /dev/kmsg` that never ends.
            f'echo "@@ RC {s.name} $?"; exec 3>&-; wait $S',
            f'while read -r l; do echo "@@ REC {s.name} $l"; done < /tmp/stamped',
            f'while read -r l; do echo "@@ ERR {s.name} $l"; done < /tmp/err',
            f"tail -n +$((K+1)) /tmp/kmsg | grep -E 'Killed process|oominit-clock|invoked oom-killer' | while read -r l; do echo \"@@ KMSG {s.name} $l\"; done",
            f'echo "@@ COUNTERS {s.name} $(cat {d}/memory.events 2>/dev/null || cat {d}/memory.oom_control) " | tr "\\n" " "; echo',
            "rm -f /tmp/rec /tmp/stamped",
        ]
    lines += ['echo "@@ DONE"', "poweroff -f"]
    return "\n".join(lines) + "\n"


def pack(oominit, script, dest, tests=None):
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(f"{d}/bin")
        for sub in ("proc", "sys", "dev", "tmp"):
            os.makedirs(f"{d}/{sub}")
        shutil.copy("/bin/busybox", f"{d}/bin/busybox")
        shutil.copy(oominit, f"{d}/oominit")
        for ex in ("memhog", "minictr", "stamp", "workers"):
            shutil.copy(os.path.join(os.path.dirname(oominit), "examples", ex), f"{d}/{ex}")
        if tests:
            # The test binaries, and every workload where OOMINIT_EXAMPLES points them.
            os.makedirs(f"{d}/tests")
            os.makedirs(f"{d}/examples")
            for name, (path, _) in tests.items():
                shutil.copy(path, f"{d}/tests/{name}")
            for ex in os.listdir(os.path.join(ROOT, "examples")):
                ex = ex[:-len(".rs")]
                shutil.copy(os.path.join(os.path.dirname(oominit), "examples", ex), f"{d}/examples/{ex}")
        with open(f"{d}/init", "w") as f:
            f.write(script)
        os.chmod(f"{d}/init", 0o755)
        cpio = subprocess.run("find . -print0 | cpio --null -o -H newc --quiet", shell=True, cwd=d,
                              check=True, capture_output=True).stdout
    with gzip.open(dest, "wb", compresslevel=1) as f:
        f.write(cpio)


def boot(vmlinux, initrd, mem, timeout=240):
    cmd = ["timeout", str(timeout), "qemu-system-x86_64", "-accel", "tcg,tb-size=32", "-m", mem, "-smp", os.environ.get("OOMINIT_VM_SMP", "1"),
           "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio", "-display", "none",
           "-kernel", vmlinux, "-initrd", initrd,
           "-append", "console=ttyS0 panic=-1 quiet loglevel=1"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True)
    return p.stdout.decode("utf-8", "replace").replace("\r", ""), time.monotonic() - t0


def parse(serial):
    """Per scenario: rc, records (with arrival µs), stderr lines, kmsg kills (µs), counters."""
    res = {}
    for line in serial.splitlines():
        m = re.match(r"@@ (RC|REC|ERR|KMSG|COUNTERS|OUT|LAYOUT) (\S+) ?(.*)$", line)
        if not m:
            continue
        kind, name, rest = m.groups()
        r = res.setdefault(name, {"rc": None, "records": [], "err": [], "kills_us": [], "killed": [], "invoked": [],
                                  "counters": "", "offset_us": 0, "out": [], "layout": None})
        if kind == "RC":
            r["rc"] = int(rest)
        elif kind == "REC":
            us, _, text = rest.partition(" ")
            try:
                rec = json.loads(text)
                rec["_arrival_us"] = int(us)
                r["records"].append(rec)
            except ValueError:
                r["err"].append("unparsable record: " + text)
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
        # This kernel (6.1) keeps no exit status for a pidfd once the process is reaped (6.15+
        # does). A leaf killed and reaped by sh before the kill's wake reaches oominit (cgroup v2
        # announces it up to 10 ms late when `max` events came just before) can only be named
        # as it is: `vanished`, uncertain, and counted in `unnamed`. Seen in ~1 of 10 runs of
        # v2_three_leaves, before and after this session's changes. Accepted as that and said;
        # a wrong or missing name still fails.
        vanished = [x for x in victims if x["source"] == "vanished" and x["uncertain"] and x["comm"] in ("memhog", None)]
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
    Scenario("v2_ancestor_limit", f"{HOG} 128", parent_limit="32M", check=verdict("main_oom", 137, "outside", 1)),
    # Last: a host-wide OOM in a 128 MiB VM, no limit anywhere.
    Scenario("v2_host_oom", f"sh -c '{HOG} 1024; exit 0'", check=verdict("leaf_oom", 0, "outside", 1)),
]
V1 = [
    Scenario("v1_main_oom", f"{HOG} 128", limit="32M", check=main_named(verdict("main_oom", 137, "limit", 1, "eventfd", 1))),
    Scenario("v1_leaf_oom", f"sh -c '{HOG} 128; exit 0'", limit="32M", check=leaf_named(verdict("leaf_oom", 0, "limit", 1, "eventfd", 1))),
    Scenario("v1_three_leaves", f"sh -c '{HOG} 128; {HOG} 128; {HOG} 128; exit 0'", limit="32M",
             check=leaf_named(verdict("leaf_oom", 0, "limit", 3, "eventfd", 3))),
    Scenario("v1_read_only", f"sh -c '{HOG} 128; exit 0'", limit="32M", ro=True,
             check=verdict("leaf_oom", 0, "limit", 1, "reap")),
    Scenario("v1_clean", f"{HOG} 16", limit="64M", check=clean_figures),
]


NO_TTY = "needs util-linux script and procps ps, which busybox lacks; runs on the host"
TESTS = [
    # A cgroup of its own: the tests move into a leaf of it and enable memory for its children.
    HostTests("v2_tests_oom", "oom", check=both(libtest, layout(["memory"], [r"oominit-tests-\d+/"], []))),
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
        for version, scenarios in (("v2", V2), ("v1", V1), ("v2 tests", TESTS)):
            chosen = [s for s in scenarios if a.k in s.name]
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
            else:
                pack(oominit, init_script(version, scenarios), initrd)
                serial, took = boot(vmlinux[series], initrd, "128M")
        print(f"# {version} boot on {series}: {len(scenarios)} scenarios in {took:.1f} s, kernel "
              + (re.search(r"@@ UNAME (\S+)", serial) or [None, "?"])[1])
        results = parse(serial)
        boot_failed = "@@ DONE" not in serial
        for s in scenarios:
            r = results.get(s.name)
            try:
                expect(r is not None and r["rc"] is not None, "scenario did not run to the end")
                r["name"], r["scenario"] = f"{s.name} [{series}]", s
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
