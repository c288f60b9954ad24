#!/usr/bin/env python3
"""Footprint of `jaga serve` watching N idle containers.

Starts N idle containers (100 by default), runs the release `jaga serve` at a
1 s interval with a fresh data directory, lets it warm up, then measures for
--seconds (180 by default) while a scraper fetches /metrics every 15 s as
Prometheus would:

- CPU: utime+stime of the jaga process from /proc/<pid>/stat, as % of one core
- peak RSS: VmHWM from /proc/<pid>/status at the end
- history bytes written per hour: write_bytes from /proc/<pid>/io (what the
  process made the kernel write to storage, WAL and checkpoints included),
  and the growth of the database files, both scaled to one hour

Usage: python3 bench/serve_footprint.py [--containers 100] [--seconds 180] [--jaga PATH]
Needs a running engine and the test images: run scripts/testbed.sh first,
and `cargo build --release -p jaga`.
"""

import argparse
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

IMAGE = "jaga-test/busybox:latest"
PREFIX = "jaga-bench-serve-"
TICKS = os.sysconf("SC_CLK_TCK")


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def write_bytes(pid):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def db_bytes(data_dir):
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(data_dir, "history.sqlite3*")))


def remove_bench_containers():
    ids = sh("docker", "ps", "-aq", "--filter", f"name={PREFIX}").split()
    if ids:
        sh("docker", "rm", "-f", *ids)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument("--jaga", default="target/release/jaga")
    args = parser.parse_args()
    if not os.access(args.jaga, os.X_OK):
        sys.exit(f"{args.jaga} not found: run `cargo build --release -p jaga` first")

    remove_bench_containers()
    data_dir = tempfile.mkdtemp(prefix="jaga-bench-serve-")
    agent = None
    try:
        print(f"starting {args.containers} idle containers...", file=sys.stderr)
        for i in range(args.containers):
            sh("docker", "run", "-d", "--network", "none", "--name", f"{PREFIX}{i}",
               IMAGE, "sleep", "86400")
        port = free_port()
        agent = subprocess.Popen(
            [args.jaga, "serve", "--listen", f"127.0.0.1:{port}", "--interval", "1s",
             "--data-dir", data_dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        url = f"http://127.0.0.1:{port}"

        def fetch(path):
            with urllib.request.urlopen(url + path, timeout=10) as r:
                return r.read()

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
        seen = fetch("/metrics").decode().count("container_last_seen{")
        print(f"jaga sees {seen} containers; measuring {args.seconds} s...", file=sys.stderr)

        cpu0, wb0, db0, t0 = cpu_seconds(agent.pid), write_bytes(agent.pid), db_bytes(data_dir), time.time()
        metrics_bytes = 0
        next_scrape = t0
        while time.time() - t0 < args.seconds:
            if time.time() >= next_scrape:
                metrics_bytes = len(fetch("/metrics"))
                next_scrape += 15
            time.sleep(0.5)
        elapsed = time.time() - t0
        cpu1, wb1, db1 = cpu_seconds(agent.pid), write_bytes(agent.pid), db_bytes(data_dir)
        hwm_kib = status_kib(agent.pid, "VmHWM")
        rss_kib = status_kib(agent.pid, "VmRSS")
        host = fetch("/api/v1/host").decode()

        cpu_pct = (cpu1 - cpu0) / elapsed * 100
        per_hour = 3600 / elapsed
        print()
        print(f"containers watched          {seen}")
        print(f"interval                    1 s, /metrics scraped every 15 s ({metrics_bytes} bytes)")
        print(f"measured for                {elapsed:.0f} s after {args.warmup} s warm-up")
        print(f"jaga CPU                    {cpu_pct:.2f} % of one core   (goal < 1 %)")
        print(f"jaga peak RSS (VmHWM)       {hwm_kib / 1024:.1f} MiB   (now {rss_kib / 1024:.1f} MiB; goal < 40 MiB)")
        print(f"bytes written to storage    {(wb1 - wb0) * per_hour / 2**20:.1f} MiB/hour  (/proc/<pid>/io write_bytes)")
        print(f"history files growth        {(db1 - db0) * per_hour / 2**20:.1f} MiB/hour  (db + wal size, before trimming)")
        print(f"history files now           {db1 / 2**20:.1f} MiB")
        print(f"api/v1/host                 {host[:200]}...")
    finally:
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
