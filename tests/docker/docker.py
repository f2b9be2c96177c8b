#!/usr/bin/env python3
"""oominit on the real Docker engine: as the ENTRYPOINT of an image built FROM scratch (the static
oominit, busybox and the test workloads) and of a Debian image made from Debian's packages
(debootstrap, then `docker import`), under real memory limits.

Every scenario runs one container, reads oominit's records back from `docker logs` (stderr),
validates each against schema/oominit-record.schema.json, and checks them against what Docker
(`docker inspect`: OOMKilled, ExitCode, RestartCount) and the kernel (the container's own
memory.oom_control, printed by the command after the workload) say. One line per scenario,
`ok NAME ...` or `FAIL NAME ...` (with the container's logs), then `N passed, N failed`.

The Debian root filesystem is cached as a tarball in ~/.cache/oominit-docker
(OOMINIT_DOCKER_CACHE), keyed by suite and packages, and imported once as
oominit-test/debian-base:KEY, which later runs reuse. Every container and the per-run images
(oominit-test/scratch:RUN, oominit-test/debian:RUN) are removed at the end, failed or not.

Usage: tests/docker/run [-k SUBSTRING]      (tests/docker/run installs what is missing first)
"""
import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import jsonschema

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("OOMINIT_DOCKER_CACHE", os.path.expanduser("~/.cache/oominit-docker"))
RUN = f"{os.getpid()}"
LABEL = f"oominit-test={RUN}"
MIB = 1 << 20
SUITE = "bookworm"
PACKAGES = ["python3", "stress-ng"]

SCHEMA = json.load(open(os.path.join(ROOT, "schema", "oominit-record.schema.json")))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

# What the command prints after its workload: the cgroup file it read and the kernel's counters.
# With the host's cgroupfs mounted, the container's cgroup is at its /proc/self/cgroup path;
# with Docker's own read-only mount, it is the root of /sys/fs/cgroup/memory.
OOM_CONTROL = ('P=$(grep :memory: /proc/self/cgroup | cut -d: -f3); f=/sys/fs/cgroup/memory$P/memory.oom_control; '
               '[ -e "$f" ] || f=/sys/fs/cgroup/memory/memory.oom_control; echo "cgfile $f"; cat "$f"')


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, text=True, capture_output=True, **kw).stdout


def docker(*args, check=True, timeout=120, input=None):
    p = subprocess.run(["docker", *args], text=True, capture_output=True, timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise Failure(f"docker {' '.join(args[:3])}... exited {p.returncode}: {p.stderr.strip()}")
    return p


class Failure(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Images

def build():
    """The static oominit; the static workloads are beside it in examples/."""
    return sh(f"{ROOT}/.ci/build-static --examples").strip()


def scratch_image(oominit):
    """FROM scratch: /oominit (the ENTRYPOINT), busybox with its applets in /bin, the workloads."""
    tag = f"oominit-test/scratch:{RUN}"
    with tempfile.TemporaryDirectory() as d:
        for sub in ("bin", "tmp", "proc", "sys", "dev", "etc"):
            os.makedirs(f"{d}/{sub}")
        os.chmod(f"{d}/tmp", 0o1777)
        shutil.copy("/bin/busybox", f"{d}/bin/busybox")
        for applet in sh("/bin/busybox --list").split():
            if applet != "busybox":
                os.symlink("busybox", f"{d}/bin/{applet}")
        shutil.copy(oominit, f"{d}/oominit")
        for ex in ("memhog", "workers", "sigprobe", "asuser"):
            shutil.copy(os.path.join(os.path.dirname(oominit), "examples", ex), f"{d}/{ex}")
        with open(f"{d}/etc/passwd", "w") as f:
            f.write("root:x:0:0:root:/:/bin/sh\napp:x:1000:1000:app:/:/bin/sh\n")
        tar = subprocess.Popen(["tar", "-C", d, "-c", "--owner=0", "--group=0", "."], stdout=subprocess.PIPE)
        p = subprocess.run(["docker", "import", "--change", 'ENTRYPOINT ["/oominit", "--"]',
                            "--change", "ENV PATH=/bin", "-", tag], stdin=tar.stdout, capture_output=True, text=True)
        tar.wait()
        if p.returncode != 0 or tar.returncode != 0:
            raise Failure(f"docker import of the scratch image failed: {p.stderr.strip()}")
    return tag


def mirror():
    """The Debian mirror this machine's apt already uses (none: debootstrap's default)."""
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*")):
        try:
            lines = open(path).read().splitlines()
        except OSError:
            continue
        for line in lines:
            m = re.match(r"\s*(?:URIs:|deb)\s+(?:\[[^]]*\]\s+)?(https?://\S+)", line)
            if m and "security" not in m.group(1):
                return m.group(1)
    return None


def debian_base(packages=PACKAGES):
    """oominit-test/debian-base:KEY, imported from the cached debootstrap tarball, itself made
    once (about 2 minutes). KEY hashes the suite and the package list (bench/victims_real.py
    passes a longer list: its image has a key of its own and leaves this suite's cached)."""
    key = hashlib.sha256(f"{SUITE} minbase {' '.join(packages)}".encode()).hexdigest()[:12]
    tag = f"oominit-test/debian-base:{key}"
    if docker("image", "inspect", tag, check=False).returncode == 0:
        return tag, "image cached"
    tarball, how = debian_tarball(packages)
    with open(tarball, "rb") as f:
        p = subprocess.run(["docker", "import", "-", tag], stdin=f, capture_output=True, text=True)
    if p.returncode != 0:
        raise Failure(f"docker import {tarball} failed: {p.stderr.strip()}")
    return tag, how


def debian_tarball(packages=PACKAGES):
    """The cached debootstrap tarball of SUITE with PACKAGES (made once, about 2 minutes) and how
    it came: (path, "tarball cached" | "debootstrapped"). bench/victims_real_vm.py packs it into
    the VM's initramfs without Docker."""
    key = hashlib.sha256(f"{SUITE} minbase {' '.join(packages)}".encode()).hexdigest()[:12]
    os.makedirs(CACHE, exist_ok=True)
    tarball = os.path.join(CACHE, f"debian-{SUITE}-{key}.tar")
    how = "tarball cached"
    if not os.path.exists(tarball):
        how = "debootstrapped"
        rootfs = tempfile.mkdtemp(dir=CACHE, prefix="rootfs-")
        try:
            cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", SUITE, rootfs]
            m = mirror()
            if m:
                cmd.append(m)
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                raise Failure(f"debootstrap failed: {p.stdout[-2000:]}{p.stderr[-2000:]}")
            # apt's lists and the downloaded packages are not needed in the image.
            for junk in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_*"):
                for f in glob.glob(os.path.join(rootfs, junk)):
                    os.remove(f)
            sh(f"tar -C {rootfs} -cf {tarball}.tmp --numeric-owner .")
            os.rename(f"{tarball}.tmp", tarball)
        finally:
            shutil.rmtree(rootfs, ignore_errors=True)
    return tarball, how


def debian_image(base, oominit):
    """The Debian base with /oominit added as the ENTRYPOINT (create, cp, commit: no builder)."""
    tag = f"oominit-test/debian:{RUN}"
    cname = f"oominit-test-build-{RUN}"
    docker("create", "--name", cname, "--label", LABEL, base, "/bin/true")
    try:
        docker("cp", oominit, f"{cname}:/oominit")
        docker("commit", "--change", 'ENTRYPOINT ["/oominit", "--"]', "--change", 'CMD []', cname, tag)
    finally:
        docker("rm", "-f", cname, check=False)
    return tag


# ---------------------------------------------------------------------------------------------
# Running a container

class Outcome:
    def __init__(self, cname):
        self.cname = cname
        st = json.loads(docker("inspect", cname).stdout)[0]
        self.id = st["Id"]
        self.state = st["State"]
        self.oomkilled = st["State"]["OOMKilled"]
        self.exit = st["State"]["ExitCode"]
        self.restarts = st["RestartCount"]
        logs = docker("logs", cname)
        self.stdout, self.stderr = logs.stdout, logs.stderr
        # oominit's lines: every stderr line that is a JSON object with an "event".
        self.records = []
        for line in self.stderr.splitlines():
            if line.startswith("{"):
                try:
                    rec = json.loads(line)
                except ValueError:
                    raise Failure(f"a stderr line is not JSON: {line[:200]}")
                if "event" in rec:
                    self.records.append(rec)
        self.exits = [r for r in self.records if r["event"] == "exit"]
        self.events = [r for r in self.records if r["event"] == "oom"]
        m = re.search(r"^oom_kill (\d+)$", self.stdout, re.M)
        self.kernel_kills = int(m.group(1)) if m else None
        m = re.search(r"^cgfile (\S+)$", self.stdout, re.M)
        self.cgfile = m.group(1) if m else None

    @property
    def rec(self):
        return self.exits[-1]

    def dump(self):
        return (f"  inspect: OOMKilled={self.oomkilled} ExitCode={self.exit} RestartCount={self.restarts}\n"
                + "".join(f"  stdout: {l}\n" for l in self.stdout.splitlines()[-20:])
                + "".join(f"  stderr: {l}\n" for l in self.stderr.splitlines()[-20:]))


def start(name, image, cmd, opts=(), flags=(), memory="32m"):
    cname = f"oominit-test-{name}-{RUN}"
    args = ["run", "-d", "--name", cname, "--label", LABEL, "--memory", memory, "--memory-swap", memory, *opts]
    if flags:
        args += ["--entrypoint", "/oominit", image, *flags, "--", *cmd]
    else:
        args += [image, *cmd]
    docker(*args)
    return cname


def wait(cname, timeout=90):
    p = docker("wait", cname, timeout=timeout)
    return int(p.stdout.strip())


def run(name, image, cmd, **kw):
    cname = start(name, image, cmd, **kw)
    wait(cname)
    return Outcome(cname)


# ---------------------------------------------------------------------------------------------
# Checks

def expect(cond, what):
    if not cond:
        raise Failure(what)


def validate(o, starts=1):
    """Every record valid against the schema; one exit record per start, each the last line
    oominit wrote in that start."""
    expect(o.records, "no record on stderr")
    for r in o.records:
        errors = sorted(VALIDATOR.iter_errors(r), key=lambda e: e.path)
        expect(not errors, f"record fails the schema: {errors[0].message if errors else ''} in {json.dumps(r)[:300]}")
    expect(len(o.exits) == starts, f"{len(o.exits)} exit records for {starts} start(s)")
    expect(o.records[-1]["event"] == "exit", "the last record is not the exit record")


def check_counts(o, rec):
    """kills against the kernel's counter; unnamed consistent with the victims named."""
    expect(o.kernel_kills is not None, "the command printed no oom_kill line (no memory.oom_control read)")
    expect(rec["oom"]["kills"] == o.kernel_kills,
           f"record kills {rec['oom']['kills']}, the cgroup's oom_kill {o.kernel_kills}")
    certain = [v for v in rec["oom"]["victims"] if not v["uncertain"]]
    if "victims_omitted" not in rec["oom"]:
        expect(rec["oom"]["unnamed"] == rec["oom"]["kills"] - len(certain),
               f"unnamed {rec['oom']['unnamed']} but kills {rec['oom']['kills']} and {len(certain)} named with certainty")


def check_leaf(o, comm, strict=False, exit_code=None, named=False):
    """A leaf OOM: Docker's OOMKilled true with ExitCode 0 (137 with --strict). With `named`, the
    victim must be named with certainty: only where oominit can watch the cgroup (a writable
    cgroupfs); behind Docker's read-only one it re-reads counters only at reaps, never sees a
    parent-reaped victim alive, and counts it in `unnamed` (README, "a victim never seen before
    it died goes unnamed")."""
    validate(o)
    rec = o.rec
    code = 137 if strict else 0
    expect(o.oomkilled is True, f"docker says OOMKilled={o.oomkilled}")
    expect(o.exit == code, f"docker says ExitCode={o.exit}, expected {code}")
    expect(rec["verdict"] == "leaf_oom", f"verdict {rec['verdict']}")
    expect(rec["exit_code"] == o.exit, f"record exit_code {rec['exit_code']}, docker {o.exit}")
    expect(rec["main"]["exit_code"] == (0 if exit_code is None else exit_code), f"main.exit_code {rec['main']['exit_code']}")
    expect(rec["strict_applied"] == strict, f"strict_applied {rec['strict_applied']}")
    expect(rec["oom"]["kills"] >= 1 and not rec["oom"]["main_killed"], f"kills {rec['oom']['kills']} main_killed {rec['oom']['main_killed']}")
    expect(rec["oom"]["scope"] == "limit", f"scope {rec['oom']['scope']}")
    check_counts(o, rec)
    if named:
        expect([v for v in rec["oom"]["victims"] if not v["uncertain"]], "no victim named with certainty")
    for v in rec["oom"]["victims"]:
        expect(v["comm"] is not None and v["comm"].startswith(comm) and not v["main"], f"victim {json.dumps(v)}")
    expect(rec["memory"]["limit_bytes"] == 32 * MIB or comm != "memhog", f"limit_bytes {rec['memory']['limit_bytes']}")
    expect(o.events, "no live oom event")
    check_breakdown(rec, o)
    summary = [l for l in o.stderr.splitlines() if l.startswith("oominit: ") and "OOM-killed" in l]
    expect(len(summary) == 1 and f"-> exit {rec['exit_code']}" in summary[0], f"the summary line: {summary}")
    return rec


def check_breakdown(rec, o):
    """What filled it: read at the limit where oominit is woken (memhog's anonymous memory the
    bulk of it), after the kill where it is not (Docker's read-only v1 cgroupfs)."""
    b, read = rec["oom"]["breakdown"], rec["oom"]["breakdown_read"]
    expect(b is not None, "no breakdown in the exit record")
    watch = rec["memory"]["watch"]
    expect(read in (("after_kill",) if watch in ("reap", "exits") else ("before_kill", "after_kill")), f"breakdown_read {read} with watch {watch}")
    if read == "before_kill" and rec["memory"]["limit_bytes"] == 32 * MIB:
        expect(b["anon_bytes"] >= 16 * MIB, f"breakdown {b}: the hog's anonymous memory missing")
    expect(o.events[-1]["breakdown"] is not None, "no breakdown in the live event")


LEAF_CMD = ["/bin/sh", "-c", f"/memhog 128; echo worker died, service carries on; {OOM_CONTROL}; exit 0"]


def names(rec):
    o = rec["oom"]
    return f"victims {sorted({v['comm'] for v in o['victims']})} unnamed {o['unnamed']}"


def s_leaf(img):
    o = run("leaf", img["scratch"], LEAF_CMD)
    rec = check_leaf(o, "memhog")
    return o, f"OOMKilled true ExitCode 0; leaf_oom kills {rec['oom']['kills']} = oom_kill; watch {rec['memory']['watch']}; {names(rec)}"


def s_strict(img):
    o = run("strict", img["scratch"], LEAF_CMD, flags=["--strict"])
    rec = check_leaf(o, "memhog", strict=True)
    return o, f"OOMKilled true ExitCode 137; record exit_code 137, main 0, kills {rec['oom']['kills']}"


def s_strict_env(img):
    o = run("strict_env", img["scratch"], LEAF_CMD, opts=["-e", "OOMINIT_STRICT=1"])
    check_leaf(o, "memhog", strict=True)
    return o, "OOMINIT_STRICT=1 in the environment: ExitCode 137"


def s_main_oom(img):
    o = run("main_oom", img["scratch"], ["/memhog", "128"])
    validate(o)
    rec = o.rec
    expect(o.oomkilled is True and o.exit == 137, f"docker says OOMKilled={o.oomkilled} ExitCode={o.exit}")
    expect(rec["verdict"] == "main_oom" and rec["exit_code"] == 137, f"verdict {rec['verdict']} exit_code {rec['exit_code']}")
    expect(rec["main"]["signal"] == 9 and rec["oom"]["main_killed"], f"main {rec['main']} main_killed {rec['oom']['main_killed']}")
    mains = [v for v in rec["oom"]["victims"] if v["main"]]
    # Behind the read-only cgroupfs nothing wakes oominit before the kill: its comm is read from
    # its zombie before oominit reaps it; its argv is the one oominit started it with.
    expect(len(mains) == 1 and mains[0]["comm"] == "memhog" and mains[0]["argv"] == ["/memhog", "128"]
           and not mains[0]["uncertain"], f"victims {rec['oom']['victims']}")
    expect(rec["oom"]["kills"] >= 1, f"kills {rec['oom']['kills']}")
    return o, f"OOMKilled true ExitCode 137; main_oom, memhog named main, kills {rec['oom']['kills']}"


def s_stop(img):
    cmd = ["/bin/sh", "-c", "trap 'echo got TERM; exit 42' TERM; echo ready; while :; do sleep 1 & wait $!; done"]
    cname = start("stop", img["scratch"], cmd)
    deadline = time.time() + 20
    while "ready" not in docker("logs", cname).stdout:
        expect(time.time() < deadline, "the application never printed ready")
        time.sleep(0.1)
    t0 = time.time()
    docker("stop", "-t", "10", cname)
    took = time.time() - t0
    o = Outcome(cname)
    validate(o)
    rec = o.rec
    expect(took < 5, f"docker stop took {took:.1f}s: SIGTERM did not end the application (SIGKILL after 10s)")
    expect("got TERM" in o.stdout, "the application never saw SIGTERM")
    expect(o.exit == 42 and not o.oomkilled, f"docker says ExitCode={o.exit} OOMKilled={o.oomkilled}")
    expect(rec["verdict"] == "failed" and rec["exit_code"] == 42 and rec["main"]["exit_code"] == 42,
           f"verdict {rec['verdict']} exit_code {rec['exit_code']} main {rec['main']['exit_code']}")
    expect(rec["oom"]["kills"] == 0, f"kills {rec['oom']['kills']}")
    return o, f"stopped in {took:.2f}s; the app saw SIGTERM and exited 42; record failed/42 in docker logs"


def s_stop_after_a_kill(img):
    """docker stop of an application that ignores SIGTERM, after one of its workers was killed:
    oominit is SIGKILLed with no exit record, so the kill must already be in a live event."""
    cmd = ["/bin/sh", "-c", f"trap '' TERM; /memhog 128; {OOM_CONTROL}; echo ready; while :; do sleep 1; done"]
    cname = start("stop_after_a_kill", img["scratch"], cmd)
    deadline = time.time() + 20
    while "ready" not in docker("logs", cname).stdout:
        expect(time.time() < deadline, "the application never printed ready")
        time.sleep(0.1)
    docker("stop", "-t", "1", cname)
    o = Outcome(cname)
    expect(o.exit == 137 and not o.exits, f"docker says ExitCode={o.exit}; {len(o.exits)} exit records")
    for r in o.records:
        errors = sorted(VALIDATOR.iter_errors(r), key=lambda e: e.path)
        expect(not errors, f"record fails the schema: {errors[0].message if errors else ''}")
    kills = o.events[-1]["kills"] if o.events else None
    expect(o.kernel_kills == 1 and kills == 1,
           f"live events {len(o.events)}, last kills {kills}; the kernel's oom_kill {o.kernel_kills}")
    return o, f"SIGKILLed after 1 s, no exit record; live event kills 1 = oom_kill, watch {o.events[-1]['memory']['watch']}"


def s_read_only(img):
    o = run("read_only", img["scratch"], LEAF_CMD, opts=["--read-only"])
    rec = check_leaf(o, "memhog")
    return o, f"--read-only: leaf_oom kills {rec['oom']['kills']}"


def s_user(img):
    cmd = ["/bin/sh", "-c", f"echo uid $(id -u); /memhog 128; {OOM_CONTROL}; exit 0"]
    o = run("user", img["scratch"], cmd, opts=["--user", "1000:1000"])
    expect("uid 1000" in o.stdout, "the command did not run as uid 1000")
    rec = check_leaf(o, "memhog")
    return o, f"--user 1000: leaf_oom kills {rec['oom']['kills']}, {names(rec)}"


def s_init(img):
    cmd = ["/bin/sh", "-c", f"echo pid1 $(cat /proc/1/comm); /memhog 128; {OOM_CONTROL}; exit 0"]
    o = run("init", img["scratch"], cmd, opts=["--init"])
    expect(re.search(r"^pid1 (docker-init|tini)$", o.stdout, re.M), "PID 1 is not docker-init")
    rec = check_leaf(o, "memhog")
    return o, f"docker-init is PID 1, oominit under it: leaf_oom kills {rec['oom']['kills']}"


def s_termination_log(img):
    fd, path = tempfile.mkstemp(prefix="oominit-termlog-")
    os.close(fd)
    os.chmod(path, 0o666)
    try:
        o = run("termination_log", img["scratch"], LEAF_CMD, opts=["-v", f"{path}:/dev/termination-log"])
        rec = check_leaf(o, "memhog")
        data = open(path, "rb").read()
    finally:
        os.remove(path)
    expect(data, "the termination log is empty")
    expect(len(data) < 1024, f"the termination log has {len(data)} bytes")
    text = data.decode().strip()
    expect("\n" not in text, "the termination log holds more than one line")
    t = json.loads(text)
    errors = list(VALIDATOR.iter_errors(t))
    expect(not errors, f"the termination log's record fails the schema: {errors[0].message if errors else ''}")
    expect(t["event"] == "exit" and t["verdict"] == rec["verdict"] and t["exit_code"] == rec["exit_code"]
           and t["oom"]["kills"] == rec["oom"]["kills"], f"termination log differs from the record: {text}")
    return o, f"{len(data)} bytes, leaf_oom kills {t['oom']['kills']}, valid"


def s_cgroup_rw(img):
    o = run("cgroup_rw", img["scratch"], LEAF_CMD, opts=["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"])
    rec = check_leaf(o, "memhog", named=True)
    expect(o.cgfile and o.id in o.cgfile, f"the command read {o.cgfile}, not the container's cgroup")
    expect(o.id in (rec["memory"].get("path") or ""), f"oominit's cgroup path {rec['memory'].get('path')}")
    expect(rec["memory"]["watch"] == "eventfd", f"watch {rec['memory']['watch']} on a writable v1 cgroupfs")
    return o, f"path {rec['memory']['path'][:30]}..., watch eventfd, leaf_oom kills {rec['oom']['kills']}; {names(rec)}"


def leaf_named(o, rec, sources):
    """The worker the command printed as `leaf PID` is the one victim, named for certain."""
    m = re.search(r"^leaf (\d+)$", o.stdout, re.M)
    expect(m, "the command printed no leaf pid")
    v = rec["oom"]["victims"]
    expect(len(v) == 1 and v[0]["pid"] == int(m.group(1)) and v[0]["comm"] == "memhog" and not v[0]["uncertain"]
           and v[0]["source"] in sources, f"leaf {m.group(1)}, victims {json.dumps(v)}")
    expect(rec["oom"]["unnamed"] == 0, f"unnamed {rec['oom']['unnamed']}")


def uid_worker(img, name, then, how):
    """memhog as a worker under uid 1000 (as a server's, after setpriv/gosu/su), its shell doing
    `then` after starting it, the cgroupfs writable: Docker's root has no CAP_SYS_PTRACE, so the
    worker's stat hides its exit code; its status's ShdPnd still says SIGKILL."""
    cmd = ["/bin/sh", "-c", f"/asuser 1000 sh -c '/memhog 128 & echo leaf $!; {then}'; {OOM_CONTROL}; exit 0"]
    o = run(name, img["scratch"], cmd, opts=["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"])
    rec = check_leaf(o, "memhog", named=True)
    leaf_named(o, rec, ("proc", "pidfd"))
    return o, f"uid 1000, {how}: {names(rec)}, source {rec['oom']['victims'][0]['source']}"


def s_uid_rw(img):
    """Its parent (sleep, after the shell's exec) holds its zombie."""
    return uid_worker(img, "uid_rw", "exec sleep 1", "its zombie held")


def s_uid_rw_reaped(img):
    """Reaped at once by its own parent (a shell under the same uid)."""
    return uid_worker(img, "uid_rw_reaped", "wait", "reaped by its shell")


def s_orphan(img):
    """A double-forked worker, adopted by oominit (read-only cgroupfs: no notification): named
    from its zombie's stat, at the wake its exit gives where it was followed from a listing,
    else before oominit reaps it."""
    cmd = ["/bin/sh", "-c", f"(sh -c 'echo leaf $$; exec /memhog 128' &); sleep 2; {OOM_CONTROL}; exit 0"]
    o = run("orphan", img["scratch"], cmd)
    rec = check_leaf(o, "memhog")
    leaf_named(o, rec, ("reaped", "proc", "pidfd"))
    return o, f"watch {rec['memory']['watch']}: {names(rec)}, source {rec['oom']['victims'][0]['source']}"


def leaf_exit(img, name, leaf, opts=()):
    """--on-leaf-oom exit: a worker is OOM-killed while main would sleep on for 300 s. oominit
    must SIGTERM main at once (its trap prints the kernel's counters and exits 0), the container
    must exit 137 well within the grace (10 s by default), and the record say leaf_oom, stopped,
    main's own exit 0."""
    script = (f"stop() {{ echo main got TERM; {OOM_CONTROL}; exit 0; }}; trap stop TERM; {leaf}; "
              "echo main sleeps on; sleep 300 & wait $!; echo main woke")
    t0 = time.time()
    o = run(name, img["scratch"], ["/bin/sh", "-c", script], flags=["--on-leaf-oom", "exit"], opts=opts)
    took = time.time() - t0
    validate(o)
    rec = o.rec
    expect("main got TERM" in o.stdout and "main woke" not in o.stdout, "main never saw SIGTERM")
    expect(o.oomkilled is True and o.exit == 137, f"docker says OOMKilled={o.oomkilled} ExitCode={o.exit}")
    expect(rec["verdict"] == "leaf_oom" and rec["exit_code"] == 137 and rec["main"]["exit_code"] == 0,
           f"verdict {rec['verdict']} exit_code {rec['exit_code']} main {rec['main']['exit_code']}")
    expect(rec.get("stopped") == {"reason": "leaf_oom", "signal": "SIGTERM", "grace_ms": 10000}, f"stopped {rec.get('stopped')}")
    expect(not rec["strict_applied"] and not rec["oom"]["main_killed"], f"strict_applied {rec['strict_applied']}")
    expect(rec["duration_ms"] < 5000 and took < 10, f"the container took {took:.1f}s, oominit {rec['duration_ms']} ms")
    check_counts(o, rec)
    expect(o.events, "no live oom event")
    leaf_named(o, rec, ("proc", "pidfd", "reaped"))
    summary = [l for l in o.stderr.splitlines() if l.startswith("oominit: ") and "OOM-killed" in l]
    expect(len(summary) == 1 and "oominit stopped main" in summary[0], f"the summary line: {summary}")
    return o, (f"main got SIGTERM, ExitCode 137 after {rec['duration_ms']} ms (container {took:.1f}s), main 0; "
               f"watch {rec['memory']['watch']}, {names(rec)}")


def s_leaf_exit_rw(img):
    """The cgroup watched (writable cgroupfs): the kill is seen as it happens."""
    return leaf_exit(img, "leaf_exit_rw", "sh -c 'echo leaf $$; exec /memhog 128'",
                     opts=["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"])


def s_leaf_exit_orphan(img):
    """Behind Docker's read-only cgroupfs (watch reap) a kill shows at oominit's own reaps: an
    orphaned worker, reaped by oominit."""
    return leaf_exit(img, "leaf_exit_orphan", "(sh -c 'echo leaf $$; exec /memhog 128' &); sleep 2")


def s_pre_oom_stop_rw(img):
    """--pre-oom-stop (here from OOMINIT_PRE_OOM_STOP): a heap growing 1 MiB every 40 ms; at 0.9
    of the limit in memory the kernel cannot reclaim, main gets SIGTERM once, stops its worker and
    exits 0 before any kill: Docker says OOMKilled false, ExitCode 0, the record clean with
    pre_oom_stop. The cgroupfs writable: behind Docker's read-only v1 mount oominit gets no wake
    near the limit (no registration), and nothing is sent."""
    script = (f"stop() {{ echo main got TERM; kill $hog; wait $hog; {OOM_CONTROL}; exit 0; }}; trap stop TERM; "
              f"/memhog 64 0 0 40 & hog=$!; wait $hog; echo main woke; {OOM_CONTROL}")
    o = run("pre_oom_stop_rw", img["scratch"], ["/bin/sh", "-c", script],
            opts=["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-e", "OOMINIT_PRE_OOM_STOP=on"])
    validate(o)
    rec = o.rec
    expect("main got TERM" in o.stdout and "main woke" not in o.stdout, "main never saw SIGTERM before the kill")
    expect(o.oomkilled is False and o.exit == 0, f"docker says OOMKilled={o.oomkilled} ExitCode={o.exit}")
    expect(rec["verdict"] == "clean" and rec["exit_code"] == 0, f"verdict {rec['verdict']} exit_code {rec['exit_code']}")
    check_counts(o, rec)
    stop = rec.get("pre_oom_stop") or {}
    expect(stop.get("signal") == "SIGTERM" and stop.get("kills_after") == 0, f"pre_oom_stop {stop}")
    expect(stop["unreclaimable_bytes"] >= stop["threshold_bytes"] == (32 << 20) * 9 // 10, f"pre_oom_stop {stop}")
    live = [r for r in o.records if r["event"] == "pre_oom_stop"]
    expect(len(live) == 1 and live[0]["time"] == stop["at"], f"live pre_oom_stop records: {live}")
    expect(not o.events, "an oom event")
    return o, (f"SIGTERM at {stop['unreclaimable_bytes'] >> 10} KiB unreclaimable of {stop['limit_bytes'] >> 20} MiB, "
               f"main exit 0, ExitCode 0, OOMKilled false, oom_kill {o.kernel_kills}; watch {rec['memory']['watch']}")


def s_restart(img):
    cname = start("restart", img["scratch"], ["/memhog", "128"], opts=["--restart", "on-failure:2"])
    deadline = time.time() + 90
    while True:
        st = json.loads(docker("inspect", cname).stdout)[0]
        if not st["State"]["Running"] and not st["State"]["Restarting"] and st["RestartCount"] == 2:
            break
        expect(time.time() < deadline, f"not done restarting: {st['State']['Status']} RestartCount {st['RestartCount']}")
        time.sleep(0.2)
    o = Outcome(cname)
    validate(o, starts=3)
    expect(o.oomkilled and o.exit == 137, f"docker says OOMKilled={o.oomkilled} ExitCode={o.exit}")
    for r in o.exits:
        expect(r["verdict"] == "main_oom" and r["exit_code"] == 137, f"a start's record: {r['verdict']} {r['exit_code']}")
    return o, f"3 starts (RestartCount 2), 3 exit records, each main_oom 137"


PY_POOL = r'''
import multiprocessing as mp, re
def hog(mib):
    b = bytearray(mib << 20)
    for i in range(0, len(b), 4096):
        b[i] = 1
    return mib
if __name__ == "__main__":
    with mp.Pool(2) as pool:
        r = pool.map_async(hog, [1, 200])
        try:
            print("result", r.get(timeout=4))
        except mp.TimeoutError:
            print("the pool lost a task")
    p = [l.split(":")[2] for l in open("/proc/self/cgroup").read().splitlines() if ":memory:" in l][0]
    import os
    f = "/sys/fs/cgroup/memory" + p + "/memory.oom_control"
    if not os.path.exists(f):
        f = "/sys/fs/cgroup/memory/memory.oom_control"
    print("cgfile", f)
    print(open(f).read(), end="")
'''


def s_debian_stress_ng(img, rw=False):
    """stress-ng --vm: its workers are killed and restarted, stress-ng reaps them and exits 0.
    With the host's cgroupfs writable (`rw`), oominit watches the cgroup and must name victims."""
    cmd = ["/bin/sh", "-c", f"stress-ng --vm 2 --vm-bytes 64M --timeout 4s; rc=$?; echo stress-ng exited $rc; {OOM_CONTROL}; exit $rc"]
    opts = ["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"] if rw else []
    o = run("stress_ng_rw" if rw else "stress_ng", img["debian"], cmd, memory="48m", opts=opts)
    m = re.search(r"^stress-ng exited (\d+)$", o.stdout, re.M)
    expect(m, "stress-ng did not finish")
    rc = int(m.group(1))
    validate(o)
    rec = o.rec
    expect(o.oomkilled is True, f"docker says OOMKilled={o.oomkilled}")
    expect(rec["exit_code"] == o.exit == rc == rec["main"]["exit_code"],
           f"exit codes: stress-ng {rc}, main {rec['main']['exit_code']}, record {rec['exit_code']}, docker {o.exit}")
    expect(rec["verdict"] == "leaf_oom", f"verdict {rec['verdict']}")
    check_counts(o, rec)
    expect(rec["oom"]["kills"] >= 1, f"kills {rec['oom']['kills']}")
    for v in rec["oom"]["victims"]:
        expect(v["comm"] and v["comm"].startswith("stress-ng") and not v["main"], f"victim {json.dumps(v)}")
    named = len([v for v in rec["oom"]["victims"] if not v["uncertain"]]) + rec["oom"].get("victims_omitted", 0)
    if rw:
        expect(rec["memory"]["watch"] == "eventfd", f"watch {rec['memory']['watch']}")
        expect(named >= 1, "no stress-ng worker named with certainty")
    return o, (f"stress-ng exit {rc}; OOMKilled true; leaf_oom kills {rec['oom']['kills']} = oom_kill, "
               f"named {named} (comm {sorted({v['comm'] for v in rec['oom']['victims']})}), unnamed {rec['oom']['unnamed']}")


def s_debian_stress_ng_rw(img):
    return s_debian_stress_ng(img, rw=True)


def s_debian_python_pool(img, rw=False):
    opts = ["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"] if rw else []
    o = run("python_pool_rw" if rw else "python_pool", img["debian"], ["python3", "-c", PY_POOL], memory="48m", opts=opts)
    expect("the pool lost a task" in o.stdout, "the pool did not lose its task (no OOM kill of a worker?)")
    rec = check_leaf(o, "python3", named=rw)
    return o, f"pool worker killed, main exit 0; leaf_oom kills {rec['oom']['kills']} = oom_kill, {names(rec)}"


SCRATCH = [s_leaf, s_strict, s_strict_env, s_main_oom, s_stop, s_stop_after_a_kill, s_read_only, s_user, s_init,
           s_termination_log, s_cgroup_rw, s_uid_rw, s_uid_rw_reaped, s_orphan, s_restart, s_leaf_exit_rw,
           s_leaf_exit_orphan, s_pre_oom_stop_rw]
def s_debian_python_pool_rw(img):
    return s_debian_python_pool(img, rw=True)


DEBIAN = [s_debian_stress_ng, s_debian_stress_ng_rw, s_debian_python_pool, s_debian_python_pool_rw]


def cleanup():
    ids = docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).stdout.split()
    if ids:
        docker("rm", "-f", *ids, check=False)
    for tag in (f"oominit-test/scratch:{RUN}", f"oominit-test/debian:{RUN}"):
        docker("rmi", "-f", tag, check=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="", help="run only the scenarios whose name contains this")
    args = ap.parse_args()
    scenarios = [s for s in SCRATCH + DEBIAN if args.k in s.__name__[2:]]
    passed = failed = 0
    t0 = time.time()
    try:
        try:
            oominit = build()
            img = {"scratch": scratch_image(oominit)}
        except (Failure, subprocess.CalledProcessError) as e:
            print(f"FAIL setup {e} {getattr(e, 'stderr', '') or ''}".rstrip(), flush=True)
            print("0 passed, 1 failed")
            sys.exit(1)
        print(f"# scratch image {img['scratch']} built in {time.time() - t0:.1f}s", flush=True)
        if any(s in DEBIAN for s in scenarios):
            t1 = time.time()
            try:
                base, how = debian_base()
                img["debian"] = debian_image(base, oominit)
                print(f"# debian image {img['debian']} from {base} ({how}) in {time.time() - t1:.1f}s", flush=True)
            except Failure as e:
                print(f"# the Debian image could not be made: {e}", flush=True)
        for s in scenarios:
            name = s.__name__[2:]
            o = None
            try:
                if s in DEBIAN and "debian" not in img:
                    raise Failure("no Debian image")
                ts = time.time()
                o, detail = s(img)
                print(f"ok {name} {detail} ({time.time() - ts:.1f}s)", flush=True)
                passed += 1
            except Exception as e:  # any error in a scenario is its failure, never a crash of the suite
                print(f"FAIL {name} {e}", flush=True)
                cname = f"oominit-test-{name}-{RUN}"
                try:
                    o = o or Outcome(cname)
                    print(o.dump(), end="", flush=True)
                except Exception:
                    pass
                failed += 1
    finally:
        cleanup()
    print(f"# {time.time() - t0:.0f}s")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
