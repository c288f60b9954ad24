#!/usr/bin/env python3
"""Flood of attack lines through Docker's json-file rotation against
`jaga serve`'s log analysis: does every line give its alert?

A busybox container (`--network none --log-opt max-size=1m
--log-opt max-file=5`) prints N distinct nginx-combined lines with a SQL
injection in the query string (rule 93100) as fast as awk can: 100,000
lines are ~20 MiB of json, ~20 rotations, of which Docker keeps 5 MiB.
`jaga serve` follows only that container's log from its beginning. When the
alerts stop growing, the script prints lines written, alerts stored
(distinct lines), and lines jaga counted lost (`jaga_log_lines_lost_total`,
an estimate when files came and went unseen).

With --kill-after SECONDS the agent is SIGKILLed that long after the flood
starts and started again --down SECONDS later, on the same data dir.

Usage: python3 bench/logs_flood.py [--lines 100000] [--runs 1]
                                   [--kill-after S --down S] [--jaga PATH]
Needs scripts/testbed.sh; builds `cargo build --release -p jaga` unless
--jaga is given.
"""

import argparse
import datetime
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

IMAGE = "jaga-test/busybox:latest"
RULE = "93100"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker(*args):
    out = subprocess.run(["docker", *args], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"docker {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout.strip()


def flood_script(lines):
    return ("awk 'BEGIN{for(i=0;i<%d;i++) printf \"203.0.113.7 - - [30/Nov/2026:17:00:00 +0000] "
            "\\\"GET /item?id=1+UNION+SELECT+password+FROM+users--&n=%%d HTTP/1.1\\\" 200 5 \\\"-\\\" "
            "\\\"curl/8.0\\\"\\n\", i}'" % lines)


class Agent:
    def __init__(self, jaga, data_dir, container_id, log_path=None, default_config=False):
        self.jaga = jaga
        self.log_path = log_path
        self.data_dir = data_dir
        self.port = free_port()
        self.config = os.path.join(data_dir, "jaga.toml")
        with open(self.config, "w") as f:
            f.write(f'[serve]\nlisten = "127.0.0.1:{self.port}"\ndata_dir = "{data_dir}"\n')
            if not default_config:
                f.write('[audit]\ndisabled = true\n'
                        f'[logs]\nread_from = "beginning"\n'
                        f'paths = ["/var/lib/docker/containers/{container_id}/*-json.log"]\n')
        self.process = None

    def start(self):
        # With --agent-log, the agent's log goes there at RUST_LOG's level.
        log = open(self.log_path, "a") if self.log_path else subprocess.DEVNULL
        level = os.environ.get("RUST_LOG", "warn") if self.log_path else "warn"
        self.process = subprocess.Popen([self.jaga, "--config", self.config, "serve"],
                                        stdout=subprocess.DEVNULL, stderr=log,
                                        env={**os.environ, "RUST_LOG": level})
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.url("/healthz"), timeout=5).read()
                return
            except OSError:
                if time.time() > deadline or self.process.poll() is not None:
                    sys.exit("jaga serve did not become healthy")
                time.sleep(0.1)

    def kill(self):
        self.process.kill()
        self.process.wait()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def metric(self, family):
        text = urllib.request.urlopen(self.url("/metrics"), timeout=10).read().decode()
        for line in text.splitlines():
            if line.startswith(family + " "):
                return float(line.split()[-1])
        return 0.0


def container_seconds(container_id):
    """How long the container ran (the flood), from the Engine's times."""
    times = docker("inspect", "-f", "{{.State.StartedAt}} {{.State.FinishedAt}}", container_id).split()

    def parse(text):
        # 2026-11-30T18:13:14.123456789Z: Python parses at most microseconds.
        head, _, frac = text.rstrip("Z").partition(".")
        return datetime.datetime.fromisoformat(head).timestamp() + float("0." + (frac or "0"))

    return parse(times[1]) - parse(times[0])


def stored(data_dir, container_id):
    try:
        conn = sqlite3.connect(f"file:{os.path.join(data_dir, 'events.sqlite3')}?mode=ro", uri=True, timeout=10)
        row = conn.execute("SELECT count(*), count(DISTINCT json_extract(json, '$.data.url')) FROM alerts "
                           "WHERE rule_id = ? AND container_id = ?", (RULE, container_id)).fetchone()
        conn.close()
        return row
    except sqlite3.Error:
        return (0, 0)


def settle(data_dir, container_id, quiet=5.0, deadline=300.0):
    """Waits until the stored count has not changed for `quiet` seconds."""
    end = time.time() + deadline
    last, since = stored(data_dir, container_id), time.time()
    while time.time() < end:
        time.sleep(0.5)
        now = stored(data_dir, container_id)
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= quiet:
            break
    return last


def run_once(args):
    name = f"jaga-bench-flood-{os.getpid()}-{time.time_ns()}"
    container_id = docker("create", "--name", name, "--network", "none", "--log-opt", "max-size=1m",
                          "--log-opt", "max-file=5", IMAGE, "sh", "-c", flood_script(args.lines))
    data_dir = tempfile.mkdtemp(prefix="jaga-bench-flood-")
    agent = Agent(args.jaga, data_dir, container_id, args.agent_log, args.default_config)
    try:
        agent.start()
        started = time.time()
        docker("start", container_id)
        if args.kill_after is not None:
            time.sleep(max(0.0, args.kill_after - (time.time() - started)))
            agent.kill()
            time.sleep(args.down)
            agent.start()
        docker("wait", container_id)
        flood_seconds = container_seconds(container_id)
        alerts, distinct = settle(data_dir, container_id)
        lost = agent.metric("jaga_log_lines_lost_total")
        bytes_lost = agent.metric("jaga_log_bytes_lost_total")
        return {"written": args.lines, "stored": alerts, "distinct": distinct, "lost": lost,
                "bytes_lost": bytes_lost, "flood_s": flood_seconds}
    finally:
        if agent.process and agent.process.poll() is None:
            agent.kill()
        subprocess.run(["docker", "rm", "-f", container_id], capture_output=True)
        shutil.rmtree(data_dir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--kill-after", type=float, default=None,
                        help="SIGKILL the agent this many seconds after the flood starts")
    parser.add_argument("--down", type=float, default=3.0, help="seconds the agent stays down")
    parser.add_argument("--default-config", action="store_true",
                        help="run the agent with its defaults (every container's log, audit on) "
                             "instead of following only the flood's log")
    parser.add_argument("--agent-log", default=None, help="append the agent's log (RUST_LOG) to this file")
    parser.add_argument("--jaga", default=None, help="jaga binary (default: build the release one)")
    args = parser.parse_args()
    if args.jaga is None:
        subprocess.run(["cargo", "build", "--release", "-p", "jaga"], check=True)
        args.jaga = "target/release/jaga"
    if not os.access(args.jaga, os.X_OK):
        sys.exit(f"{args.jaga} not found")
    kill = "" if args.kill_after is None else f", SIGKILL at {args.kill_after:g} s, down {args.down:g} s"
    print(f"{args.lines:,} attack lines, max-size=1m max-file=5{kill}\n")
    print(f"{'run':>3} {'written':>9} {'stored':>9} {'distinct':>9} {'missing':>9} {'counted lost':>13} "
          f"{'bytes lost':>11} {'flood s':>8} {'lines/s':>9}")
    for run in range(1, args.runs + 1):
        r = run_once(args)
        missing = r["written"] - r["distinct"]
        rate = r["written"] / r["flood_s"] if r["flood_s"] > 0 else 0
        print(f"{run:>3} {r['written']:>9,} {r['stored']:>9,} {r['distinct']:>9,} {missing:>9,} "
              f"{r['lost']:>13,.0f} {r['bytes_lost']:>11,.0f} {r['flood_s']:>8.1f} {rate:>9,.0f}")


if __name__ == "__main__":
    main()
