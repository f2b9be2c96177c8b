#!/usr/bin/env python3
"""How well oominit names the OOM-killed processes of real programs, in real Docker containers
(issue 12, "Measured on real programs"). `bench/victims --real [--runs N] [-k PROGRAM]`.

Programs, from Debian's packages (bookworm), each with oominit as the ENTRYPOINT:

- stress_ng: `stress-ng --vm 2 --vm-bytes 64M` in 48 MiB. stress-ng restarts its killed workers:
  dozens of kills a run, each worker reaped by stress-ng itself.
- python_pool: a `multiprocessing.Pool` whose worker allocates 200 MiB in 48 MiB: killed and reaped
  by the pool, the task lost.
- postgres: PostgreSQL (the postmaster started by a root shell through `setpriv` as the `postgres`
  user, as an official image's gosu does) in 128 MiB; a client's `SELECT repeat('x', 300 MiB)`: its
  backend, uid postgres, is killed, reaped by the postmaster, which then recovers.

Platforms on this host (cgroup v1): `ro`, Docker's default read-only cgroupfs; `rw`,
`-v /sys/fs/cgroup:/sys/fs/cgroup:rw` (oominit can register its eventfd).

The truth is the host's kernel log: every `Killed process HOSTPID (COMM)` line read from /dev/kmsg
while the container runs, whose HOSTPID the harness saw in the container's memory cgroup, and whose
`oom-kill:...task_memcg=` line, when the kernel printed one (it is rate-limited: 10 per 5 s), names
the container's cgroup. Host pids are mapped to the container's PID namespace by polling the
container's `cgroup.procs` from the host about every millisecond and reading each new process's
`NSpid` from /proc/HOSTPID/status. The number of kills attributed so must equal the container's own
`oom_kill` counter (printed by the command after the workload); a kill the poller never saw, or a
mismatch, makes the run's truth unknown, counted apart, never guessed. The programs' own logs
(stress-ng's, the pool worker's pid, the postmaster's "server process (PID N) was terminated by
signal 9") are checked against it.

A run is exactly named when every killed process is named with uncertain:false, right pid and
comm, by the exit record or a live event, no other victim is listed, and `oom.unnamed` is 0 (where
a record leaves victims out beyond its cap, the named ones must be right and the counts add up).
It is never wrongly named when no victim named with uncertain:false is a process the kernel did not
kill. Every run also checks `oom.unnamed` against kills minus the certain names, `oom.kills`
against the kernel's counter, and every record against the schema.

Platform `v2` (`--platform v2 [--kernel 6.1|6.12|6.18]`): the same programs on cgroup v2, in the VM
of tests/vm (bench/victims_real_vm.py says how; the truth is the VM's kernel log, attributed the
same way, the births from the tracer instead of a poller). Not part of any test suite: a measure.
Exits 1 only when runs could not be made at all.
"""
import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "docker"))
import docker as dk  # noqa: E402  (the Docker suite's build, debootstrap and image machinery)
sys.path.insert(0, os.path.join(ROOT, "tests", "vm"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vm  # noqa: E402  (the VM suite's kernels)

RUN = f"{os.getpid()}"
LABEL = f"oominit-bench-real={RUN}"
IMAGE = f"oominit-bench/real:{RUN}"
PACKAGES = dk.PACKAGES + ["postgresql"]
CGROOT = "/sys/fs/cgroup/memory"
POLL_S = 0.001  # --poll-ms

KERNELS = tuple(sorted(vm.KERNELS, key=vm.natural))  # the VM's, for platform v2

PLATFORMS = {
    "ro": ("Docker's read-only cgroupfs", []),
    "rw": ("cgroupfs mounted rw", ["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw"]),
}

PY_POOL = r'''
import multiprocessing as mp, os
def hog(mib):
    print(f"worker {os.getpid()} hogs {mib} MiB", flush=True)
    b = bytearray(mib << 20)
    for i in range(0, len(b), 4096):
        b[i] = 1
    return mib
if __name__ == "__main__":
    with mp.Pool(2) as pool:
        r = pool.map_async(hog, [1, 200])
        try:
            print("result", r.get(timeout=3), flush=True)
        except mp.TimeoutError:
            print("the pool lost a task", flush=True)
'''

PG_SCRIPT = r'''
PG=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
setpriv --reuid=postgres --regid=postgres --init-groups "$PG/postgres" -D /pgdata -c shared_buffers=16MB \
  -c listen_addresses= -c unix_socket_directories=/tmp -c max_connections=8 -c log_line_prefix='pg: ' 2>&1 &
pm=$!
ready() { i=0; until "$PG/pg_isready" -q -h /tmp; do i=$((i+1)); [ $i -lt 300 ] || return 1; sleep 0.05; done; }
ready || echo "postgres never became ready"
echo "postmaster $pm uid $(awk '/^Uid:/ {print $2}' /proc/$pm/status)"
"$PG/psql" -X -q -h /tmp -U postgres -c "SELECT length(repeat('x', 300 * 1024 * 1024))" 2>&1
echo "psql exited $?"
ready || echo "postgres did not recover"
kill -INT $pm; wait $pm; echo "postmaster exited $?"
'''


def program_body(name):
    """The program, as shell lines (the VM's runs, bench/victims_real_vm.py, run them too)."""
    if name == "stress_ng":
        return "stress-ng --vm 2 --vm-bytes 64M --timeout 3s --verbose 2>&1; echo stress-ng exited $?"
    if name == "python_pool":
        return f"python3 -c '{PY_POOL}'; echo python exited $?"
    return PG_SCRIPT


def program_cmd(name):
    """The container's command: the program, then the kernel's counters of its own cgroup."""
    return ["/bin/sh", "-c", f"{program_body(name)}\n{dk.OOM_CONTROL}; exit 0"]


PROGRAMS = {  # name: (memory limit, what the program's own log says was killed)
    "stress_ng": ("48m", None),
    "python_pool": ("48m", None),
    "postgres": ("128m", None),
}


def program_log(name, stdout):
    """What the program itself says: (the container pids it says died of SIGKILL, how many, a
    fact to tally). stress-ng names no victim (its log's pids are the stressors' parents)."""
    if name == "python_pool":
        hog = {int(m) for m in re.findall(r"^worker (\d+) hogs 200 MiB$", stdout, re.M)}
        lost = "the pool lost a task" in stdout
        return hog, len(hog), f"the pool lost its task: {lost}"
    if name == "postgres":
        pids = {int(m) for m in re.findall(r"server process \(PID (\d+)\) was terminated by signal 9", stdout)}
        uid = re.search(r"^postmaster \d+ uid (\d+)$", stdout, re.M)
        rec = "all server processes terminated; reinitializing" in stdout
        return pids, len(pids), f"postmaster uid {uid.group(1) if uid else '?'}, crash recovery: {rec}"
    # stress-ng --verbose: "vm: child died: signal 9 'SIGKILL' (instance N)" at each of its reaps
    # (its "OOM restarts: N" summary is not printed by every instance).
    n = len(re.findall(r"vm: child died: signal 9 ", stdout))
    done = "successful run completed" in stdout
    return None, n, f"stress-ng completed: {done}"


# ---------------------------------------------------------------------------------------------
# The kernel log and the poller

KILLED = re.compile(r"(?P<why>[^:]*): Killed process (?P<pid>\d+) \((?P<comm>.*)\) total-vm")
OOMKILL = re.compile(r"oom-kill:constraint=(?P<constraint>\w+),.*?task_memcg=(?P<memcg>[^,]*),task=(?P<comm>.*),pid=(?P<pid>\d+),uid=(?P<uid>\d+)")


class Kmsg:
    """/dev/kmsg from now on, non-blocking; timestamps in µs of the kernel's log clock."""

    def __init__(self):
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)
        self.lines = []  # (ts_us, text)
        self.lost = 0

    def drain(self):
        while True:
            try:
                rec = os.read(self.fd, 8192)
            except BlockingIOError:
                return
            except BrokenPipeError:  # overwritten before we read it
                self.lost += 1
                continue
            head, _, text = rec.decode(errors="replace").partition(";")
            f = head.split(",")
            self.lines.append((int(f[2]), text.split("\n", 1)[0]))

    def close(self):
        os.close(self.fd)


def clock_offset(kmsg):
    """CLOCK_MONOTONIC minus the kernel log clock, in seconds, by a marker line."""
    tag = f"oominit-bench-real marker {RUN} {time.monotonic_ns()}"
    wfd = os.open("/dev/kmsg", os.O_WRONLY)
    t0 = time.monotonic()
    os.write(wfd, (tag + "\n").encode())  # a line without its newline waits in the kernel
    t1 = time.monotonic()
    os.close(wfd)
    for _ in range(100):
        kmsg.drain()
        for ts, text in kmsg.lines:
            if tag in text:
                kmsg.lines = [l for l in kmsg.lines if tag not in l[1]]
                return (t0 + t1) / 2 - ts / 1e6
        time.sleep(0.001)
    return None


class Poller:
    """The container's processes, seen from the host: host pid -> (container pid, name, first
    seen, last seen), from its cgroup.procs and /proc/PID/status, every POLL_S."""

    def __init__(self, cid):
        self.dir = f"{CGROOT}/docker/{cid}"
        self.seen = {}
        self.unreadable = set()  # in cgroup.procs, gone before its status could be read
        self.polls = 0
        self.gaps = []
        self.oom_kill = None
        self.appeared = False
        self.last = None

    def poll(self):
        now = time.monotonic()
        try:
            with open(f"{self.dir}/cgroup.procs") as f:
                pids = f.read().split()
        except OSError:
            return False
        self.appeared = True
        if self.last is not None:
            self.gaps.append(now - self.last)
        self.last = now
        self.polls += 1
        for p in pids:
            hp = int(p)
            s = self.seen.get(hp)
            if s:
                s[3] = now
                continue
            try:
                status = open(f"/proc/{hp}/status").read()
            except OSError:
                self.unreadable.add(hp)
                continue
            ns = re.search(r"^NSpid:\s+(.*)$", status, re.M).group(1).split()
            name = re.search(r"^Name:\s+(.*)$", status, re.M).group(1)
            self.seen[hp] = [int(ns[-1]), name, now, now]
        if self.polls % 20 == 0:
            try:
                m = re.search(r"^oom_kill (\d+)$", open(f"{self.dir}/memory.oom_control").read(), re.M)
                self.oom_kill = int(m.group(1))
            except (OSError, AttributeError):
                pass
        return True


# ---------------------------------------------------------------------------------------------
# One run

def build_image(oominit):
    """The bench's Debian image (its own key: python3, stress-ng, postgresql) with /oominit as the
    ENTRYPOINT and a PostgreSQL cluster made once (initdb as postgres in /pgdata)."""
    base, how = dk.debian_base(PACKAGES)
    setup = ("set -e; mkdir /pgdata; chown postgres:postgres /pgdata; PG=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1); "
             "setpriv --reuid=postgres --regid=postgres --init-groups $PG/initdb -D /pgdata -A trust --no-sync >/dev/null")
    cname = f"oominit-bench-real-build-{RUN}"
    dk.docker("create", "--name", cname, "--label", LABEL, "--memory", "512m", "--memory-swap", "512m",
              base, "/bin/sh", "-c", setup)
    try:
        dk.docker("cp", oominit, f"{cname}:/oominit")
        p = dk.docker("start", "-a", cname, check=False, timeout=300)
        if p.returncode != 0:
            raise dk.Failure(f"initdb in the image failed: {p.stdout[-1000:]}{p.stderr[-1000:]}")
        dk.docker("commit", "--change", 'ENTRYPOINT ["/oominit", "--"]', "--change", "CMD []", cname, IMAGE)
    finally:
        dk.docker("rm", "-f", cname, check=False)
    return base, how


def one_run(program, platform, i, kmsg):
    memory, _ = PROGRAMS[program]
    cname = f"oominit-bench-real-{program}-{platform}-{i}-{RUN}"
    opts = PLATFORMS[platform][1]
    cid = dk.docker("create", "--name", cname, "--label", LABEL, "--memory", memory, "--memory-swap", memory,
                    *opts, IMAGE, *program_cmd(program)).stdout.strip()
    try:
        offset = clock_offset(kmsg)
        kmsg.lines = []
        poller = Poller(cid)
        start = subprocess.Popen(["docker", "start", cid], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.monotonic()
        waiter = None
        while True:
            # The cgroup appears during `docker start`: poll from then on, `docker start` and
            # `docker wait` alike running beside the loop, never waited for in it.
            if not poller.poll() and poller.appeared and waiter is not None:
                break  # the cgroup is gone: the container has stopped
            kmsg.drain()
            if waiter is None and start.poll() is not None:
                if start.returncode != 0:
                    raise dk.Failure(f"docker start: {start.stderr.read().decode().strip()}")
                waiter = subprocess.Popen(["docker", "wait", cid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if waiter is not None and waiter.poll() is not None:
                break
            if not poller.appeared and time.monotonic() - t0 > 30:
                raise dk.Failure(f"{poller.dir} never appeared")
            if time.monotonic() - t0 > 120:
                dk.docker("kill", cid, check=False)
            time.sleep(POLL_S)
        waiter.wait(timeout=60)
        time.sleep(0.05)
        kmsg.drain()
        o = dk.Outcome(cname)
    finally:
        dk.docker("rm", "-f", cname, check=False)
    return judge(program, platform, i, cid, o, poller, list(kmsg.lines), kmsg.lost, offset)


def truth(cid, poller, lines, offset):
    """The kills the kernel logged for this container: {container pid: (comm, kill time)}, and
    why the truth is unknown (None when known)."""
    memcg = {}
    for ts, text in lines:
        m = OOMKILL.search(text)
        if m:
            memcg[int(m["pid"])] = m["memcg"]
    killed, unknown = {}, []
    ours = 0
    for ts, text in lines:
        m = KILLED.search(text)
        if not m:
            continue
        hp, comm = int(m["pid"]), m["comm"]
        cg = memcg.get(hp)
        if cg is not None and cid not in cg:
            continue  # another cgroup's kill (pid reuse on the host)
        if hp not in poller.seen:
            if cg is not None or hp in poller.unreadable:
                ours += 1
                unknown.append(f"host pid {hp} ({comm}) killed, never mapped to the container")
            continue  # not ours: the poller never saw it in the container's cgroup
        ours += 1
        ns, name, first, last = poller.seen[hp]
        t = ts / 1e6 + offset if offset is not None else None
        if ns in killed:
            unknown.append(f"container pid {ns} killed twice (host pids reused?)")
        killed[ns] = (comm, t, first, hp)
    return killed, ours, unknown


def judge(program, platform, i, cid, o, poller, lines, lost, offset):
    r = {"program": program, "platform": platform, "i": i, "notes": []}
    killed, ours, unknown = truth(cid, poller, lines, offset)
    m = re.search(r"^oom_kill (\d+)$", o.stdout, re.M)
    counter = int(m.group(1)) if m else poller.oom_kill
    if counter is None:
        unknown.append("no oom_kill counter read")
    elif ours != counter:
        unknown.append(f"kernel log gives {ours} kills of the container, its oom_kill counter {counter}")
    if lost:
        unknown.append(f"{lost} kernel log records overwritten before read")
    r["kills"] = counter if counter is not None else ours
    r["killed"] = killed
    r["unknown"] = unknown
    r["poll_gap_ms"] = 1000 * max(poller.gaps) if poller.gaps else None
    said, n_said, fact = program_log(program, o.stdout)
    r["program_log"] = fact
    if said is not None and not unknown and said != set(killed):
        r["notes"].append(f"the program's log says killed {sorted(said)}, the kernel {sorted(killed)}")
    elif said is None and counter is not None and n_said != counter:
        r["notes"].append(f"the program's log counts {n_said} OOM kills, the kernel {counter}")

    exits = [x for x in o.records if x["event"] == "exit"]
    events = [x for x in o.records if x["event"] == "oom"]
    bad = [x for x in o.records if list(dk.VALIDATOR.iter_errors(x))]
    if bad:
        r["notes"].append(f"{len(bad)} records fail the schema")
    r["exit_record"] = bool(exits)
    r["events"] = len(events)
    if not exits:
        r["notes"].append(f"no exit record (docker: OOMKilled {o.oomkilled} ExitCode {o.exit}); "
                          f"stderr tail {o.stderr.splitlines()[-3:]}")
    rec = exits[-1] if exits else None
    # Every victim any record names: the live events' (each names the victims of its own read)
    # and the exit record's (the first 8 and the last 8).
    named, uncertain, omitted = {}, {}, 0
    for x in events + exits:
        vs = x["victims"] if x["event"] == "oom" else x["oom"]["victims"]
        omitted = max(omitted, x.get("victims_omitted", 0)) if x["event"] == "oom" else omitted
        for v in vs:
            (uncertain if v["uncertain"] else named)[v["pid"]] = v
    if rec and rec["oom"].get("victims_omitted"):
        omitted = max(omitted, 1)
    uncertain = {p: v for p, v in uncertain.items() if p not in named}
    r["named"], r["uncertain_named"] = named, uncertain
    r["sources"] = collections.Counter(v["source"] + (" (uncertain)" if v["uncertain"] else "")
                                       for v in list(named.values()) + list(uncertain.values()))
    # Wrongly named: a certain victim the kernel did not kill. Decidable when the truth is known,
    # or when the named container pid was seen by the poller (its host pid's kill would be logged).
    wrong, undecided = [], []
    by_ns = collections.defaultdict(list)
    for hp, (ns, *_rest) in poller.seen.items():
        by_ns[ns].append(hp)
    for p, v in named.items():
        if p in killed:
            if v["comm"] != killed[p][0]:
                wrong.append(f"pid {p} named {v['comm']}, the kernel killed {killed[p][0]}")
        elif not unknown or by_ns.get(p):
            wrong.append(f"pid {p} ({v['comm']}, source {v['source']}) named, the kernel killed no such process")
        else:
            undecided.append(p)
    r["wrong"] = wrong
    r["wrong_decided"] = not undecided
    # Count checks.
    r["count_violations"] = []
    if rec:
        k, un = rec["oom"]["kills"], rec["oom"]["unnamed"]
        certain_listed = len([v for v in rec["oom"]["victims"] if not v["uncertain"]])
        om = rec["oom"].get("victims_omitted", 0)
        if not (k - certain_listed - om <= un <= k - certain_listed):
            r["count_violations"].append(f"unnamed {un}, kills {k}, certain listed {certain_listed}, omitted {om}")
        if counter is not None and k != counter:
            r["count_violations"].append(f"oom.kills {k}, the cgroup's oom_kill {counter}")
        r["watch"] = rec["memory"]["watch"]
        r["verdict"] = rec["verdict"]
        r["unnamed"] = un
    else:
        r["watch"], r["verdict"], r["unnamed"] = None, None, None
    # Exactly named (truth known only).
    if not unknown:
        right = all(p in killed and v["comm"] == killed[p][0] for p, v in named.items())
        complete = set(named) == set(killed) or (omitted and len(named) < len(killed) and r["unnamed"] == 0
                                                 and rec and rec["oom"]["kills"] == len(killed))
        r["exact"] = bool(rec and right and complete and not uncertain and r["unnamed"] == 0)
        # Each kill not named with certainty: why. Those neither named nor uncertain are oominit's
        # `unnamed` as far as its count goes; beyond it they were named but left out of every
        # record (a live event lists 8 of its read's victims).
        misses = []
        order = sorted(killed, key=lambda p: (killed[p][1] is None, killed[p][1] or 0, p))
        left = r["unnamed"] or 0
        for p in order:
            comm, t, first, hp = killed[p]
            if p in named and named[p]["comm"] == comm:
                continue
            age = f"{1000 * (t - first):.0f}" if t is not None else "?"
            nth = order.index(p) + 1
            if p in uncertain:
                misses.append(("uncertain " + uncertain[p]["source"], comm, age, nth))
            elif not rec:
                misses.append(("no exit record", comm, age, nth))
            elif left > 0:
                left -= 1
                misses.append(("unnamed", comm, age, nth))
            else:
                misses.append(("named but not listed (record cap)", comm, age, nth))
        r["misses"] = misses
    else:
        r["exact"] = None
        r["misses"] = []
    return r


# ---------------------------------------------------------------------------------------------
# Report

def describe(r):
    return (f"{r['platform']} {r['program']} run {r['i']}: kills {r['kills']}, named {len(r['named'])}, "
            f"uncertain {len(r['uncertain_named'])}, unnamed {r['unnamed']}, watch {r['watch']}, verdict {r['verdict']}")


def platforms_of(results):
    return list(dict.fromkeys(r["platform"] for r in results))


def report(results, runs_asked):
    print()
    print("# platform  program      exactly named  never wrongly named  truth unknown  kills  named (certain)  "
          "unnamed  count violations  no exit record")
    for platform in platforms_of(results):
        for program in PROGRAMS:
            rs = [r for r in results if r["platform"] == platform and r["program"] == program]
            if not rs:
                continue
            known = [r for r in rs if r["exact"] is not None]
            decided = [r for r in rs if r["wrong_decided"]]
            exact = sum(1 for r in known if r["exact"])
            right = sum(1 for r in decided if not r["wrong"])
            kills = sum(r["kills"] or 0 for r in rs)
            named = sum(len(r["named"]) for r in rs)
            unnamed = sum(r["unnamed"] or 0 for r in rs)
            viol = sum(1 for r in rs if r["count_violations"])
            noexit = sum(1 for r in rs if not r["exit_record"])
            print(f"{platform:9}  {program:11}  exactly named {exact}/{len(known)} runs  "
                  f"never wrongly named {right}/{len(decided)} runs  truth unknown {len(rs) - len(known)}/{len(rs)}  "
                  f"kills {kills}  named {named}  unnamed {unnamed}  count violations {viol}  no exit record {noexit}")
    print()
    for platform in platforms_of(results):
        for program in PROGRAMS:
            rs = [r for r in results if r["platform"] == platform and r["program"] == program]
            if not rs:
                continue
            src = collections.Counter()
            miss = collections.Counter()
            ages = collections.defaultdict(list)
            firsts = collections.Counter()
            for r in rs:
                src.update(r["sources"])
                for why, comm, age, nth in r["misses"]:
                    miss[f"{why} ({comm})"] += 1
                    firsts[f"{why} ({comm})"] += nth == 1
                    if age != "?":
                        ages[f"{why} ({comm})"].append(float(age))
            watch = collections.Counter(r["watch"] for r in rs)
            verdicts = collections.Counter(r["verdict"] for r in rs)
            gaps = [r["poll_gap_ms"] for r in rs if r["poll_gap_ms"] is not None]
            kages = [1000 * (t - first) for r in rs for (_c, t, first, _h) in r["killed"].values() if t is not None]
            seen = "born: the tracer's task_newtask" if platform.startswith("v2") else "first seen by the poller"
            line = f"# {platform} {program}: watch {dict(watch)}, verdicts {dict(verdicts)}; names by source {dict(src)}"
            if kages:
                line += (f"; victims' age at the kill ({seen}) median {statistics.median(kages):.0f} ms, "
                         f"min {min(kages):.0f} ms")
            if gaps:
                line += f"; poller's longest gap in a run: median {statistics.median(gaps):.1f} ms, max {max(gaps):.1f} ms"
            print(line)
            for k, n in miss.most_common():
                a = ages.get(k)
                span = f"; victim's age at the kill ({seen}) median {statistics.median(a):.0f} ms, range {min(a):.0f}-{max(a):.0f} ms" if a else ""
                print(f"#   missed: {k} x{n} (the run's first kill in {firsts[k]}){span}")
            facts = collections.Counter(r["program_log"] for r in rs)
            print(f"#   program's own log: {dict(facts)}")


def self_check():
    """The judgement on made-up runs, each of which must come out as written: exact; a process
    named that the kernel did not kill; a kill the poller never saw; `unnamed` that does not add
    up. Prints one line and exits 1 on the first that does not."""
    class O:
        def __init__(self, victims, unnamed, kills=1, stdout="oom_kill 1\n"):
            rec = {"event": "exit", "schema": 1, "verdict": "leaf_oom", "memory": {"watch": "eventfd"},
                   "oom": {"kills": kills, "victims": victims, "unnamed": unnamed}}
            self.records, self.stdout, self.stderr, self.oomkilled, self.exit = [rec], stdout, "", True, 0

    class P:
        def __init__(self, seen):
            self.seen, self.unreadable, self.gaps, self.oom_kill = seen, set(), [0.001], None

    def v(pid, comm, uncertain=False):
        return {"pid": pid, "comm": comm, "uncertain": uncertain, "source": "proc"}

    cid = "c0ffee"
    kill = [(5_000_000, "Memory cgroup out of memory: Killed process 4242 (hog) total-vm:1kB, anon-rss:1kB")]
    seen = {4242: [7, "hog", 1.0, 4.0], 4243: [8, "sh", 1.0, 5.0]}
    global dk
    real_validator = dk.VALIDATOR
    dk.VALIDATOR = type("V", (), {"iter_errors": staticmethod(lambda r: [])})
    try:
        cases = [
            ("exact", O([v(7, "hog")], 0), P(seen), kill, lambda r: r["exact"] and not r["wrong"] and not r["unknown"]),
            ("wrong pid", O([v(8, "sh")], 0), P(seen), kill, lambda r: r["exact"] is False and r["wrong"] and r["wrong_decided"]),
            ("wrong comm", O([v(7, "sh")], 0), P(seen), kill, lambda r: r["exact"] is False and r["wrong"]),
            ("uncertain", O([v(7, "hog", True)], 1), P(seen), kill, lambda r: r["exact"] is False and not r["wrong"]
             and r["misses"][0][0] == "uncertain proc"),
            ("left out of the record", O([], 0), P(seen), kill,
             lambda r: r["exact"] is False and r["misses"][0][0].startswith("named but not listed")),
            ("unnamed", O([], 1), P(seen), kill, lambda r: r["exact"] is False and r["misses"][0][0] == "unnamed"),
            ("poller missed it", O([v(7, "hog")], 0), P({4243: seen[4243]}), kill,
             lambda r: r["exact"] is None and r["unknown"]),
            ("counter mismatch", O([v(7, "hog")], 0, stdout="oom_kill 2\n"), P(seen), kill,
             lambda r: r["exact"] is None and r["unknown"]),
            ("unnamed miscounted", O([v(7, "hog")], 1), P(seen), kill, lambda r: r["count_violations"] and not r["exact"]),
            ("another cgroup's kill", O([], 0, kills=0, stdout="oom_kill 0\n"), P(seen),
             [(4_999_000, "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/other,"
                          "task_memcg=/other,task=hog,pid=4242,uid=0")] + kill,
             lambda r: r["exact"] and not r["killed"]),
        ]
        for name, o, poller, lines, ok in cases:
            r = judge("python_pool", "rw", 0, cid, o, poller, lines, 0, 0.0)
            if not ok(r):
                print(f"self-check FAILED: {name}: {r}")
                sys.exit(1)
    finally:
        dk.VALIDATOR = real_validator
    print(f"# self-check: the judgement is right on {len(cases)} made-up runs")


def print_run(r):
    flags = []
    if r["unknown"]:
        flags.append("truth unknown: " + "; ".join(r["unknown"][:3]))
    if r["exact"] is False:
        miss = collections.Counter(f"{w} {c}" for w, c, _a, _n in r["misses"])
        flags.append("not exact: " + (", ".join(f"{k} x{n}" for k, n in miss.most_common())
                                      or f"every kill named, but {len(r['uncertain_named'])} uncertain victims listed, unnamed {r['unnamed']}"))
    if r["wrong"]:
        flags.append("WRONGLY NAMED: " + "; ".join(r["wrong"]))
    if r["count_violations"]:
        flags.append("COUNT: " + "; ".join(r["count_violations"]))
    flags += r["notes"]
    print(f"{describe(r)}" + ("" if not flags else " | " + " | ".join(flags)), flush=True)


def docker_runs(oominit, programs, platforms, runs, results):
    kmsg = Kmsg()
    try:
        base, how = build_image(oominit)
        print(f"# Docker: image {IMAGE} from {base} ({how}); kernel {os.uname().release}", flush=True)
        for program in programs:
            for platform in platforms:
                for i in range(runs):
                    try:
                        r = one_run(program, platform, i, kmsg)
                    except (dk.Failure, subprocess.SubprocessError, OSError) as e:
                        print(f"! {platform} {program} run {i}: could not be made: {e}", flush=True)
                        continue
                    results.append(r)
                    print_run(r)
    finally:
        kmsg.close()
        ids = dk.docker("ps", "-aq", "--filter", f"label={LABEL}", check=False).stdout.split()
        if ids:
            dk.docker("rm", "-f", *ids, check=False)
        dk.docker("rmi", "-f", IMAGE, check=False)


# Each program's budget a run in the VM (TCG, one CPU), for the boot's timeout.
VM_RUN_S = {"stress_ng": 40, "python_pool": 40, "postgres": 150}


def vm_runs(oominit, programs, kernel, runs, results, serial_dir=None):
    """The programs on cgroup v2 in the VM of tests/vm: one boot per program, RUNS runs each."""
    import victims_real_vm as vr
    platform = f"v2-{kernel}"
    vmlinux = vm.kernel(kernel)
    tarball, how = dk.debian_tarball(PACKAGES)
    initrd, packed = vr.initramfs(oominit, tarball, program_body)
    print(f"# VM: {os.path.basename(vmlinux)}, initramfs {initrd} ({os.path.getsize(initrd) >> 20} MiB, {packed}) "
          f"from {os.path.basename(tarball)} ({how}), {vr.MEM}, TCG, {os.environ.get('OOMINIT_VM_SMP', '1')} CPU", flush=True)

    def validate_line(line):
        try:
            return json.loads(line)
        except ValueError:
            raise dk.Failure(f"a stderr line is not JSON: {line[:200]}")

    for program in programs:
        serial, secs = vr.boot(vmlinux, initrd, [(program, 0, runs)], vr.BOOT_S + runs * VM_RUN_S[program])
        if serial_dir:
            os.makedirs(serial_dir, exist_ok=True)
            with open(os.path.join(serial_dir, f"{platform}-{program}.serial"), "w") as f:
                f.write(serial)
        parsed = vr.parse(serial)
        done = "@@ DONE" in serial
        uname = re.search(r"@@ UNAME (.*)$", serial, re.M)
        made = 0
        durations = []
        for i in range(runs):
            name = f"{program}-{i:03d}"
            raw = parsed.get(name)
            if raw is None or raw["rc"] is None:
                print(f"! {platform} {program} run {i}: could not be made: "
                      f"{'not reached' if raw is None else 'did not finish'} before the boot ended", flush=True)
                continue
            try:
                o = vr.Outcome(raw, validate_line)
            except dk.Failure as e:
                print(f"! {platform} {program} run {i}: could not be made: {e}", flush=True)
                continue
            births = vr.Births(raw)
            lost = raw["klost"] if raw["klost"] is not None else 1
            r = judge(program, platform, i, "/" + name, o, births, vr.kmsg_lines(raw), lost,
                      0.0 if births.skew is not None else None)
            if births.skew is None or abs(births.skew) > 0.005:
                r["notes"].append("the births' times are uncertain: the marks in the tracer and the kernel log are "
                                  + (f"{1000 * births.skew:.1f} ms apart" if births.skew is not None else "missing"))
            if raw["klost"] is None:
                r["unknown"].append("no kernel log dump")
            if raw["left"]:
                r["notes"].append(f"processes left in the cgroup: {raw['left']}")
            if raw["rc"] != 0:
                r["notes"].append(f"exit code {raw['rc']}")
            r["poll_gap_ms"] = None
            durations.append(raw["t1"] - raw["t0"])
            results.append(r)
            print_run(r)
            made += 1
        print(f"# {platform} {program}: boot {secs:.0f}s ({uname.group(1) if uname else 'no uname line'}), "
              f"{made}/{runs} runs made{'' if done else ', the boot did not finish (timeout)'}"
              + (f", a run {statistics.median(durations):.1f}s median (max {max(durations):.1f}s) in the VM" if durations else ""),
              flush=True)
        if not made:
            tail = "\n".join(l for l in serial.splitlines()[-30:])
            print(f"# {platform} {program}: not measured, no run made; the serial log's tail:\n{tail}", flush=True)


def main():
    ap = argparse.ArgumentParser(prog="bench/victims --real")
    ap.add_argument("--runs", type=int, default=20, help="runs per program and platform (default 20)")
    ap.add_argument("-k", default="", help="only the programs whose name contains this")
    ap.add_argument("--platform", choices=sorted(PLATFORMS) + ["v2"], action="append",
                    help="ro (Docker's read-only cgroupfs), rw (cgroupfs mounted rw): ro and rw by default; "
                         "v2: cgroup v2 in the VM of tests/vm")
    ap.add_argument("--kernel", choices=KERNELS, action="append", help="the VM's kernels for v2 (default 6.1)")
    ap.add_argument("--json", help="write every run's judgement to this file")
    ap.add_argument("--serial-dir", help="v2: keep each boot's serial log (records, kernel log, tracer) in this directory")
    ap.add_argument("--poll-ms", type=float, default=1.0, help="the poller's period (default 1 ms); a long "
                    "one shows how the harness counts the runs whose truth it cannot know")
    a = ap.parse_args()
    global POLL_S
    POLL_S = a.poll_ms / 1000
    programs = [p for p in PROGRAMS if a.k in p]
    platforms = a.platform or list(PLATFORMS)
    kernels = a.kernel or ["6.1"]
    if not programs:
        raise SystemExit(f"no program matches -k {a.k!r}: {', '.join(PROGRAMS)}")
    self_check()
    if os.geteuid() != 0:
        raise SystemExit("needs root: /dev/kmsg, /proc/PID/status of the containers' processes")
    t0 = time.time()
    results = []
    oominit = dk.build()
    git = lambda *a: subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True).stdout.strip()
    commit = f"{git('rev-parse', '--short', 'HEAD')}, binary's sources as of {git('log', '-1', '--format=%h', '--', 'src', 'Cargo.toml', 'Cargo.lock')}"
    dirty = git("status", "--porcelain", "--", "src")
    print(f"# oominit {oominit} (commit {commit}{', src modified' if dirty else ''}); {time.time() - t0:.0f}s", flush=True)
    docker_platforms = [p for p in PLATFORMS if p in platforms]
    if docker_platforms:
        docker_runs(oominit, programs, docker_platforms, a.runs, results)
    if "v2" in platforms:
        for kernel in kernels:
            vm_runs(oominit, programs, kernel, a.runs, results, a.serial_dir)
    if a.json:
        with open(a.json, "w") as f:
            json.dump([{k: (v if k != "killed" else {str(p): [x[0], x[1] and round(1000 * (x[1] - x[2]), 1)]
                                                     for p, x in v.items()})
                        for k, v in r.items() if k not in ("named", "uncertain_named")}
                       | {"named": {str(p): v for p, v in r["named"].items()},
                          "uncertain_named": {str(p): v for p, v in r["uncertain_named"].items()}}
                       for r in results], f, indent=1, default=str)
    report(results, a.runs)
    if "v2" not in platforms:
        print("# cgroup v2: not measured in this invocation (`--platform v2` runs these programs in the VM of tests/vm)")
    else:
        for kernel in KERNELS:
            if kernel not in kernels:
                print(f"# cgroup v2 on {kernel}: not measured in this invocation (`--kernel {kernel}`)")
    print(f"# {len(results)} runs in {time.time() - t0:.0f}s")
    if not results:
        sys.exit(1)


if __name__ == "__main__":
    main()
