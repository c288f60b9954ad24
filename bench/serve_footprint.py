#!/usr/bin/env python3
"""Footprint of `jaga serve` with every default feature on, beside netdata.

Starts N idle containers (100 by default) and, in each run, the release
`jaga serve` with its defaults (a config file that sets only the listen
address and data directory) together with Debian's netdata (its own defaults:
per-second cgroup charts for the same containers plus its host charts), both
warmed up (60 s: the first audit of every container runs at start) and then measured over the same window while a scraper fetches
jaga's /metrics every 15 s as Prometheus would. Then:

- the per-feature breakdown: jaga again with each default feature switched
  off in turn ([logs], [audit], [filesystem], [docker_listener],
  [metric_rules], [process]); what switching it off saves is its cost;
- the scale: jaga with 0 containers and with --large (500) containers, and
  the ratio to the N-container figure.

Figures:
- CPU: utime+stime from /proc/<pid>/stat over the window, % of one core
  (netdata: its whole process tree, plugins included, plus the CPU of
  children it reaped in the window);
- peak RSS: VmHWM (netdata: the sum of VmRSS over its tree at the end);
- jaga's bytes written to storage per hour (/proc/<pid>/io write_bytes).

Usage: python3 bench/serve_footprint.py [--containers 100] [--seconds 120]
         [--runs 3] [--no-breakdown] [--no-netdata] [--no-scale] [--large 500]
Needs a running engine and the test images (scripts/testbed.sh), and
`cargo build --release -p jaga`. netdata: `apt-get install netdata`.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

IMAGE = "jaga-test/busybox:latest"
PREFIX = "jaga-bench-serve-"
TICKS = os.sysconf("SC_CLK_TCK")
FEATURES = ["logs", "audit", "filesystem", "docker_listener", "metric_rules", "process"]


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid):
    fields = stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / TICKS


def tree_pids(root):
    """root and every descendant, from /proc/*/stat parent links."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(stat_fields(entry)[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_cpu_seconds(root):
    """CPU of a process tree: every live member, plus what the root reaped."""
    total = 0.0
    for pid in tree_pids(root):
        try:
            fields = stat_fields(pid)
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
        if pid == root:
            total += (int(fields[13]) + int(fields[14])) / TICKS
    return total


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def write_bytes(pid):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def bench_container_ids():
    return sh("docker", "ps", "-aq", "--filter", f"name={PREFIX}").split()


def set_containers(n):
    """Exactly n idle bench containers running."""
    ids = bench_container_ids()
    if len(ids) > n:
        for chunk in range(n, len(ids), 50):
            sh("docker", "rm", "-f", *ids[chunk:chunk + 50])
    for i in range(len(bench_container_ids()), n):
        sh("docker", "run", "-d", "--network", "none", "--name", f"{PREFIX}{i}-{time.time_ns()}",
           IMAGE, "sleep", "86400")


def spread(values):
    values = sorted(values)
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} (runs: {', '.join(f'{v:.2f}' for v in values)})"


class Jaga:
    """`jaga serve` with defaults, optionally one feature switched off."""

    def __init__(self, binary, disabled=None):
        self.dir = tempfile.mkdtemp(prefix="jaga-bench-serve-")
        self.port = free_port()
        config = os.path.join(self.dir, "jaga.toml")
        with open(config, "w") as f:
            f.write(f'[serve]\nlisten = "127.0.0.1:{self.port}"\n'
                    f'data_dir = "{self.dir}/data"\n')
            if disabled:
                f.write(f"[{disabled}]\ndisabled = true\n")
        self.proc = subprocess.Popen(
            [binary, "--config", config, "serve"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 60
        while True:
            try:
                self.fetch("/healthz")
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    self.stop()
                    sys.exit("jaga serve did not become healthy")
                time.sleep(0.2)

    def fetch(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return r.read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Netdata:
    """Debian's netdata in the foreground with its defaults, in a temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="jaga-bench-netdata-")
        for sub in ("cache", "lib", "log"):
            os.makedirs(os.path.join(self.dir, sub))
        shutil.chown(self.dir, "netdata", "netdata")
        for sub in ("cache", "lib", "log"):
            shutil.chown(os.path.join(self.dir, sub), "netdata", "netdata")
        self.port = free_port()
        config = os.path.join(self.dir, "netdata.conf")
        with open(config, "w") as f:
            f.write("[global]\n\trun as user = netdata\n"
                    "[directories]\n"
                    f"\tcache = {self.dir}/cache\n\tlib = {self.dir}/lib\n\tlog = {self.dir}/log\n"
                    "[web]\n"
                    f"\tbind to = 127.0.0.1:{self.port}\n")
        self.proc = subprocess.Popen(
            ["/usr/sbin/netdata", "-D", "-c", config],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def stop(self):
        for pid in reversed(tree_pids(self.proc.pid)):
            try:
                os.kill(pid, 15)
            except OSError:
                pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            for pid in tree_pids(self.proc.pid):
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def measure(binary, seconds, warmup, disabled=None, netdata=False):
    """One window: jaga's CPU %, VmHWM MiB, MiB written/h, containers seen;
    netdata's CPU % and RSS MiB when asked."""
    jaga = Jaga(binary, disabled)
    nd = Netdata() if netdata else None
    try:
        time.sleep(warmup)
        seen = jaga.fetch("/metrics").decode().count("container_last_seen{")
        pid = jaga.proc.pid
        j0, w0, t0 = cpu_seconds(pid), write_bytes(pid), time.time()
        n0 = tree_cpu_seconds(nd.proc.pid) if nd else 0.0
        next_scrape = t0
        while time.time() - t0 < seconds:
            if time.time() >= next_scrape:
                jaga.fetch("/metrics")
                next_scrape += 15
            time.sleep(0.5)
        elapsed = time.time() - t0
        # Seen again at the end: a window's figure counts only if jaga
        # watched every container through it.
        seen = min(seen, jaga.fetch("/metrics").decode().count("container_last_seen{"))
        result = {
            "cpu": (cpu_seconds(pid) - j0) / elapsed * 100,
            "hwm_mib": status_kib(pid, "VmHWM") / 1024,
            "written_mib_h": (write_bytes(pid) - w0) * 3600 / elapsed / 2**20,
            "seen": seen,
        }
        if nd:
            result["netdata_cpu"] = (tree_cpu_seconds(nd.proc.pid) - n0) / elapsed * 100
            result["netdata_rss_mib"] = sum(
                status_kib(p, "VmRSS") for p in tree_pids(nd.proc.pid)) / 1024
        return result
    finally:
        jaga.stop()
        if nd:
            nd.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--large", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=120)
    # The first audit of every container runs at start: it is not steady state.
    parser.add_argument("--warmup", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument("--no-netdata", action="store_true")
    parser.add_argument("--no-scale", action="store_true")
    parser.add_argument("--jaga", default="target/release/jaga")
    args = parser.parse_args()
    if not os.access(args.jaga, os.X_OK):
        sys.exit(f"{args.jaga} not found: run `cargo build --release -p jaga` first")
    netdata = not args.no_netdata
    if netdata and not os.access("/usr/sbin/netdata", os.X_OK):
        sys.exit("netdata not installed (apt-get install netdata), or pass --no-netdata")
    out = sys.stdout

    def say(text):
        print(text, file=sys.stderr, flush=True)

    try:
        say(f"starting {args.containers} idle containers...")
        set_containers(args.containers)
        runs = []
        for k in range(args.runs):
            say(f"run {k + 1}/{args.runs}: jaga defaults{' beside netdata' if netdata else ''}, "
                f"{args.seconds} s after {args.warmup} s warm-up")
            runs.append(measure(args.jaga, args.seconds, args.warmup, netdata=netdata))
        base = statistics.median(r["cpu"] for r in runs)
        print(f"\n== {args.containers} idle containers, 1 s interval, every default feature on ==",
              file=out)
        seen = [r["seen"] for r in runs]
        print(f"containers jaga sees        {min(seen)} (runs: {', '.join(map(str, seen))})", file=out)
        if min(seen) < args.containers:
            print(f"WARNING: jaga saw fewer than the {args.containers} containers in some run; "
                  "that run's figures are not comparable", file=out)
        print(f"jaga CPU, % of one core     {spread([r['cpu'] for r in runs])}   (goal < 1)", file=out)
        print(f"jaga peak RSS (VmHWM), MiB  {spread([r['hwm_mib'] for r in runs])}   (goal < 40)",
              file=out)
        print(f"jaga written, MiB/hour      {spread([r['written_mib_h'] for r in runs])}", file=out)
        if netdata:
            print(f"netdata CPU, % of one core  {spread([r['netdata_cpu'] for r in runs])}", file=out)
            print(f"netdata RSS (tree), MiB     {spread([r['netdata_rss_mib'] for r in runs])}",
                  file=out)
            ratios = [r["cpu"] / r["netdata_cpu"] for r in runs if r["netdata_cpu"] > 0]
            print(f"jaga / netdata CPU          {spread(ratios)}   (goal <= 0.10)", file=out)
        out.flush()

        if not args.no_breakdown:
            print(f"\n== per feature: one run each with it off, {args.containers} containers ==",
                  file=out)
            print(f"{'switched off':<18}{'jaga CPU %':>12}{'saves':>10}{'VmHWM MiB':>12}", file=out)
            for feature in FEATURES:
                say(f"breakdown: [{feature}] disabled")
                r = measure(args.jaga, args.seconds, args.warmup, disabled=feature)
                cpu = r["cpu"]
                print(f"{feature:<18}{cpu:>12.2f}{base - cpu:>10.2f}{r['hwm_mib']:>12.1f}", file=out)
                out.flush()

        if not args.no_scale:
            print("\n== scale: jaga defaults, one run each ==", file=out)
            for n in (0, args.large):
                say(f"scale: {n} containers")
                set_containers(n)
                r = measure(args.jaga, args.seconds, args.warmup)
                note = "(goal <= 0.1)" if n == 0 else \
                    f"ratio to {args.containers}: {r['cpu'] / base:.2f} (goal <= {n / args.containers:.0f})"
                print(f"{n:>4} containers: CPU {r['cpu']:.2f} %, VmHWM {r['hwm_mib']:.1f} MiB  {note}",
                      file=out)
                out.flush()
    finally:
        say("removing the bench containers...")
        set_containers(0)


if __name__ == "__main__":
    main()
