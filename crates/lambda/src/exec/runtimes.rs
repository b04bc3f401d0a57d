//! Runtimes: what an execution environment runs for each `Runtime`, and the official runtime
//! interface clients installed once into the runtime cache.
//!
//! - `python3.x`: `python3 -m awslambdaric <handler>` — the official client from PyPI, pinned,
//!   installed with the host's `/usr/bin/python3 -m pip install --target <cache>/python`. Every
//!   `python3.x` runtime runs on the host's one python3 (the client's native part is built for
//!   it), whatever minor version the function names. boto3 (pinned) is installed beside it, as
//!   AWS's Python runtimes include the SDK.
//! - `nodejs*`: the official `aws-lambda-ric` from npm (3.3.0: 4.x needs Node ≥ 22), installed
//!   with npm into `<cache>/nodejs`; its install script builds native code, which npm 11 runs
//!   only for packages listed in the project's `allowScripts`.
//! - `provided.*`: the function's own `bootstrap` (`/var/task/bootstrap`, else `/opt/bootstrap`).
//!
//! Installs go to a temporary directory renamed into place when complete, so concurrent
//! installers (other ferrocloud processes sharing the cache) never see half an install.
//! Must not live here: environments, the Runtime API.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The pinned Python runtime interface client.
pub const PYTHON_RIC: &str = "awslambdaric==4.2.2";
/// The AWS SDK that AWS's Python runtimes include (handlers `import boto3` without packaging it).
pub const PYTHON_SDK: &str = "boto3==1.44.8";
/// The pinned Node.js runtime interface client.
pub const NODE_RIC: &str = "aws-lambda-ric@3.3.0";
/// The file that marks a complete install (its content is the pin).
const MARKER: &str = ".ferrocloud-ric";

/// The kind of runtime a function uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Python,
    Node,
    Provided,
    Image,
}

impl Family {
    /// The subdirectory of the runtime cache (None: nothing to install).
    pub fn cache_name(self) -> Option<&'static str> {
        match self {
            Family::Python => Some("python"),
            Family::Node => Some("nodejs"),
            Family::Provided | Family::Image => None,
        }
    }

    fn pin(self) -> &'static str {
        match self {
            Family::Python => "awslambdaric==4.2.2 boto3==1.44.8",
            Family::Node => NODE_RIC,
            Family::Provided | Family::Image => "",
        }
    }
}

/// The family of a function's runtime.
pub fn family(package_image: bool, runtime: Option<&str>) -> Result<Family, String> {
    if package_image {
        return Ok(Family::Image);
    }
    match runtime {
        Some(r) if r.starts_with("python3") => Ok(Family::Python),
        Some(r) if r.starts_with("nodejs") => Ok(Family::Node),
        Some(r) if r.starts_with("provided") => Ok(Family::Provided),
        Some(r) => Err(format!("The runtime {r} is not supported by ferrocloud")),
        None => Err("The function has no runtime".into()),
    }
}

/// Whether the client of `fam` is installed in `cache`.
pub fn installed(cache: &Path, fam: Family) -> bool {
    match fam.cache_name() {
        None => true,
        Some(name) => std::fs::read_to_string(cache.join(name).join(MARKER))
            .map(|s| s.trim() == fam.pin())
            .unwrap_or(false),
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let mut msg = String::from_utf8_lossy(&out.stderr).into_owned();
    msg.push_str(&String::from_utf8_lossy(&out.stdout));
    let tail: String = msg
        .trim()
        .chars()
        .rev()
        .take(1500)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Err(format!("{what} failed ({}): {tail}", out.status))
}

/// Installs the runtime interface client of `fam` into `<cache>/<python|nodejs>` unless it is
/// there already (blocking; takes seconds for Python, minutes for Node's native build).
pub fn install(cache: &Path, fam: Family) -> Result<(), String> {
    let Some(name) = fam.cache_name() else {
        return Ok(());
    };
    if installed(cache, fam) {
        return Ok(());
    }
    std::fs::create_dir_all(cache)
        .map_err(|e| format!("cannot create the runtime cache {}: {e}", cache.display()))?;
    let tmp = cache.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        fc_types::ids::random_hex(8)
    ));
    std::fs::create_dir_all(&tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
    let result = match fam {
        Family::Python => run(
            Command::new("/usr/bin/python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--no-cache-dir",
                    "--disable-pip-version-check",
                    "--no-warn-script-location",
                    "--target",
                ])
                .arg(&tmp)
                .args([PYTHON_RIC, PYTHON_SDK])
                .env("PIP_ROOT_USER_ACTION", "ignore"),
            "pip install awslambdaric",
        ),
        Family::Node => {
            // npm 11 runs a dependency's install scripts only when the project allows them.
            let pkg = serde_json::json!({
                "name": "ferrocloud-lambda-runtime",
                "private": true,
                "allowScripts": {"aws-lambda-ric": true}
            });
            std::fs::write(tmp.join("package.json"), pkg.to_string())
                .map_err(|e| format!("write package.json: {e}"))
                .and_then(|_| {
                    run(
                        Command::new("npm")
                            .args([
                                "install",
                                "--no-audit",
                                "--no-fund",
                                "--omit=dev",
                                "--loglevel=error",
                                NODE_RIC,
                            ])
                            .current_dir(&tmp),
                        "npm install aws-lambda-ric",
                    )
                })
                .and_then(|_| {
                    if node_entry(&tmp).is_file() {
                        Ok(())
                    } else {
                        Err(format!(
                            "npm installed aws-lambda-ric without {}",
                            node_entry(&tmp).display()
                        ))
                    }
                })
        }
        Family::Provided | Family::Image => Ok(()),
    };
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::write(tmp.join(MARKER), fam.pin()) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(format!("write install marker: {e}"));
    }
    let dest = cache.join(name);
    if dest.exists() && !installed(cache, fam) {
        // An older pin or a broken install: moved away, then removed.
        let old = cache.join(format!(".{name}.old-{}", fc_types::ids::random_hex(8)));
        let _ = std::fs::rename(&dest, &old);
        let _ = std::fs::remove_dir_all(&old);
    }
    match std::fs::rename(&tmp, &dest) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            if installed(cache, fam) {
                // Another process finished first.
                Ok(())
            } else {
                Err(format!(
                    "cannot move the install into {}: {e}",
                    dest.display()
                ))
            }
        }
    }
}

/// The Node.js client's entry point under an install directory.
pub fn node_entry(dir: &Path) -> PathBuf {
    dir.join("node_modules/aws-lambda-ric/bin/index.mjs")
}

/// Paths as the environment sees them.
pub struct Paths {
    /// `/var/task` (or the code directory itself with the process driver).
    pub task: String,
    /// `/var/runtime` (or the cache directory of the family).
    pub runtime: String,
    /// `/opt` (or the merged layers directory).
    pub opt: String,
}

/// The command line of an environment of a zip function.
pub fn command(fam: Family, handler: &str, p: &Paths, bootstrap: &str) -> Vec<String> {
    match fam {
        Family::Python => vec![
            "/usr/bin/python3".into(),
            "-m".into(),
            "awslambdaric".into(),
            handler.into(),
        ],
        Family::Node => vec![
            "/usr/bin/node".into(),
            node_entry(Path::new(&p.runtime)).display().to_string(),
            handler.into(),
        ],
        Family::Provided | Family::Image => vec![bootstrap.to_string()],
    }
}

/// Runtime-specific environment variables.
pub fn variables(fam: Family, runtime: &str, p: &Paths) -> Vec<(String, String)> {
    let mut v = Vec::new();
    match fam {
        Family::Python => {
            let minor = runtime.strip_prefix("python").unwrap_or("3");
            v.push((
                "PYTHONPATH".into(),
                format!(
                    "{task}:{opt}/python/lib/python{minor}/site-packages:{opt}/python/lib/python3.11/site-packages:{opt}/python:{rt}",
                    task = p.task,
                    opt = p.opt,
                    rt = p.runtime
                ),
            ));
            v.push(("PYTHONUNBUFFERED".into(), "1".into()));
        }
        Family::Node => {
            let major = runtime
                .strip_prefix("nodejs")
                .and_then(|r| r.split('.').next())
                .unwrap_or("20");
            v.push((
                "NODE_PATH".into(),
                format!(
                    "{opt}/nodejs/node{major}/node_modules:{opt}/nodejs/node_modules:{rt}/node_modules:{task}/node_modules",
                    opt = p.opt,
                    rt = p.runtime,
                    task = p.task
                ),
            ));
        }
        Family::Provided | Family::Image => {}
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert_eq!(family(false, Some("python3.12")).unwrap(), Family::Python);
        assert_eq!(family(false, Some("nodejs20.x")).unwrap(), Family::Node);
        assert_eq!(
            family(false, Some("provided.al2023")).unwrap(),
            Family::Provided
        );
        assert_eq!(family(true, None).unwrap(), Family::Image);
        assert!(family(false, Some("java21")).is_err());
        assert!(installed(Path::new("/nonexistent"), Family::Provided));
        assert!(!installed(Path::new("/nonexistent"), Family::Python));
    }
}
