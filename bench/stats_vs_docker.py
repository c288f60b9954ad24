#!/usr/bin/env python3
"""Compare `jaga stats --no-stream` with `docker stats --no-stream`.

Starts N idle containers (30, then 100 by default), then times each CLI in
the same run: wall time, and CPU time of the whole system spent on the call:
the CLI itself (rusage of the child) plus dockerd, containerd and every
containerd shim (utime+stime from /proc/<pid>/stat, before and after).

Usage: python3 bench/stats_vs_docker.py [--counts 30,100] [--runs 5] [--jaga PATH]
Needs a running engine and the test images: run scripts/testbed.sh first.
"""

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

IMAGE = "jaga-test/busybox:latest"
PREFIX = "jaga-bench-"
TICKS = os.sysconf("SC_CLK_TCK")


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def daemon_pids():
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm in ("dockerd", "containerd") or comm.startswith("containerd-shim"):
            pids.append(pid)
    return pids


def daemon_cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[11], fields[12] are utime, stime (fields 14 and 15 of stat).
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def measure(cmd):
    pids = daemon_pids()
    before_daemons = daemon_cpu_seconds(pids)
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - start
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    after_daemons = daemon_cpu_seconds(pids)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    cli_cpu = (after_children.ru_utime - before_children.ru_utime) + (
        after_children.ru_stime - before_children.ru_stime
    )
    rows = max(0, len(out.stdout.strip().splitlines()) - 1)
    return wall, cli_cpu, after_daemons - before_daemons, rows


def start_containers(count):
    running = [n for n in sh("docker", "ps", "--format", "{{.Names}}").split() if n.startswith(PREFIX)]
    for i in range(len(running), count):
        sh("docker", "run", "-d", "--name", f"{PREFIX}{i}", "--network", "none", IMAGE, "sleep", "86400")


def remove_containers():
    names = [n for n in sh("docker", "ps", "-a", "--format", "{{.Names}}").split() if n.startswith(PREFIX)]
    if names:
        sh("docker", "rm", "-f", *names, check=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="30,100")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--jaga", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "jaga"))
    parser.add_argument("--keep", action="store_true", help="leave the containers running")
    args = parser.parse_args()
    if not os.path.exists(args.jaga):
        sys.exit(f"no jaga binary at {args.jaga}: run `cargo build --release` first")

    tools = {
        "jaga stats": [args.jaga, "stats", "--no-stream"],
        "docker stats": ["docker", "stats", "--no-stream"],
    }
    print(f"{'containers':>10}  {'tool':<13} {'wall s':>7} {'cli cpu s':>9} {'daemons cpu s':>13} {'total cpu s':>11} {'rows':>5}")
    try:
        remove_containers()
        for count in [int(c) for c in args.counts.split(",")]:
            start_containers(count)
            time.sleep(3)  # let start-up work settle
            results = {}
            for run in range(args.runs):
                for name, cmd in tools.items():  # interleaved, so both see the same host
                    results.setdefault(name, []).append(measure(cmd))
            for name, samples in results.items():
                wall = statistics.median(s[0] for s in samples)
                cli = statistics.median(s[1] for s in samples)
                daemons = statistics.median(s[2] for s in samples)
                total = statistics.median(s[1] + s[2] for s in samples)
                rows = samples[-1][3]
                print(f"{count:>10}  {name:<13} {wall:>7.3f} {cli:>9.3f} {daemons:>13.3f} {total:>11.3f} {rows:>5}")
            jt = statistics.median(s[1] + s[2] for s in results["jaga stats"])
            dt = statistics.median(s[1] + s[2] for s in results["docker stats"])
            print(f"{count:>10}  cpu ratio jaga/docker = {jt / dt if dt else float('nan'):.3f} (median of {args.runs} runs)")
    finally:
        if not args.keep:
            remove_containers()


if __name__ == "__main__":
    main()
