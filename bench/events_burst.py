#!/usr/bin/env python3
"""Burst of Docker events against `jaga serve`'s listener.

Creates and removes N containers (500 by default) as fast as the engine
allows (8 parallel clients on the Engine API socket), while `jaga serve`
listens and a live `GET /events` stream of our own is the reference (dockerd keeps only
its last 256 events in memory, so `--since` after the fact cannot be the
reference). Reports:

- events the engine emitted for the burst, and how many jaga stored
  (missing / duplicate)
- the rate the engine produced and the rate jaga stored at (events/s,
  from the first to the last stored event's storage)
- jaga's CPU during the burst, from /proc/<pid>/stat

Usage: python3 bench/events_burst.py [--containers 500] [--jaga PATH]
Needs scripts/testbed.sh and `cargo build --release -p jaga`.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

IMAGE = "jaga-test/busybox:latest"
TICKS = os.sysconf("SC_CLK_TCK")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def engine(method, path, body=None):
    conn = UnixHTTPConnection("/var/run/docker.sock")
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.status >= 300:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
    return json.loads(data) if data else None


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=500)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--jaga", default="target/release/jaga")
    args = parser.parse_args()
    if not os.access(args.jaga, os.X_OK):
        sys.exit(f"{args.jaga} not found: run `cargo build --release -p jaga` first")

    prefix = f"jaga-burst-{os.getpid()}-"
    data_dir = tempfile.mkdtemp(prefix="jaga-bench-events-")
    port = free_port()
    agent = subprocess.Popen(
        [args.jaga, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    ref_events = []
    stop_reference = threading.Event()

    def follow_reference():
        conn = UnixHTTPConnection("/var/run/docker.sock")
        conn.request("GET", "/events?filters=" + urllib.parse.quote(json.dumps({"type": ["container"]})))
        response = conn.getresponse()
        conn.sock.settimeout(None)
        buffer = b""
        while not stop_reference.is_set():
            chunk = response.read1(65536)
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    ref_events.append(json.loads(line))
        conn.close()

    reference = threading.Thread(target=follow_reference, daemon=True)
    reference.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=5).read()
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit("jaga serve did not become healthy")
                time.sleep(0.2)
        time.sleep(1)
        cpu0 = cpu_seconds(agent.pid)
        t0 = time.time()
        todo = list(range(args.containers))
        lock = threading.Lock()

        def work():
            while True:
                with lock:
                    if not todo:
                        return
                    i = todo.pop()
                created = engine("POST", f"/containers/create?name={prefix}{i}",
                                 {"Image": IMAGE, "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}})
                engine("DELETE", f"/containers/{created['Id']}")

        threads = [threading.Thread(target=work) for _ in range(args.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        burst_s = time.time() - t0
        expected = 2 * args.containers
        # Wait for jaga to store them all (or 60 s).
        stored = []
        deadline = time.time() + 60
        while time.time() < deadline:
            events = json.loads(urllib.request.urlopen(
                f"{url}/api/v1/events?type=container&limit=10000&from={t0 - 1:.3f}", timeout=30).read())
            stored = [e for e in events if e.get("container", {}).get("name", "").startswith(prefix)]
            if len(stored) >= expected:
                break
            time.sleep(0.5)
        caught_up_s = time.time() - t0
        cpu = cpu_seconds(agent.pid) - cpu0
        stop_reference.set()  # the blocked reader thread is a daemon: left behind
        ref = [e for e in list(ref_events) if e.get("Actor", {}).get("Attributes", {}).get("name", "").startswith(prefix)]
        identities = {(e["docker"]["time_nano"], e["docker"]["action"], e["docker"]["actor_id"]) for e in stored}
        times = sorted(e["docker"]["time_nano"] for e in stored)
        span = (times[-1] - times[0]) / 1e9 if len(times) > 1 else 0
        time.sleep(1.5)  # /healthz figures are refreshed each collection interval
        health = json.loads(urllib.request.urlopen(url + "/healthz", timeout=5).read())
        listener = health.get("docker_listener", {})
        print(f"containers created and removed   {args.containers} with {args.workers} parallel API clients in {burst_s:.1f} s")
        print(f"events from the engine (live)    {len(ref)}   (expected {expected})")
        print(f"events stored by jaga            {len(stored)}   distinct {len(identities)}   missing {max(0, len(ref) - len(identities))}   duplicates {len(stored) - len(identities)}")
        print(f"engine produced                  {len(ref) / burst_s:.0f} events/s ({span:.1f} s from first to last event)")
        print(f"jaga stored all of them after    {caught_up_s:.1f} s   (sustained {len(stored) / caught_up_s:.0f} events/s incl. alerts)")
        print(f"jaga CPU during the burst        {cpu:.2f} s   = {cpu / caught_up_s * 100:.1f} % of one core, {cpu / max(1, len(stored)) * 1e6:.0f} us per event")
        print(f"listener                         {listener.get('state')}, alerts {listener.get('alerts_total')}, duplicates dropped {listener.get('duplicates_total')}")
    finally:
        agent.terminate()
        agent.wait(timeout=15)
        stop_reference.set()
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"name={prefix}"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
