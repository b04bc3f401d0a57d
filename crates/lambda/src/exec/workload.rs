//! What an execution environment is on the driver: its [`WorkloadSpec`] (root filesystem,
//! binds of code, runtime cache and layers, the process of its runtime, environment variables,
//! limits, network), the execution role's temporary credentials it carries, and the merged
//! layers directory.
//!
//! Must not live here: when environments start or stop (`super`), the Runtime API (`api`).

use super::env::Env;
use super::runtimes::{self, Family};
use super::{Executor, NETWORK, NETWORK_CIDR};
use crate::spec::FunctionSpec;
use fc_runtime::{
    Limits, LogTarget, MountSource, MountSpec, NetworkSpec, ProcessSpec, Rootfs, WorkloadSpec,
};
use std::path::{Path, PathBuf};

impl Executor {
    /// Temporary credentials of the execution role for one environment.
    fn role_credentials(&self, spec: &FunctionSpec) -> Option<fc_services::identity::Credential> {
        let role = spec
            .role_arn
            .rsplit('/')
            .next()
            .unwrap_or("role")
            .to_string();
        let store = self.deps.store.as_ref();
        let role_id = fc_store::StoreExt::get_json::<serde_json::Value>(
            store,
            &fc_store::Scope::global(&spec.account),
            "iam_roles",
            &role.to_lowercase(),
        )
        .ok()
        .flatten()
        .and_then(|r| r["id"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("AROA{}", fc_types::ids::random_hex(8).to_uppercase()));
        let cred = fc_services::identity::Credential {
            v: 1,
            access_key_id: fc_types::ids::temporary_access_key_id(),
            secret_access_key: fc_types::ids::secret_access_key(),
            session_token: Some(format!(
                "IQoJb3JpZ2luX2VjE{}",
                fc_types::ids::random_from(
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                    340
                )
            )),
            account: spec.account.clone(),
            arn: format!(
                "arn:aws:sts::{}:assumed-role/{role}/{}",
                spec.account, spec.function_name
            ),
            user_id: format!("{role_id}:{}", spec.function_name),
            expires: Some(fc_protocol::value::now_secs() + 12.0 * 3600.0),
            status: "Active".into(),
        };
        match fc_services::identity::save(store, &cred) {
            Ok(()) => Some(cred),
            Err(e) => {
                tracing::warn!(error = %e, "cannot save the credentials of a Lambda environment");
                None
            }
        }
    }

    /// The layers of `spec` merged in order (later wins) into one directory, once per set.
    fn merged_layers(&self, spec: &FunctionSpec) -> Result<Option<PathBuf>, String> {
        if spec.layer_dirs.is_empty() {
            return Ok(None);
        }
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        for l in &spec.layer_dirs {
            h.update(l.to_string_lossy().as_bytes());
            h.update([0u8]);
        }
        let key = hex::encode(&h.finalize()[..12]);
        let root = self.deps.data_dir.join("exec").join("opt");
        let dest = root.join(&key);
        if dest.is_dir() {
            return Ok(Some(dest));
        }
        let tmp = root.join(format!(".{key}.tmp-{}", fc_types::ids::random_hex(6)));
        std::fs::create_dir_all(&tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
        for l in &spec.layer_dirs {
            let out = std::process::Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", l.display()))
                .arg(&tmp)
                .output()
                .map_err(|e| format!("run cp: {e}"))?;
            if !out.status.success() {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(format!(
                    "cannot merge layer {}: {}",
                    l.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        if std::fs::rename(&tmp, &dest).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Ok(Some(dest))
    }

    /// The workload of an environment (blocking: may unpack image layers, copy layers).
    pub(super) fn workload_spec(
        &self,
        env: &Env,
        fam: Family,
        linux: bool,
        api_addr: &str,
        endpoint: &str,
    ) -> Result<WorkloadSpec, String> {
        let spec = &env.spec;
        let cache = &self.deps.settings.runtime_cache;
        let cache_dir = fam.cache_name().map(|n| cache.join(n));
        let opt_dir = self.merged_layers(spec)?;
        let code_dir = match (&spec.code_dir, fam) {
            (_, Family::Image) => None,
            (Some(d), _) => Some(d.clone()),
            (None, _) => return Err("the function has no code".into()),
        };
        let paths = if linux {
            runtimes::Paths {
                task: "/var/task".into(),
                runtime: "/var/runtime".into(),
                opt: "/opt".into(),
            }
        } else {
            let none = self.deps.data_dir.join("exec").join("no-layers");
            runtimes::Paths {
                task: path_str(code_dir.as_deref().unwrap_or(Path::new("/var/task"))),
                runtime: path_str(cache_dir.as_deref().unwrap_or(Path::new("/var/runtime"))),
                opt: path_str(opt_dir.as_deref().unwrap_or(&none)),
            }
        };
        let runtime = spec.runtime.clone().unwrap_or_default();
        let handler = spec.handler.clone().unwrap_or_default();
        let mut vars: Vec<(String, String)> = vec![
            (
                "PATH".into(),
                format!("/usr/local/bin:/usr/bin:/bin:{}/bin", paths.opt),
            ),
            (
                "LD_LIBRARY_PATH".into(),
                format!(
                    "/lib64:/usr/lib64:{rt}:{rt}/lib:{task}:{task}/lib:{opt}/lib",
                    rt = paths.runtime,
                    task = paths.task,
                    opt = paths.opt
                ),
            ),
            ("LANG".into(), "en_US.UTF-8".into()),
            ("TZ".into(), ":UTC".into()),
            ("AWS_ENDPOINT_URL".into(), endpoint.to_string()),
        ];
        vars.extend(runtimes::variables(fam, &runtime, &paths));
        // The function's own variables, then the reserved ones (which they cannot override).
        for (k, v) in &spec.environment {
            set_var(&mut vars, k, v);
        }
        let mut reserved = vec![
            ("AWS_LAMBDA_FUNCTION_NAME", spec.function_name.clone()),
            ("AWS_LAMBDA_FUNCTION_VERSION", spec.version.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                spec.memory_mb.to_string(),
            ),
            ("AWS_LAMBDA_LOG_GROUP_NAME", spec.log_group.clone()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", env.stream.clone()),
            ("AWS_REGION", spec.region.clone()),
            ("AWS_DEFAULT_REGION", spec.region.clone()),
            (
                "AWS_LAMBDA_INITIALIZATION_TYPE",
                if env.provisioned {
                    "provisioned-concurrency".into()
                } else {
                    "on-demand".into()
                },
            ),
            ("LAMBDA_TASK_ROOT", paths.task.clone()),
            ("LAMBDA_RUNTIME_DIR", paths.runtime.clone()),
            ("AWS_LAMBDA_RUNTIME_API", api_addr.to_string()),
        ];
        if fam != Family::Image {
            reserved.push(("AWS_EXECUTION_ENV", format!("AWS_Lambda_{runtime}")));
            reserved.push(("_HANDLER", handler.clone()));
        } else if let Some(h) = &spec.handler {
            reserved.push(("_HANDLER", h.clone()));
        }
        if let Some(c) = self.role_credentials(spec) {
            reserved.push(("AWS_ACCESS_KEY_ID", c.access_key_id.clone()));
            reserved.push(("AWS_SECRET_ACCESS_KEY", c.secret_access_key.clone()));
            reserved.push((
                "AWS_SESSION_TOKEN",
                c.session_token.clone().unwrap_or_default(),
            ));
        }
        for (k, v) in &reserved {
            set_var(&mut vars, k, v);
        }
        let bootstrap = match fam {
            Family::Provided => {
                let in_task = code_dir
                    .as_ref()
                    .map(|d| d.join("bootstrap").exists())
                    .unwrap_or(false);
                if in_task {
                    format!("{}/bootstrap", paths.task)
                } else if opt_dir
                    .as_ref()
                    .map(|d| d.join("bootstrap").exists())
                    .unwrap_or(false)
                {
                    format!("{}/bootstrap", paths.opt)
                } else {
                    return Err(
                        "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]"
                            .into(),
                    );
                }
            }
            _ => String::new(),
        };
        let logs = Some(LogTarget {
            account: spec.account.clone(),
            region: spec.region.clone(),
            group: spec.log_group.clone(),
            stream: env.stream.clone(),
        });
        // stderr joins stdout so the log stream keeps the order of what was printed.
        let wrap = |cmd: Vec<String>, cd: bool| -> Vec<String> {
            let script = if cd {
                "exec 2>&1; cd \"$LAMBDA_TASK_ROOT\" && exec \"$@\""
            } else {
                "exec 2>&1; exec \"$@\""
            };
            let mut argv = vec!["/bin/sh".into(), "-c".into(), script.into(), "sh".into()];
            argv.extend(cmd);
            argv
        };
        if !linux {
            if fam == Family::Image {
                return Err("container image functions need the linux execution driver".into());
            }
            return Ok(WorkloadSpec {
                id: env.id.clone(),
                rootfs: Rootfs::default(),
                process: ProcessSpec {
                    argv: wrap(runtimes::command(fam, &handler, &paths, &bootstrap), true),
                    env: vars,
                    user: None,
                    workdir: None,
                },
                logs,
                ..Default::default()
            });
        }
        let images = &self.deps.images;
        let (lowers, mut binds, process) = if fam == Family::Image {
            let img = spec.image.as_ref().ok_or("the function has no image")?;
            let digest = fc_images::Digest::parse(&img.digest)
                .map_err(|e| format!("bad image digest {}: {e}", img.digest))?;
            let (lowers, binds, cfg) = images
                .rootfs(&digest)
                .map_err(|e| format!("cannot prepare image {}: {e}", img.uri))?;
            let defaults = fc_runtime::ImageDefaults {
                entrypoint: cfg.entrypoint.clone().unwrap_or_default(),
                cmd: cfg.cmd.clone().unwrap_or_default(),
                env: cfg.env.clone().unwrap_or_default(),
                user: cfg.user.clone(),
                workdir: cfg.working_dir.clone(),
            };
            let overrides = fc_runtime::ProcessOverrides {
                entrypoint: img.entry_point.clone(),
                command: img.command.clone(),
                env: vars,
                user: None,
                workdir: img.working_directory.clone(),
            };
            let process = fc_runtime::resolve_process(&defaults, &overrides);
            if process.argv.is_empty() {
                return Err("the image has neither ENTRYPOINT nor CMD".into());
            }
            (lowers, binds, process)
        } else {
            let digest = images.userland_digest().clone();
            let (lowers, binds, _) = images
                .rootfs(&digest)
                .map_err(|e| format!("cannot prepare the host userland image: {e}"))?;
            let process = ProcessSpec {
                argv: wrap(runtimes::command(fam, &handler, &paths, &bootstrap), false),
                env: vars,
                user: None,
                workdir: Some("/var/task".into()),
            };
            (lowers, binds, process)
        };
        if let Some(d) = &code_dir {
            binds.push((d.clone(), PathBuf::from("/var/task"), true));
        }
        if let Some(d) = &cache_dir {
            binds.push((d.clone(), PathBuf::from("/var/runtime"), true));
        }
        if let Some(d) = &opt_dir {
            binds.push((d.clone(), PathBuf::from("/opt"), true));
        }
        let memory = u64::from(spec.memory_mb.max(128));
        Ok(WorkloadSpec {
            id: env.id.clone(),
            rootfs: Rootfs {
                lowers,
                binds,
                read_only: false,
            },
            process,
            hostname: None,
            // A disk-backed /tmp of EphemeralStorage size (not counted as memory).
            mounts: vec![MountSpec {
                source: MountSource::Scratch {
                    size_mb: u64::from(spec.ephemeral_mb.max(512)),
                },
                target: PathBuf::from("/tmp"),
                read_only: false,
            }],
            limits: Limits {
                memory_bytes: Some(memory << 20),
                // 1,769 MB is one vCPU.
                cpu_millis: Some((memory * 1000 / 1769).max(50)),
                pids: Some(4096),
            },
            network: Some(NetworkSpec {
                network: NETWORK.into(),
                cidr: NETWORK_CIDR.into(),
                ip: None,
                ports: Vec::new(),
                domain: None,
            }),
            logs,
        })
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

fn set_var(vars: &mut Vec<(String, String)>, k: &str, v: &str) {
    match vars.iter_mut().find(|(key, _)| key == k) {
        Some(slot) => slot.1 = v.to_string(),
        None => vars.push((k.to_string(), v.to_string())),
    }
}
