#!/usr/bin/env python3
"""Memory and open files of `jaga serve` under container churn.

Starts the release `jaga serve` with its default settings (logs, audit and
filesystem on; only the port and the data directory are its own), lets it
warm up, then runs --rounds rounds (3 by default). Each round creates, starts
and removes --containers containers (1,000 by default) in parallel batches of
--batch, each batch left running for --dwell seconds so the agent reads its
cgroups and (one container in four writes a few lines, some of them attacks)
follows its log. After a round the script waits until the agent no longer
lists any of them, lets it settle, and measures again.

Measured from /proc/<pid>: VmRSS (status), the anonymous memory of the
process (smaps_rollup: heap and stacks, without the mapped binary) and the
number of entries of fd/. "peak" is the highest value seen while churning.
A leak grows the "after" column round after round; an allocator that keeps
freed pages for reuse raises it once and then stays flat.

With --malloc-info it also attaches gdb to read glibc's malloc_info: the heap
in use, and the freed memory malloc keeps in its arenas (RSS that is not a
leak), and counts descriptors that refer to containers that no longer exist.

Usage: python3 bench/churn_soak.py [--containers 1000] [--rounds 3] [--jaga PATH] [--malloc-info]
Needs a running engine and the test images (scripts/testbed.sh); without
--jaga it runs `cargo build --release -p jaga` and uses target/release/jaga.
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

IMAGE = "jaga-test/busybox:latest"
PREFIX = f"jaga-bench-churn-{os.getpid()}-"
# A quarter of the containers log: plain lines and two the web rules flag.
LOGGING_SCRIPT = (
    "echo started; "
    "echo '10.0.0.1 - - [01/Jan/2026:00:00:00 +0000] \"GET /index.php?id=1%20UNION%20SELECT%20password%20FROM%20users HTTP/1.1\" 200 12 \"-\" \"sqlmap/1.7\"'; "
    "echo '10.0.0.2 - - [01/Jan/2026:00:00:01 +0000] \"GET /../../etc/passwd HTTP/1.1\" 404 0 \"-\" \"curl\"'; "
    "exec sleep 300"
)


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def anonymous_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Anonymous:"):
                return int(line.split()[1])
    return 0


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def log_messages(fetch):
    """Log messages the agent analysed so far (all containers on the host)."""
    for line in fetch("/metrics").splitlines():
        if line.startswith("jaga_log_messages_total "):
            return int(float(line.split()[1]))
    return 0


def stale_fds(pid):
    """Descriptors that refer to a container that no longer exists."""
    existing = set(sh("docker", "ps", "-aq", "--no-trunc").split())
    stale = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        ids = [p for p in re.split(r"[/.-]", target) if len(p) == 64 and all(c in string.hexdigits for c in p)]
        if ids and ids[0] not in existing:
            stale += 1
    return stale


def heap_kib(pid):
    """(in use, free but kept) by glibc malloc, from malloc_info through gdb."""
    with tempfile.NamedTemporaryFile(suffix=".xml") as out:
        script = (f'set $f = (void*)fopen("{out.name}", "w")\n'
                  "call (int)malloc_info(0, $f)\ncall (int)fclose($f)\n")
        with tempfile.NamedTemporaryFile("w", suffix=".gdb") as commands:
            commands.write(script)
            commands.flush()
            subprocess.run(["gdb", "-batch", "-p", str(pid), "-x", commands.name],
                           capture_output=True, timeout=120)
        text = open(out.name).read()
    system = re.findall(r'<system type="current" size="(\d+)"/>', text)
    free = re.findall(r'<total type="(?:fast|rest)" count="\d+" size="(\d+)"/>', text)
    if not system:
        return None
    # The last <system>/<total> lines are the totals over all arenas.
    current = int(system[-1])
    kept = sum(int(x) for x in free[-2:])
    return (current - kept) // 1024, kept // 1024


def measure(pid, heap=False):
    figures = {
        "rss": status_kib(pid, "VmRSS"),
        "anon": anonymous_kib(pid),
        "fds": open_fds(pid),
    }
    if heap:
        figures["stale"] = stale_fds(pid)
        figures["heap"] = heap_kib(pid)
    return figures


class PeakSampler(threading.Thread):
    """The highest RSS, anonymous memory and fd count seen, twice a second."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = measure(pid)
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(0.5):
            try:
                now = measure(self.pid)
            except OSError:
                return
            for key, value in now.items():
                self.peak[key] = max(self.peak[key], value)

    def stop(self):
        self.done.set()
        self.join()
        return self.peak


def run_container(name, logs):
    command = ["sh", "-c", LOGGING_SCRIPT] if logs else ["sleep", "300"]
    sh("docker", "run", "-d", "--network", "none", "--name", name, IMAGE, *command)


def churn(round_no, count, batch, dwell, pool):
    """Creates, starts and removes `count` containers, `batch` at a time."""
    started = time.time()
    for first in range(0, count, batch):
        names = [f"{PREFIX}{round_no}-{i}" for i in range(first, min(first + batch, count))]
        futures = [pool.submit(run_container, name, i % 4 == 0) for i, name in enumerate(names, first)]
        for future in futures:
            future.result()
        time.sleep(dwell)
        sh("docker", "rm", "-f", *names)
        done = min(first + batch, count)
        if done % (batch * 10) == 0 or done == count:
            rate = done / (time.time() - started)
            print(f"  round {round_no}: {done}/{count} churned ({rate:.1f}/s)", file=sys.stderr)


def remove_bench_containers():
    ids = sh("docker", "ps", "-aq", "--filter", f"name={PREFIX}").split()
    if ids:
        sh("docker", "rm", "-f", *ids)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=20, help="containers started in parallel")
    parser.add_argument("--dwell", type=float, default=2.5,
                        help="seconds each batch runs before removal (the agent samples every 1 s)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--settle", type=int, default=45,
                        help="seconds to wait once the agent lists none of them")
    parser.add_argument("--jaga", help="jaga binary (default: build target/release/jaga)")
    parser.add_argument("--malloc-info", action="store_true",
                        help="also read glibc's heap in use and free-but-kept bytes (attaches gdb)")
    args = parser.parse_args()
    jaga = args.jaga
    if jaga is None:
        subprocess.run(["cargo", "build", "--release", "-p", "jaga"], check=True)
        jaga = "target/release/jaga"
    if not os.access(jaga, os.X_OK):
        sys.exit(f"{jaga} is not an executable")
    jaga = os.path.abspath(jaga)

    data_dir = tempfile.mkdtemp(prefix="jaga-bench-churn-")
    agent = None
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.batch)
    try:
        port = free_port()
        # cwd and JAGA_CONFIG: no config file other than the defaults is found.
        env = {k: v for k, v in os.environ.items() if k != "JAGA_CONFIG"}
        agent = subprocess.Popen(
            [jaga, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir],
            cwd=data_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**env, "RUST_LOG": "warn"},
        )
        url = f"http://127.0.0.1:{port}"

        def fetch(path):
            with urllib.request.urlopen(url + path, timeout=10) as r:
                return r.read().decode()

        deadline = time.time() + 30
        while True:
            try:
                fetch("/healthz")
                break
            except OSError:
                if time.time() > deadline or agent.poll() is not None:
                    sys.exit("jaga serve did not become healthy")
                time.sleep(0.2)
        time.sleep(args.warmup)
        baseline = measure(agent.pid, args.malloc_info)
        print(f"baseline after {args.warmup} s: {baseline}", file=sys.stderr)

        rows = []
        for round_no in range(1, args.rounds + 1):
            before = measure(agent.pid, args.malloc_info)
            messages_before = log_messages(fetch)
            sampler = PeakSampler(agent.pid)
            sampler.start()
            t0 = time.time()
            churn(round_no, args.containers, args.batch, args.dwell, pool)
            churn_seconds = time.time() - t0
            deadline = time.time() + 300
            while f'name="{PREFIX}' in fetch("/metrics"):
                if time.time() > deadline:
                    sys.exit("the agent still lists removed containers after 300 s")
                time.sleep(2)
            peak = sampler.stop()
            time.sleep(args.settle)
            after = measure(agent.pid, args.malloc_info)
            after["messages"] = log_messages(fetch) - messages_before
            rows.append((round_no, before, peak, after, churn_seconds))
            print(f"  round {round_no} after: {after}", file=sys.stderr)

        alerts = fetch("/api/v1/alerts?limit=1")
        print()
        print(f"jaga serve, default settings; {args.rounds} rounds of {args.containers} containers "
              f"(batches of {args.batch}, {args.dwell} s each, 1 in 4 logging); "
              f"settle {args.settle} s after the agent lists none")
        print(f"baseline (after {args.warmup} s): RSS {baseline['rss'] / 1024:.1f} MiB, "
              f"anon {baseline['anon'] / 1024:.1f} MiB, {baseline['fds']} fds")
        print()
        print("round  churn s   RSS MiB before/peak/after   anon MiB before/peak/after   fds before/peak/after   log lines")
        for round_no, before, peak, after, seconds in rows:
            print(f"{round_no:>5}  {seconds:>7.0f}   "
                  f"{before['rss'] / 1024:>6.1f} {peak['rss'] / 1024:>6.1f} {after['rss'] / 1024:>6.1f}        "
                  f"{before['anon'] / 1024:>6.1f} {peak['anon'] / 1024:>6.1f} {after['anon'] / 1024:>6.1f}        "
                  f"{before['fds']:>5} {peak['fds']:>5} {after['fds']:>5}   {after['messages']:>9}")
        if args.malloc_info:
            print()
            print("round  stale fds after   heap MiB in use before/after   free but kept by malloc after")
            for round_no, before, _, after, _ in rows:
                (used0, _), (used1, kept1) = before["heap"], after["heap"]
                print(f"{round_no:>5}  {after['stale']:>15}   {used0 / 1024:>8.1f} {used1 / 1024:>6.1f}"
                      f"          {kept1 / 1024:>8.1f}")
            print("stale fds: descriptors that refer to a container that no longer exists")
        afters = [after for _, _, _, after, _ in rows]
        rss = [a["rss"] / 1024 for a in afters]
        fds = [a["fds"] for a in afters]
        print()
        print(f"after each round: RSS {min(rss):.1f}–{max(rss):.1f} MiB "
              f"(mean {statistics.mean(rss):.1f}), fds {min(fds)}–{max(fds)}; "
              f"growth from round 1 to {args.rounds}: RSS {rss[-1] - rss[0]:+.1f} MiB, fds {fds[-1] - fds[0]:+d}")
        print(f"log lines: analysed by the agent during the round, from every container on the host "
              f"(ours write {args.containers // 4 * 3}); a flood from elsewhere raises the allocator's high-water mark")
        print(f"alerts API sample: {alerts[:120]}...")
    finally:
        pool.shutdown(wait=False)
        if agent is not None:
            agent.terminate()
            try:
                agent.wait(timeout=15)
            except subprocess.TimeoutExpired:
                agent.kill()
        remove_bench_containers()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
