//! OCI image config semantics: how Entrypoint/Cmd/Env/User/WorkingDir of an image combine with
//! a caller's overrides into a [`ProcessSpec`], and how a user string resolves against a rootfs'
//! /etc/passwd and /etc/group.

use std::path::Path;

use crate::{ProcessSpec, Result, RuntimeError};

/// Default PATH when neither the image nor the caller sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The process-related part of an OCI image config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// "KEY=value" strings, as in the image config.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
}

/// What a caller (ECS container definition, RunInstances user data runner, Lambda…) overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessOverrides {
    /// Replaces the image Entrypoint; the image Cmd is then ignored too (Docker/ECS rule).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image Cmd (appended to the effective entrypoint).
    pub command: Option<Vec<String>>,
    /// Merged over the image Env by key (later wins).
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub workdir: Option<String>,
}

/// Combines image defaults and overrides:
/// argv = (override entrypoint | image entrypoint) + (override command | image cmd, the latter
/// only when the entrypoint was not overridden); env = image env, then overrides by key, PATH
/// defaulted; user and workdir: override, else image (workdir defaults to "/").
pub fn resolve_process(image: &ImageDefaults, overrides: &ProcessOverrides) -> ProcessSpec {
    let (entry, image_cmd) = match &overrides.entrypoint {
        Some(e) => (e.clone(), Vec::new()),
        None => (image.entrypoint.clone(), image.cmd.clone()),
    };
    let cmd = overrides.command.clone().unwrap_or(image_cmd);
    let mut argv = entry;
    argv.extend(cmd);

    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| {
        if let Some(slot) = env.iter_mut().find(|(key, _)| key == k) {
            slot.1 = v.to_string();
        } else {
            env.push((k.to_string(), v.to_string()));
        }
    };
    for kv in &image.env {
        match kv.split_once('=') {
            Some((k, v)) => set(k, v),
            None => set(kv, ""),
        }
    }
    for (k, v) in &overrides.env {
        set(k, v);
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(0, ("PATH".to_string(), DEFAULT_PATH.to_string()));
    }
    let user = overrides
        .user
        .clone()
        .or_else(|| image.user.clone())
        .filter(|u| !u.is_empty());
    let workdir = overrides
        .workdir
        .clone()
        .or_else(|| image.workdir.clone())
        .filter(|w| !w.is_empty())
        .or_else(|| Some("/".to_string()));
    ProcessSpec {
        argv,
        env,
        user,
        workdir,
    }
}

/// A user resolved against a root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (always includes `gid`).
    pub groups: Vec<u32>,
    pub home: String,
    pub name: Option<String>,
}

fn read_table(root: &Path, file: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(root.join(file))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect()
}

/// Resolves "uid", "uid:gid", "name", "name:group" (and None = root) against
/// `<root>/etc/passwd` and `<root>/etc/group`. Numeric ids need no entry (gid defaults to the
/// passwd entry's, else 0); names must exist.
pub fn resolve_user(root: &Path, user: Option<&str>) -> Result<ResolvedUser> {
    let spec = user.unwrap_or("0");
    let fail = |reason: &str| RuntimeError::User {
        user: spec.to_string(),
        reason: reason.to_string(),
    };
    let passwd = read_table(root, "etc/passwd");
    let group = read_table(root, "etc/group");
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entry = if let Ok(uid) = u.parse::<u32>() {
        passwd
            .iter()
            .find(|p| p.get(2).and_then(|x| x.parse::<u32>().ok()) == Some(uid))
    } else {
        Some(
            passwd
                .iter()
                .find(|p| p.first().map(String::as_str) == Some(u))
                .ok_or_else(|| fail("no such user in /etc/passwd"))?,
        )
    };
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => entry
            .and_then(|p| p.get(2))
            .and_then(|x| x.parse().ok())
            .ok_or_else(|| fail("bad uid in /etc/passwd"))?,
    };
    let name = entry.and_then(|p| p.first().cloned());
    let home = entry
        .and_then(|p| p.get(5).cloned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string());
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => group
                .iter()
                .find(|e| e.first().map(String::as_str) == Some(g))
                .and_then(|e| e.get(2))
                .and_then(|x| x.parse().ok())
                .ok_or_else(|| fail("no such group in /etc/group"))?,
        },
        None => entry
            .and_then(|p| p.get(3))
            .and_then(|x| x.parse().ok())
            .unwrap_or(0),
    };
    let mut groups = vec![gid];
    if let (Some(n), None) = (&name, g) {
        for e in &group {
            let members = e.get(3).map(String::as_str).unwrap_or("");
            if members.split(',').any(|m| m == n) {
                if let Some(id) = e.get(2).and_then(|x| x.parse::<u32>().ok()) {
                    if !groups.contains(&id) {
                        groups.push(id);
                    }
                }
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        groups,
        home,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img() -> ImageDefaults {
        ImageDefaults {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["a".into(), "b".into()],
            env: vec!["A=1".into(), "PATH=/x".into(), "EMPTY".into()],
            user: Some("app".into()),
            workdir: Some("/srv".into()),
        }
    }

    #[test]
    fn image_defaults_alone() {
        let p = resolve_process(&img(), &ProcessOverrides::default());
        assert_eq!(p.argv, vec!["/entry", "a", "b"]);
        assert_eq!(p.user.as_deref(), Some("app"));
        assert_eq!(p.workdir.as_deref(), Some("/srv"));
        assert_eq!(
            p.env,
            vec![
                ("A".to_string(), "1".to_string()),
                ("PATH".to_string(), "/x".to_string()),
                ("EMPTY".to_string(), String::new())
            ]
        );
    }

    #[test]
    fn command_override_keeps_entrypoint() {
        let o = ProcessOverrides {
            command: Some(vec!["c".into()]),
            ..Default::default()
        };
        assert_eq!(resolve_process(&img(), &o).argv, vec!["/entry", "c"]);
    }

    #[test]
    fn entrypoint_override_drops_image_cmd() {
        let o = ProcessOverrides {
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            ..Default::default()
        };
        assert_eq!(resolve_process(&img(), &o).argv, vec!["/bin/sh", "-c"]);
        let o = ProcessOverrides {
            entrypoint: Some(vec!["/bin/sh".into()]),
            command: Some(vec!["-c".into(), "true".into()]),
            ..Default::default()
        };
        assert_eq!(
            resolve_process(&img(), &o).argv,
            vec!["/bin/sh", "-c", "true"]
        );
    }

    #[test]
    fn env_merge_and_default_path() {
        let o = ProcessOverrides {
            env: vec![("A".into(), "2".into()), ("B".into(), "3".into())],
            ..Default::default()
        };
        let p = resolve_process(&img(), &o);
        assert_eq!(p.env[0], ("A".to_string(), "2".to_string()));
        assert!(p.env.contains(&("B".to_string(), "3".to_string())));
        let p = resolve_process(&ImageDefaults::default(), &ProcessOverrides::default());
        assert_eq!(p.env, vec![("PATH".to_string(), DEFAULT_PATH.to_string())]);
        assert_eq!(p.workdir.as_deref(), Some("/"));
        assert_eq!(p.user, None);
    }

    #[test]
    fn user_override_and_workdir_override() {
        let o = ProcessOverrides {
            user: Some("1:2".into()),
            workdir: Some("/w".into()),
            ..Default::default()
        };
        let p = resolve_process(&img(), &o);
        assert_eq!(p.user.as_deref(), Some("1:2"));
        assert_eq!(p.workdir.as_deref(), Some("/w"));
    }

    fn root() -> tempdir::Dir {
        let d = tempdir::Dir::new();
        std::fs::create_dir_all(d.0.join("etc")).unwrap();
        std::fs::write(
            d.0.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1234:2345::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.0.join("etc/group"),
            "root:x:0:\napp:x:2345:\nstaff:x:50:app,other\nwheel:x:10:\n",
        )
        .unwrap();
        d
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let p = std::env::temp_dir()
                    .join(format!("fc-runtime-resolve-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn users_resolve_from_rootfs() {
        let r = root();
        let u = resolve_user(&r.0, Some("app")).unwrap();
        assert_eq!((u.uid, u.gid), (1234, 2345));
        assert_eq!(u.groups, vec![2345, 50]);
        assert_eq!(u.home, "/home/app");
        let u = resolve_user(&r.0, Some("1234")).unwrap();
        assert_eq!((u.uid, u.gid), (1234, 2345));
        let u = resolve_user(&r.0, Some("777")).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (777, 0, "/"));
        let u = resolve_user(&r.0, Some("777:888")).unwrap();
        assert_eq!((u.uid, u.gid), (777, 888));
        let u = resolve_user(&r.0, Some("app:wheel")).unwrap();
        assert_eq!((u.uid, u.gid), (1234, 10));
        assert_eq!(u.groups, vec![10]);
        let u = resolve_user(&r.0, None).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert!(resolve_user(&r.0, Some("nobody-here")).is_err());
        assert!(resolve_user(&r.0, Some("app:nogroup")).is_err());
    }
}
