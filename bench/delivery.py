#!/usr/bin/env python3
"""Delivery to a webhook: latency and jaga's CPU at a steady alert rate, and
how fast a backlog drains after a receiver outage. A benchmark, not a test.

Alerts are raised by log lines: the script writes Docker json-file logs
(SQL injection requests in nginx's access-log format, one alert per line)
into a directory that `jaga serve` follows, so the rate is the script's to
set. The receiver is this script's own HTTP server on 127.0.0.1 (keep-alive,
answers 200, checks X-Jaga-Signature).

Phase 1, steady: `--rate` alerts/s for `--seconds`, receiver healthy.
  - latency stored -> receiver's answer: jaga_output_delivery_latency_seconds
    (p50, p99 over the latest 2048 deliveries, read from /metrics at the end)
  - latency line written -> received, measured here (includes the log poll)
  - jaga's CPU (utime + stime from /proc) over the phase, in % of one core
Phase 2, outage: receiver down, `--backlog` alerts raised and stored, then the
receiver starts; drain rate = alerts / time from start to the last received.

Usage: python3 bench/delivery.py [--jaga target/release/jaga] [--rate 100]
       [--seconds 30] [--backlog 20000]
Needs a Docker engine (jaga reads the daemon's info at start) and
`cargo build --release -p jaga`.
"""

import argparse
import hashlib
import hmac
import http.server
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SECRET = b"bench-signing-key"
CONTAINER_ID = "b" * 64


class Receiver:
    """Records, per alert id, when it arrived; counts bad signatures."""

    def __init__(self, port):
        self.port = port
        self.arrived = {}
        self.duplicates = 0
        self.bad_signatures = 0
        self.lock = threading.Lock()
        self.server = None
        self.connections = set()

    def start(self):
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: without this, Nagle
            # and the client's delayed ACK hold each answer 40 ms.
            disable_nagle_algorithm = True

            def setup(self):
                super().setup()
                with receiver.lock:
                    receiver.connections.add(self.connection)

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                now = time.time()
                expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
                alert = json.loads(body)
                with receiver.lock:
                    if not hmac.compare_digest(expected, self.headers.get("X-Jaga-Signature", "")):
                        receiver.bad_signatures += 1
                    if alert["id"] in receiver.arrived:
                        receiver.duplicates += 1
                    else:
                        receiver.arrived[alert["id"]] = (now, alert)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        http.server.ThreadingHTTPServer.daemon_threads = True
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        """Down for real: kept-alive connections are cut too."""
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        with self.lock:
            for connection in self.connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.connections.clear()

    def count(self):
        with self.lock:
            return len(self.arrived)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Log:
    """A json-file log as Docker writes it; each line an SQL injection."""

    def __init__(self, root):
        directory = os.path.join(root, CONTAINER_ID)
        os.makedirs(directory)
        self.file = open(os.path.join(directory, f"{CONTAINER_ID}-json.log"), "a")
        self.n = 0
        self.written = {}

    def write(self, count):
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"
        clf = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now))
        for _ in range(count):
            self.n += 1
            line = f'203.0.113.9 - - [{clf}] "GET /users/?id=SELECT+*+FROM+users&n={self.n} HTTP/1.1" 200 12 "-" "curl/8"\n'
            self.file.write(json.dumps({"log": line, "stream": "stdout", "time": stamp}) + "\n")
            self.written[self.n] = now
        self.file.flush()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.read().decode()


def wait(what, check, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.05)
    sys.exit(f"timed out waiting for {what}")


def output_stats(port):
    return json.loads(get(port, "/api/v1/outputs"))[0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jaga", default="target/release/jaga")
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--backlog", type=int, default=20000)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="jaga-bench-delivery-")
    logs = os.path.join(work, "containers")
    os.makedirs(logs)
    api, hook = free_port(), free_port()
    key = os.path.join(work, "hook.key")
    with open(key, "wb") as f:
        f.write(SECRET)
    config = os.path.join(work, "jaga.toml")
    with open(config, "w") as f:
        f.write(f"""[serve]
listen = "127.0.0.1:{api}"
data_dir = "{work}/data"
[docker_listener]
disabled = true
[audit]
disabled = true
[filesystem]
disabled = true
[alerts]
file = ""
[logs]
paths = ["{logs}/*/*-json.log"]
read_from = "beginning"
poll = "100ms"
[[outputs]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:{hook}/jaga"
secret = {{ file = "{key}" }}
backoff_max = "1s"
max_backlog = {max(args.backlog * 2, 100000)}
""")
    log = Log(logs)
    agent = subprocess.Popen([args.jaga, "--config", config, "serve"], env={**os.environ, "RUST_LOG": "error"})
    receiver = Receiver(hook)
    try:
        wait("jaga serve", lambda: _ok(api, "/healthz"), 60)
        receiver.start()

        # Phase 1: steady rate, healthy receiver.
        cpu0, t0 = cpu_seconds(agent.pid), time.time()
        per_tick = max(1, args.rate // 20)
        ticks = args.seconds * args.rate // per_tick
        next_tick = time.time()
        for _ in range(ticks):
            log.write(per_tick)
            next_tick += per_tick / args.rate
            time.sleep(max(0, next_tick - time.time()))
        if os.environ.get("BENCH_DEBUG"):
            print(json.dumps(output_stats(api)), receiver.count(), log.n, file=sys.stderr)
        wait("steady alerts received", lambda: receiver.count() >= log.n, 120)
        cpu = (cpu_seconds(agent.pid) - cpu0) / (time.time() - t0) * 100
        metrics = get(api, "/metrics")
        quantiles = {}
        for line in metrics.splitlines():
            if line.startswith("jaga_output_delivery_latency_seconds{"):
                q = line.split('percentile="')[1].split('"')[0]
                quantiles[q] = float(line.rsplit(" ", 1)[1])
        with receiver.lock:
            end_to_end = sorted(
                arrived - log.written[int(alert["data"]["url"].rsplit("n=", 1)[1])]
                for arrived, alert in receiver.arrived.values()
            )
        steady = log.n
        print(f"steady: {steady} alerts at {args.rate}/s for {args.seconds}s; jaga CPU {cpu:.1f}% of one core")
        print(f"  stored -> receiver answered (jaga_output_delivery_latency_seconds): "
              f"p50 {quantiles.get('50', float('nan')) * 1000:.1f} ms, p99 {quantiles.get('99', float('nan')) * 1000:.1f} ms, "
              f"max {quantiles.get('100', float('nan')) * 1000:.1f} ms")
        print(f"  line written -> received (includes the 100 ms log poll): "
              f"p50 {statistics.median(end_to_end) * 1000:.1f} ms, p99 {end_to_end[int(len(end_to_end) * 0.99) - 1] * 1000:.1f} ms")

        # Phase 2: outage, then drain.
        receiver.stop()
        base = output_stats(api)["delivered_alerts_total"]
        for _ in range(args.backlog // 1000):
            log.write(1000)
        def stored_backlog():
            stats = output_stats(api)
            if os.environ.get("BENCH_DEBUG"):
                print(json.dumps(stats), file=sys.stderr)
                time.sleep(1)
            return stats["backlog"] >= args.backlog
        wait("backlog stored", stored_backlog, 600)
        retried = output_stats(api)["retried_total"]
        receiver.start()
        start = time.time()
        wait("backlog drained", lambda: output_stats(api)["delivered_alerts_total"] - base >= args.backlog, 600)
        seconds = time.time() - start
        print(f"outage: {args.backlog} alerts stored while the receiver was down ({retried} retries); "
              f"drained in {seconds:.2f} s = {args.backlog / seconds:.0f} alerts/s")
        print(f"received {receiver.count()} distinct alerts of {log.n} raised; "
              f"duplicates {receiver.duplicates}; bad signatures {receiver.bad_signatures}")
    finally:
        agent.terminate()
        agent.wait(timeout=30)
        receiver.stop()


def _ok(port, path):
    try:
        get(port, path)
        return True
    except Exception:
        return False


if __name__ == "__main__":
    main()
