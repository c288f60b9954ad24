#!/usr/bin/env python3
"""Process events: attribution and completeness of short processes, alert
latency, and jaga's CPU at a steady exec rate. A benchmark, not a test.

`jaga serve` runs with its defaults (every feature on), plus a process rule
(level 3, `[alerts] min_level = 0`)
that raises an alert for every execution in the container named
`jaga-bench-exec-*`, so each execution it saw can be read back from
/api/v1/alerts with its executable, arguments and whether they were read.

Phase 1, short: `seq N | xargs -n1 /bin/true` in the container (each true
  lives about a millisecond). Every execution must be attributed to the
  container; the executable must be known for 100 %.
Phase 2, 15 ms: `xargs -n1 /bin/sleep` over N lines of `0.015`: the
  arguments must be known for >= 95 % of these processes (>= 10 ms).
Phase 3, latency: `docker exec C /bin/cat /etc/shadow -` with stdin held
  open a moment, `--latency-runs` times; the time from invoking docker exec
  to the alert being served by the API (polled every 10 ms). An upper
  bound: docker exec itself takes part of it.
Phase 4, CPU: a second container (no rule matches it, so the rules run but
  store nothing) runs batches of /bin/true paced at `--rate` execs/s for
  `--seconds`; jaga's CPU (utime + stime from /proc) in % of one core, less
  its CPU over 10 s without executions, and the rate jaga counted
  (jaga_process_execs_total).

Usage: python3 bench/process_exec.py [--jaga target/release/jaga] [--count 1000]
       [--rate 500] [--seconds 20] [--latency-runs 20]
Needs root (the proc connector and fanotify), a Docker engine with the test
bed's images (bash scripts/testbed.sh) and `cargo build --release -p jaga`.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BUSYBOX = "jaga-test/busybox:latest"
RULE = """process_rules:
  - id: "96990"
    level: 3
    description: bench execution
    match:
      container_name: { regex: '^jaga-bench-exec-' }
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return r.read().decode()


def metric(port, name):
    for line in get(port, "/metrics").splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def docker(*args, check=True):
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True).stdout.strip()


def alerts(port, name, after=0):
    out = []
    while True:
        page = json.loads(get(port, f"/api/v1/alerts?rule_id=96990&container={name}&limit=1000&after={after}"))
        out.extend(page)
        if len(page) < 1000:
            return out
        after = max(a["seq"] for a in page)


def wait_alerts(port, name, want, timeout=60):
    deadline = time.time() + timeout
    found = []
    while time.time() < deadline:
        found = alerts(port, name)
        if len(found) >= want:
            break
        time.sleep(0.5)
    time.sleep(1)
    return alerts(port, name)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jaga", default="target/release/jaga")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--latency-runs", type=int, default=20)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="jaga-bench-exec-")
    port = free_port()
    rules = os.path.join(work, "bench-rule.yml")
    open(rules, "w").write(RULE)
    config = os.path.join(work, "jaga.toml")
    open(config, "w").write(
        f'[serve]\nlisten = "127.0.0.1:{port}"\ndata_dir = "{work}/data"\n'
        f'[alerts]\nmin_level = 0\n'
        f'[process]\nrules = ["{rules}"]\n'
    )
    agent = subprocess.Popen([args.jaga, "--config", config, "serve"], stderr=subprocess.DEVNULL)
    containers = []
    try:
        for _ in range(100):
            try:
                if json.loads(get(port, "/healthz")).get("status") == "ok":
                    break
            except Exception:
                pass
            time.sleep(0.2)
        health = json.loads(get(port, "/healthz"))
        print(f"mode: {health.get('process')}")

        name = f"jaga-bench-exec-{os.getpid()}"
        docker("run", "-d", "--name", name, "--network", "none", BUSYBOX, "sleep", "3600")
        containers.append(name)
        cid = docker("inspect", "-f", "{{.Id}}", name)
        time.sleep(2)

        # Phase 1: short processes.
        docker("exec", name, "sh", "-c", f"seq {args.count} | xargs -n1 /bin/true")
        seen = wait_alerts(port, name, args.count + 2)
        trues = [a for a in seen if a["data"].get("cmdline", "").startswith(("/bin/true", "/bin/busybox"))
                 and a["data"].get("exe") == "/bin/busybox" and a["data"].get("name") in ("true", "busybox")]
        attributed = sum(1 for a in trues if a["container"]["id"] == cid)
        exe_known = sum(1 for a in trues if a["data"].get("exe"))
        args_known = sum(1 for a in trues if a["data"].get("args_known") == "true")
        print(f"phase 1: {args.count} x /bin/true: seen {len(trues)}, attributed {attributed}, "
              f"executable known {exe_known} ({100 * exe_known / max(1, args.count):.1f} %), "
              f"arguments read {args_known} ({100 * args_known / max(1, args.count):.1f} %)")
        before = {a["id"] for a in seen}

        # Phase 2: 15 ms processes.
        docker("exec", name, "sh", "-c", f"seq {args.count} | sed 's/.*/0.015/' | xargs -n1 /bin/sleep")
        seen = [a for a in wait_alerts(port, name, len(before) + args.count + 3) if a["id"] not in before]
        sleeps = [a for a in seen if a["data"].get("exe") == "/bin/busybox"
                  and (a["data"].get("name") == "sleep" or a["data"].get("cmdline", "").startswith("/bin/sleep"))]
        with_args = sum(1 for a in sleeps if a["data"].get("cmdline") == "/bin/sleep 0.015")
        print(f"phase 2: {args.count} x sleep 0.015: seen {len(sleeps)}, "
              f"attributed {sum(1 for a in sleeps if a['container']['id'] == cid)}, "
              f"arguments known {with_args} ({100 * with_args / max(1, args.count):.1f} %)")

        # Phase 3: latency, docker exec invoked -> alert served.
        latencies = []
        for run in range(args.latency_runs):
            base = max((a["seq"] for a in alerts(port, name)), default=0)
            started = time.time()
            proc = subprocess.Popen(["docker", "exec", name, "sh", "-c", f"sleep 0.05 | /bin/cat /etc/shadow{run} -"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while time.time() - started < 10:
                found = alerts(port, name, base)
                if any(a["data"].get("cmdline") == f"/bin/cat /etc/shadow{run} -" for a in found):
                    latencies.append(time.time() - started)
                    break
                time.sleep(0.01)
            proc.wait()
        if latencies:
            latencies.sort()
            print(f"phase 3: docker exec -> alert served: p50 {statistics.median(latencies) * 1000:.0f} ms, "
                  f"max {latencies[-1] * 1000:.0f} ms over {len(latencies)} runs "
                  f"(docker exec alone: see `time docker exec {name} true`)")

        # Phase 4: CPU at a steady rate, in a container no rule matches.
        quiet = f"jaga-bench-quiet-{os.getpid()}"
        # Each wall-clock second: `--rate` executions, then idle until the
        # next second (the `date` and `usleep` calls are executions too, and
        # jaga counts them in the rate printed below).
        script = (f"end=$(( $(date +%s) + {args.seconds} )); now=$(date +%s); "
                  f"while [ $now -lt $end ]; do seq {args.rate} | xargs -n1 /bin/true; "
                  f"while [ $(date +%s) -eq $now ]; do usleep 20000; done; now=$(date +%s); done")
        docker("run", "-d", "--name", quiet, "--network", "none", BUSYBOX, "sleep", "3600")
        containers.append(quiet)
        time.sleep(2)
        # jaga's own work without executions (collection every second, ...).
        idle_cpu0, idle_t0 = cpu_seconds(agent.pid), time.time()
        time.sleep(10)
        idle = 100 * (cpu_seconds(agent.pid) - idle_cpu0) / (time.time() - idle_t0)
        execs0, cpu0, t0 = metric(port, "jaga_process_execs_total"), cpu_seconds(agent.pid), time.time()
        docker("exec", quiet, "sh", "-c", script)
        time.sleep(1.5)
        execs1, cpu1, t1 = metric(port, "jaga_process_execs_total"), cpu_seconds(agent.pid), time.time()
        rate = (execs1 - execs0) / (t1 - t0)
        cpu = 100 * (cpu1 - cpu0) / (t1 - t0)
        extra = cpu - idle
        print(f"phase 4: {rate:.0f} execs/s counted by jaga for {t1 - t0:.0f} s: jaga CPU {cpu:.2f} % of a core, "
              f"{idle:.2f} % idle before, so {extra:.2f} % for the executions "
              f"({extra * args.rate / max(rate, 1):.2f} % scaled to {args.rate}/s)")
        lost = [line for line in get(port, "/metrics").splitlines()
                if line.startswith(("jaga_process_events_lost_total", "jaga_process_unknown_total"))]
        print("\n".join(lost))
    finally:
        for c in containers:
            docker("rm", "-f", c, check=False)
        agent.terminate()
        agent.wait(timeout=20)


if __name__ == "__main__":
    sys.exit(main())
