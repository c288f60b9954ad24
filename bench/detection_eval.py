#!/usr/bin/env python3
"""Detection and false positives of jaga's built-in web rules, per attack
family and per field, beside libinjection, on corpora that are not ours.

Attacks (see bench/corpora/README.md for sources and licences):
  - public payload lists: PayloadsAllTheThings (vendored in bench/corpora)
    and wfuzz's injection lists (Debian's `wfuzz` package, fetched here);
  - our own edge cases (bench/corpora/own-edge-cases.tsv), reported apart;
  - optionally (--sqlmap) sqlmap from PyPI with tamper scripts, through the
    real nginx test container (needs scripts/testbed.sh), as before.
Each payload is placed in every field an attacker controls, as a client
sends it and nginx logs it: the query (`url`), the User-Agent, the Referer
(a search URL carrying it), and the body of a JSON application log. The
lines are judged by `jaga logtest --format json`; a payload is detected in
a field when a per-request attack rule (level >= 5; not the burst rules
93190/93195) fires. libinjection (PyPI libinjection-python) judges the
decoded payload itself (SQLi and XSS detectors), once per payload.

Benign traffic: every distinct URL in the documentation of the Debian
packages in DEBIAN_DOCS (fetched with `apt-get download`), at least 100,000
real-world URLs, each requested with its path and query and sent with the
whole URL as Referer, with User-Agents from PyPI's fake-useragent data.
A false positive is any attack rule on such a line; reported per field.

Usage: python3 bench/detection_eval.py [--jaga target/release/jaga] [--sqlmap]
Creates a venv under /tmp for libinjection, fake-useragent and sqlmap, and a
cache of Debian packages under /tmp/jaga-eval-cache.
"""

import argparse
import collections
import glob
import gzip
import html
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

VENV = "/tmp/jaga-eval-venv"
CACHE = "/tmp/jaga-eval-cache"
CORPORA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpora")
# Debian 12 packages (documentation, and sources that cite issues and
# specs) whose URLs make the benign set, with the changelogs and copyright
# files of the packages installed on the machine (/usr/share/doc).
DEBIAN_DOCS = ["python3.11-doc", "perl-doc", "rust-doc", "golang-1.19-doc", "nodejs-doc",
               "postgresql-doc-15", "debian-handbook", "git-doc", "nginx-doc", "apache2-doc",
               "linux-doc-6.1", "openjdk-17-doc", "python-django-doc", "wordpress", "mediawiki",
               "ruby3.1-doc", "cmake-doc", "sphinx-doc", "golang-1.19-src", "rust-src", "phpmyadmin"]
INSTALLED_DOCS = "/usr/share/doc"
MIN_BENIGN = 100_000
FIELDS = ["url", "user_agent", "referer", "body"]
NOT_PER_REQUEST = {"93190", "93195"}
URL_IN_TEXT = re.compile(rb"https?://[A-Za-z0-9.-]+\.[A-Za-z]{2,}(?::\d+)?(?:/[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]*)?")
# Placeholders of documentation (`%s`, `${VAR}`, `{name}`) are not URLs anyone requests.
TEMPLATE = re.compile(r"[$]|%s|%d|\{|\bexample\.(com|org|net)\b|localhost")


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, capture_output=True, text=True, **kw)


def venv(with_sqlmap):
    if not os.path.exists(f"{VENV}/bin/python"):
        sh(sys.executable, "-m", "venv", VENV)
    packages = ["libinjection-python", "fake-useragent"] + (["sqlmap"] if with_sqlmap else [])
    sh(f"{VENV}/bin/pip", "install", "-q", *packages)
    return f"{VENV}/bin/python"


_REFRESHED = []


def refresh_package_lists():
    """`apt-get update`, once a run; whether it was run now."""
    if _REFRESHED:
        return False
    _REFRESHED.append(True)
    got = subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
    if got.returncode != 0:
        print(f"  apt-get update failed: {got.stderr.strip()[-200:]}", file=sys.stderr)
    return got.returncode == 0


def debian_package(name):
    """The unpacked tree of a Debian package, downloaded once into the cache."""
    root = os.path.join(CACHE, name)
    if os.path.isdir(root):
        return root
    os.makedirs(CACHE, exist_ok=True)

    def download():
        got = subprocess.run(["apt-get", "download", "-qq", name], cwd=CACHE, capture_output=True, text=True)
        return got, glob.glob(os.path.join(CACHE, f"{name}_*.deb"))

    got, debs = download()
    if (got.returncode != 0 or not debs) and refresh_package_lists():
        # The machine's package lists name a version the mirror no longer
        # holds (a security update replaced it: 404): read them anew once.
        got, debs = download()
    if got.returncode != 0 or not debs:
        print(f"  apt-get download {name} failed: {got.stderr.strip()[-200:]}", file=sys.stderr)
        return None
    sh("dpkg", "-x", debs[0], root)
    return root


# --- attacks ---------------------------------------------------------------

def public_attacks():
    """(family, source, payload) from the vendored lists and wfuzz."""
    out = []
    for path in sorted(glob.glob(os.path.join(CORPORA, "*.txt"))):
        name = os.path.basename(path)
        if name.startswith("benign"):
            continue
        family, source = name[:-4].split(".", 1)
        lines = [l.rstrip("\n") for l in open(path, encoding="utf-8") if l.strip()]
        if family == "xss-handlers":
            for handler in lines:
                out.append(("xss", source, f"<x {handler}=alert(1)>"))
                out.append(("xss", source, f'" {handler}="alert(1)'))
            continue
        out.extend((family, source, l) for l in lines)
    wfuzz = debian_package("wfuzz")
    if wfuzz:
        lists = os.path.join(wfuzz, "usr/share/wfuzz/wordlist")
        for family, rel in [("sqli", "Injections/SQL.txt"), ("xss", "Injections/XSS.txt"),
                            ("traversal", "Injections/Traversal.txt"), ("traversal", "vulns/dirTraversal.txt")]:
            path = os.path.join(lists, rel)
            if os.path.exists(path):
                for l in open(path, encoding="utf-8", errors="replace"):
                    # The file to reach is a placeholder: one no rule knows by name.
                    l = l.rstrip("\n").replace("{FILE}", "app/config.ini")
                    # Comments; and single characters (`'`, `%21`, `asc`) are probes, not
                    # payloads any rule should alert on.
                    if l.startswith("# ") or len(urllib.parse.unquote(l).strip()) <= 3:
                        continue
                    out.append((family, "wfuzz-" + rel.split("/")[-1][:-4].lower(), l))
    return out


def own_attacks():
    out = []
    for l in open(os.path.join(CORPORA, "own-edge-cases.tsv"), encoding="utf-8"):
        if l.startswith("#") or not l.strip():
            continue
        family, payload = l.rstrip("\n").split("\t", 1)
        out.append((family, "own", payload))
    return out


# What a client leaves as it is in a request target; the rest it encodes.
# `%` stays: list payloads come pre-encoded (`%0Aid`).
SAFE = "/?:@!$&'()*+,;=-._~%[]"


def nginx_escape(text):
    """What nginx's log module writes for a header value: `"`, `\\`, control
    and non-ASCII bytes as \\xHH."""
    out = []
    for b in text.encode("utf-8", "surrogateescape"):
        if b in (0x22, 0x5C) or b < 0x20 or b >= 0x7F:
            out.append(f"\\x{b:02X}")
        else:
            out.append(chr(b))
    return "".join(out)


def access_line(target, referer="-", agent="Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"):
    target = nginx_escape(target)
    return (f'203.0.113.9 - - [23/Nov/2026:03:24:25 +0000] "GET {target} HTTP/1.1" 200 612 '
            f'"{nginx_escape(referer)}" "{nginx_escape(agent)}"')


def placed(field, payload):
    """The log line that carries `payload` in `field`."""
    if field == "url":
        return access_line("/item?id=" + urllib.parse.quote(payload, safe=SAFE))
    if field == "user_agent":
        return access_line("/", agent=payload)
    if field == "referer":
        return access_line("/", referer="https://www.example.net/search?q=" + urllib.parse.quote(payload, safe=SAFE))
    return json.dumps({"remote_addr": "203.0.113.9", "request_method": "POST", "request_uri": "/api/items",
                       "status": 200, "request_body": payload})


# --- benign ----------------------------------------------------------------

def benign_urls():
    """Distinct URLs (without fragment: browsers do not send it) and how many each source gave."""
    urls, counts = set(), {}
    roots = [(name, debian_package(name)) for name in DEBIAN_DOCS] + [("installed " + INSTALLED_DOCS, INSTALLED_DOCS)]
    for name, root in roots:
        if not root:
            continue
        before = len(urls)
        for dirpath, _, files in os.walk(root):
            for file in files:
                path = os.path.join(dirpath, file)
                if os.path.islink(path):
                    continue
                try:
                    data = gzip.open(path).read() if file.endswith(".gz") else open(path, "rb").read()
                except (OSError, EOFError):
                    continue
                for m in URL_IN_TEXT.findall(data):
                    url = html.unescape(m.decode("ascii")).rstrip(").,;:'!*")
                    if not TEMPLATE.search(url):
                        urls.add(url.split("#", 1)[0])
        counts[name] = len(urls) - before
    return sorted(u for u in urls if urllib.parse.urlsplit(u).netloc), counts


def benign_agents(python):
    code = ("import json, glob, os, fake_useragent\n"
            "d = os.path.dirname(fake_useragent.__file__)\n"
            "for p in glob.glob(d + '/data/*.json*'):\n"
            "    for l in open(p):\n"
            "        l = l.strip()\n"
            "        if l.startswith('{'):\n"
            "            ua = json.loads(l).get('useragent')\n"
            "            if ua: print(ua)\n")
    agents = sorted(set(sh(python, "-c", code).stdout.splitlines()))
    if not agents:
        sys.exit("fake-useragent gave no User-Agents: its data file moved")
    return agents


# --- judging -----------------------------------------------------------------

def judge(jaga, lines):
    """For each line: the per-request attack rules that fired, as (id, field)."""
    if not lines:
        return []
    out = subprocess.run([jaga, "logtest", "--format", "json"], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, check=True).stdout.splitlines()
    verdicts = [json.loads(l) for l in out if l.startswith("{")]
    if len(verdicts) != len(lines):
        sys.exit(f"jaga logtest gave {len(verdicts)} verdicts for {len(lines)} lines")
    return [[(r["id"], r.get("payload_field")) for r in v["rules"]
             if r["level"] >= 5 and r["id"] not in NOT_PER_REQUEST] for v in verdicts]


LIBINJECTION = r'''
import sys, json
import libinjection
def hit(r, key):
    return bool(r.get(key) if isinstance(r, dict) else r)
for line in sys.stdin:
    value = json.loads(line)
    print("1" if hit(libinjection.is_sql_injection(value), "is_sqli") or hit(libinjection.is_xss(value), "is_xss") else "0")
'''


def libinjection_verdicts(python, values):
    out = subprocess.run([python, "-c", LIBINJECTION], input="\n".join(json.dumps(v) for v in values) + "\n",
                         capture_output=True, text=True, check=True).stdout.split()
    return [v == "1" for v in out]


def decoded(payload):
    # What the application receives: percent-escapes undone once.
    return urllib.parse.unquote(payload)


# --- sqlmap ----------------------------------------------------------------

TAMPERS = ["", "space2comment", "between,randomcase", "charencode", "versionedmorekeywords",
           "space2plus,equaltolike", "apostrophenullencode,space2mssqlblank", "percentage,halfversionedmorekeywords"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sqlmap_lines(python):
    """nginx log lines of sqlmap runs with each tamper set, through the test container."""
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
        for i, tamper in enumerate(TAMPERS):
            # The tamper set's index rides in a parameter sqlmap leaves alone (-p id).
            cmd = [f"{VENV}/bin/sqlmap", "-u", f"{base}/users/?t={i}&id=1", "-p", "id", "--batch", "--level", "2", "--risk", "2",
                   "--flush-session", "--random-agent", "--technique", "BEUSTQ", "-v", "0"]
            if tamper:
                cmd += ["--tamper", tamper]
            subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        logs = sh("docker", "logs", name).stdout.splitlines()
    finally:
        sh("docker", "rm", "-f", name, check=False)
    out = []
    for line in logs:
        m = re.search(r'"GET /users/\?t=(\d+)&(\S*) HTTP', line)
        # sqlmap's baseline requests carry no payload.
        if m and urllib.parse.unquote_plus(m.group(2)) not in ("id=1", ""):
            out.append((TAMPERS[int(m.group(1))] or "none", line))
    return out


# --- report ----------------------------------------------------------------

def pct(part, whole):
    return f"{100 * part / whole:6.2f}%" if whole else "     -"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jaga", default="target/release/jaga")
    parser.add_argument("--sqlmap", action="store_true", help="also run sqlmap with tamper scripts (docker)")
    parser.add_argument("--only-sqlmap", action="store_true", help="skip the lists and the benign set")
    parser.add_argument("--out", default="/tmp/jaga-eval")
    args = parser.parse_args()
    args.sqlmap |= args.only_sqlmap
    if not os.access(args.jaga, os.X_OK):
        sys.exit(f"{args.jaga} not found: run `cargo build --release -p jaga` first")
    os.makedirs(args.out, exist_ok=True)
    python = venv(args.sqlmap)

    if not args.only_sqlmap:
        lists_and_benign(args, python)
    if args.sqlmap:
        sqlmap_report(args, python)
    print(f"\nmisses and false alarms in {args.out}/")


def lists_and_benign(args, python):
    # Attacks, per family and field.
    for title, attacks in [("public lists", public_attacks()), ("own edge cases", own_attacks())]:
        lines, keys = [], []
        for family, source, payload in attacks:
            for field in FIELDS:
                lines.append(placed(field, payload))
                keys.append((family, source, payload, field))
        verdicts = judge(args.jaga, lines)
        lib = libinjection_verdicts(python, [decoded(p) for _, _, p in attacks])
        lib_of = {p: hit for (_, _, p), hit in zip(attacks, lib)}
        table = collections.defaultdict(lambda: [0, 0])
        lib_table = collections.defaultdict(lambda: [0, 0])
        missed = collections.defaultdict(list)
        for (family, source, payload, field), rules in zip(keys, verdicts):
            table[(family, field)][0] += 1
            table[(family, field)][1] += bool(rules)
            if not rules:
                missed[family].append(f"{field}\t{source}\t{payload}")
        for family, source, payload in attacks:
            lib_table[family][0] += 1
            lib_table[family][1] += lib_of[payload]
        print(f"\n== attacks: {title} ({len(attacks)} payloads, each in {len(FIELDS)} fields) ==")
        print(f"{'family':12} {'payloads':>8} " + " ".join(f"{f:>11}" for f in FIELDS) + f" {'libinjection':>13}")
        for family in sorted(lib_table):
            n = lib_table[family][0]
            cells = " ".join(f"{pct(table[(family, f)][1], table[(family, f)][0]):>11}" for f in FIELDS)
            print(f"{family:12} {n:8} {cells} {pct(lib_table[family][1], n):>13}")
        total = sum(v[0] for v in table.values())
        print(f"{'all':12} {len(attacks):8} jaga {pct(sum(v[1] for v in table.values()), total)} of payload-fields, "
              f"libinjection {pct(sum(lib), len(lib))} of payloads")
        with open(os.path.join(args.out, f"missed-{title.replace(' ', '-')}.txt"), "w") as f:
            for family in sorted(missed):
                f.write("\n".join(f"{family}\t{m}" for m in missed[family]) + "\n")

    # Benign: real-world URLs as request targets and referers.
    urls, counts = benign_urls()
    if len(urls) < MIN_BENIGN:
        print(f"\nonly {len(urls)} benign URLs (want {MIN_BENIGN}): a package of DEBIAN_DOCS is missing", file=sys.stderr)
    agents = benign_agents(python)
    rnd = random.Random(16)
    edge = [l.strip() for l in open(os.path.join(CORPORA, "benign-edge-cases.txt")) if l.strip() and not l.startswith("#")]
    # Each URL twice: requested (path and query, with a browser's agent),
    # and sent as the Referer of a plain request.
    as_target, as_referer = [], []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        as_target.append(access_line(target, agent=rnd.choice(agents)))
        as_referer.append(access_line("/", referer=url))
    with_query = sum(1 for u in urls if "?" in u)
    print(f"\n== benign: {len(urls)} real-world URLs ({with_query} with a query), {len(agents)} User-Agents "
          f"(PyPI fake-useragent) ==")
    print("new URLs per source: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    hosts = collections.Counter(urllib.parse.urlsplit(u).netloc for u in urls)
    print("most frequent hosts: " + ", ".join(f"{h} {n}" for h, n in hosts.most_common(8)))
    alarms = []
    for what, lines in [("requested", as_target), ("as referer", as_referer), ("known false positives", [access_line(t) for t in edge])]:
        verdicts = judge(args.jaga, lines)
        by_field, by_rule = collections.Counter(), collections.Counter()
        flagged = 0
        for line, rules in zip(lines, verdicts):
            if rules:
                flagged += 1
                alarms.append(line)
                for rule, field in set(rules):
                    by_field[field] += 1
                    by_rule[rule] += 1
        fields = ", ".join(f"{f} {n}" for f, n in by_field.most_common())
        rules = ", ".join(f"{r} {n}" for r, n in by_rule.most_common())
        print(f"{what:22} {len(lines):7} lines, {flagged:5} with an alert ({pct(flagged, len(lines)).strip()})"
              f"{'; fields: ' + fields + '; rules: ' + rules if flagged else ''}")
    lib = libinjection_verdicts(python, [urllib.parse.unquote_plus(urllib.parse.urlsplit(u).query) for u in urls])
    print(f"libinjection on the decoded queries: {sum(lib)} ({pct(sum(lib), len(urls)).strip()})")
    with open(os.path.join(args.out, "false-alarms.txt"), "w") as f:
        f.write("\n".join(alarms) + "\n")



def sqlmap_report(args, python):
    runs = sqlmap_lines(python)
    if not runs:
        sys.exit("sqlmap sent no request with a payload: is jaga-test/nginx answering on /users/?")
    verdicts = judge(args.jaga, [l for _, l in runs])
    per = collections.defaultdict(lambda: [0, 0])
    missed = []
    for (tamper, line), rules in zip(runs, verdicts):
        per[tamper][0] += 1
        per[tamper][1] += bool(rules)
        if not rules:
            missed.append(f"{tamper}\t{line}")
    with open(os.path.join(args.out, "missed-sqlmap.txt"), "w") as f:
        f.write("\n".join(missed) + "\n")
    print("\n== sqlmap through nginx, per tamper set ==")
    for tamper, (n, hits) in per.items():
        print(f"  {tamper:40} {n:6} requests {pct(hits, n)} detected")


if __name__ == "__main__":
    main()
