#!/usr/bin/python3
"""The web dashboard under load, in Debian's headless Chromium.

1. Render: the dashboard's own chart code draws 7 days of minute rollups for
   30 containers (30 series x 10,080 points = 302,400 points) on a 1200 px
   canvas; each run's time in ms (performance.now around setData, which
   draws synchronously).
2. Agent CPU: N idle containers (100 by default), the release `jaga serve`
   at a 1 s interval; its CPU (utime+stime, % of one core) over --seconds
   with no browser, then with one dashboard open on the overview (live
   stream, table of every container redrawn at each sample), alternating,
   --runs times each.

Usage: /usr/bin/python3 bench/dashboard_render.py [--containers 100] [--seconds 60] [--runs 3] [--jaga PATH]
Needs a running engine and the test images (scripts/testbed.sh), Debian's
chromium, chromium-driver and python3-selenium, and
`cargo build --release -p jaga`. Run with Debian's python (selenium).
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_footprint import IMAGE, cpu_seconds, sh  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "chart_render.js")) as _f:
    RENDER = _f.read()


# Our own prefix: other benchmarks on a shared machine keep theirs.
PREFIX = "jaga-bench-dashboard-"


def remove_bench_containers():
    ids = sh("docker", "ps", "-aq", "--filter", f"name={PREFIX}").split()
    for chunk in range(0, len(ids), 50):
        sh("docker", "rm", "-f", *ids[chunk:chunk + 50])


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def spread(values, unit):
    values = sorted(values)
    return (f"median {statistics.median(values):.2f} {unit}, min {values[0]:.2f}, "
            f"max {values[-1]:.2f} (runs: {', '.join(f'{v:.2f}' for v in values)})")


def agent_cpu(pid, seconds):
    before, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - before) / (time.monotonic() - t0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jaga", default=os.path.join(os.path.dirname(__file__), "../target/release/jaga"))
    args = parser.parse_args()

    remove_bench_containers()
    data = tempfile.mkdtemp(prefix="jaga-bench-dashboard-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = os.path.join(data, "jaga.toml")
    with open(config, "w") as f:
        f.write(f'[serve]\nlisten = "127.0.0.1:{port}"\ndata_dir = "{data}/data"\n')
    agent = None
    driver = None
    try:
        for i in range(args.containers):
            sh("docker", "run", "-d", "--network", "none", "--name", f"{PREFIX}{i}", IMAGE, "sleep", "86400")
        agent = subprocess.Popen([args.jaga, "--config", config, "serve"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/"
        driver = browser()
        deadline = time.time() + 60
        while True:
            try:
                driver.get(url)
                if driver.execute_script("return !!document.querySelector('#containers tbody tr')"):
                    break
            except Exception:  # not up yet
                pass
            if time.time() > deadline:
                sys.exit("the dashboard did not show containers within 60 s")
            time.sleep(1)
        driver.set_script_timeout(120)
        answer = driver.execute_async_script(RENDER)
        if "error" in answer:
            sys.exit(f"render failed: {answer['error']}")
        print(f"chart of {answer['points']:,} points: {spread(answer['runs'], 'ms')}")

        time.sleep(10)  # warm-up: first passes, first rollups
        idle, watched = [], []
        for _ in range(args.runs):
            driver.get("about:blank")
            idle.append(agent_cpu(agent.pid, args.seconds))
            driver.get(url)
            watched.append(agent_cpu(agent.pid, args.seconds))
        rows = driver.execute_script("return document.querySelectorAll('#containers tbody tr').length")
        print(f"containers listed on the overview: {rows}")
        print(f"jaga serve CPU, no dashboard:       {spread(idle, '% of a core')}")
        print(f"jaga serve CPU, one overview open:  {spread(watched, '% of a core')}")
        print(f"difference of medians: {statistics.median(watched) - statistics.median(idle):+.2f} % of a core")
    finally:
        if driver:
            driver.quit()
        if agent:
            agent.terminate()
            agent.wait(timeout=30)
        remove_bench_containers()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
