#!/usr/bin/env python3
"""What a user copies, tested: the release (.ci/release: binaries, tarballs, .deb, SHA256SUMS),
`apt install` of the .deb in a throwaway Debian container, `cargo install --path .`, the recipes in
examples/ (examples/docker/Dockerfile built and run, the Kubernetes pod's command run under its
limit with a termination log, every oominit command line in examples/platforms accepted by the
binary) and the ways of reading records in examples/records/README.md (the jq one-liners run on
the records of a real leaf OOM; the CloudWatch and LogQL queries cannot run here: the JSON fields
they name are looked up in that record).

The Dockerfile's builder stage cannot pull rust:1-bookworm here (no registry): it is built FROM a
local builder image instead (BUILDER=oominit-test/builder:KEY): Debian from debootstrap with gcc,
plus this machine's rustup, Rust toolchain and crate cache, offline. Cached as an image.

One line per scenario, `ok NAME ...`, `FAIL NAME ...` or `SKIP NAME why`, then
`N passed, N failed, N skipped`.

Usage: tests/dist/run [-k SUBSTRING]      (installs what is missing first)
"""
import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docker"))
import docker as dk  # noqa: E402  (tests/docker/docker.py: images, containers, records)
import yaml  # noqa: E402

ROOT = dk.ROOT
RUN = dk.RUN
LABEL = dk.LABEL
MIB = dk.MIB
DIST = os.path.join(ROOT, "dist")
VERSION = re.search(r'^version = "([^"]+)"$', open(os.path.join(ROOT, "Cargo.toml")).read(), re.M)[1]
BUDGET = 500 * 1024
ARM64_BINFMT = "/proc/sys/fs/binfmt_misc/oominit-aarch64"
Failure = dk.Failure
expect = dk.expect
docker = dk.docker


class Skip(Exception):
    pass


def sh(cmd, **kw):
    p = subprocess.run(cmd, shell=isinstance(cmd, str), text=True, capture_output=True, **kw)
    if p.returncode != 0:
        raise Failure(f"{cmd if isinstance(cmd, str) else ' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-1500:]}")
    return p.stdout


STATE = {}


# ---------------------------------------------------------------------------------------------
# The release

def s_release(img):
    """.ci/release makes dist/; every file is in SHA256SUMS and matches; binaries static, within
    the budget, printing Cargo.toml's version; tarballs and packages hold what they should."""
    sh([os.path.join(ROOT, ".ci", "release")])
    files = sorted(f for f in os.listdir(DIST) if f != "SHA256SUMS")
    sums = dict(reversed(l.split("  ", 1)) for l in open(os.path.join(DIST, "SHA256SUMS")).read().splitlines())
    expect(sorted(sums) == files, f"SHA256SUMS lists {sorted(sums)}, dist/ has {files}")
    sh("sha256sum --quiet -c SHA256SUMS", cwd=DIST)
    sizes = []
    for arch, debarch in (("x86_64", "amd64"), ("aarch64", "arm64")):
        b = os.path.join(DIST, f"oominit-{VERSION}-{arch}")
        expect(os.path.exists(b), f"no {b}")
        size = os.path.getsize(b)
        expect(size <= BUDGET, f"{b} is {size} bytes")
        headers = sh(["readelf", "-lh", b])
        expect("INTERP" not in headers and "DYNAMIC" not in headers, f"{b} is not static")
        machine = re.search(r"Machine:\s+(.*)", headers)[1]
        expect(("X86-64" in machine) if arch == "x86_64" else ("AArch64" in machine), f"{b}: machine {machine}")
        if arch == "x86_64" or os.path.exists(ARM64_BINFMT):
            said = sh([b, "--version"]).strip()
            expect(said == f"oominit {VERSION}", f"{b} --version: {said}")
        tar = sh(["tar", "-tzvf", os.path.join(DIST, f"oominit-{VERSION}-{arch}.tar.gz")])
        names = sorted(l.split()[-1] for l in tar.splitlines())
        want = sorted(f"oominit-{VERSION}-{arch}/{n}" for n in ("", "oominit", "README.md", "COPYRIGHT"))
        expect(names == want, f"tarball holds {names}")
        deb = os.path.join(DIST, f"oominit_{VERSION}_{debarch}.deb")
        fields = {k: sh(["dpkg-deb", "-f", deb, k]).strip() for k in ("Package", "Version", "Architecture")}
        expect(fields == {"Package": "oominit", "Version": VERSION, "Architecture": debarch}, f"{deb}: {fields}")
        listing = sh(["dpkg-deb", "-c", deb])
        expect(re.search(r"^-rwxr-xr-x root/root +%d .* \./usr/bin/oominit$" % size, listing, re.M),
               f"{deb} has no root-owned 0755 /usr/bin/oominit of {size} bytes:\n{listing}")
        expect("./usr/share/doc/oominit/copyright" in listing, f"{deb}: no copyright file")
        sizes.append(f"{arch} {size} B")
    return f"{', '.join(sizes)}; {len(files)} files, SHA256SUMS ok, version {VERSION}"


def s_deb_apt_install(img):
    """`apt install ./oominit_*.deb` in a throwaway Debian container without network, for amd64
    and (through the binfmt_misc entry .ci/arm64 registers) arm64; the binary then runs from
    PATH as an init, and `apt remove` takes it away."""
    base = img["debian_base"]
    debs = [f"oominit_{VERSION}_amd64.deb"]
    if os.path.exists(ARM64_BINFMT):
        debs.append(f"oominit_{VERSION}_arm64.deb")
    said = []
    for deb in debs:
        arm = deb.endswith("_arm64.deb")
        script = (("dpkg --add-architecture arm64 && " if arm else "")
                  + f"cd /dist && apt-get install -y -q ./{deb} >/tmp/apt.log 2>&1 || {{ cat /tmp/apt.log; exit 1; }}; "
                  "dpkg -s oominit | grep -E '^(Status|Architecture|Version):'; command -v oominit; oominit --version; "
                  "oominit -- sh -c 'exit 3' 2>/dev/null; echo code $?; "
                  "apt-get remove -y -q oominit >/dev/null 2>&1; [ ! -e /usr/bin/oominit ] && echo removed")
        p = docker("run", "--rm", "--network", "none", "--label", LABEL, "-v", f"{DIST}:/dist:ro", base,
                   "sh", "-c", script, check=False, timeout=180)
        out = p.stdout
        expect(p.returncode == 0, f"{deb}: exit {p.returncode}: {out[-1500:]} {p.stderr[-500:]}")
        for want in ("Status: install ok installed", f"Architecture: {'arm64' if arm else 'amd64'}",
                     f"Version: {VERSION}", "/usr/bin/oominit", f"oominit {VERSION}", "code 3", "removed"):
            expect(want in out, f"{deb}: no '{want}' in: {out}")
        said.append(deb)
    if len(debs) == 1:
        print("SKIP deb_apt_install arm64: no oominit-aarch64 binfmt_misc entry (.ci/arm64 registers it): the arm64 "
              "package cannot run here", flush=True)
    return f"installed, ran, removed: {', '.join(said)} (no network in the container)"


def s_cargo_install(img):
    """`cargo install --path .` (the host's default target, dynamically linked glibc: for a
    developer's machine, not for images) installs a working oominit."""
    root = tempfile.mkdtemp(prefix="oominit-cargo-install-")
    try:
        sh(["cargo", "install", "-q", "--locked", "--path", ROOT, "--root", root,
            "--target-dir", os.path.join(ROOT, "target", "cargo-install")])
        b = os.path.join(root, "bin", "oominit")
        said = sh([b, "--version"]).strip()
        expect(said == f"oominit {VERSION}", f"--version: {said}")
        p = subprocess.run([b, "--", "sh", "-c", "exit 5"], capture_output=True, text=True)
        expect(p.returncode == 5, f"exit {p.returncode}")
        return f"{b}: {said}, exit codes pass through"
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# examples/docker/Dockerfile

def builder_image(base):
    """A stand-in for rust:1-bookworm: Debian with gcc, this machine's rustup and active
    toolchain (host and x86_64 musl standard libraries) and its crate cache, offline."""
    toolchain = sh("rustup show active-toolchain").split()[0]
    rustc = sh("rustc -V").strip()
    key = hashlib.sha256(f"{base} {toolchain} {rustc} {open(os.path.join(ROOT, 'Cargo.lock')).read()}".encode()).hexdigest()[:12]
    tag = f"oominit-test/builder:{key}"
    if docker("image", "inspect", tag, check=False).returncode == 0:
        return tag, "cached"
    home = os.path.expanduser("~")
    cname = f"oominit-test-builder-{RUN}"
    docker("create", "--name", cname, "--label", LABEL, base, "/bin/true")
    try:
        tc = f"{home}/.rustup/toolchains/{toolchain}"
        parts = [f"{home}/.rustup/settings.toml", f"{tc}/bin", f"{tc}/lib",
                 f"{home}/.cargo/bin/rustup", f"{home}/.cargo/bin/cargo", f"{home}/.cargo/bin/rustc",
                 f"{home}/.cargo/registry/index", f"{home}/.cargo/registry/cache"]
        parts = [os.path.relpath(p, "/") for p in parts if os.path.exists(p)]
        # Only what a build for x86_64 needs: no other targets, no sources, no docs.
        excludes = [f"--exclude=lib/rustlib/{t}" for t in os.listdir(f"{tc}/lib/rustlib")
                    if t not in ("x86_64-unknown-linux-gnu", "x86_64-unknown-linux-musl", "etc")
                    and os.path.isdir(f"{tc}/lib/rustlib/{t}")]
        tar = subprocess.Popen(["tar", "-C", "/", "-c", *excludes, *parts], stdout=subprocess.PIPE)
        p = subprocess.run(["docker", "cp", "-", f"{cname}:/"], stdin=tar.stdout, capture_output=True, text=True)
        tar.wait()
        if p.returncode or tar.returncode:
            raise Failure(f"copying the toolchain into the builder failed: {p.stderr.strip()}")
        docker("commit", "--change", f"ENV PATH={home}/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "--change", "ENV CARGO_NET_OFFLINE=true", "--change", "ENV CARGO_BUILD_JOBS=1", cname, tag, timeout=600)
    finally:
        docker("rm", "-f", cname, check=False)
    return tag, "made"


def s_dockerfile(img):
    """examples/docker/Dockerfile, both final stages, built from the repository root with the local
    builder (BUILDER) and Debian base (BASE) images, then run: the scratch image as a real
    init of a leaf OOM (busybox and memhog mounted in), the Debian one as the Kubernetes pod
    below."""
    t0 = time.time()
    builder, how = builder_image(img["gcc_base"])
    t1 = time.time()
    tags = {}
    for stage in ("app-scratch", "app-debian"):
        tag = f"oominit-test/{stage}:{RUN}"
        p = docker("build", "-q", "-f", os.path.join(ROOT, "examples", "docker", "Dockerfile"), "--target", stage,
                   "--build-arg", f"BUILDER={builder}", "--build-arg", f"BASE={img['debian_base']}",
                   "-t", tag, ROOT, check=False, timeout=1200)
        expect(p.returncode == 0, f"docker build --target {stage}: {p.stderr[-2000:]}")
        tags[stage] = tag
    img.update(tags)
    t2 = time.time()
    # FROM scratch: oominit alone, the command from a mounted directory (busybox, memhog).
    o = dk.run("dockerfile-scratch", tags["app-scratch"],
               ["/x/busybox", "sh", "-c", f"/x/memhog 128; {dk.OOM_CONTROL.replace('cat ', '/x/busybox cat ').replace('grep ', '/x/busybox grep ').replace('cut ', '/x/busybox cut ')}; exit 0"],
               opts=["-v", f"{img['static_dir']}:/x:ro"])
    rec = dk.check_leaf(o, "memhog")
    p = docker("run", "--rm", "--label", LABEL, tags["app-debian"], check=False)
    expect(p.returncode == 0 and "replace this CMD" in p.stdout, f"app-debian's default CMD: {p.returncode} {p.stdout}")
    size = json.loads(docker("image", "inspect", tags["app-scratch"]).stdout)[0]["Size"]
    return (f"builder {builder} {how} ({t1 - t0:.0f}s), both stages built ({t2 - t1:.0f}s); app-scratch is {size} bytes; "
            f"in it a leaf OOM: {rec['verdict']} kills {rec['oom']['kills']}")


def s_dockerfile_example(img):
    """Dockerfile.example at the root: its two COPY lines get through .dockerignore."""
    tag = f"oominit-test/example:{RUN}"
    p = docker("build", "-q", "-f", os.path.join(ROOT, "Dockerfile.example"), "-t", tag, ROOT, check=False, timeout=600)
    expect(p.returncode == 0, f"docker build -f Dockerfile.example: {p.stderr[-1500:]}")
    img["example"] = tag
    o = dk.run("dockerfile-example", tag, [])
    expect(o.exit == 0 and o.rec["verdict"] == "clean", f"exit {o.exit}, verdict {o.rec['verdict']}")
    return "built and ran: verdict clean, exit 0"


def platform_commands():
    """Every oominit command line in examples/platforms: (file, flags before --)."""
    out = []
    d = os.path.join(ROOT, "examples", "platforms")
    for f in sorted(os.listdir(d)):
        path = os.path.join(d, f)
        docs = list(yaml.safe_load_all(open(path))) if f.endswith((".yaml", ".yml")) else [json.load(open(path))]

        def walk(x):
            if isinstance(x, dict):
                for k, v in x.items():
                    if k in ("command", "entrypoint", "entryPoint") and isinstance(v, list) and v and v[0] == "/oominit":
                        out.append((f, v[1:v.index("--")] if "--" in v else v[1:]))
                    walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)
        for doc in docs:
            walk(doc)
    return out


def s_platform_flags(img):
    """The recipes' oominit flags are the binary's: each command line runs `true` and exits 0."""
    cmds = platform_commands()
    files = sorted({f for f, _ in cmds})
    want = sorted(f for f in os.listdir(os.path.join(ROOT, "examples", "platforms")))
    expect(files == want, f"oominit command lines found in {files}, platforms has {want}")
    for f, flags in cmds:
        p = subprocess.run([img["oominit"], *flags, "--", "true"], capture_output=True, text=True, timeout=30)
        expect(p.returncode == 0, f"{f}: oominit {' '.join(flags)} -- true exited {p.returncode}: {p.stderr.strip()}")
    return f"{len(cmds)} command lines in {len(files)} files accepted"


def s_kubernetes_pod(img):
    """examples/platforms/kubernetes-pod.yaml's container as the kubelet would run it: its
    command and args in its image (the Dockerfile's app-debian), its memory limit, an empty file
    bind-mounted at its terminationMessagePath. The file, what `kubectl describe` shows as the
    Message, must hold the compact exit record of a leaf OOM with exit 137 (--strict)."""
    if "app-debian" not in img:
        raise Skip("the Dockerfile's app-debian image was not built (see dockerfile)")
    pod = yaml.safe_load(open(os.path.join(ROOT, "examples", "platforms", "kubernetes-pod.yaml")))
    c = pod["spec"]["containers"][0]
    limit = c["resources"]["limits"]["memory"]
    expect(limit.endswith("Mi"), f"limit {limit}")
    path = c["terminationMessagePath"]
    with tempfile.TemporaryDirectory() as d:
        tl = os.path.join(d, "termination-log")
        open(tl, "w").close()
        mem = f"{int(limit[:-2])}m"
        cname = f"oominit-test-kubernetes-pod-{RUN}"
        docker("run", "-d", "--name", cname, "--label", LABEL, "--memory", mem, "--memory-swap", mem,
               "-v", f"{tl}:{path}", "--entrypoint", c["command"][0], img["app-debian"], *c["command"][1:], *c["args"])
        dk.wait(cname)
        o = dk.Outcome(cname)
        message = open(tl).read()
    dk.validate(o)
    expect(o.exit == 137, f"docker says ExitCode={o.exit}")
    rec = o.rec
    expect(rec["verdict"] == "leaf_oom" and rec["exit_code"] == 137 and rec["strict_applied"], f"record {json.dumps(rec)[:400]}")
    expect(0 < len(message.encode()) < 1024, f"termination log of {len(message.encode())} bytes")
    msg = json.loads(message)
    expect(msg["event"] == "exit" and msg["verdict"] == "leaf_oom" and msg["exit_code"] == 137, f"termination log {message}")
    victims = [v["comm"] for v in msg["oom"]["victims"]]
    expect(all(v == "tail" for v in victims), f"victims {victims}")
    STATE["pod_logs"] = o.stderr
    STATE["pod_message"] = message
    return f"exit 137, leaf_oom kills {rec['oom']['kills']}, victims {victims}; termination log {len(message)} bytes, valid"


# ---------------------------------------------------------------------------------------------
# Reading the records: examples/records/README.md

RECORDS_MD = os.path.join(ROOT, "examples", "records", "README.md")


def fenced(lang):
    """The fenced blocks of RECORDS_MD in this language."""
    return re.findall(rf"^```{lang}\n(.*?)^```$", open(RECORDS_MD).read(), re.M | re.S)


def leaf_logs(img):
    """A real leaf OOM's `docker logs app 2>&1`: the service goes on after its worker was killed."""
    if "logs" not in STATE:
        if "logs_failed" in STATE:
            raise Failure(STATE["logs_failed"])
        STATE["logs_failed"] = "the leaf OOM run failed (above)"
        o = dk.run("records", img["scratch"], dk.LEAF_CMD)
        dk.check_leaf(o, "memhog")
        STATE["logs"] = o.stdout + o.stderr
        STATE["exit"] = o.rec
    return STATE["logs"]


# What each jq one-liner must print on the leaf OOM's logs, in order (a pattern for the whole
# output), and its exit status.
JQ_EXPECT = [
    (r"leaf_oom exit 0\n", 0),
    (r"\d+ memhog \d+ MiB /memhog 128\n", 0),
    (r'\{"time":"[^"]+","kills":1,"scope":"limit","victims":\["memhog"\]\}\n', 0),
    (r"scope limit, limit 32 MiB, peak 32 MiB\n", 0),
    (r"anon \d+ MiB, file \d+ MiB, shmem 0 MiB, kernel \d+ MiB, sock 0 MiB\n", 0),
    (r"false\n", 1),
]


def s_records_jq(img):
    """Each jq one-liner of examples/records/README.md on the logs of a real leaf OOM in Docker
    (`docker logs app 2>&1` replaced by the saved logs), with what it must print."""
    logs = leaf_logs(img)
    lines = [l for block in fenced("sh") for l in block.splitlines() if l.startswith("docker logs app 2>&1 | jq")]
    expect(len(lines) == len(JQ_EXPECT), f"{len(lines)} jq one-liners, {len(JQ_EXPECT)} expectations")
    with tempfile.NamedTemporaryFile("w", suffix=".log") as f:
        f.write(logs)
        f.flush()
        for line, (pattern, status) in zip(lines, JQ_EXPECT):
            cmd = line.replace("docker logs app 2>&1", f"cat {shlex.quote(f.name)}", 1)
            p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True)
            expect(p.returncode == status and re.fullmatch(pattern, p.stdout),
                   f"{line}\n  exited {p.returncode} (want {status}), printed {p.stdout!r} (want /{pattern}/) {p.stderr}")
    return f"{len(lines)} one-liners"


def resolve(rec, path):
    """A dotted path (a.b.0.c or a.b[0].c) in a record; KeyError if it is not there."""
    x = rec
    for part in re.split(r"\.|\[(\d+)\]", path):
        if not part:
            continue
        x = x[int(part)] if isinstance(x, list) else x[part]
    return x


def s_records_queries(img):
    """The CloudWatch Logs Insights and Loki queries cannot run here (no AWS, no Loki): every
    record field they name must exist in a real leaf OOM's exit record, and their filters match
    its line as it is written."""
    leaf_logs(img)
    rec = STATE["exit"]
    line = next(l for l in STATE["logs"].splitlines() if l.startswith('{"event":"exit"'))
    checked = []
    for q in fenced("cloudwatch"):
        # Insights flattens JSON: nested fields with dots, array items by index (oom.victims.0.comm).
        fields = set()
        for m in re.finditer(r"^\s*\|?\s*(fields|filter|stats|display|sort)\s+(.*)$", q, re.M):
            for name in re.findall(r"(?<![@\w\"'.])([a-z_]+(?:\.[a-z0-9_]+)*)(?![\w(\"'])", m.group(2)):
                if name not in ("and", "or", "not", "by", "as", "desc", "asc", "count", "like", "in"):
                    fields.add(name)
        for name in sorted(fields):
            try:
                resolve(rec, name)
            except (KeyError, IndexError, TypeError):
                raise Failure(f"CloudWatch query names {name}, not in the record")
        for value in re.findall(r'(\w[\w.]*) = "([^"]+)"', q):
            expect(str(resolve(rec, value[0])) == value[1] or value[0] == "event",
                   f"CloudWatch filter {value[0]} = {value[1]}: the record has {resolve(rec, value[0])}")
        checked.append(f"cloudwatch {len(fields)} fields")
    for q in fenced("logql"):
        for needle in re.findall(r"\|= `([^`]+)`", q):
            expect(needle in line, f"LogQL line filter {needle!r} does not match the record's line")
        paths = [p for part in re.findall(r"\| json ([^|]*)", q) for p in re.findall(r'\w+="([a-z_][\w.\[\]]*)"', part)]
        for path in paths:
            try:
                resolve(rec, path)
            except (KeyError, IndexError, TypeError):
                raise Failure(f"LogQL json expression {path}, not in the record")
        checked.append(f"logql {len(paths)} paths")
    expect(len(checked) >= 2, f"queries found: {checked}")
    return ", ".join(checked) + " (not run: no CloudWatch or Loki here)"


def s_arm64_leaf(img):
    """The aarch64 binary as the ENTRYPOINT of a FROM scratch image on this Docker engine,
    under qemu-user (the binfmt_misc entry .ci/arm64 registers): a leaf OOM's exit record. The
    workload is x86_64 (emulated, its memory would be qemu's); the init is arm64's code."""
    if not os.path.exists(ARM64_BINFMT):
        raise Skip("no oominit-aarch64 binfmt_misc entry (.ci/arm64 registers it)")
    arm = os.path.join(DIST, f"oominit-{VERSION}-aarch64")
    cname = f"oominit-test-arm64-{RUN}"
    docker("create", "--name", cname, "--label", LABEL, "--memory", "64m", "--memory-swap", "64m",
           "--entrypoint", "/oominit-arm64", img["scratch"], "--",
           "/bin/sh", "-c", "/memhog 256; echo worker died; exit 0")
    docker("cp", arm, f"{cname}:/oominit-arm64")
    docker("start", cname)
    dk.wait(cname)
    o = dk.Outcome(cname)
    dk.validate(o)
    rec = o.rec
    expect(rec["verdict"] == "leaf_oom" and rec["exit_code"] == 0 and rec["oom"]["kills"] >= 1
           and rec["oom"]["scope"] == "limit", f"record {json.dumps(rec)[:500]}")
    return f"leaf_oom, kills {rec['oom']['kills']}, scope limit, victims {[v['comm'] for v in rec['oom']['victims']]}"


SCENARIOS = [s_release, s_deb_apt_install, s_cargo_install, s_platform_flags, s_dockerfile_example, s_dockerfile,
             s_kubernetes_pod, s_records_jq, s_records_queries, s_arm64_leaf]


def cleanup():
    dk.cleanup()
    for tag in ("app-scratch", "app-debian", "example"):
        docker("rmi", "-f", f"oominit-test/{tag}:{RUN}", check=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", default="", help="run only the scenarios whose name contains this")
    args = ap.parse_args()
    scenarios = [s for s in SCENARIOS if args.k in s.__name__[2:]]
    passed = failed = skipped = 0
    t0 = time.time()
    try:
        try:
            oominit = dk.build()
            img = {"oominit": oominit, "static_dir": tempfile.mkdtemp(prefix="oominit-static-")}
            shutil.copy("/bin/busybox", os.path.join(img["static_dir"], "busybox"))
            shutil.copy(os.path.join(os.path.dirname(oominit), "examples", "memhog"), img["static_dir"])
            img["scratch"] = dk.scratch_image(oominit)
            img["debian_base"], how = dk.debian_base()
            img["gcc_base"], how2 = dk.debian_base(["gcc", "libc6-dev"])
        except (Failure, subprocess.CalledProcessError) as e:
            print(f"FAIL setup {e} {getattr(e, 'stderr', '') or ''}".rstrip(), flush=True)
            print("0 passed, 1 failed")
            sys.exit(1)
        print(f"# images ready in {time.time() - t0:.0f}s (debian {how}, debian with gcc {how2})", flush=True)
        for s in scenarios:
            name = s.__name__[2:]
            ts = time.time()
            try:
                detail = s(img)
                print(f"ok {name} {detail} ({time.time() - ts:.1f}s)", flush=True)
                passed += 1
            except Skip as e:
                print(f"SKIP {name} {e}", flush=True)
                skipped += 1
            except Exception as e:  # a scenario's error is its failure, never the suite's crash
                print(f"FAIL {name} {e}", flush=True)
                failed += 1
    finally:
        cleanup()
        shutil.rmtree(img.get("static_dir", "/nonexistent") if "img" in dir() else "/nonexistent", ignore_errors=True)
    print(f"# {time.time() - t0:.0f}s")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
