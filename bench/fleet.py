#!/usr/bin/env python3
"""The fleet end to end: --agents simulated agents (processes) publish
alerts to one nats-server with JetStream as the `nats` output does
(subject jaga.<agent>.alerts, Nats-Msg-Id = <agent>.<id>, waiting for every
PubAck before the next window), one `jaga hub` stores them into PostgreSQL.

Measured:
  - alerts/s end to end: rows the hub stored (its /healthz stored_total)
    over the run, and the rate the agents got PubAcks for;
  - the hub's CPU (utime+stime from /proc/<pid>/stat) and peak RSS;
  - an idle agent's upstream bytes/s: a real `jaga serve` (its nats output
    taking no container's alerts, heartbeat every 30 s) connected to NATS
    through a counting TCP proxy for the whole run, the bytes it sent
    counted (CONNECT, heartbeats, PINGs/PONGs); with --idle simulated, one
    more simulated agent that answers PINGs and sends the agent's heartbeat
    every --heartbeat s;
  - the idle agent's host state in the hub's /api/v1/hosts at the end.

The simulated agents speak the NATS text protocol themselves (CONNECT,
HPUB with a reply inbox, SUB for the acks), so no client library is needed.
Servers run on free loopback ports in a temp dir; PostgreSQL as the
postgres user (initdb/pg_ctl from /usr/lib/postgresql/*/bin).

Usage: python3 bench/fleet.py [--agents 20] [--seconds 300] [--window 64] [--drain 120] [--jaga PATH]
                              [--idle real|simulated] [--heartbeat 30]
Needs nats-server and postgresql (scripts/receivers.sh); without --jaga it
runs `cargo build --release -p jaga` and uses target/release/jaga.
"""

import argparse
import glob
import json
import multiprocessing
import os
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


class Nats:
    """A minimal NATS client: connect, publish with headers, read acks."""

    def __init__(self, port, user, password):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")
        self.sent = 0
        self.file.readline()  # INFO
        self.send(json.dumps({"user": user, "pass": password, "headers": True,
                              "verbose": False, "pedantic": False, "name": user}).join(["CONNECT ", "\r\n"]).encode())
        self.send(b"PING\r\n")
        self.expect_pong()

    def send(self, data):
        self.sock.sendall(data)
        self.sent += len(data)

    def expect_pong(self):
        while True:
            line = self.file.readline()
            if line.startswith(b"PONG"):
                return
            if line.startswith(b"-ERR"):
                raise SystemExit(line.decode().strip())

    def read_message(self):
        """The next MSG/HMSG payload; answers PINGs on the way."""
        while True:
            line = self.file.readline()
            if not line:
                raise SystemExit("nats closed the connection")
            if line.startswith(b"PING"):
                self.send(b"PONG\r\n")
                continue
            if line.startswith(b"MSG") or line.startswith(b"HMSG"):
                size = int(line.split()[-1])
                return self.file.read(size + 2)[:-2]
            if line.startswith(b"-ERR"):
                raise SystemExit(line.decode().strip())


def agent(index, port, seconds, window, results):
    name = f"bench-{index:02d}"
    client = Nats(port, "agent", "agent-pass")
    inbox = f"_INBOX.{name}"
    client.send(f"SUB {inbox}.* 1\r\n".encode())
    acked, n = 0, 0
    end = time.time() + seconds
    while time.time() < end:
        for _ in range(window):
            n += 1
            alert = json.dumps({
                "id": f"bench.{n}", "timestamp": "2026-01-01T00:00:00.000Z",
                "rule": {"id": "91011", "level": 6, "description": "Command run in container web",
                         "groups": ["docker"], "mitre": []},
                "agent": {"id": name, "name": name}, "data": {"command": "sh -c id"},
                "location": "/var/lib/docker/containers/x/x-json.log"}).encode()
            headers = f"NATS/1.0\r\nNats-Msg-Id: {name}.bench.{n}\r\n\r\n".encode()
            client.send(f"HPUB jaga.{name}.alerts {inbox}.{n} {len(headers)} {len(headers) + len(alert)}\r\n".encode()
                        + headers + alert + b"\r\n")
        for _ in range(window):
            answer = client.read_message()
            if b'"error"' in answer:
                raise SystemExit(answer.decode())
            acked += 1
    results.put(acked)


def idle_agent(port, seconds, heartbeat, results):
    """Answers PINGs and, every `heartbeat` s (0: never), publishes the
    heartbeat a jaga agent's nats output sends."""
    client = Nats(port, "agent", "agent-pass")
    started = time.time()
    end = started + seconds
    next_beat = started
    while time.time() < end:
        if heartbeat and time.time() >= next_beat:
            beat = json.dumps({"agent": "bench-idle", "version": "0.1.0",
                               "uptime_s": int(time.time() - started)}).encode()
            client.send(f"PUB jaga.bench-idle.heartbeat {len(beat)}\r\n".encode() + beat + b"\r\n")
            next_beat += heartbeat
        wake = min(end, next_beat) if heartbeat else end
        # select, not a socket timeout: a timed-out socket file reads no more.
        readable, _, _ = select.select([client.sock], [], [], max(0.05, wake - time.time()))
        if not readable:
            continue
        line = client.file.readline()
        if not line:
            break
        if line.startswith(b"PING"):
            client.send(b"PONG\r\n")
    results.put(client.sent)


class CountingProxy:
    """Forwards one TCP port to another, counting what clients send."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.upstream = 0
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self.pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self.pipe, args=(server, client, False), daemon=True).start()

    def pipe(self, source, sink, upstream):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if upstream:
                    with self.lock:
                        self.upstream += len(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def sent(self):
        with self.lock:
            return self.upstream


def real_idle_agent(jaga, work, nats_port):
    """`jaga serve` whose nats output takes no container's alerts: all it
    sends NATS is its connection's upkeep and its heartbeats."""
    proxy = CountingProxy(nats_port)
    port = free_port()
    os.makedirs(f"{work}/idle-agent", exist_ok=True)
    with open(f"{work}/idle-agent.toml", "w") as f:
        f.write(f'[serve]\nlisten = "127.0.0.1:{port}"\ndata_dir = "{work}/idle-agent"\nagent_name = "bench-idle"\n'
                '[audit]\ndisabled = true\n[logs]\ndisabled = true\n[process]\ndisabled = true\n'
                f'[[outputs]]\nname = "fleet"\ntype = "nats"\nservers = ["nats://127.0.0.1:{proxy.port}"]\n'
                'username = "agent"\npassword = "agent-pass"\ncontainers = ["jaga-bench-idle-none-*"]\n')
    process = subprocess.Popen([jaga, "--config", f"{work}/idle-agent.toml", "serve"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return process, proxy


def hub_host(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/hosts", timeout=5) as r:
        return next((h for h in json.load(r) if h["agent"] == name), None)


def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
    return cpu, rss


def hub_stored(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        return json.load(r)["stored_total"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--window", type=int, default=64, help="alerts in flight per agent")
    parser.add_argument("--drain", type=int, default=120, help="most seconds to wait for the hub to catch up")
    parser.add_argument("--jaga")
    parser.add_argument("--idle", choices=["real", "simulated"], default="real",
                        help="the idle agent: jaga serve through a counting proxy, or a simulated one")
    parser.add_argument("--heartbeat", type=int, default=30,
                        help="the simulated idle agent's heartbeat interval, s (0: none, as before heartbeats)")
    args = parser.parse_args()
    jaga = args.jaga
    if not jaga:
        subprocess.run(["cargo", "build", "--release", "-p", "jaga"], check=True)
        jaga = "target/release/jaga"
    work = tempfile.mkdtemp(prefix="jaga-fleet-bench-")
    os.chmod(work, 0o755)
    procs = []
    try:
        nats_port, pg_port, hub_port = free_port(), free_port(), free_port()
        with open(f"{work}/nats.conf", "w") as f:
            f.write(f'listen: 127.0.0.1:{nats_port}\njetstream {{ store_dir: "{work}/js" }}\n'
                    'authorization { users = [ { user: agent, password: agent-pass }, { user: hub, password: hub-pass } ] }\n')
        procs.append(subprocess.Popen(["/usr/sbin/nats-server", "-c", f"{work}/nats.conf"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(nats_port)
        bin_dir = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
        shutil.chown(work, "postgres", "postgres")
        subprocess.run(["runuser", "-u", "postgres", "--", f"{bin_dir}/initdb", "-A", "trust", "-U", "postgres",
                        "-D", f"{work}/pg"], check=True, stdout=subprocess.DEVNULL)
        procs.append(subprocess.Popen(["runuser", "-u", "postgres", "--", f"{bin_dir}/postgres", "-D", f"{work}/pg",
                                       "-c", "listen_addresses=127.0.0.1", "-c", f"port={pg_port}",
                                       "-c", f"unix_socket_directories={work}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(pg_port)
        with open(f"{work}/hub.toml", "w") as f:
            f.write(f'[hub]\nlisten = "127.0.0.1:{hub_port}"\n'
                    f'postgres = "host=127.0.0.1 port={pg_port} user=postgres dbname=postgres"\n'
                    f'[hub.nats]\nservers = ["nats://127.0.0.1:{nats_port}"]\nusername = "hub"\npassword = "hub-pass"\n')
        hub = subprocess.Popen([jaga, "--config", f"{work}/hub.toml", "hub"], stderr=subprocess.DEVNULL)
        procs.append(hub)
        wait_port(hub_port)

        results = multiprocessing.Queue()
        idle_results = multiprocessing.Queue()
        idle = multiprocessing.Process(target=idle_agent,
                                       args=(nats_port, args.seconds, args.heartbeat, idle_results))
        real_idle = None
        if args.idle == "real":
            real_idle, proxy = real_idle_agent(jaga, work, nats_port)
            procs.append(real_idle)
            idle_sent0 = proxy.sent()
        workers = [multiprocessing.Process(target=agent, args=(i, nats_port, args.seconds, args.window, results))
                   for i in range(args.agents)]
        cpu0, _ = proc_stat(hub.pid)
        stored0 = hub_stored(hub_port)
        start = time.time()
        if real_idle is None:
            idle.start()
        for w in workers:
            w.start()
        peak_rss = 0
        while any(w.is_alive() for w in workers):
            peak_rss = max(peak_rss, proc_stat(hub.pid)[1])
            time.sleep(1)
        acked = sum(results.get() for _ in workers)
        sent_at = time.time()
        stored_while_publishing = hub_stored(hub_port) - stored0
        # The hub drains what was acknowledged.
        while hub_stored(hub_port) - stored0 < acked and time.time() - sent_at < args.drain:
            peak_rss = max(peak_rss, proc_stat(hub.pid)[1])
            time.sleep(0.5)
        elapsed = time.time() - start
        stored = hub_stored(hub_port) - stored0
        cpu1, _ = proc_stat(hub.pid)
        if real_idle is None:
            idle.join()
            idle_bytes, idle_seconds = idle_results.get(), args.seconds
            idle_host = hub_host(hub_port, "bench-idle")
        else:
            idle_bytes, idle_seconds = proxy.sent() - idle_sent0, elapsed
            idle_host = hub_host(hub_port, "bench-idle")
        print(f"agents                 {args.agents} (window {args.window} alerts in flight each)")
        print(f"run                    {elapsed:.1f} s (publishing {sent_at - start:.1f} s, then the hub's drain)")
        print(f"PubAcks to agents      {acked} ({acked / elapsed:.0f} alerts/s)")
        print(f"stored by the hub      {stored} ({stored / elapsed:.0f} alerts/s end to end)")
        print(f"  while publishing     {stored_while_publishing} ({stored_while_publishing / (sent_at - start):.0f} alerts/s)")
        if stored < acked:
            print(f"  NOT DRAINED          {acked - stored} acknowledged but not stored after --drain {args.drain} s")
        print(f"hub CPU                {100 * (cpu1 - cpu0) / elapsed:.0f} % of one core")
        print(f"hub peak RSS           {peak_rss / 1024:.1f} MiB")
        print(f"idle agent upstream    {idle_bytes / idle_seconds:.2f} B/s ({idle_bytes} B in {idle_seconds:.0f} s, {args.idle})")
        print(f"idle agent in the hub  {json.dumps(idle_host)}")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
