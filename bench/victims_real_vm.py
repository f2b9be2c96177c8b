"""The real programs of bench/victims_real.py on cgroup v2, in the VM of tests/vm
(`bench/victims --real --platform v2 [--kernel 6.1|6.12|6.18]`).

The VM has no block device: the Debian userspace comes in the initramfs, unpacked from the
debootstrap tarball the Docker runs' image is made of (python3, stress-ng, postgresql), with a
PostgreSQL cluster made once on the host (initdb as postgres, in a chroot), /oominit, busybox (for
poweroff) and an /init. It is packed uncompressed (a compressed one costs its decompression under
TCG at every boot) and cached in ~/.cache/oominit-vm, keyed by the tarball, the binary and the
scripts. What is left out of the tarball: /usr/share/{doc,man,info,locale,i18n} and PostgreSQL's
JIT (libLLVM, libz3, llvmjit*: loaded only for queries above jit_above_cost, which these are not).

In the VM, for each run: a cgroup under the root with memory.max as the Docker runs' --memory and
memory.swap.max 0; a shell moves itself into it and execs `/oominit -- /bin/sh /prog/PROGRAM` (no
PID namespace: oominit's pids are the VM's, those of the kernel log). After it: its exit code,
memory.events (the kernel's oom_kill counter), oominit's stdout and stderr, the kernel log's
records of the run (from /dev/kmsg, by sequence number, with a count of those overwritten before
they were read) and the tracer's task_newtask events of the run (every process and thread forked
during it, with the time of its birth), each printed on the serial console as `@@ KIND NAME ...`.

The truth, on the host, as victims_real.py's for Docker: the `Killed process PID (COMM)` lines of
processes born during the run, whose `oom-kill:...task_memcg=` line, where the kernel printed one,
names the run's cgroup; their number must equal memory.events' oom_kill. The task_newtask events
stand in for the Docker runs' poller (pid -> birth; the pids need no mapping): nothing polls
inside the VM, whose one emulated CPU the programs and oominit share.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "vm"))
import vm  # noqa: E402  (the VM suite's kernel and boot)

MEM = "2048M"  # the initramfs (about 330 MB) stays in memory twice until it is unpacked
LIMITS = {"stress_ng": "48M", "python_pool": "48M", "postgres": "128M"}  # as the Docker runs' --memory
BOOT_S = 120  # the boot's own budget: unpacking, the kernel, the shell's start

KMSGDUMP = r'''
import os, re, sys
state, name = sys.argv[1], sys.argv[2]
try:
    last = int(open(state).read())
except FileNotFoundError:
    last = None
keep = re.compile(r"Killed process|oom-kill:|v2real-clock|invoked oom-killer|printk messages dropped")
fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
first, top, lost, out = None, last, 0, []
while True:
    try:
        rec = os.read(fd, 8192)
    except BlockingIOError:
        break
    except BrokenPipeError:
        lost += 1
        continue
    head, _, text = rec.decode(errors="replace").partition(";")
    seq = int(head.split(",")[1])
    if first is None:
        first = seq
    top = seq
    if last is None or seq <= last:
        continue
    if keep.search(text):
        out.append(head + ";" + text.split("\n", 1)[0])
if last is not None and first is not None and first > last + 1:
    lost += first - last - 1
open(state, "w").write(str(top))
if last is not None:
    for l in out:
        print(f"@@ KMSG {name} {l}")
    print(f"@@ KLOST {name} {lost}")
'''

INIT = r'''#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp
chmod 1777 /tmp; mkdir -p /dev/shm; mount -t tmpfs shm /dev/shm; chmod 1777 /dev/shm
mount -t tracefs tracefs /sys/kernel/tracing; T=/sys/kernel/tracing
mount -t cgroup2 cgroup2 /sys/fs/cgroup; echo +memory > /sys/fs/cgroup/cgroup.subtree_control
# The kernel log's clock (printk's local_clock is sched_clock_cpu, as the tracer's global clock).
echo global > $T/trace_clock; echo 1 > $T/events/task/task_newtask/enable
echo; echo "@@ UNAME $(uname -r) $(grep MemTotal /proc/meminfo | tr -s ' ') cpus $(nproc)"
python3 /kmsgdump.py /tmp/kseq - > /dev/null
plan=$(sed -n 's/.*v2real=\([^ ]*\).*/\1/p' /proc/cmdline)
for item in $(echo "$plan" | tr , ' '); do
  prog=${item%%:*}; n=${item#*:}; first=${n%%-*}; last=${n#*-}
  case $prog in stress_ng|python_pool) limit=48M ;; postgres) limit=128M ;; esac
  i=$first
  while [ $i -lt $last ]; do
    name=$(printf '%s-%03d' $prog $i)
    d=/sys/fs/cgroup/$name
    mkdir $d; echo $limit > $d/memory.max; echo 0 > $d/memory.swap.max
    echo > $T/trace
    echo "v2real-clock $name" > /dev/kmsg; echo "v2real-clock $name" > $T/trace_marker
    echo "@@ BEGIN $name $(cat /proc/uptime)"
    timeout -s KILL 600 sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec /oominit -- "$@"' sh $d /bin/sh /prog/$prog > /tmp/out 2> /tmp/err
    echo "@@ RC $name $? $(cat /proc/uptime)"
    echo "@@ EVENTS $name $(cat $d/memory.events | tr '\n' ' ')"
    # printf, not echo: dash's echo turns a record's \n into a newline.
    while IFS= read -r l; do printf '@@ OUT %s %s\n' $name "$l"; done < /tmp/out
    while IFS= read -r l; do printf '@@ ERR %s %s\n' $name "$l"; done < /tmp/err
    python3 /kmsgdump.py /tmp/kseq $name
    grep -E 'task_newtask|v2real-clock' $T/trace | while IFS= read -r l; do printf '@@ TRACE %s %s\n' $name "$l"; done
    echo "@@ LEFT $name $(cat $d/cgroup.procs | tr '\n' ' ')"
    for c in $(find $d -mindepth 1 -type d | sort -r); do rmdir $c; done; rmdir $d
    i=$((i+1))
  done
done
echo "@@ DONE"
/busybox poweroff -f
'''

SETUP = ("set -e; mount -t proc proc /proc; mount -t tmpfs shm /dev/shm; mkdir /pgdata; chown postgres:postgres /pgdata; "
         "PG=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1); "
         "setpriv --reuid=postgres --regid=postgres --init-groups $PG/initdb -D /pgdata -A trust --no-sync >/dev/null")
TRIM = ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/i18n"]
TRIM_GLOBS = ["usr/lib/x86_64-linux-gnu/libLLVM*", "usr/lib/x86_64-linux-gnu/libz3.so*",
              "usr/lib/postgresql/*/lib/llvmjit*", "usr/lib/postgresql/*/lib/bitcode"]


def initramfs(oominit, tarball, programs_body):
    """The cached initramfs (path, how it came)."""
    progs = {p: programs_body(p) for p in LIMITS}
    h = hashlib.sha256()
    st = os.stat(tarball)
    h.update(f"{os.path.basename(tarball)} {st.st_size} {st.st_mtime_ns}".encode())
    for f in (oominit, "/bin/busybox"):
        h.update(open(f, "rb").read())
    for part in [INIT, KMSGDUMP, SETUP, " ".join(TRIM + TRIM_GLOBS)] + [f"{k}\n{v}" for k, v in sorted(progs.items())]:
        h.update(part.encode())
    key = h.hexdigest()[:12]
    dest = os.path.join(vm.CACHE, f"victims-real-{key}.cpio")
    if os.path.exists(dest):
        return dest, "cached"
    os.makedirs(vm.CACHE, exist_ok=True)
    for old in os.listdir(vm.CACHE):
        if old.startswith("victims-real-") and old.endswith(".cpio"):
            os.remove(os.path.join(vm.CACHE, old))
    t0 = time.monotonic()
    d = tempfile.mkdtemp(dir=vm.CACHE, prefix="victims-real-root-")
    try:
        vm.sh(f"tar -C {d} -xf {tarball} --numeric-owner --same-owner")
        # The tarball's ./ is debootstrap's mkdtemp, 0700: it would bar postgres from everything.
        os.chmod(d, 0o755)
        for t in TRIM:
            shutil.rmtree(os.path.join(d, t), ignore_errors=True)
        vm.sh(f"cd {d} && rm -rf {' '.join(TRIM_GLOBS)}")
        # initdb as postgres, in a chroot of its own mount namespace (its /proc, /dev/shm go with it).
        p = subprocess.run(["unshare", "--mount", "--fork", "chroot", d, "/bin/sh", "-c", SETUP],
                           capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"initdb in the chroot failed: {p.stdout[-1000:]}{p.stderr[-1000:]}")
        shutil.copy(oominit, f"{d}/oominit")
        shutil.copy("/bin/busybox", f"{d}/busybox")
        os.makedirs(f"{d}/prog")
        for name, body in progs.items():
            with open(f"{d}/prog/{name}", "w") as f:
                f.write(body + "\n")
        with open(f"{d}/kmsgdump.py", "w") as f:
            f.write(KMSGDUMP)
        with open(f"{d}/init", "w") as f:
            f.write(INIT)
        os.chmod(f"{d}/init", 0o755)
        vm.sh(f"cd {d} && find . -print0 | cpio --null -o -H newc --quiet > {dest}.tmp")
        os.rename(f"{dest}.tmp", dest)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return dest, f"packed in {time.monotonic() - t0:.0f}s"


def boot(vmlinux, initrd, plan, timeout):
    """Boots with PLAN [(program, first run, end)]: the serial log and the boot's seconds."""
    arg = ",".join(f"{p}:{a}-{b}" for p, a, b in plan)
    return vm.boot(vmlinux, initrd, MEM, timeout=timeout, append=f"log_buf_len=16M v2real={arg}")


TRACE = re.compile(r"\s(?P<ts>\d+\.\d+): (?:task_newtask: pid=(?P<pid>\d+) comm=(?P<comm>.*?) clone_flags|"
                   r"tracing_mark_write: v2real-clock)")


def parse(serial):
    """Per run name: its raw parts."""
    runs = {}
    for line in serial.splitlines():
        m = re.match(r"@@ (BEGIN|RC|EVENTS|OUT|ERR|KMSG|KLOST|TRACE|LEFT) (\S+) ?(.*)$", line)
        if not m:
            continue
        kind, name, rest = m.groups()
        r = runs.setdefault(name, {"rc": None, "events": {}, "out": [], "err": [], "kmsg": [], "klost": None,
                                   "trace": [], "left": None, "t0": None, "t1": None})
        if kind == "BEGIN":
            r["t0"] = float(rest.split()[0])
        elif kind == "RC":
            r["rc"], r["t1"] = int(rest.split()[0]), float(rest.split()[1])
        elif kind == "EVENTS":
            f = rest.split()
            r["events"] = dict(zip(f[0::2], map(int, f[1::2])))
        elif kind == "OUT":
            r["out"].append(rest)
        elif kind == "ERR":
            r["err"].append(rest)
        elif kind == "KMSG":
            r["kmsg"].append(rest)
        elif kind == "KLOST":
            r["klost"] = int(rest)
        elif kind == "TRACE":
            r["trace"].append(rest)
        elif kind == "LEFT":
            r["left"] = rest.split()
    return runs


class Outcome:
    """As the Docker suite's Outcome, for judge(): oominit's records, stdout (with the kernel's
    oom_kill counter of the run's cgroup appended), stderr."""

    def __init__(self, r, validate_line):
        self.stdout = "\n".join(r["out"]) + "\n"
        if "oom_kill" in r["events"]:
            self.stdout += f"oom_kill {r['events']['oom_kill']}\n"
        self.stderr = "\n".join(r["err"]) + "\n"
        self.records = []
        for line in r["err"]:
            if line.startswith("{"):
                rec = validate_line(line)
                if "event" in rec:
                    self.records.append(rec)
        self.oomkilled = None
        self.exit = r["rc"]


class Births:
    """What the Docker runs' poller gives judge(), from the tracer: pid -> [pid, comm at fork,
    birth (s, the kernel log's clock), birth]."""

    def __init__(self, r):
        self.seen, self.unreadable, self.gaps, self.oom_kill = {}, set(), [], None
        kmsg_mark = next((int(l.split(";")[0].split(",")[2]) for l in r["kmsg"] if "v2real-clock" in l), None)
        trace_mark = None
        for l in r["trace"]:
            m = TRACE.search(l)
            if m and not m["pid"]:
                trace_mark = float(m["ts"])
        # The tracer's global clock is the kernel log's: the two marks, written one after the
        # other, must be no further apart than the shell takes between them (judged by the caller).
        self.skew = trace_mark - kmsg_mark / 1e6 if kmsg_mark is not None and trace_mark is not None else None
        for l in r["trace"]:
            m = TRACE.search(l)
            if m and m["pid"]:
                t = float(m["ts"])
                self.seen[int(m["pid"])] = [int(m["pid"]), m["comm"], t, t]


def kmsg_lines(r):
    """[(ts µs, text)] of the run's kernel log records."""
    out = []
    for l in r["kmsg"]:
        head, _, text = l.partition(";")
        out.append((int(head.split(",")[2]), text))
    return out
