#![allow(clippy::unwrap_used, clippy::expect_used)]
//! jaga as it is installed: the container image and the Debian package that
//! `scripts/package.sh` builds (the test script runs it first). The image
//! runs with the `docker run` line of README.md, as written there; the
//! package is installed on this machine with dpkg, removed and installed
//! again.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::agent::{free_port, get_with_token, Agent};
use common::{
    docker, docker_clean_up, docker_output, jaga, require_engine, unique_name, wait_for,
    TestContainer, BUSYBOX, NGINX,
};

const IMAGE: &str = "jaga:latest";

/// Held by the tests that change or read this host's users and groups: the
/// package's postinst adds its user to the docker group, which the audit
/// reports (1.2.2). Run side by side, the audit on the host and the one in
/// the image could read /etc/group on either side of the install.
static HOST_ACCOUNTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn host_accounts() -> std::sync::MutexGuard<'static, ()> {
    HOST_ACCOUNTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn require_image() {
    require_engine();
    let out = docker_output(&["image", "inspect", "-f", "{{.Id}}", IMAGE]);
    assert!(
        out.status.success(),
        "no image {IMAGE}: run scripts/package.sh first (scripts/test.sh does)"
    );
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `docker run` arguments of README.md's documented line, as written.
fn documented_run_args() -> Vec<String> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let after = readme
        .split_once("<!-- docker-run:")
        .expect("README.md has the documented docker run block")
        .1;
    let mut line = String::new();
    let mut inside = false;
    for row in after.lines() {
        let row = row.trim();
        if row.starts_with("docker run -d") {
            inside = true;
        }
        if inside {
            line.push_str(row.trim_end_matches('\\'));
            line.push(' ');
            if !row.ends_with('\\') {
                break;
            }
        }
    }
    assert!(line.ends_with(&format!("{IMAGE} ")), "{line}");
    line.split_whitespace().skip(2).map(str::to_owned).collect()
}

/// jaga's container, run as documented; removed (with its volume) on drop.
struct JagaContainer {
    name: String,
    volume: String,
    port: u16,
    token: String,
    _tokens: tempfile::TempDir,
}

impl JagaContainer {
    fn start() -> Self {
        let name = unique_name("jaga-image");
        let volume = format!("{name}-data");
        let port = free_port();
        // The token and its hash, as README.md makes them (with this build's binary).
        let token = String::from_utf8(jaga(&["token", "new"]).stdout)
            .unwrap()
            .trim()
            .to_owned();
        let hash = common::jaga_token_hash(&token);
        let tokens = tempfile::tempdir().unwrap();
        let tokens_file = tokens.path().join("tokens");
        std::fs::write(&tokens_file, format!("{hash}\n")).unwrap();
        let mut args: Vec<String> = Vec::new();
        for arg in documented_run_args() {
            let arg = match arg.as_str() {
                "jaga" => name.clone(),
                "127.0.0.1:9808:9808" => format!("127.0.0.1:{port}:9808"),
                a if a.starts_with("jaga-data:") => a.replacen("jaga-data", &volume, 1),
                a if a.starts_with("/etc/jaga/tokens:") => {
                    a.replacen("/etc/jaga/tokens", &tokens_file.display().to_string(), 1)
                }
                // The HEALTHCHECK as built, probed sooner than every 30 s.
                IMAGE => {
                    args.push("--health-interval=2s".to_owned());
                    IMAGE.to_owned()
                }
                other => other.to_owned(),
            };
            args.push(arg);
        }
        let mut full = vec!["run".to_owned(), "-d".to_owned()];
        full.extend(args);
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        docker(&refs);
        Self {
            name,
            volume,
            port,
            token,
            _tokens: tokens,
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        get_with_token(
            &format!("http://127.0.0.1:{}{path}", self.port),
            &self.token,
        )
    }

    fn logs(&self) -> String {
        text(&docker_output(&["logs", &self.name]))
    }

    /// Waits up to `secs` for `ready`, failing with the container's log.
    fn wait<T>(&self, what: &str, secs: u64, ready: impl FnMut() -> Option<T>) -> T {
        wait_for(Duration::from_secs(secs), ready).unwrap_or_else(|| {
            panic!(
                "jaga container: not {what} within {secs} s\n{}",
                self.logs()
            )
        })
    }
}

impl Drop for JagaContainer {
    fn drop(&mut self) {
        docker_clean_up(&["rm", "-f", &self.name]);
        docker_clean_up(&["volume", "rm", &self.volume]);
    }
}

#[test]
fn the_image_run_as_documented_serves_metrics_alerts_and_is_healthy() {
    require_image();
    let target = TestContainer::run(
        "image-target",
        &["--network", "none", BUSYBOX, "sleep", "600"],
    );
    let jaga = JagaContainer::start();
    jaga.wait("answering /healthz", 60, || {
        (jaga.get("/healthz").0 == 200).then_some(())
    });
    // Without the token: refused; /healthz stays open.
    let (status, _) =
        common::agent::get_url(&format!("http://127.0.0.1:{}/metrics", jaga.port), None);
    assert_eq!(status, 401);

    // Metrics of another container from the host's cgroups, and network
    // counters from /host/proc/<pid>/net/dev (of jaga's own container, the
    // one here with a network).
    let cpu = "container_cpu_usage_seconds_total{";
    let metrics = jaga.wait("exporting the target's series", 60, || {
        let (status, body) = jaga.get("/metrics");
        (status == 200
            && body
                .lines()
                .any(|l| l.starts_with(cpu) && l.contains(&format!("name=\"{}\"", target.name)))
            && body.lines().any(|l| {
                l.starts_with("container_network_receive_bytes_total{")
                    && l.contains(&format!("name=\"{}\"", jaga.name))
            }))
        .then_some(body)
    });
    assert!(
        metrics.contains("container_label_org_jaga_self=\"true\""),
        "jaga's own container is marked by its label"
    );

    // An exec into the target: the Docker event reaches jaga through the socket.
    docker(&["exec", &target.name, "cat", "/etc/hostname"]);
    let path = format!("/api/v1/alerts?rule_id=91011&container={}", target.name);
    let alerts = jaga.wait("alerting on the exec", 60, || {
        let (status, body) = jaga.get(&path);
        (status == 200 && body.contains("cat /etc/hostname")).then_some(body)
    });
    assert!(alerts.contains("\"91011\""), "{alerts}");

    // The image's HEALTHCHECK (`jaga health`) finds it healthy.
    jaga.wait("healthy by its HEALTHCHECK", 90, || {
        (docker(&["inspect", "-f", "{{.State.Health.Status}}", &jaga.name]) == "healthy")
            .then_some(())
    });
}

/// Finding identities (check/object kind/object id) and severities.
fn findings(json: &str) -> BTreeSet<String> {
    let report: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    report["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings array: {json}"))
        .iter()
        .map(|f| {
            format!(
                "{} {}/{} {}",
                f["check_id"].as_str().unwrap_or_default(),
                f["object"]["kind"].as_str().unwrap_or_default(),
                f["object"]["id"].as_str().unwrap_or_default(),
                f["severity"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn audit_in_the_image_finds_what_it_finds_on_the_host() {
    require_image();
    let _accounts = host_accounts();
    // A weak container (root, no limits, writable root, ...) and a strict one.
    let weak = TestContainer::run(
        "image-audit-weak",
        &["--network", "none", BUSYBOX, "sleep", "600"],
    );
    let strict = TestContainer::run(
        "image-audit-strict",
        &[
            "--network",
            "none",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--user",
            "65534",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "64",
            BUSYBOX,
            "sleep",
            "600",
        ],
    );
    // The containers' checks, and the host's (versions, docker group) and
    // the daemon's (Engine API, dockerd's command line, daemon.json): those
    // read under /host in the image.
    let containers = ["--container", &weak.name, "--container", &strict.name];
    let host_and_daemon = ["--check", "1.", "--check", "2.", "--check", "jaga-daemon"];
    for selection in [&containers[..], &host_and_daemon[..]] {
        let mut host_args = vec!["audit", "--format", "json"];
        host_args.extend_from_slice(selection);
        let host = jaga(&host_args);
        assert_eq!(host.status.code(), Some(0), "{}", text(&host));

        // A one-off audit in the image, with the mounts README.md gives it.
        let mut args = vec![
            "run",
            "--rm",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "DAC_READ_SEARCH",
            "-v",
            "/:/host:ro",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            IMAGE,
            "audit",
            "--format",
            "json",
        ];
        args.extend_from_slice(selection);
        let image = docker_output(&args);
        assert_eq!(image.status.code(), Some(0), "{}", text(&image));

        let on_host = findings(&String::from_utf8_lossy(&host.stdout));
        let in_image = findings(&String::from_utf8_lossy(&image.stdout));
        assert_eq!(on_host, in_image, "{selection:?}");
        let expected = if selection == &containers[..] {
            weak.id.as_str()
        } else {
            " daemon/"
        };
        assert!(on_host.iter().any(|f| f.contains(expected)), "{on_host:#?}");
    }
}

/// A CA and a server certificate for `localhost` signed by it, by openssl.
fn ca_and_server_cert(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=jaga test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext",
        "-out",
        "server.crt",
    ]);
}

/// `jaga outputs test hook` in the image, with a webhook to `url`.
fn webhook_test_in_image(url: &str, docker_args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("jaga.toml");
    std::fs::write(
        &config,
        format!("[[outputs]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{url}\"\ntimeout = \"10s\"\n"),
    )
    .unwrap();
    let mount = format!("{}:/etc/jaga/jaga.toml:ro", config.display());
    let mut args = vec!["run", "--rm", "--cap-drop", "ALL", "-v", &mount];
    args.extend_from_slice(docker_args);
    args.extend_from_slice(&[IMAGE, "outputs", "test", "hook"]);
    docker_output(&args)
}

#[test]
fn the_static_binary_resolves_names_and_verifies_tls_from_scratch() {
    require_image();
    // DNS: Docker's resolver on a user network names the nginx container.
    let network = unique_name("image-dns");
    docker(&["network", "create", &network]);
    struct Network(String);
    impl Drop for Network {
        fn drop(&mut self) {
            docker_clean_up(&["network", "rm", &self.0]);
        }
    }
    let _network = Network(network.clone());
    let web = TestContainer::run("image-dns-web", &["--network", &network, NGINX]);
    let out = webhook_test_in_image(
        &format!("http://{}/hook", web.name),
        &["--network", &network],
    );
    // nginx refuses a POST to a static path: an answer, so the name resolved.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the receiver answered: HTTP 40"),
        "{}",
        text(&out)
    );

    // TLS: a receiver with a certificate for localhost from a test CA (a
    // jaga serve), trusted when that CA is the image's bundle, not otherwise.
    require_engine();
    let certs = tempfile::tempdir().unwrap();
    ca_and_server_cert(certs.path());
    let data = tempfile::tempdir().unwrap();
    let mut agent = Agent::spawn(
        data.path(),
        &format!(
            "[serve.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            certs.path().join("server.crt").display(),
            certs.path().join("server.key").display()
        ),
        Default::default(),
    );
    let healthz = format!("https://localhost:{}/healthz", agent.port);
    agent.wait_until("/healthz answers over TLS", |_| {
        jaga(&["health", "--url", &healthz]).status.success()
    });
    let url = format!("https://localhost:{}/hook", agent.port);
    let bundle = format!(
        "{}:/etc/ssl/certs/ca-certificates.crt:ro",
        certs.path().join("ca.crt").display()
    );
    let trusted = webhook_test_in_image(&url, &["--network", "host", "-v", &bundle]);
    assert_eq!(trusted.status.code(), Some(1), "{}", text(&trusted));
    assert!(
        String::from_utf8_lossy(&trusted.stderr).contains("the receiver answered: HTTP 40"),
        "{}",
        text(&trusted)
    );
    let untrusted = webhook_test_in_image(&url, &["--network", "host"]);
    assert_eq!(untrusted.status.code(), Some(1), "{}", text(&untrusted));
    let stderr = String::from_utf8_lossy(&untrusted.stderr).to_lowercase();
    assert!(
        stderr.contains("did not take") && stderr.contains("certificate"),
        "{}",
        text(&untrusted)
    );
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(out.status.success(), "{program} {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_deb_installs_verifies_and_keeps_config_and_data_across_remove() {
    let dir = workspace().join("target/package");
    let deb = std::fs::read_dir(&dir)
        .ok()
        .and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "deb"))
        })
        .unwrap_or_else(|| panic!("no .deb in {}: run scripts/package.sh first", dir.display()));
    let deb = deb.display().to_string();
    let _accounts = host_accounts();
    // Off this machine when done, whatever happens.
    struct Purge;
    impl Drop for Purge {
        fn drop(&mut self) {
            let _ = run("dpkg", &["--purge", "jaga"]);
        }
    }
    let _purge = Purge;

    ok("dpkg", &["-i", &deb]);
    let version = ok("/usr/bin/jaga", &["--version"]);
    assert!(
        version.starts_with("jaga ") && version.contains("commit"),
        "{version}"
    );
    // The unit: systemd-analyze works without systemd as PID 1.
    let unit = "/lib/systemd/system/jaga.service";
    ok("systemd-analyze", &["verify", unit]);
    let security = run("systemd-analyze", &["security", "--offline=true", unit]);
    let report = String::from_utf8_lossy(&security.stdout);
    let exposure = report
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for jaga.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|score| score.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure score: {}", text(&security)));
    assert!(exposure <= 2.5, "exposure {exposure}:\n{report}");
    // The system user, the data directory, and a config it can check.
    let user = ok("getent", &["passwd", "jaga"]);
    assert!(user.contains(":/var/lib/jaga:"), "{user}");
    assert_eq!(
        ok("stat", &["-c", "%U %a", "/var/lib/jaga"]).trim(),
        "jaga 750"
    );
    let checked = ok(
        "runuser",
        &["-u", "jaga", "--", "/usr/bin/jaga", "config", "check"],
    );
    assert!(
        checked.contains("config file '/etc/jaga/jaga.toml' is valid"),
        "{checked}"
    );
    for file in [
        "/usr/share/man/man1/jaga.1.gz",
        "/usr/share/man/man1/jaga-serve.1.gz",
        "/usr/share/bash-completion/completions/jaga",
        "/usr/share/zsh/vendor-completions/_jaga",
        "/usr/share/fish/vendor_completions.d/jaga.fish",
        "/usr/share/doc/jaga/jaga.example.toml",
    ] {
        assert!(Path::new(file).is_file(), "{file} not installed");
    }

    // An admin's change and the agent's data outlive remove + install.
    let config = "/etc/jaga/jaga.toml";
    let edited = format!(
        "{}\n# edited by the packaging test\n",
        std::fs::read_to_string(config).unwrap()
    );
    std::fs::write(config, &edited).unwrap();
    std::fs::write("/var/lib/jaga/marker", "kept").unwrap();
    ok("dpkg", &["-r", "jaga"]);
    assert!(!Path::new("/usr/bin/jaga").exists());
    assert_eq!(std::fs::read_to_string(config).unwrap(), edited);
    ok("dpkg", &["-i", &deb]);
    assert_eq!(std::fs::read_to_string(config).unwrap(), edited);
    assert_eq!(
        std::fs::read_to_string("/var/lib/jaga/marker").unwrap(),
        "kept"
    );
    ok("/usr/bin/jaga", &["--version"]);

    ok("dpkg", &["--purge", "jaga"]);
    assert!(!Path::new(config).exists() && !Path::new("/var/lib/jaga").exists());
}

/// A copy of `packaging/compose` with the token files a user makes.
fn compose_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let source = workspace().join("packaging/compose");
    ok(
        "cp",
        &[
            "-r",
            &format!("{}/.", source.display()),
            &dir.path().display().to_string(),
        ],
    );
    std::fs::write(dir.path().join("jaga.token"), "jaga_test_token\n").unwrap();
    let hash = "sha256:".to_owned() + &"0".repeat(64);
    std::fs::write(dir.path().join("jaga-tokens"), format!("{hash}\n")).unwrap();
    dir
}

#[test]
fn the_compose_set_up_is_wired_and_its_configs_are_valid() {
    let dir = compose_dir();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path("compose.yaml")).unwrap()).unwrap();
    let services = &compose["services"];
    for service in ["jaga", "prometheus", "alertmanager", "grafana"] {
        assert!(services[service].is_mapping(), "no service {service}");
    }
    // Every file the services mount from here exists (the token files are the user's).
    for service in ["jaga", "prometheus", "alertmanager", "grafana"] {
        for volume in services[service]["volumes"].as_sequence().unwrap() {
            let source = volume.as_str().unwrap().split(':').next().unwrap();
            if let Some(local) = source.strip_prefix("./") {
                assert!(
                    dir.path().join(local).exists(),
                    "{service} mounts missing ./{local}"
                );
            }
        }
    }
    // jaga runs as documented for the image: least privilege, its label.
    let jaga_service = &services["jaga"];
    assert_eq!(jaga_service["cap_drop"][0].as_str(), Some("ALL"));
    assert_eq!(jaga_service["read_only"].as_bool(), Some(true));
    assert_eq!(
        jaga_service["labels"]["org.jaga.self"].as_str(),
        Some("true")
    );
    assert_eq!(
        jaga_service["ports"][0].as_str(),
        Some("127.0.0.1:9808:9808")
    );

    ok("promtool", &["check", "config", &path("prometheus.yml")]);
    ok("amtool", &["check-config", &path("alertmanager.yml")]);
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(path("grafana/dashboards/jaga.json")).unwrap(),
    )
    .unwrap();
    assert!(dashboard["panels"]
        .as_array()
        .is_some_and(|p| !p.is_empty()));

    // jaga's configs (compose and image), as `jaga serve` would take them,
    // with the token file where this test put it.
    let image_config = workspace().join("packaging/container/jaga.toml");
    for config in [dir.path().join("jaga.toml"), image_config] {
        let config_text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("/run/secrets/jaga_tokens", &path("jaga-tokens"));
        let checked = dir.path().join("checked.toml");
        std::fs::write(&checked, config_text).unwrap();
        let out = jaga(&[
            "--config",
            &checked.display().to_string(),
            "config",
            "check",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            config.display(),
            text(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("tokens required"),
            "{}",
            text(&out)
        );
    }
}
