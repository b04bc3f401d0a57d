//! Custom AMIs made from instances (`CreateImage`) and the image store images behind AMIs.
//!
//! An AMI's root filesystem is an image of ferrocloud's image store (`ImageRecord::
//! source_image`). `CreateImage` keeps AMIs layered: the instance's root filesystem changes
//! (its root volume directory plus, while it runs, the workload's overlay upper directory)
//! become one new uncompressed tar layer on top of the layers of the instance's own image
//! (overlayfs whiteouts turned back into OCI `.wh.` entries; cloud-init state under
//! `/var/lib/cloud/ferrocloud` left out, so user data runs again on instances of the new AMI).
//! The new manifest (the source image's config with one more `diff_id`) is recorded in a
//! repository of ferrocloud's own, [`AMI_REPO`] in the store scope [`ami_scope`], tagged with
//! the AMI id: garbage collection keeps it, ECR users never see it, and any account the AMI is
//! shared with can boot it. `RegisterImage` with `ImageLocation` pins a registry image the
//! same way (its manifest, tagged with the new AMI id). EBS volumes attached to the instance
//! become snapshots in the AMI's block device mappings; the root device gets a snapshot
//! holding the captured layer's files.
//!
//! The capture runs in the background: the AMI is `pending` until its layer is stored, then
//! `available` (or `failed`). Unless `NoReboot` is set, a running instance is rebooted once
//! the capture is taken (AWS shuts it down around the snapshot; here the filesystem is copied
//! live, then the instance restarts).

use super::images::{self, BlockDevice, ImageRecord};
use super::instances::{instance_dir, Exec, InstanceRecord};
use super::volumes::{self, snapshot_path, SnapshotRecord};
use super::{
    check_dry_run_v, check_id, now, opt_bool, opt_str, req_str, spec_tags, storage, tags, Ctx,
    IMAGES, INSTANCES, SNAPSHOTS,
};
use fc_images::Digest;
use fc_protocol::ApiError;
use fc_store::{Scope, StoreExt};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// The repository (in [`ami_scope`]) holding the images of custom AMIs, tagged by AMI id.
pub const AMI_REPO: &str = "ferrocloud/ami";

/// The store scope of [`AMI_REPO`].
pub fn ami_scope() -> Scope {
    Scope::global("ec2-ami-images")
}

/// The image reference of an AMI's own image.
pub(crate) fn ami_reference(ami_id: &str) -> String {
    format!("{AMI_REPO}:{ami_id}")
}

/// The manifest digest of an instance's source image: the built-in images, the owner's
/// registry, or an AMI's own image.
pub(crate) fn resolve_source(
    exec: &Exec,
    scope: &Scope,
    reference: &str,
) -> Result<Digest, String> {
    let store = exec.store.as_ref();
    let found = exec
        .images
        .resolve_image(store, scope, reference)
        .map_err(|e| format!("cannot resolve image {reference}: {e}"))?;
    match found {
        Some(d) => Ok(d),
        None => exec
            .images
            .resolve_image(store, &ami_scope(), reference)
            .map_err(|e| format!("cannot resolve image {reference}: {e}"))?
            .ok_or_else(|| format!("image {reference} not found")),
    }
}

/// Record `manifest` (bytes, already stored with its blobs) in [`AMI_REPO`] under `tag`.
fn pin_manifest(exec: &Exec, bytes: &[u8], tag: &str) -> Result<(), String> {
    let scope = ami_scope();
    let store = exec.store.as_ref();
    let repo =
        match fc_images::repos::get_repo(store, &scope, AMI_REPO).map_err(|e| e.to_string())? {
            Some(r) => r,
            None => {
                let r = fc_images::repos::Repository {
                    v: 1,
                    name: AMI_REPO.into(),
                    registry_id: "000000000000".into(),
                    region: "global".into(),
                    created_at: now(),
                    image_tag_mutability: "MUTABLE".into(),
                    tag_mutability_exclusions: Vec::new(),
                    scan_on_push: false,
                    encryption_type: "AES256".into(),
                    kms_key: None,
                    tags: Vec::new(),
                    policy: None,
                    lifecycle_policy: None,
                    lifecycle_updated: None,
                };
                fc_images::repos::put_repo(store, &scope, &r).map_err(|e| e.to_string())?;
                r
            }
        };
    exec.images
        .record_manifest(store, &scope, &repo, bytes, None, Some(tag), now())
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Pin the registry image `location` (resolved in the caller's scope) as AMI `ami_id`'s
/// image; returns the reference to boot (`None`: not in the registry yet, or no image store).
pub(crate) fn pin_registry_image(
    c: &Ctx<'_>,
    location: &str,
    ami_id: &str,
) -> Result<Option<String>, ApiError> {
    let Some(exec) = c.exec else {
        return Ok(None);
    };
    // Not pushed yet: resolved when an instance boots (in the launching account's registry).
    let Some(digest) = exec
        .images
        .resolve_image(c.store, &c.scope, location)
        .map_err(|e| ApiError::internal(e.to_string()))?
    else {
        return Ok(None);
    };
    if &digest == exec.images.userland_digest() {
        return Ok(Some(location.to_string()));
    }
    let bytes = exec
        .images
        .read_blob(&digest, 4 << 20)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    pin_manifest(exec, &bytes, ami_id).map_err(ApiError::internal)?;
    Ok(Some(ami_reference(ami_id)))
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Overlayfs whiteouts (0/0 character devices) back to OCI whiteout files.
fn whiteouts_to_oci(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = std::fs::symlink_metadata(e.path())?;
        let ft = m.file_type();
        if ft.is_char_device() && m.rdev() == 0 {
            std::fs::remove_file(e.path())?;
            let name = format!(".wh.{}", e.file_name().to_string_lossy());
            std::fs::write(dir.join(name), b"")?;
        } else if ft.is_dir() {
            whiteouts_to_oci(&e.path())?;
        }
    }
    Ok(())
}

/// The captured root filesystem changes of an instance, as a directory tree.
fn capture_tree(exec: &Exec, rec: &InstanceRecord, staging: &Path) -> Result<(), String> {
    std::fs::create_dir_all(staging).map_err(|e| format!("create {}: {e}", staging.display()))?;
    let root = instance_dir(&exec.data_dir, &rec.instance_id).join("root");
    let mut sources: Vec<PathBuf> = vec![root];
    if rec.state == "running" {
        if let Some(h) = &rec.handle {
            sources.push(h.dir.join("upper"));
        }
    }
    for src in sources.iter().filter(|s| s.is_dir()) {
        run(
            Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", src.display()))
                .arg(staging),
            "copy the root filesystem",
        )?;
    }
    // Per-instance state stays with the instance.
    for p in [
        "var/lib/cloud/ferrocloud",
        ".ferrocloud",
        "etc/ferrocloud/volumes",
        "etc/hostname",
    ] {
        let t = staging.join(p);
        let _ = std::fs::remove_dir_all(&t).or_else(|_| std::fs::remove_file(&t));
    }
    whiteouts_to_oci(staging).map_err(|e| format!("convert whiteouts: {e}"))
}

/// Build the AMI's image: the source image plus one layer of `tree`. Returns the reference.
fn build_image(
    exec: &Exec,
    rec: &InstanceRecord,
    tree: &Path,
    ami_id: &str,
) -> Result<String, String> {
    let scope = Scope::new(&rec.owner_id, &rec.region);
    let base = resolve_source(exec, &scope, &rec.source_image)?;
    let (base_manifest, _) = exec
        .images
        .platform_manifest(&base)
        .map_err(|e| e.to_string())?;
    let tmp = exec
        .images
        .upload_path(&format!("ami-{}", uuid::Uuid::new_v4()));
    run(
        Command::new("tar")
            .arg("-C")
            .arg(tree)
            .args(["--numeric-owner", "--sort=name", "-cf"])
            .arg(&tmp)
            .arg("."),
        "archive the root filesystem",
    )?;
    let layer = fc_images::hash_file(&tmp).map_err(|e| e.to_string())?;
    let layer_size = exec
        .images
        .commit_file(&tmp, &layer, Some(&layer))
        .map_err(|e| e.to_string())?;
    let m: Value = serde_json::from_slice(
        &exec
            .images
            .read_blob(&base_manifest, 4 << 20)
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let cfg_digest = m["config"]["digest"]
        .as_str()
        .and_then(|d| Digest::parse(d).ok())
        .ok_or("the source image has no config")?;
    let mut cfg: Value = serde_json::from_slice(
        &exec
            .images
            .read_blob(&cfg_digest, 8 << 20)
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    match cfg["rootfs"]["diff_ids"].as_array_mut() {
        Some(ids) => ids.push(json!(layer.as_str())),
        None => cfg["rootfs"] = json!({"type": "layers", "diff_ids": [layer.as_str()]}),
    }
    let history = json!({
        "created": fc_protocol::value::format_iso8601(now()),
        "created_by": format!("ferrocloud CreateImage {ami_id} from {}", rec.instance_id),
    });
    match cfg["history"].as_array_mut() {
        Some(h) => h.push(history),
        None => cfg["history"] = json!([history]),
    }
    let cfg_bytes = serde_json::to_vec(&cfg).map_err(|e| e.to_string())?;
    let new_cfg = exec
        .images
        .put_blob(&cfg_bytes)
        .map_err(|e| e.to_string())?;
    let mut layers: Vec<Value> = m["layers"].as_array().cloned().unwrap_or_default();
    layers.push(json!({
        "mediaType": fc_images::manifest::OCI_LAYER,
        "digest": layer.as_str(),
        "size": layer_size,
    }));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": fc_images::manifest::OCI_MANIFEST,
        "config": {
            "mediaType": fc_images::manifest::OCI_CONFIG,
            "digest": new_cfg.as_str(),
            "size": cfg_bytes.len(),
        },
        "layers": layers,
        "annotations": {"dev.ferrocloud.ami": ami_id},
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    pin_manifest(exec, &bytes, ami_id)?;
    Ok(ami_reference(ami_id))
}

fn dir_bytes(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Capture in the background, then mark the AMI available (or failed); reboot unless
/// `no_reboot`.
fn spawn_capture(
    exec: &Arc<Exec>,
    rec: InstanceRecord,
    ami_id: String,
    root_snapshot: String,
    no_reboot: bool,
) {
    let exec = exec.clone();
    let rt = exec.rt.clone();
    rt.spawn(async move {
        let e2 = exec.clone();
        let (r2, a2, s2) = (rec.clone(), ami_id.clone(), root_snapshot.clone());
        let built = tokio::task::spawn_blocking(move || {
            let staging = snapshot_path(&e2.data_dir, &s2);
            let _ = std::fs::remove_dir_all(&staging);
            capture_tree(&e2, &r2, &staging)?;
            build_image(&e2, &r2, &staging, &a2)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        let e2 = exec.clone();
        let (r2, a2) = (rec.clone(), ami_id.clone());
        let reboot = tokio::task::spawn_blocking(move || {
            let _g = e2.lock.lock().unwrap_or_else(|p| p.into_inner());
            let scope = Scope::new(&r2.owner_id, &r2.region);
            let store = e2.store.as_ref();
            if let Ok(Some(mut s)) =
                store.get_json::<SnapshotRecord>(&scope, SNAPSHOTS, &root_snapshot)
            {
                s.data_bytes = dir_bytes(&snapshot_path(&e2.data_dir, &root_snapshot));
                let _ = store.put_json(&scope, SNAPSHOTS, &root_snapshot, &s);
            }
            let Ok(Some(mut img)) = store.get_json::<ImageRecord>(&scope, IMAGES, &a2) else {
                return false;
            };
            match &built {
                Ok(reference) => {
                    img.source_image = Some(reference.clone());
                    img.state = "available".into();
                }
                Err(reason) => {
                    tracing::warn!(image = %a2, %reason, "CreateImage failed");
                    img.state = "failed".into();
                    img.state_reason = Some(reason.clone());
                }
            }
            let _ = store.put_json(&scope, IMAGES, &a2, &img);
            // Reboot a running instance (still the same boot) after the capture.
            if no_reboot {
                return false;
            }
            match store.get_json::<InstanceRecord>(&scope, INSTANCES, &r2.instance_id) {
                Ok(Some(mut cur)) if cur.state == "running" && cur.generation == r2.generation => {
                    cur.generation += 1;
                    store
                        .put_json(&scope, INSTANCES, &cur.instance_id, &cur)
                        .is_ok()
                }
                _ => false,
            }
        })
        .await
        .unwrap_or(false);
        if reboot {
            exec.spawn_stop(
                rec.owner_id.clone(),
                rec.region.clone(),
                rec.instance_id,
                true,
            );
        }
    });
}

pub(crate) fn create_image(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let inst_id = req_str(input, "InstanceId")?;
    let name = req_str(input, "Name")?;
    images::check_name(name)?;
    check_id(inst_id, "i", "InvalidInstanceID.Malformed")?;
    let r = c
        .get::<InstanceRecord>(INSTANCES, inst_id)?
        .filter(|r| r.state != "terminated")
        .ok_or_else(|| {
            ApiError::client(
                "InvalidInstanceID.NotFound",
                format!("The instance ID '{inst_id}' does not exist"),
            )
        })?;
    if !matches!(r.state.as_str(), "running" | "stopped") {
        return Err(ApiError::client(
            "IncorrectInstanceState",
            format!(
                "The instance '{inst_id}' is not in a state from which an image can be created ({}).",
                r.state
            ),
        ));
    }
    images::check_unique_name(c, name)?;
    let description = opt_str(input, "Description").map(str::to_string);
    if description.as_ref().is_some_and(|d| d.len() > 255) {
        return Err(super::invalid_value(
            "The description must be at most 255 characters.",
        ));
    }
    let image_tags = spec_tags(input, "image")?;
    let snapshot_tags = spec_tags(input, "snapshot")?;
    let no_reboot = opt_bool(input, "NoReboot").unwrap_or(false);
    // Devices the request leaves out (NoDevice) or changes.
    let mut suppressed: Vec<String> = Vec::new();
    let mut overrides: Vec<(String, Value)> = Vec::new();
    for m in input
        .get("BlockDeviceMappings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let d = m.get("DeviceName").and_then(Value::as_str).ok_or_else(|| {
            ApiError::missing("MissingParameter", "BlockDeviceMapping.DeviceName")
        })?;
        if m.get("NoDevice").is_some() {
            suppressed.push(d.to_string());
        } else if let Some(e) = m.get("Ebs") {
            overrides.push((d.to_string(), e.clone()));
        }
    }
    let attached = storage::attached_volumes(c, inst_id)?;
    check_dry_run_v(input)?;
    let ami_id = fc_types::ids::ec2_id("ami");
    let desc_for = |vol: &str| format!("Created by CreateImage({inst_id}) for {ami_id} from {vol}");
    let mut devices = Vec::new();
    // The root device: a snapshot holding the captured files.
    let (root_dot, root_size, root_type) = storage::root_of(c, inst_id);
    let root_snap = fc_types::ids::ec2_id("snap");
    let snap = SnapshotRecord {
        snapshot_id: root_snap.clone(),
        volume_id: r.root_volume_id.clone(),
        volume_size: root_size.unwrap_or(8),
        description: desc_for(&r.root_volume_id),
        encrypted: false,
        kms_key_id: None,
        start_time: now(),
        owner_id: c.account().to_string(),
        create_volume_users: Vec::new(),
        public: false,
        data_bytes: 0,
    };
    c.put(SNAPSHOTS, &root_snap, &snap)?;
    tags::add(c, &root_snap, &snapshot_tags)?;
    let ov = |d: &str, k: &str| {
        overrides
            .iter()
            .find(|(x, _)| x == d)
            .and_then(|(_, e)| e.get(k).cloned())
    };
    devices.push(BlockDevice {
        device_name: r.root_device_name.clone(),
        snapshot_id: Some(root_snap.clone()),
        volume_size: ov(&r.root_device_name, "VolumeSize")
            .and_then(|v| v.as_i64())
            .or(root_size)
            .or(Some(8)),
        volume_type: Some(root_type.unwrap_or_else(|| "gp3".into())),
        delete_on_termination: ov(&r.root_device_name, "DeleteOnTermination")
            .and_then(|v| v.as_bool())
            .unwrap_or(root_dot),
        encrypted: Some(false),
        iops: None,
        throughput: None,
        virtual_name: None,
        no_device: false,
    });
    // Attached EBS volumes: a snapshot each, now.
    for (device, v, dot) in attached {
        if suppressed.iter().any(|s| s == &device) {
            continue;
        }
        let snap = volumes::snapshot_volume(c, &v, &desc_for(&v.volume_id))?;
        tags::add(c, &snap.snapshot_id, &snapshot_tags)?;
        devices.push(BlockDevice {
            device_name: device.clone(),
            snapshot_id: Some(snap.snapshot_id),
            volume_size: Some(v.size),
            volume_type: Some(v.volume_type.clone()),
            delete_on_termination: ov(&device, "DeleteOnTermination")
                .and_then(|v| v.as_bool())
                .unwrap_or(dot),
            encrypted: Some(v.encrypted),
            iops: v
                .iops
                .filter(|_| matches!(v.volume_type.as_str(), "io1" | "io2" | "gp3")),
            throughput: v.throughput.filter(|_| v.volume_type == "gp3"),
            virtual_name: None,
            no_device: false,
        });
    }
    for (vn, device) in storage::ephemeral_of(c, inst_id) {
        if suppressed.iter().any(|s| s == &device) {
            continue;
        }
        devices.push(BlockDevice {
            device_name: device,
            snapshot_id: None,
            volume_size: None,
            volume_type: None,
            delete_on_termination: false,
            encrypted: None,
            iops: None,
            throughput: None,
            virtual_name: Some(vn),
            no_device: false,
        });
    }
    let src_img = images::visible(c, &r.image_id)?;
    let img = ImageRecord {
        image_id: ami_id.clone(),
        name: name.to_string(),
        description,
        owner_id: c.account().to_string(),
        owner_alias: None,
        architecture: r.architecture.clone(),
        root_device_name: r.root_device_name.clone(),
        block_devices: devices,
        creation_date: images::iso_ms(now()),
        public: false,
        launch_users: Vec::new(),
        product_codes: Vec::new(),
        boot_mode: src_img.as_ref().and_then(|i| i.boot_mode.clone()),
        imds_support: src_img.as_ref().and_then(|i| i.imds_support.clone()),
        ena_support: true,
        sriov_net_support: Some("simple".into()),
        virtualization_type: "hvm".into(),
        image_location: format!("{}/{name}", c.account()),
        source_image: Some(r.source_image.clone()),
        deprecation_time: None,
        source_image_id: None,
        source_image_region: None,
        platform_details: "Linux/UNIX".into(),
        state: if c.exec.is_some() {
            "pending".into()
        } else {
            "available".into()
        },
        state_reason: None,
    };
    c.put(IMAGES, &ami_id, &img)?;
    tags::add(c, &ami_id, &image_tags)?;
    if let Some(exec) = c.exec {
        spawn_capture(exec, r, ami_id.clone(), root_snap, no_reboot);
    }
    Ok(json!({"ImageId": ami_id}))
}

/// Give AMI `copy` its own tag on the image of AMI reference `source` (an AMI's own image);
/// returns the reference to boot.
pub(crate) fn pin_copy(c: &Ctx<'_>, source: &str, copy: &str) -> Result<String, ApiError> {
    let Some(exec) = c.exec else {
        return Ok(source.to_string());
    };
    if !source.starts_with(&format!("{AMI_REPO}:")) {
        return Ok(source.to_string());
    }
    let Some(d) = exec
        .images
        .resolve_image(c.store, &ami_scope(), source)
        .map_err(|e| ApiError::internal(e.to_string()))?
    else {
        return Ok(source.to_string());
    };
    let bytes = exec
        .images
        .read_blob(&d, 4 << 20)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    pin_manifest(exec, &bytes, copy).map_err(ApiError::internal)?;
    Ok(ami_reference(copy))
}

/// Forget an AMI's own image (its blobs become garbage unless another AMI shares them).
pub(crate) fn unpin(c: &Ctx<'_>, ami_id: &str) {
    let Some(exec) = c.exec else {
        return;
    };
    let scope = ami_scope();
    if let Ok(Some(d)) = exec
        .images
        .resolve_image(c.store, &scope, &ami_reference(ami_id))
    {
        // Other AMIs (copies) may share the image: only the tag of this one goes.
        let still_used = fc_images::repos::list_tags(c.store, &scope, AMI_REPO, None, 100_000)
            .map(|(tags, _)| tags.iter().any(|(t, td)| *td == d && t != ami_id))
            .unwrap_or(true);
        if !still_used {
            let _ = fc_images::repos::delete_image(c.store, &scope, AMI_REPO, &d);
        }
    }
}
