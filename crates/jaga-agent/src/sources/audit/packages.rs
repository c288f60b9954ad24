//! Which package provides the running Engine, containerd and runc, and
//! what the distribution says that package fixed. Everything is read under
//! the host root (jaga may run in a container with the host's / at /host);
//! the host's own `rpm` runs only when the host root is `/`.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::models::SystemInfo;
use flate2::read::GzDecoder;
use jaga_audit::distro::{
    parse_alpine_secdb, parse_alpine_secfixes, parse_debian_changelog, parse_rpm_changelog,
    ComponentProvenance, FixEntry, FixRecord, InstalledPackage, PackageManager, Provenance,
};

mod rpmdb;

/// A changelog larger than this, unpacked, is not read (runc's is 30 kB).
const MAX_RECORD_BYTES: u64 = 16 << 20;
/// Symlinks followed when resolving a path under the host root.
const MAX_SYMLINKS: usize = 40;
/// The host's `rpm` gets this long per query.
const RPM_TIMEOUT: Duration = Duration::from_secs(20);
/// Where a runtime named without a path is looked for when dockerd's own
/// PATH is unreadable.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where to look.
#[derive(Debug, Clone)]
pub struct PackageSources<'a> {
    pub root: &'a Path,
    /// Alpine secdb JSON files or APKBUILDs (`[audit] alpine_secfixes`):
    /// Alpine keeps no record of fixes on the host itself.
    pub alpine_secfixes: &'a [PathBuf],
}

/// The provenance of each component. `local`: the engine runs on this
/// host (a unix socket); else its binaries are not here to look at.
pub async fn component_provenance(
    sources: &PackageSources<'_>,
    info: &SystemInfo,
    local: bool,
) -> Vec<ComponentProvenance> {
    let mut out = Vec::new();
    for component in ["engine", "containerd", "runc"] {
        let provenance = if local {
            match running_binary(sources.root, component, info) {
                Ok(binary) => provenance_of(sources, &binary).await,
                Err(why) => Provenance::Unknown { why },
            }
        } else {
            Provenance::Unknown {
                why: "the engine is not on this host (not a unix socket)".to_owned(),
            }
        };
        out.push(ComponentProvenance {
            component: component.to_owned(),
            provenance,
        });
    }
    out
}

/// The host path of the component's binary: dockerd's and containerd's
/// from their process, runc's from the daemon's default runtime.
fn running_binary(root: &Path, component: &str, info: &SystemInfo) -> Result<String, String> {
    match component {
        "engine" => process_binary(root, "dockerd"),
        "containerd" => process_binary(root, "containerd"),
        _ => {
            let runtime = info.default_runtime.as_deref().unwrap_or("runc");
            let path = info
                .runtimes
                .as_ref()
                .and_then(|r| r.get(runtime))
                .and_then(|r| r.path.clone())
                .unwrap_or_else(|| runtime.to_owned());
            if path.starts_with('/') {
                return Ok(path);
            }
            let dockerd = process_pid(root, "dockerd").unwrap_or_default();
            find_in_path(root, &dockerd, &path)
                .ok_or_else(|| format!("runtime '{path}' is in no directory of dockerd's PATH"))
        }
    }
}

fn process_pid(root: &Path, comm: &str) -> Option<String> {
    let entries = std::fs::read_dir(root.join("proc")).ok()?;
    entries.flatten().find_map(|entry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_it = name.bytes().all(|b| b.is_ascii_digit())
            && std::fs::read_to_string(entry.path().join("comm")).is_ok_and(|c| c.trim() == comm);
        is_it.then_some(name)
    })
}

fn process_binary(root: &Path, comm: &str) -> Result<String, String> {
    let pid = process_pid(root, comm)
        .ok_or_else(|| format!("no {comm} process under {}", root.join("proc").display()))?;
    let dir = root.join("proc").join(&pid);
    if let Ok(exe) = std::fs::read_link(dir.join("exe")) {
        let exe = exe.to_string_lossy();
        return Ok(exe.trim_end_matches(" (deleted)").to_owned());
    }
    // Without the right to read exe: the command line's first word, when absolute.
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let argv0 = String::from_utf8_lossy(argv0).into_owned();
    if argv0.starts_with('/') {
        return Ok(argv0);
    }
    // Started by name (`dockerd`): found as its shell found it, through PATH.
    if !argv0.is_empty() && !argv0.contains('/') {
        if let Some(found) = find_in_path(root, &pid, &argv0) {
            return Ok(found);
        }
    }
    Err(format!("cannot read the binary of {comm} (pid {pid})"))
}

/// `name` in the first directory of the process's PATH (the usual one when
/// its environment cannot be read) that holds it, as a host path.
fn find_in_path(root: &Path, pid: &str, name: &str) -> Option<String> {
    let search = process_path_variable(root, pid).unwrap_or_else(|| DEFAULT_PATH.to_owned());
    search
        .split(':')
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| format!("{}/{name}", dir.trim_end_matches('/')))
        .find(|candidate| under(root, candidate).is_file())
}

fn process_path_variable(root: &Path, pid: &str) -> Option<String> {
    let environ = std::fs::read(root.join("proc").join(pid).join("environ")).ok()?;
    environ.split(|b| *b == 0).find_map(|var| {
        let var = String::from_utf8_lossy(var);
        var.strip_prefix("PATH=").map(str::to_owned)
    })
}

/// `path` (as the host sees it) under `root`.
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Resolves symlinks of a host path inside `root`: an absolute link target
/// is the host's, so it is taken under `root` too, never jaga's own `/`.
fn resolve_under(root: &Path, path: &str) -> String {
    let mut pending: Vec<String> = path.split('/').rev().map(str::to_owned).collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let host_path = format!("/{}/{part}", resolved.join("/"));
        let target = std::fs::symlink_metadata(under(root, &host_path))
            .ok()
            .filter(|m| m.file_type().is_symlink())
            .and_then(|_| std::fs::read_link(under(root, &host_path)).ok());
        match target {
            Some(target) if links < MAX_SYMLINKS => {
                links += 1;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    resolved.clear();
                }
                pending.extend(target.split('/').rev().map(str::to_owned));
            }
            _ => resolved.push(part),
        }
    }
    format!("/{}", resolved.join("/"))
}

/// The names a package database may list the binary under: as found, with
/// symlinks resolved, and with or without `/usr` (merged /usr).
fn path_candidates(root: &Path, binary: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for path in [binary.to_owned(), resolve_under(root, binary)] {
        let alias = match path.strip_prefix("/usr") {
            Some(rest) if rest.starts_with('/') => rest.to_owned(),
            _ => format!("/usr{path}"),
        };
        for candidate in [path, alias] {
            if !out.contains(&candidate) {
                out.push(candidate);
            }
        }
    }
    out
}

async fn provenance_of(sources: &PackageSources<'_>, binary: &str) -> Provenance {
    let root = sources.root;
    let candidates = path_candidates(root, binary);
    let owned = |package: InstalledPackage| {
        Provenance::Packaged(InstalledPackage {
            binary: binary.to_owned(),
            ..package
        })
    };
    let mut searched = Vec::new();
    if under(root, "/var/lib/dpkg/status").is_file() {
        searched.push("dpkg");
        if let Some(package) = dpkg_owner(root, &candidates) {
            return owned(package);
        }
    }
    if under(root, "/lib/apk/db/installed").is_file() {
        searched.push("apk");
        if let Some(package) = apk_owner(sources, &candidates) {
            return owned(package);
        }
    }
    match rpm_owner(root, &candidates).await {
        RpmOwner::NoDatabase => {}
        RpmOwner::Unreadable(why) => {
            return Provenance::Unknown {
                why: format!("{binary}: {why}"),
            }
        }
        RpmOwner::NotOwned => searched.push("rpm"),
        RpmOwner::Owned(package) => return owned(package),
    }
    if searched.is_empty() {
        Provenance::Unknown {
            why: format!(
                "no package database (dpkg, rpm, apk) under {}",
                root.display()
            ),
        }
    } else {
        Provenance::Unpackaged {
            binary: binary.to_owned(),
        }
    }
}

/// dpkg: the `*.list` file naming the binary, the version from `status`,
/// the record from `/usr/share/doc/<package>/changelog.Debian*.gz`.
fn dpkg_owner(root: &Path, candidates: &[String]) -> Option<InstalledPackage> {
    let lists = std::fs::read_dir(under(root, "/var/lib/dpkg/info")).ok()?;
    let owner = lists.flatten().find_map(|entry| {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let package = file_name.strip_suffix(".list")?;
        let text = std::fs::read_to_string(entry.path()).ok()?;
        text.lines()
            .any(|line| candidates.iter().any(|c| c == line))
            .then(|| package.to_owned())
    })?;
    let (name, arch) = match owner.split_once(':') {
        Some((name, arch)) => (name.to_owned(), Some(arch.to_owned())),
        None => (owner.clone(), None),
    };
    let status = std::fs::read_to_string(under(root, "/var/lib/dpkg/status")).ok()?;
    let version = dpkg_installed_version(&status, &name, arch.as_deref())?;
    Some(InstalledPackage {
        binary: String::new(),
        manager: PackageManager::Dpkg,
        fixes: debian_changelog(root, &name),
        name,
        version,
    })
}

/// The version of an installed package in dpkg's `status` file.
fn dpkg_installed_version(status: &str, name: &str, arch: Option<&str>) -> Option<String> {
    status.split("\n\n").find_map(|stanza| {
        let fields: HashMap<&str, &str> = stanza
            .lines()
            .filter_map(|line| line.split_once(": "))
            .collect();
        let wanted = fields.get("Package") == Some(&name)
            && arch.is_none_or(|a| fields.get("Architecture") == Some(&a))
            && fields
                .get("Status")
                .is_some_and(|s| s.ends_with(" installed"));
        wanted
            .then(|| fields.get("Version").map(|v| (*v).to_owned()))
            .flatten()
    })
}

fn debian_changelog(root: &Path, package: &str) -> Result<FixRecord, String> {
    let doc = format!("/usr/share/doc/{package}");
    let dir = resolve_under(root, &doc);
    let mut names: Vec<String> = std::fs::read_dir(under(root, &dir))
        .map_err(|e| format!("cannot read {doc}: {e}"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("changelog.Debian"))
        .collect();
    // A binNMU's changelog.Debian.<arch>.gz first: it is the newer entry.
    names.sort_by_key(|n| (n == "changelog.Debian.gz", n.clone()));
    if names.is_empty() {
        return Err(format!(
            "no changelog.Debian.gz in {doc} (a minimal install may exclude /usr/share/doc)"
        ));
    }
    let mut entries = Vec::new();
    let mut read = Vec::new();
    for name in names {
        let path = format!("{dir}/{name}");
        let text = read_text(&under(root, &path), name.ends_with(".gz"))?;
        entries.extend(parse_debian_changelog(&text));
        read.push(path);
    }
    Ok(FixRecord {
        source: read.join(" and "),
        entries,
    })
}

/// A text file, gunzipped when `gzip`, at most [`MAX_RECORD_BYTES`].
fn read_text(path: &Path, gzip: bool) -> Result<String, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    let reader: Box<dyn std::io::Read> = if gzip {
        Box::new(GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    reader
        .take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot unpack {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return Err(format!(
            "{} is larger than {MAX_RECORD_BYTES} bytes unpacked: not read",
            path.display()
        ));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// apk: the package whose `F:` directory and `R:` file name the binary in
/// `/lib/apk/db/installed`.
fn apk_owner(sources: &PackageSources<'_>, candidates: &[String]) -> Option<InstalledPackage> {
    let db = std::fs::read_to_string(under(sources.root, "/lib/apk/db/installed")).ok()?;
    for stanza in db.split("\n\n") {
        let (mut name, mut version, mut dir) = (None, None, "");
        let mut owns = false;
        for line in stanza.lines() {
            match line.split_at_checked(2) {
                Some(("P:", v)) => name = Some(v),
                Some(("V:", v)) => version = Some(v),
                Some(("F:", v)) => dir = v,
                Some(("R:", file)) => {
                    let path = format!("/{dir}/{file}");
                    owns |= candidates.contains(&path);
                }
                _ => {}
            }
        }
        if let (true, Some(name), Some(version)) = (owns, name, version) {
            return Some(InstalledPackage {
                binary: String::new(),
                manager: PackageManager::Apk,
                name: name.to_owned(),
                version: version.to_owned(),
                fixes: alpine_record(sources.alpine_secfixes, name),
            });
        }
    }
    None
}

fn alpine_record(files: &[PathBuf], package: &str) -> Result<FixRecord, String> {
    if files.is_empty() {
        return Err("Alpine keeps no record of fixed CVEs on the host: set [audit] alpine_secfixes to Alpine's secdb files".to_owned());
    }
    let mut entries: Vec<FixEntry> = Vec::new();
    let mut read = Vec::new();
    for file in files {
        let text = read_text(file, false)?;
        let found = if file.extension().is_some_and(|e| e == "json") {
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("{} is not secdb JSON: {e}", file.display()))?;
            parse_alpine_secdb(&json, package)
        } else {
            let (name, block) = parse_alpine_secfixes(&text);
            (name.as_deref() == Some(package)).then_some(block)
        };
        if let Some(found) = found {
            entries.extend(found);
            read.push(file.display().to_string());
        }
    }
    if read.is_empty() {
        return Err(format!(
            "no file of [audit] alpine_secfixes lists package '{package}'"
        ));
    }
    Ok(FixRecord {
        source: read.join(" and "),
        entries,
    })
}

enum RpmOwner {
    NoDatabase,
    Unreadable(String),
    NotOwned,
    Owned(InstalledPackage),
}

async fn rpm_owner(root: &Path, candidates: &[String]) -> RpmOwner {
    let databases = ["/var/lib/rpm", "/usr/lib/sysimage/rpm"];
    let Some(db_dir) = databases
        .iter()
        .map(|d| resolve_under(root, d))
        .find(|d| under(root, d).is_dir())
    else {
        return RpmOwner::NoDatabase;
    };
    if root == Path::new("/") {
        return rpm_query(candidates).await;
    }
    let sqlite = under(root, &format!("{db_dir}/rpmdb.sqlite"));
    if !sqlite.is_file() {
        return RpmOwner::Unreadable(format!(
            "the RPM database in {db_dir} is not rpmdb.sqlite (Berkeley DB or ndb): jaga reads those only through rpm, when the host root is /"
        ));
    }
    let candidates = candidates.to_vec();
    let found = tokio::task::spawn_blocking(move || rpmdb::find_owner(&sqlite, &candidates));
    match found.await {
        Ok(Ok(Some(package))) => RpmOwner::Owned(package),
        Ok(Ok(None)) => RpmOwner::NotOwned,
        Ok(Err(why)) => RpmOwner::Unreadable(why),
        Err(e) => RpmOwner::Unreadable(format!("the RPM database read failed: {e}")),
    }
}

/// The host's `rpm`, at host root `/` only: the owner of the first
/// candidate path it knows, then that package's changelog.
async fn rpm_query(candidates: &[String]) -> RpmOwner {
    const FORMAT: &str = "%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n";
    for path in candidates {
        let Ok(owner) = run_rpm(&["-qf", "--queryformat", FORMAT, "--", path]).await else {
            continue;
        };
        let Some((name, version)) = owner.lines().next().and_then(|l| l.split_once('\t')) else {
            continue;
        };
        // The epoch is kept only when rpm has one: `0:` adds nothing.
        let version = version.strip_prefix("0:").unwrap_or(version).to_owned();
        let nvr = format!(
            "{name}-{}",
            version
                .rsplit_once(':')
                .map_or(version.as_str(), |(_, v)| v)
        );
        let fixes = run_rpm(&["-q", "--changelog", "--", &nvr])
            .await
            .map(|text| FixRecord {
                source: format!("rpm -q --changelog {nvr}"),
                entries: parse_rpm_changelog(&text),
            });
        return RpmOwner::Owned(InstalledPackage {
            binary: String::new(),
            manager: PackageManager::Rpm,
            name: name.to_owned(),
            version,
            fixes,
        });
    }
    RpmOwner::NotOwned
}

async fn run_rpm(args: &[&str]) -> Result<String, String> {
    let mut command = tokio::process::Command::new("rpm");
    command.args(args).kill_on_drop(true);
    match tokio::time::timeout(RPM_TIMEOUT, command.output()).await {
        Err(_) => Err(format!(
            "rpm {} took longer than {RPM_TIMEOUT:?}",
            args.join(" ")
        )),
        Ok(Err(e)) => Err(format!("cannot run rpm: {e}")),
        Ok(Ok(out)) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Ok(Ok(out)) => Err(format!(
            "rpm {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

#[cfg(test)]
mod tests;
