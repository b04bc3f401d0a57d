//! Storage attached to instances: EBS volumes attached at a device name (`AttachVolume`,
//! `DetachVolume`, block device mappings at launch, `DeleteOnTermination`), and instance
//! store disks of the instance types that have them.
//!
//! Inside an instance (linux driver), the EBS volume attached at `/dev/sdf` (or `/dev/xvdf`)
//! is mounted at `/mnt/ebs/sdf` (`/mnt/ebs/xvdf`): the volume's filesystem (its sized image
//! loop-mounted on the host, see `volumes`), bind-mounted at boot for volumes attached while
//! the instance was stopped, and mounted live into the running instance (no restart:
//! `Driver::attach_mount`) by `AttachVolume`; `DetachVolume` unmounts it live, then the host
//! mount goes with the volume's last attachment (as at stop and termination). A restarted
//! server finds the host mounts of running instances' volumes in place and reuses them.
//! `/etc/ferrocloud/volumes` (a link to `/.ferrocloud/volumes`, kept current on every change)
//! lists `<device> <volume-id> <mount point>` per line. Encrypted volumes are
//! sized images too, their files in a directory the kernel encrypts under the volume's key
//! (`crypt`); sealed archives of earlier versions become such images on their first attach
//! (or, without ext4 encryption, are opened into a tmpfs of their size and sealed again when
//! detached or when the instance stops).
//!
//! Instance store: types with instance storage get `ephemeral0…` disks, each a directory
//! `<instance dir>/ephemeral<N>` mounted at `/media/ephemeral<N>` (as Amazon Linux does). It is
//! kept across reboots and emptied when the instance stops or terminates; it cannot be
//! detached and has no volume id. IMDS lists it under `meta-data/block-device-mapping/`.
//!
//! Per-instance facts (root `DeleteOnTermination`, attached devices, instance store) live in
//! `ec2_instance_storage` (key: instance id); the volume records hold the attachments.
//! With the process driver attachments change state only (no mounts); the volumes file then
//! names the volumes' host directories.

use super::instances::{instance_dir, Exec, InstanceRecord};
use super::volumes::{self, volume_path, VolumeAttachment, VolumeRecord};
use super::{
    check_dry_run_v, check_id, images, invalid_value, now, opt_str, req_str, spec_tags, tags, Ctx,
    INSTANCES, TAGS, VOLUMES, VOLUME_MODS,
};
use fc_protocol::value::epoch_value;
use fc_protocol::ApiError;
use fc_runtime::{MountSource, MountSpec, WorkloadSpec};
use fc_store::{Scope, Store, StoreExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Per-instance storage facts.
pub(crate) const INSTANCE_STORAGE: &str = "ec2_instance_storage";

/// Where EBS volumes appear inside an instance.
pub const EBS_MOUNT_ROOT: &str = "/mnt/ebs";
/// Where instance store disks appear inside an instance (`/media/ephemeral0`, …).
pub const INSTANCE_STORE_ROOT: &str = "/media";

fn yes() -> bool {
    true
}

/// Storage facts of one instance (`ec2_instance_storage`, key: instance id).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InstanceStorage {
    #[serde(default = "yes")]
    pub root_delete_on_termination: bool,
    #[serde(default)]
    pub root_size: Option<i64>,
    #[serde(default)]
    pub root_type: Option<String>,
    /// Device name → id of the EBS volume attached (or attaching/detaching) there.
    #[serde(default)]
    pub devices: BTreeMap<String, String>,
    /// Instance store disks: (virtual name `ephemeralN`, device name).
    #[serde(default)]
    pub ephemeral: Vec<(String, String)>,
}

impl Default for InstanceStorage {
    fn default() -> Self {
        InstanceStorage {
            root_delete_on_termination: true,
            root_size: None,
            root_type: None,
            devices: BTreeMap::new(),
            ephemeral: Vec::new(),
        }
    }
}

fn load(store: &dyn Store, scope: &Scope, id: &str) -> InstanceStorage {
    store
        .get_json::<InstanceStorage>(scope, INSTANCE_STORAGE, id)
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn save(store: &dyn Store, scope: &Scope, id: &str, st: &InstanceStorage) -> Result<(), ApiError> {
    store
        .put_json(scope, INSTANCE_STORAGE, id, st)
        .map_err(crate::common::store_error)
}

// ---- device names ----

/// The drive part of a device name (`/dev/sdf` and `/dev/xvdf` → `f`), if it is a valid
/// EBS device name.
fn drive(device: &str) -> Option<&str> {
    let rest = device
        .strip_prefix("/dev/xvd")
        .or_else(|| device.strip_prefix("/dev/sd"))?;
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    let digits = &rest[letters..];
    ((1..=2).contains(&letters) && digits.len() <= 2 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(rest)
}

fn check_device(device: &str) -> Result<(), ApiError> {
    if drive(device).is_none() {
        return Err(invalid_value(format!(
            "Value ({device}) for parameter device is invalid. {device} is not a valid EBS device name."
        )));
    }
    Ok(())
}

/// Whether two device names name the same attachment point (`/dev/sdf` = `/dev/xvdf`).
fn same_device(a: &str, b: &str) -> bool {
    a == b || matches!((drive(a), drive(b)), (Some(x), Some(y)) if x == y)
}

/// Where the volume attached at `device` is mounted inside the instance.
pub fn mount_point(device: &str) -> PathBuf {
    let base = device.rsplit('/').next().unwrap_or(device);
    Path::new(EBS_MOUNT_ROOT).join(base)
}

fn ephemeral_mount(virtual_name: &str) -> PathBuf {
    Path::new(INSTANCE_STORE_ROOT).join(virtual_name)
}

fn ephemeral_dir(data_dir: &Path, instance: &str, virtual_name: &str) -> PathBuf {
    instance_dir(data_dir, instance).join(virtual_name)
}

// ---- lookups ----

fn instance_not_found(id: &str) -> ApiError {
    ApiError::client(
        "InvalidInstanceID.NotFound",
        format!("The instance ID '{id}' does not exist"),
    )
}

fn find_instance(c: &Ctx<'_>, id: &str) -> Result<InstanceRecord, ApiError> {
    check_id(id, "i", "InvalidInstanceID.Malformed")?;
    c.get::<InstanceRecord>(INSTANCES, id)?
        .filter(|r| r.state != "terminated")
        .ok_or_else(|| instance_not_found(id))
}

fn attachment_value(v: &VolumeRecord, a: &VolumeAttachment) -> Value {
    json!({
        "VolumeId": v.volume_id,
        "InstanceId": a.instance_id,
        "Device": a.device,
        "State": a.state,
        "AttachTime": epoch_value(a.attach_time),
        "DeleteOnTermination": a.delete_on_termination,
    })
}

/// The source directory of a volume for a mount: its image mounted on the host (sized; for an
/// encrypted volume, the encrypted directory in it), or (encrypted, without ext4 encryption or
/// already open so) its plaintext opened into a tmpfs of its size. A directory-format volume
/// that cannot become an image (no loop devices, files larger than the volume) is served as
/// its directory, unsized.
fn mount_source(data_dir: &Path, v: &VolumeRecord) -> Result<PathBuf, String> {
    let dir = volume_path(data_dir, &v.volume_id);
    // Open in a tmpfs (before an upgrade, or without ext4 encryption): stays so until closed.
    let in_tmpfs = v.encrypted && super::crypt::is_open(data_dir, &v.volume_id);
    if !in_tmpfs {
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        match volumes::open_image(data_dir, &v.volume_id, v.size, v.encrypted) {
            Ok(files) => return Ok(files),
            Err(why) if volumes::image_in(&dir).is_some() => {
                return Err(format!("cannot mount volume {}: {why}", v.volume_id))
            }
            Err(why) if v.encrypted => {
                tracing::warn!(volume = %v.volume_id, reason = %why, "volume opened in memory");
            }
            Err(why) => {
                tracing::warn!(volume = %v.volume_id, reason = %why, "volume served unsized");
                return Ok(dir);
            }
        }
    }
    super::crypt::open_volume(data_dir, &v.volume_id, v.size, &dir)
        .map_err(|e| format!("cannot open encrypted volume {}: {e}", v.volume_id))
}

/// Let go of a volume's host mount: seal an open encrypted volume back to disk (or drop its
/// plaintext when `keep` is false), unmount an image (its loop device is freed with its last
/// user; instances still using it keep it until they let go).
fn close(data_dir: &Path, v: &VolumeRecord, keep: bool) {
    volumes::close_image(data_dir, &v.volume_id);
    if v.encrypted {
        if let Err(e) = super::crypt::close_volume(
            data_dir,
            &v.volume_id,
            &volume_path(data_dir, &v.volume_id),
            keep,
        ) {
            tracing::warn!(volume = %v.volume_id, error = %e, "cannot seal encrypted volume");
        }
    }
}

// ---- the volumes file ----

/// Rewrite `<instance>/boot/volumes` (seen as `/.ferrocloud/volumes` and
/// `/etc/ferrocloud/volumes` inside the instance).
fn write_volumes_file(store: &dyn Store, scope: &Scope, data_dir: &Path, id: &str, isolated: bool) {
    let st = load(store, scope, id);
    let mut text = String::new();
    for (device, vol) in &st.devices {
        let v: Option<VolumeRecord> = store.get_json(scope, VOLUMES, vol).ok().flatten();
        let attached = v.as_ref().is_some_and(|v| {
            v.attachments
                .iter()
                .any(|a| a.instance_id == id && a.state == "attached")
        });
        if !attached {
            continue;
        }
        let place = if isolated {
            mount_point(device)
        } else {
            volume_path(data_dir, vol)
        };
        text.push_str(&format!("{device} {vol} {}\n", place.display()));
    }
    for (name, device) in &st.ephemeral {
        let place = if isolated {
            ephemeral_mount(name)
        } else {
            ephemeral_dir(data_dir, id, name)
        };
        text.push_str(&format!("{device} {name} {}\n", place.display()));
    }
    let boot = instance_dir(data_dir, id).join("boot");
    if std::fs::create_dir_all(&boot).is_ok() {
        let tmp = boot.join(".volumes.tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, boot.join("volumes"));
        }
    }
}

// ---- AttachVolume / DetachVolume ----

pub(crate) fn attach_volume(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let vol_id = req_str(input, "VolumeId")?;
    let inst_id = req_str(input, "InstanceId")?;
    let device = req_str(input, "Device")?;
    let mut v = volumes::require_volume(c, vol_id)?;
    let r = find_instance(c, inst_id)?;
    check_device(device)?;
    if v.attachments.iter().any(|a| a.instance_id == inst_id)
        || (!v.attachments.is_empty() && !v.multi_attach_enabled)
    {
        return Err(ApiError::client(
            "VolumeInUse",
            format!("{vol_id} is already attached to an instance"),
        ));
    }
    if v.attachments.len() >= 16 {
        return Err(ApiError::client(
            "AttachmentLimitExceeded",
            format!("Volume {vol_id} is attached to the maximum of 16 instances"),
        ));
    }
    if v.availability_zone != r.availability_zone {
        return Err(ApiError::client(
            "InvalidVolume.ZoneMismatch",
            format!(
                "The volume '{vol_id}' is not in the same availability zone as instance '{inst_id}'"
            ),
        ));
    }
    if !matches!(r.state.as_str(), "running" | "stopped") {
        return Err(ApiError::client(
            "IncorrectInstanceState",
            format!("Instance '{inst_id}' is not 'running' or 'stopped'."),
        ));
    }
    let mut st = load(c.store, &c.scope, inst_id);
    let taken = same_device(device, &r.root_device_name)
        || st.devices.keys().any(|d| same_device(d, device))
        || st.ephemeral.iter().any(|(_, d)| same_device(d, device));
    if taken {
        return Err(invalid_value(format!(
            "Invalid value '{device}' for unixDevice. Attachment point {device} is already in use"
        )));
    }
    check_dry_run_v(input)?;
    let live = c
        .exec
        .filter(|e| r.state == "running" && e.driver.capabilities().bind_mounts);
    let att = VolumeAttachment {
        instance_id: inst_id.to_string(),
        device: device.to_string(),
        state: if live.is_some() {
            "attaching"
        } else {
            "attached"
        }
        .into(),
        attach_time: now(),
        delete_on_termination: false,
    };
    v.attachments.push(att.clone());
    c.put(VOLUMES, vol_id, &v)?;
    st.devices.insert(device.to_string(), vol_id.to_string());
    save(c.store, &c.scope, inst_id, &st)?;
    match live {
        Some(exec) => spawn_attach(exec, &c.scope, inst_id, vol_id, device),
        None => {
            let isolated = c.exec.is_some_and(|e| e.driver.capabilities().bind_mounts);
            write_volumes_file(c.store, &c.scope, c.data_dir, inst_id, isolated);
        }
    }
    Ok(attachment_value(&v, &att))
}

/// Mount a volume into a running instance, then mark the attachment `attached` (or undo it).
fn spawn_attach(exec: &Arc<Exec>, scope: &Scope, inst: &str, vol: &str, device: &str) {
    let exec = exec.clone();
    let (scope, inst, vol, device) = (
        scope.clone(),
        inst.to_string(),
        vol.to_string(),
        device.to_string(),
    );
    exec.rt.clone().spawn(async move {
        let e2 = exec.clone();
        let (s2, v2) = (scope.clone(), vol.clone());
        let source = tokio::task::spawn_blocking(move || {
            let v: VolumeRecord = e2
                .store
                .get_json(&s2, VOLUMES, &v2)
                .ok()
                .flatten()
                .ok_or_else(|| format!("volume {v2} vanished"))?;
            mount_source(&e2.data_dir, &v)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        let mounted = match source {
            Ok(src) => exec
                .driver
                .attach_mount(&inst, &src, &mount_point(&device))
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let e2 = exec.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _g = e2.lock.lock().unwrap_or_else(|p| p.into_inner());
            let store = e2.store.as_ref();
            let Some(mut v) = store
                .get_json::<VolumeRecord>(&scope, VOLUMES, &vol)
                .ok()
                .flatten()
            else {
                return;
            };
            let running = store
                .get_json::<InstanceRecord>(&scope, INSTANCES, &inst)
                .ok()
                .flatten()
                .is_some_and(|r| r.state == "running");
            match mounted {
                Err(reason) if running => {
                    tracing::warn!(volume = %vol, instance = %inst, %reason, "cannot attach volume");
                    v.attachments.retain(|a| a.instance_id != inst);
                    let mut st = load(store, &scope, &inst);
                    st.devices.retain(|_, id| *id != vol);
                    let _ = save(store, &scope, &inst, &st);
                    if v.attachments.is_empty() {
                        close(&e2.data_dir, &v, true);
                    }
                }
                _ => {
                    for a in v.attachments.iter_mut().filter(|a| a.instance_id == inst) {
                        if a.state == "attaching" {
                            a.state = "attached".into();
                        }
                    }
                }
            }
            let _ = store.put_json(&scope, VOLUMES, &vol, &v);
            write_volumes_file(store, &scope, &e2.data_dir, &inst, true);
        })
        .await;
    });
}

pub(crate) fn detach_volume(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let vol_id = req_str(input, "VolumeId")?;
    let mut v = volumes::require_volume(c, vol_id)?;
    let inst_in = opt_str(input, "InstanceId").filter(|s| !s.is_empty());
    let dev_in = opt_str(input, "Device").filter(|s| !s.is_empty());
    if v.attachments.is_empty() {
        return Err(ApiError::client(
            "IncorrectState",
            format!("Volume '{vol_id}' is in the 'available' state."),
        ));
    }
    if let Some(i) = inst_in {
        check_id(i, "i", "InvalidInstanceID.Malformed")?;
    }
    let idx = v
        .attachments
        .iter()
        .position(|a| {
            inst_in.is_none_or(|i| a.instance_id == i) && dev_in.is_none_or(|d| a.device == d)
        })
        .ok_or_else(|| {
            ApiError::client(
                "InvalidAttachment.NotFound",
                format!(
                    "The volume '{vol_id}' is not attached to instance '{}'",
                    inst_in.unwrap_or_default()
                ),
            )
        })?;
    if inst_in.is_none() && v.attachments.len() > 1 {
        return Err(ApiError::missing("MissingParameter", "InstanceId"));
    }
    let att = v.attachments[idx].clone();
    if att.state == "detaching" {
        return Err(ApiError::client(
            "IncorrectState",
            format!("Volume '{vol_id}' is in the 'detaching' state."),
        ));
    }
    let r: Option<InstanceRecord> = c.get(INSTANCES, &att.instance_id)?;
    if r.as_ref().is_some_and(|r| {
        r.root_volume_id == vol_id && same_device(&r.root_device_name, &att.device)
    }) {
        // AWS allows it once the instance is stopped; here the root volume stays with its
        // instance (its data is the instance's root filesystem).
        return Err(ApiError::client(
            "IncorrectState",
            format!(
                "Unable to detach root volume '{vol_id}' from instance '{}'",
                att.instance_id
            ),
        ));
    }
    check_dry_run_v(input)?;
    let live = c.exec.filter(|e| {
        r.as_ref()
            .is_some_and(|r| matches!(r.state.as_str(), "running" | "pending" | "stopping"))
            && e.driver.capabilities().bind_mounts
    });
    let mut shown = att.clone();
    shown.state = "detaching".into();
    match live {
        Some(exec) => {
            v.attachments[idx].state = "detaching".into();
            c.put(VOLUMES, vol_id, &v)?;
            spawn_detach(exec, &c.scope, &att.instance_id, vol_id, &att.device);
        }
        None => {
            v.attachments.remove(idx);
            c.put(VOLUMES, vol_id, &v)?;
            let mut st = load(c.store, &c.scope, &att.instance_id);
            st.devices.retain(|_, id| id != vol_id);
            save(c.store, &c.scope, &att.instance_id, &st)?;
            if v.attachments.is_empty() {
                close(c.data_dir, &v, true);
            }
            let isolated = c.exec.is_some_and(|e| e.driver.capabilities().bind_mounts);
            write_volumes_file(c.store, &c.scope, c.data_dir, &att.instance_id, isolated);
        }
    }
    Ok(attachment_value(&v, &shown))
}

/// Unmount a volume from a running instance, seal it if encrypted, forget the attachment.
fn spawn_detach(exec: &Arc<Exec>, scope: &Scope, inst: &str, vol: &str, device: &str) {
    let exec = exec.clone();
    let (scope, inst, vol, device) = (
        scope.clone(),
        inst.to_string(),
        vol.to_string(),
        device.to_string(),
    );
    exec.rt.clone().spawn(async move {
        if let Err(e) = exec.driver.detach_mount(&inst, &mount_point(&device)).await {
            tracing::debug!(volume = %vol, instance = %inst, error = %e, "live unmount");
        }
        let e2 = exec.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let _g = e2.lock.lock().unwrap_or_else(|p| p.into_inner());
            let store = e2.store.as_ref();
            let Some(mut v) = store
                .get_json::<VolumeRecord>(&scope, VOLUMES, &vol)
                .ok()
                .flatten()
            else {
                return;
            };
            v.attachments.retain(|a| a.instance_id != inst);
            if v.attachments.is_empty() {
                close(&e2.data_dir, &v, true);
            }
            let _ = store.put_json(&scope, VOLUMES, &vol, &v);
            let mut st = load(store, &scope, &inst);
            st.devices.retain(|_, id| *id != vol);
            let _ = save(store, &scope, &inst, &st);
            write_volumes_file(store, &scope, &e2.data_dir, &inst, true);
        })
        .await;
    });
}

// ---- instance views ----

/// `BlockDeviceMappings` of an instance: its root volume and the EBS volumes attached to it.
pub(crate) fn instance_block_devices(c: &Ctx<'_>, r: &InstanceRecord) -> Result<Value, ApiError> {
    let st: Option<InstanceStorage> = c.get(INSTANCE_STORAGE, &r.instance_id)?;
    let st = st.unwrap_or_default();
    let root: Option<VolumeRecord> = c.get(VOLUMES, &r.root_volume_id)?;
    let root_att = root.as_ref().and_then(|v| {
        v.attachments
            .iter()
            .find(|a| a.instance_id == r.instance_id)
            .cloned()
    });
    let mut out = vec![json!({
        "DeviceName": r.root_device_name,
        "Ebs": {
            "AttachTime": epoch_value(root_att.as_ref().map_or(r.launch_time, |a| a.attach_time)),
            "DeleteOnTermination": st.root_delete_on_termination,
            "Status": root_att.as_ref().map_or("attached", |a| a.state.as_str()),
            "VolumeId": r.root_volume_id,
        },
    })];
    for (device, vol) in &st.devices {
        let Some(v) = c.get::<VolumeRecord>(VOLUMES, vol)? else {
            continue;
        };
        if let Some(a) = v
            .attachments
            .iter()
            .find(|a| a.instance_id == r.instance_id)
        {
            out.push(json!({
                "DeviceName": device,
                "Ebs": {
                    "AttachTime": epoch_value(a.attach_time),
                    "DeleteOnTermination": a.delete_on_termination,
                    "Status": a.state,
                    "VolumeId": vol,
                },
            }));
        }
    }
    Ok(Value::Array(out))
}

/// `ModifyInstanceAttribute` with `BlockDeviceMappings`: change `DeleteOnTermination`.
pub(crate) fn modify_block_devices(
    c: &Ctx<'_>,
    r: &InstanceRecord,
    input: &Value,
) -> Result<Value, ApiError> {
    let mut st = load(c.store, &c.scope, &r.instance_id);
    let mut changes: Vec<(String, bool)> = Vec::new();
    for m in input
        .get("BlockDeviceMappings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let device = m.get("DeviceName").and_then(Value::as_str).ok_or_else(|| {
            ApiError::missing("MissingParameter", "BlockDeviceMapping.DeviceName")
        })?;
        let Some(dot) = m
            .get("Ebs")
            .and_then(|e| e.get("DeleteOnTermination"))
            .and_then(Value::as_bool)
        else {
            continue;
        };
        let known = same_device(device, &r.root_device_name)
            || st.devices.keys().any(|d| same_device(d, device));
        if !known {
            return Err(ApiError::client(
                "InvalidInstanceAttributeValue",
                format!(
                    "No device is currently mapped at {device} on instance {}",
                    r.instance_id
                ),
            ));
        }
        changes.push((device.to_string(), dot));
    }
    check_dry_run_v(input)?;
    for (device, dot) in changes {
        let vol = if same_device(&device, &r.root_device_name) {
            st.root_delete_on_termination = dot;
            Some(r.root_volume_id.clone())
        } else {
            st.devices
                .iter()
                .find(|(d, _)| same_device(d, &device))
                .map(|(_, v)| v.clone())
        };
        if let Some(vol) = vol {
            if let Some(mut v) = c.get::<VolumeRecord>(VOLUMES, &vol)? {
                for a in v
                    .attachments
                    .iter_mut()
                    .filter(|a| a.instance_id == r.instance_id)
                {
                    a.delete_on_termination = dot;
                }
                c.put(VOLUMES, &vol, &v)?;
            }
        }
    }
    save(c.store, &c.scope, &r.instance_id, &st)?;
    Ok(json!({}))
}

// ---- launch ----

/// What `RunInstances` will create for each instance's storage (validated first).
pub(crate) struct LaunchPlan {
    root_delete_on_termination: bool,
    root_size: Option<i64>,
    root_type: Option<String>,
    root_snapshot: Option<String>,
    /// The image has no registry image of its own: its root snapshot holds its files.
    root_from_snapshot: bool,
    ebs: Vec<images::BlockDevice>,
    ephemeral: Vec<(String, String)>,
    volume_tags: Vec<(String, String)>,
}

/// The instance store disks of an instance type: (count, GiB each).
fn instance_store_of(type_name: &str) -> u32 {
    super::instance_types::instance_type(type_name)
        .and_then(|t| {
            t.raw["InstanceStorageInfo"]["Disks"]
                .as_array()
                .map(|ds| ds.iter().map(|d| d["Count"].as_u64().unwrap_or(1)).sum())
        })
        .map(|n: u64| n.min(24) as u32)
        .unwrap_or(0)
}

/// Merge the image's block device mappings with the launch's and validate the result.
pub(crate) fn plan_launch(
    c: &Ctx<'_>,
    input: &Value,
    img: &images::ImageRecord,
    type_name: &str,
) -> Result<LaunchPlan, ApiError> {
    let mut devices: Vec<images::BlockDevice> = img.block_devices.clone();
    for m in input
        .get("BlockDeviceMappings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let device = m
            .get("DeviceName")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::missing("MissingParameter", "BlockDeviceMapping.DeviceName"))?
            .to_string();
        let pos = devices
            .iter()
            .position(|d| same_device(&d.device_name, &device));
        if m.get("NoDevice").is_some() {
            if same_device(&device, &img.root_device_name) {
                return Err(invalid_value(
                    "The root device of an instance cannot be suppressed with NoDevice",
                ));
            }
            if let Some(p) = pos {
                devices.remove(p);
            }
            continue;
        }
        let mut b = match pos {
            Some(p) => devices.remove(p),
            None => images::BlockDevice {
                device_name: device.clone(),
                snapshot_id: None,
                volume_size: None,
                volume_type: None,
                delete_on_termination: true,
                encrypted: None,
                iops: None,
                throughput: None,
                virtual_name: None,
                no_device: false,
            },
        };
        if let Some(vn) = m.get("VirtualName").and_then(Value::as_str) {
            b.virtual_name = Some(vn.to_string());
        }
        if let Some(e) = m.get("Ebs") {
            let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
            let i = |k: &str| e.get(k).and_then(Value::as_i64);
            if let Some(x) = s("SnapshotId") {
                b.snapshot_id = Some(x);
            }
            if let Some(x) = i("VolumeSize") {
                b.volume_size = Some(x);
            }
            if let Some(x) = s("VolumeType") {
                b.volume_type = Some(x);
            }
            if let Some(x) = i("Iops") {
                b.iops = Some(x);
            }
            if let Some(x) = i("Throughput") {
                b.throughput = Some(x);
            }
            if let Some(x) = e.get("Encrypted").and_then(Value::as_bool) {
                b.encrypted = Some(x);
            }
            b.delete_on_termination = e
                .get("DeleteOnTermination")
                .and_then(Value::as_bool)
                .unwrap_or(true);
        }
        devices.push(b);
    }
    let mut plan = LaunchPlan {
        root_delete_on_termination: true,
        root_size: None,
        root_type: None,
        root_snapshot: None,
        root_from_snapshot: img.source_image.is_none(),
        ebs: Vec::new(),
        ephemeral: Vec::new(),
        volume_tags: spec_tags(input, "volume")?,
    };
    let disks = instance_store_of(type_name);
    let mut named_ephemeral: Vec<(String, String)> = Vec::new();
    for b in devices {
        if same_device(&b.device_name, &img.root_device_name) {
            plan.root_delete_on_termination = b.delete_on_termination;
            plan.root_size = b.volume_size;
            plan.root_type = b.volume_type.clone();
            plan.root_snapshot = b.snapshot_id.clone();
            continue;
        }
        if let Some(vn) = &b.virtual_name {
            named_ephemeral.push((vn.clone(), b.device_name.clone()));
            continue;
        }
        check_device(&b.device_name)?;
        let vt = b.volume_type.clone().unwrap_or_else(|| "gp2".into());
        let size = match (&b.snapshot_id, b.volume_size) {
            (Some(sid), size) => {
                let snap = volumes::require_snapshot(c, sid)?;
                let s = size.unwrap_or(snap.volume_size);
                if s < snap.volume_size {
                    return Err(invalid_value(format!(
                        "Volume of {s}GiB is smaller than snapshot '{sid}', expect size >= {}GiB",
                        snap.volume_size
                    )));
                }
                s
            }
            (None, Some(s)) => s,
            (None, None) => {
                return Err(ApiError::missing(
                    "MissingParameter",
                    "BlockDeviceMapping.Ebs.VolumeSize",
                ))
            }
        };
        volumes::check_volume(&vt, size, b.iops, b.throughput)?;
        plan.ebs.push(images::BlockDevice {
            volume_size: Some(size),
            volume_type: Some(vt),
            ..b
        });
    }
    // Instance store: every disk of the type, at the device a mapping names or /dev/sdb, …
    for n in 0..disks {
        let name = format!("ephemeral{n}");
        let device = named_ephemeral
            .iter()
            .find(|(vn, _)| *vn == name)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| format!("/dev/sd{}", (b'b' + n as u8) as char));
        if plan
            .ebs
            .iter()
            .any(|b| same_device(&b.device_name, &device))
        {
            continue;
        }
        plan.ephemeral.push((name, device));
    }
    Ok(plan)
}

/// Create an instance's launch volumes and storage record (after validation).
pub(crate) fn on_launch(
    c: &Ctx<'_>,
    r: &InstanceRecord,
    plan: &LaunchPlan,
) -> Result<(), ApiError> {
    let zone = super::vpcs::zone(c.region(), &r.availability_zone);
    let mut st = InstanceStorage {
        root_delete_on_termination: plan.root_delete_on_termination,
        root_size: plan.root_size,
        root_type: plan.root_type.clone(),
        devices: BTreeMap::new(),
        ephemeral: plan.ephemeral.clone(),
    };
    // The root volume: its data is the instance's root filesystem changes
    // (`<instance dir>/root`, see `instances`).
    let root_type = plan.root_type.clone().unwrap_or_else(|| "gp3".into());
    let root = VolumeRecord {
        volume_id: r.root_volume_id.clone(),
        size: plan.root_size.unwrap_or(8),
        iops: match root_type.as_str() {
            "gp3" => Some(3000),
            "gp2" => Some((plan.root_size.unwrap_or(8) * 3).clamp(100, 16000)),
            _ => None,
        },
        throughput: (root_type == "gp3").then_some(125),
        volume_type: root_type,
        availability_zone: r.availability_zone.clone(),
        availability_zone_id: zone.as_ref().map(|z| z.id.clone()).unwrap_or_default(),
        snapshot_id: plan.root_snapshot.clone(),
        encrypted: false,
        kms_key_id: None,
        multi_attach_enabled: false,
        create_time: r.launch_time,
        attachments: vec![VolumeAttachment {
            instance_id: r.instance_id.clone(),
            device: r.root_device_name.clone(),
            state: "attached".into(),
            attach_time: r.launch_time,
            delete_on_termination: plan.root_delete_on_termination,
        }],
        owner_id: c.account().to_string(),
    };
    c.put(VOLUMES, &r.root_volume_id, &root)?;
    // An AMI registered from a snapshot: the snapshot's files go on top of the base image.
    if let (Some(sid), true) = (&plan.root_snapshot, plan.root_from_snapshot) {
        let src = super::snapshot_path(c.data_dir, sid);
        if src.is_dir() && !volumes::is_encrypted_data(&src) {
            let root = instance_dir(c.data_dir, &r.instance_id).join("root");
            volumes::with_files(c.data_dir, &src, |files| {
                volumes::clone_data(Some(files), &root)
            })?;
        }
    }
    for b in &plan.ebs {
        let id = fc_types::ids::ec2_id("vol");
        let snap = match &b.snapshot_id {
            Some(s) => Some(volumes::require_snapshot(c, s)?),
            None => None,
        };
        let dir = volume_path(c.data_dir, &id);
        volumes::new_volume_data(
            snap.as_ref()
                .map(|s| super::snapshot_path(c.data_dir, &s.snapshot_id))
                .as_deref(),
            &dir,
            b.volume_size.unwrap_or(1),
        )?;
        let encrypted = b.encrypted.unwrap_or(false) || snap.as_ref().is_some_and(|s| s.encrypted);
        if encrypted {
            volumes::seal(c, &dir)?;
        }
        let (iops, throughput) = volumes::check_volume(
            b.volume_type.as_deref().unwrap_or("gp2"),
            b.volume_size.unwrap_or(1),
            b.iops,
            b.throughput,
        )?;
        let v = VolumeRecord {
            volume_id: id.clone(),
            size: b.volume_size.unwrap_or(1),
            volume_type: b.volume_type.clone().unwrap_or_else(|| "gp2".into()),
            iops,
            throughput,
            availability_zone: r.availability_zone.clone(),
            availability_zone_id: zone.as_ref().map(|z| z.id.clone()).unwrap_or_default(),
            snapshot_id: b.snapshot_id.clone(),
            encrypted,
            kms_key_id: encrypted.then(|| {
                snap.as_ref()
                    .and_then(|s| s.kms_key_id.clone())
                    .unwrap_or_else(|| super::default_kms_key(c.account(), c.region()))
            }),
            multi_attach_enabled: false,
            create_time: now(),
            attachments: vec![VolumeAttachment {
                instance_id: r.instance_id.clone(),
                device: b.device_name.clone(),
                state: "attached".into(),
                attach_time: r.launch_time,
                delete_on_termination: b.delete_on_termination,
            }],
            owner_id: c.account().to_string(),
        };
        c.put(VOLUMES, &id, &v)?;
        tags::add(c, &id, &plan.volume_tags)?;
        st.devices.insert(b.device_name.clone(), id);
    }
    save(c.store, &c.scope, &r.instance_id, &st)
}

// ---- hooks of the instance lifecycle ----

/// Add the instance's volumes and instance store to its workload spec (at every boot) and
/// write its volumes file. Blocking: may open encrypted volumes.
pub(crate) fn boot_mounts(
    exec: &Exec,
    rec: &InstanceRecord,
    spec: &mut WorkloadSpec,
) -> Result<(), String> {
    let scope = Scope::new(&rec.owner_id, &rec.region);
    let store = exec.store.as_ref();
    let isolated = exec.driver.capabilities().bind_mounts;
    let st = load(store, &scope, &rec.instance_id);
    if isolated {
        for (device, vol) in &st.devices {
            let Some(v) = store
                .get_json::<VolumeRecord>(&scope, VOLUMES, vol)
                .ok()
                .flatten()
            else {
                continue;
            };
            if !v
                .attachments
                .iter()
                .any(|a| a.instance_id == rec.instance_id && a.state != "detaching")
            {
                continue;
            }
            let source = mount_source(&exec.data_dir, &v)?;
            spec.mounts.push(MountSpec {
                source: MountSource::Bind(source),
                target: mount_point(device),
                read_only: false,
            });
        }
    }
    for (name, _) in &st.ephemeral {
        let dir = ephemeral_dir(&exec.data_dir, &rec.instance_id, name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        if isolated {
            spec.mounts.push(MountSpec {
                source: MountSource::Bind(dir),
                target: ephemeral_mount(name),
                read_only: false,
            });
        }
    }
    // Volumes attached while stopped are attached from now on.
    {
        let _g = exec.lock.lock().unwrap_or_else(|p| p.into_inner());
        for vol in st.devices.values() {
            if let Some(mut v) = store
                .get_json::<VolumeRecord>(&scope, VOLUMES, vol)
                .ok()
                .flatten()
            {
                let mut changed = false;
                for a in v
                    .attachments
                    .iter_mut()
                    .filter(|a| a.instance_id == rec.instance_id && a.state == "attaching")
                {
                    a.state = "attached".into();
                    changed = true;
                }
                if changed {
                    let _ = store.put_json(&scope, VOLUMES, vol, &v);
                }
            }
        }
    }
    write_volumes_file(store, &scope, &exec.data_dir, &rec.instance_id, isolated);
    if isolated {
        // /etc/ferrocloud/volumes → /.ferrocloud/volumes (the boot directory's live copy).
        let etc = instance_dir(&exec.data_dir, &rec.instance_id).join("root/etc/ferrocloud");
        let link = etc.join("volumes");
        if std::fs::symlink_metadata(&link).is_err() {
            let _ = std::fs::create_dir_all(&etc);
            let _ = std::os::unix::fs::symlink("/.ferrocloud/volumes", &link);
        }
    }
    Ok(())
}

/// After an instance's workload is gone (stop, reboot, failure): let go of its volumes' host
/// mounts (sealing volumes open in a tmpfs back to disk).
pub(crate) fn after_halt(exec: &Exec, account: &str, region: &str, id: &str) {
    let scope = Scope::new(account, region);
    let store = exec.store.as_ref();
    let st = load(store, &scope, id);
    for vol in st.devices.values() {
        if let Some(v) = store
            .get_json::<VolumeRecord>(&scope, VOLUMES, vol)
            .ok()
            .flatten()
        {
            // A multi-attach volume another running instance uses stays open for it.
            let shared = v.attachments.iter().any(|a| {
                a.instance_id != id
                    && store
                        .get_json::<InstanceRecord>(&scope, INSTANCES, &a.instance_id)
                        .ok()
                        .flatten()
                        .is_some_and(|r| r.state == "running")
            });
            if !shared {
                close(&exec.data_dir, &v, true);
            }
        }
    }
}

/// After an instance stopped (not a reboot): its instance store is lost.
pub(crate) fn after_stop(data_dir: &Path, id: &str) {
    let dir = instance_dir(data_dir, id);
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with("ephemeral") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Release an instance's storage at termination: volumes deleted on termination go, the
/// others become available with their data; a root volume kept (`DeleteOnTermination`
/// false) becomes an available volume holding the instance's root filesystem changes.
fn release_all(store: &dyn Store, scope: &Scope, data_dir: &Path, r: &InstanceRecord) {
    let st = load(store, scope, &r.instance_id);
    for vol in st.devices.values() {
        let Some(mut v) = store
            .get_json::<VolumeRecord>(scope, VOLUMES, vol)
            .ok()
            .flatten()
        else {
            continue;
        };
        let Some(a) = v
            .attachments
            .iter()
            .find(|a| a.instance_id == r.instance_id)
            .cloned()
        else {
            continue;
        };
        v.attachments.retain(|a| a.instance_id != r.instance_id);
        if a.delete_on_termination && v.attachments.is_empty() {
            close(data_dir, &v, false);
            let _ = store.delete(scope, VOLUMES, vol);
            let _ = store.delete(scope, VOLUME_MODS, vol);
            let _ = store.delete(scope, TAGS, vol);
            volumes::remove_volume_data(data_dir, vol);
        } else {
            if v.attachments.is_empty() {
                close(data_dir, &v, true);
            }
            let _ = store.put_json(scope, VOLUMES, vol, &v);
        }
    }
    if !r.root_volume_id.is_empty() {
        let existing: Option<VolumeRecord> = store
            .get_json(scope, VOLUMES, &r.root_volume_id)
            .ok()
            .flatten();
        if st.root_delete_on_termination {
            if existing.is_some() {
                let _ = store.delete(scope, VOLUMES, &r.root_volume_id);
                let _ = store.delete(scope, VOLUME_MODS, &r.root_volume_id);
                let _ = store.delete(scope, TAGS, &r.root_volume_id);
            }
        } else {
            // Kept: the root filesystem changes become the volume's data.
            let dst = volume_path(data_dir, &r.root_volume_id);
            let root = instance_dir(data_dir, &r.instance_id).join("root");
            let _ = std::fs::create_dir_all(dst.parent().unwrap_or(data_dir));
            if std::fs::rename(&root, &dst).is_err() {
                let _ = std::fs::create_dir_all(&dst);
            }
            let zone = super::vpcs::zone(&scope.region, &r.availability_zone);
            let mut v = existing.unwrap_or_else(|| VolumeRecord {
                volume_id: r.root_volume_id.clone(),
                size: st.root_size.unwrap_or(8),
                volume_type: st.root_type.clone().unwrap_or_else(|| "gp3".into()),
                iops: Some(3000),
                throughput: None,
                availability_zone: r.availability_zone.clone(),
                availability_zone_id: zone.map(|z| z.id).unwrap_or_default(),
                snapshot_id: None,
                encrypted: false,
                kms_key_id: None,
                multi_attach_enabled: false,
                create_time: r.launch_time,
                attachments: Vec::new(),
                owner_id: r.owner_id.clone(),
            });
            v.attachments.retain(|a| a.instance_id != r.instance_id);
            let _ = store.put_json(scope, VOLUMES, &r.root_volume_id, &v);
        }
    }
    let _ = store.delete(scope, INSTANCE_STORAGE, &r.instance_id);
}

/// At termination, before the instance's directory is removed (takes the service lock).
pub(crate) fn after_terminate(exec: &Exec, account: &str, region: &str, id: &str) {
    let _g = exec.lock.lock().unwrap_or_else(|p| p.into_inner());
    let scope = Scope::new(account, region);
    if let Some(r) = exec
        .store
        .get_json::<InstanceRecord>(&scope, INSTANCES, id)
        .ok()
        .flatten()
    {
        release_all(exec.store.as_ref(), &scope, &exec.data_dir, &r);
    }
}

/// Termination without a driver (the handler holds the service lock).
pub(crate) fn release_without_driver(c: &Ctx<'_>, r: &InstanceRecord) {
    release_all(c.store, &c.scope, c.data_dir, r);
}

/// The instance's storage as `CreateImage` sees it: (device, volume, delete on termination).
pub(crate) fn attached_volumes(
    c: &Ctx<'_>,
    instance: &str,
) -> Result<Vec<(String, VolumeRecord, bool)>, ApiError> {
    let st = load(c.store, &c.scope, instance);
    let mut out = Vec::new();
    for (device, vol) in &st.devices {
        if let Some(v) = c.get::<VolumeRecord>(VOLUMES, vol)? {
            if let Some(a) = v.attachments.iter().find(|a| a.instance_id == instance) {
                let dot = a.delete_on_termination;
                out.push((device.clone(), v, dot));
            }
        }
    }
    Ok(out)
}

/// The data of a volume that is some instance's root volume: that instance's root
/// directory, and (while it runs) its workload's writable layer on top.
pub(crate) fn root_sources(
    c: &Ctx<'_>,
    v: &VolumeRecord,
) -> Result<Option<Vec<PathBuf>>, ApiError> {
    for a in &v.attachments {
        let Some(r) = c.get::<InstanceRecord>(INSTANCES, &a.instance_id)? else {
            continue;
        };
        if r.root_volume_id != v.volume_id {
            continue;
        }
        let mut out = vec![instance_dir(c.data_dir, &r.instance_id).join("root")];
        if r.state == "running" {
            if let Some(h) = &r.handle {
                out.push(h.dir.join("upper"));
            }
        }
        return Ok(Some(out));
    }
    Ok(None)
}

/// The instance store mappings of an instance: (virtual name, device).
pub(crate) fn ephemeral_of(c: &Ctx<'_>, instance: &str) -> Vec<(String, String)> {
    load(c.store, &c.scope, instance).ephemeral
}

/// The root volume's `DeleteOnTermination`, size and type.
pub(crate) fn root_of(c: &Ctx<'_>, instance: &str) -> (bool, Option<i64>, Option<String>) {
    let st = load(c.store, &c.scope, instance);
    (st.root_delete_on_termination, st.root_size, st.root_type)
}

/// IMDS `meta-data/block-device-mapping/…` leaves for EBS volumes and instance store.
pub(crate) fn imds_leaves(store: &dyn Store, rec: &InstanceRecord) -> Vec<(String, String)> {
    let scope = Scope::new(&rec.owner_id, &rec.region);
    let st = load(store, &scope, &rec.instance_id);
    let mut out = Vec::new();
    for (i, device) in st.devices.keys().enumerate() {
        out.push((
            format!("meta-data/block-device-mapping/ebs{}", i + 1),
            device.trim_start_matches("/dev/").to_string(),
        ));
    }
    for (name, device) in &st.ephemeral {
        out.push((
            format!("meta-data/block-device-mapping/{name}"),
            device.trim_start_matches("/dev/").to_string(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fc_store::Store;

    #[test]
    fn device_names() {
        assert_eq!(drive("/dev/sdf"), Some("f"));
        assert_eq!(drive("/dev/xvdf"), Some("f"));
        assert_eq!(drive("/dev/xvdba"), Some("ba"));
        assert_eq!(drive("/dev/sdf1"), Some("f1"));
        assert!(drive("/dev/nvme1n1").is_none());
        assert!(drive("sdf").is_none());
        assert!(drive("/dev/sd").is_none());
        assert!(same_device("/dev/sdf", "/dev/xvdf"));
        assert!(!same_device("/dev/sdf", "/dev/sdg"));
        assert_eq!(mount_point("/dev/sdf"), PathBuf::from("/mnt/ebs/sdf"));
        assert_eq!(mount_point("/dev/xvdh"), PathBuf::from("/mnt/ebs/xvdh"));
    }

    async fn call(ec2: &super::super::Ec2, op: &str, input: Value) -> Result<Value, ApiError> {
        use crate::Service;
        let ctx = crate::RequestContext::for_account("000000000000", "us-east-1", "ec2", op);
        ec2.call(&ctx, input).await
    }

    /// The control plane without a driver: launch mappings, attach, detach, termination.
    #[tokio::test]
    async fn attachments_without_driver() {
        let store: Arc<dyn Store> =
            Arc::new(fc_store::SqliteStore::in_memory().expect("in-memory store"));
        let dir = std::env::temp_dir().join(format!("fc-ec2-storage-{}", uuid::Uuid::new_v4()));
        let ec2 = super::super::Ec2::new(store, dir.clone());
        let ami = images::catalog("us-east-1")
            .into_iter()
            .find(|i| i.name.starts_with("debian-12") && i.architecture == "x86_64")
            .expect("debian ami")
            .image_id;
        let r = call(
            &ec2,
            "RunInstances",
            json!({"ImageId": ami, "MinCount": 1, "MaxCount": 1, "InstanceType": "i3.large",
                   "Placement": {"AvailabilityZone": "us-east-1a"},
                   "BlockDeviceMappings": [
                       {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 1, "DeleteOnTermination": false}},
                       {"DeviceName": "/dev/sdg", "Ebs": {"VolumeSize": 1}}]}),
        )
        .await
        .unwrap();
        let iid = r["Instances"][0]["InstanceId"]
            .as_str()
            .unwrap()
            .to_string();
        let bdm = r["Instances"][0]["BlockDeviceMappings"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(bdm.len(), 3);
        let dev = |d: &str| {
            bdm.iter().find(|b| b["DeviceName"] == d).unwrap()["Ebs"]["VolumeId"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let (root, keep, gone) = (dev("/dev/xvda"), dev("/dev/sdf"), dev("/dev/sdg"));
        // Instance store of i3.large at /dev/sdb: not an attachment point for EBS.
        let v = call(
            &ec2,
            "CreateVolume",
            json!({"AvailabilityZone": "us-east-1a", "Size": 1}),
        )
        .await
        .unwrap();
        let vid = v["VolumeId"].as_str().unwrap().to_string();
        let e = call(
            &ec2,
            "AttachVolume",
            json!({"VolumeId": vid, "InstanceId": iid, "Device": "/dev/sdb"}),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        let a = call(
            &ec2,
            "AttachVolume",
            json!({"VolumeId": vid, "InstanceId": iid, "Device": "/dev/sdh"}),
        )
        .await
        .unwrap();
        assert_eq!(a["State"], "attached");
        let volumes_file =
            std::fs::read_to_string(dir.join("instances").join(&iid).join("boot/volumes")).unwrap();
        assert!(
            volumes_file.contains(&format!("/dev/sdh {vid} ")),
            "{volumes_file}"
        );
        assert!(
            volumes_file.contains("/dev/sdb ephemeral0 "),
            "{volumes_file}"
        );
        let d = call(&ec2, "DetachVolume", json!({"VolumeId": vid}))
            .await
            .unwrap();
        assert_eq!(d["State"], "detaching");
        let v = call(&ec2, "DescribeVolumes", json!({"VolumeIds": [vid]}))
            .await
            .unwrap();
        assert_eq!(v["Volumes"][0]["State"], "available");
        // Terminate: sdg and the root go, sdf stays available.
        call(&ec2, "TerminateInstances", json!({"InstanceIds": [iid]}))
            .await
            .unwrap();
        let v = call(&ec2, "DescribeVolumes", json!({"VolumeIds": [keep]}))
            .await
            .unwrap();
        assert_eq!(v["Volumes"][0]["State"], "available");
        for gone in [gone, root] {
            let e = call(&ec2, "DescribeVolumes", json!({"VolumeIds": [gone]}))
                .await
                .unwrap_err();
            assert_eq!(e.code, "InvalidVolume.NotFound");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn instance_store_catalog() {
        assert!(instance_store_of("i3.large") >= 1);
        assert_eq!(instance_store_of("t3.micro"), 0);
    }
}
