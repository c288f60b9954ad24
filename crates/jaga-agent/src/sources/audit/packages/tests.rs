//! Package lookups in fixture host trees: what jaga in a container sees
//! at --host-root, absolute symlinks included.

use std::collections::HashMap;
use std::io::Write as _;

use bollard::models::{Runtime, SystemInfo};
use jaga_audit::distro::RecordSays;

use super::rpmdb::{
    build_header, HeaderValue, TAG_BASENAMES, TAG_CHANGELOGNAME, TAG_CHANGELOGTEXT, TAG_DIRINDEXES,
    TAG_DIRNAMES, TAG_EPOCH, TAG_NAME, TAG_RELEASE, TAG_VERSION,
};
use super::*;

fn write(root: &Path, path: &str, content: &[u8]) {
    let full = under(root, path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, content).unwrap();
}

fn symlink(root: &Path, path: &str, target: &str) {
    let full = under(root, path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, full).unwrap();
}

fn gzip(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

fn info() -> SystemInfo {
    SystemInfo {
        default_runtime: Some("runc".to_owned()),
        runtimes: Some(HashMap::from([(
            "runc".to_owned(),
            Runtime {
                path: Some("runc".to_owned()),
                ..Default::default()
            },
        )])),
        ..Default::default()
    }
}

fn packaged<'a>(found: &'a [ComponentProvenance], component: &str) -> &'a InstalledPackage {
    match found
        .iter()
        .find(|c| c.component == component)
        .map(|c| &c.provenance)
    {
        Some(Provenance::Packaged(p)) => p,
        other => panic!("{component}: {other:?}"),
    }
}

const RUNC_CHANGELOG: &str = "runc (1.1.5+ds1-1+deb12u1) bookworm-security; urgency=high\n\n  * CVE-2024-21626: leaked fds\n\n -- A <a@b>  Fri, 02 Feb 2024 21:53:05 +0800\n";

/// A Debian host: dockerd running from /usr/sbin, runc found through
/// dockerd's PATH, runc's doc directory an absolute symlink (which must
/// resolve under the host root, not jaga's /), docker.io with a binNMU.
fn debian_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "/proc/4242/comm", b"dockerd\n");
    symlink(root, "/proc/4242/exe", "/usr/sbin/dockerd");
    write(
        root,
        "/proc/4242/environ",
        b"LANG=C\0PATH=/nowhere:/usr/sbin\0",
    );
    write(root, "/proc/self/comm", b"jaga\n");
    write(root, "/usr/sbin/dockerd", b"");
    write(root, "/usr/sbin/runc", b"");
    write(
        root,
        "/var/lib/dpkg/status",
        b"Package: runc\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.1.5+ds1-1+deb12u1\n\nPackage: docker.io\nStatus: install ok installed\nArchitecture: amd64\nVersion: 20.10.24+dfsg1-1+deb12u1+b6\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n",
    );
    write(
        root,
        "/var/lib/dpkg/info/runc.list",
        b"/.\n/usr\n/usr/sbin\n/usr/sbin/runc\n",
    );
    write(
        root,
        "/var/lib/dpkg/info/docker.io.list",
        b"/usr/sbin/dockerd\n",
    );
    write(
        root,
        "/var/lib/dpkg/info/gone.list",
        b"/usr/sbin/containerd\n",
    );
    symlink(root, "/usr/share/doc/runc", "/usr/share/doc/runc-shared");
    write(
        root,
        "/usr/share/doc/runc-shared/changelog.Debian.gz",
        &gzip(RUNC_CHANGELOG),
    );
    write(
        root,
        "/usr/share/doc/docker.io/changelog.Debian.gz",
        &gzip("docker.io (20.10.24+dfsg1-1+deb12u1) bookworm; urgency=high\n\n  * Fix CVE-2024-41110: Authz zero length regression\n\n -- B <b@c>  Sat, 12 Oct 2024 15:19:49 +0000\n"),
    );
    write(
        root,
        "/usr/share/doc/docker.io/changelog.Debian.amd64.gz",
        &gzip("docker.io (20.10.24+dfsg1-1+deb12u1+b6) bookworm; urgency=low, binary-only=yes\n\n  * Binary-only non-maintainer upload for amd64; no source changes.\n\n -- C <c@d>  Thu, 07 May 2026 21:09:36 +0000\n"),
    );
    dir
}

#[tokio::test]
async fn dpkg_packages_and_changelogs_are_read_under_the_host_root() {
    let dir = debian_root();
    let sources = PackageSources {
        root: dir.path(),
        alpine_secfixes: &[],
    };
    let found = component_provenance(&sources, &info(), true).await;

    let runc = packaged(&found, "runc");
    assert_eq!(runc.binary, "/usr/sbin/runc");
    assert_eq!(
        (runc.name.as_str(), runc.version.as_str()),
        ("runc", "1.1.5+ds1-1+deb12u1")
    );
    let record = runc.fixes.as_ref().unwrap();
    assert_eq!(
        record.source,
        "/usr/share/doc/runc-shared/changelog.Debian.gz"
    );
    assert!(matches!(
        record.says("CVE-2024-21626", runc.manager, &runc.version),
        RecordSays::Fixed(_)
    ));

    let engine = packaged(&found, "engine");
    assert_eq!(engine.version, "20.10.24+dfsg1-1+deb12u1+b6");
    let record = engine.fixes.as_ref().unwrap();
    assert_eq!(
        record.source,
        "/usr/share/doc/docker.io/changelog.Debian.amd64.gz and /usr/share/doc/docker.io/changelog.Debian.gz"
    );
    assert!(matches!(
        record.says("CVE-2024-41110", engine.manager, &engine.version),
        RecordSays::Fixed(e) if e.heading.starts_with("docker.io (20.10.24+dfsg1-1+deb12u1) ")
    ));

    // No containerd process: unknown, said why.
    let containerd = found.iter().find(|c| c.component == "containerd").unwrap();
    assert!(
        matches!(&containerd.provenance, Provenance::Unknown { why } if why.starts_with("no containerd process")),
        "{containerd:?}"
    );
}

#[tokio::test]
async fn a_binary_no_package_owns_is_unpackaged_and_a_missing_changelog_is_said() {
    let dir = debian_root();
    let root = dir.path();
    write(root, "/usr/local/bin/runc", b"");
    let mut info = info();
    info.runtimes = Some(HashMap::from([(
        "runc".to_owned(),
        Runtime {
            path: Some("/usr/local/bin/runc".to_owned()),
            ..Default::default()
        },
    )]));
    std::fs::remove_file(under(root, "/usr/share/doc/docker.io/changelog.Debian.gz")).unwrap();
    std::fs::remove_file(under(
        root,
        "/usr/share/doc/docker.io/changelog.Debian.amd64.gz",
    ))
    .unwrap();
    let sources = PackageSources {
        root,
        alpine_secfixes: &[],
    };
    let found = component_provenance(&sources, &info, true).await;
    assert_eq!(
        found[2].provenance,
        Provenance::Unpackaged {
            binary: "/usr/local/bin/runc".to_owned()
        }
    );
    let engine = packaged(&found, "engine");
    assert_eq!(
        engine.fixes.as_ref().unwrap_err(),
        "no changelog.Debian.gz in /usr/share/doc/docker.io (a minimal install may exclude /usr/share/doc)"
    );

    let remote = component_provenance(&sources, &info, false).await;
    assert!(remote
        .iter()
        .all(|c| matches!(c.provenance, Provenance::Unknown { .. })));
}

#[tokio::test]
async fn apk_owner_with_secfixes_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "/usr/bin/runc", b"");
    write(
        root,
        "/lib/apk/db/installed",
        b"C:Q1abc=\nP:busybox\nV:1.36.1-r15\nF:bin\nR:busybox\n\nC:Q1def=\nP:runc\nV:1.1.12-r3\nF:usr/bin\nR:runc\n",
    );
    let secdb = root.join("community.json");
    std::fs::write(
        &secdb,
        r#"{"packages":[{"pkg":{"name":"runc","secfixes":{"1.1.12-r0":["CVE-2024-21626"]}}}]}"#,
    )
    .unwrap();
    let mut info = info();
    info.runtimes = None;
    let files = [secdb.clone()];
    let sources = PackageSources {
        root,
        alpine_secfixes: &files,
    };
    let found = component_provenance(&sources, &info, true).await;
    let runc = packaged(&found, "runc");
    assert_eq!(runc.binary, "/usr/bin/runc");
    assert_eq!(
        (runc.manager, runc.version.as_str()),
        (PackageManager::Apk, "1.1.12-r3")
    );
    let record = runc.fixes.as_ref().unwrap();
    assert_eq!(record.source, secdb.display().to_string());
    assert!(matches!(
        record.says("CVE-2024-21626", runc.manager, &runc.version),
        RecordSays::Fixed(_)
    ));

    let none = PackageSources {
        root,
        alpine_secfixes: &[],
    };
    let found = component_provenance(&none, &info, true).await;
    assert!(packaged(&found, "runc")
        .fixes
        .as_ref()
        .unwrap_err()
        .contains("[audit] alpine_secfixes"));
}

#[tokio::test]
async fn rpm_sqlite_database_under_a_host_root_is_read_without_rpm() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "/usr/bin/runc", b"");
    std::fs::create_dir_all(under(root, "/var/lib/rpm")).unwrap();
    let db = under(root, "/var/lib/rpm/rpmdb.sqlite");
    let strs = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let other = build_header(&[
        (TAG_NAME, HeaderValue::Str(strs(&["bash"]))),
        (TAG_VERSION, HeaderValue::Str(strs(&["5.2"]))),
        (TAG_RELEASE, HeaderValue::Str(strs(&["1.fc39"]))),
        (TAG_DIRNAMES, HeaderValue::Strs(strs(&["/usr/bin/"]))),
        (TAG_BASENAMES, HeaderValue::Strs(strs(&["bash"]))),
        (TAG_DIRINDEXES, HeaderValue::Int(vec![0])),
    ]);
    let runc = build_header(&[
        (TAG_NAME, HeaderValue::Str(strs(&["runc"]))),
        (TAG_EPOCH, HeaderValue::Int(vec![2])),
        (TAG_VERSION, HeaderValue::Str(strs(&["1.1.9"]))),
        (TAG_RELEASE, HeaderValue::Str(strs(&["2.fc39"]))),
        (
            TAG_DIRNAMES,
            HeaderValue::Strs(strs(&["/usr/share/doc/runc/", "/usr/bin/"])),
        ),
        (TAG_BASENAMES, HeaderValue::Strs(strs(&["README", "runc"]))),
        (TAG_DIRINDEXES, HeaderValue::Int(vec![0, 1])),
        (
            TAG_CHANGELOGNAME,
            HeaderValue::Strs(strs(&[
                "Packager <p@example.org> - 2:1.1.9-2",
                "Packager <p@example.org> - 2:1.1.9-1",
            ])),
        ),
        (
            TAG_CHANGELOGTEXT,
            HeaderValue::Strs(strs(&[
                "- backport the fix of CVE-2024-21626",
                "- update to 1.1.9",
            ])),
        ),
    ]);
    let connection = rusqlite::Connection::open(&db).unwrap();
    connection
        .execute_batch(
            "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)",
        )
        .unwrap();
    for blob in [other, vec![1, 2, 3], runc] {
        connection
            .execute("INSERT INTO Packages (blob) VALUES (?1)", [blob])
            .unwrap();
    }
    drop(connection);
    let before = std::fs::read_dir(under(root, "/var/lib/rpm"))
        .unwrap()
        .count();

    let sources = PackageSources {
        root,
        alpine_secfixes: &[],
    };
    let found = component_provenance(&sources, &info(), true).await;
    let runc = packaged(&found, "runc");
    assert_eq!(
        (runc.name.as_str(), runc.version.as_str()),
        ("runc", "2:1.1.9-2.fc39")
    );
    let record = runc.fixes.as_ref().unwrap();
    assert_eq!(record.entries.len(), 2);
    assert_eq!(record.entries[0].version.as_deref(), Some("2:1.1.9-2"));
    assert!(matches!(
        record.says("CVE-2024-21626", runc.manager, &runc.version),
        RecordSays::Fixed(_)
    ));
    // Read-only: no journal or -shm file left on the host.
    assert_eq!(
        std::fs::read_dir(under(root, "/var/lib/rpm"))
            .unwrap()
            .count(),
        before
    );
}

#[test]
fn absolute_symlinks_resolve_under_the_host_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    symlink(root, "/sbin", "usr/sbin");
    symlink(root, "/usr/sbin/docker-runc", "/usr/local/../bin/runc");
    symlink(root, "/loop", "/loop");
    assert_eq!(resolve_under(root, "/sbin/docker-runc"), "/usr/bin/runc");
    assert_eq!(resolve_under(root, "/loop/x"), "/loop/x");
    assert_eq!(
        path_candidates(root, "/sbin/docker-runc"),
        vec![
            "/sbin/docker-runc",
            "/usr/sbin/docker-runc",
            "/usr/bin/runc",
            "/bin/runc"
        ]
    );
}

#[test]
fn a_dockerd_started_by_name_is_found_through_path_when_its_exe_cannot_be_read() {
    // In jaga's image (no CAP_SYS_PTRACE) /proc/<pid>/exe cannot be read, and
    // the test bed starts the daemon as plain `dockerd`: the engine's package
    // was then unknown and a backported CVE reported as a finding.
    let root = tempfile::tempdir().unwrap();
    write(root.path(), "proc/686/comm", b"dockerd\n");
    write(root.path(), "proc/686/cmdline", b"dockerd\0--debug\0");
    write(root.path(), "usr/sbin/dockerd", b"ELF");
    assert_eq!(
        process_binary(root.path(), "dockerd").unwrap(),
        "/usr/sbin/dockerd"
    );
    write(root.path(), "proc/687/comm", b"containerd\n");
    write(root.path(), "proc/687/cmdline", b"containerd\0");
    assert!(process_binary(root.path(), "containerd").is_err());
}
