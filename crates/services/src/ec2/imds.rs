//! The instance metadata service (IMDS) at 169.254.169.254:80, served by the driver to every
//! workload network. The caller is identified by its workload id (= instance id). IMDSv2
//! (`PUT /latest/api/token`, then `X-aws-ec2-metadata-token`) always works; IMDSv1 (no token)
//! works unless the instance's `HttpTokens` is `required` (then 401).
//!
//! Speaks just enough HTTP/1.1: one request per connection, `Connection: close`.

use super::instances::{self, Exec, InstanceRecord};
use base64::Engine as _;
use fc_store::{Scope, StoreExt};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Placeholder value of the credentials leaf: issued only when that path is asked for.
const PENDING_CREDENTIALS: &str = "\u{0}";

/// The link-local handler.
pub(crate) struct Imds {
    exec: Arc<Exec>,
}

impl Imds {
    pub(crate) fn new(exec: Arc<Exec>) -> Self {
        Imds { exec }
    }
}

impl fc_runtime::LinkLocalHandler for Imds {
    fn handle(&self, _peer: SocketAddr, workload: Option<String>, stream: tokio::net::TcpStream) {
        let exec = self.exec.clone();
        self.exec.rt.spawn(async move {
            if let Err(e) = serve(exec, workload, stream).await {
                tracing::debug!(error = %e, "imds connection failed");
            }
        });
    }
}

/// A parsed request.
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parse the head of an HTTP/1.x request (everything before the blank line).
pub(crate) fn parse_head(head: &str) -> Option<Request> {
    let mut lines = head.split("\r\n").flat_map(|l| l.split('\n'));
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let target = first.next()?;
    let path = target.split('?').next().unwrap_or(target).to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Request {
        method,
        path,
        headers,
    })
}

/// A response: status, content type, body.
pub(crate) struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    pub extra: Vec<(String, String)>,
}

fn text(status: u16, body: impl Into<Vec<u8>>) -> Response {
    Response {
        status,
        body: body.into(),
        extra: Vec::new(),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    }
}

async fn serve(
    exec: Arc<Exec>,
    workload: Option<String>,
    mut stream: tokio::net::TcpStream,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::other("read timeout"))??;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 16 * 1024 {
            return write(&mut stream, text(400, "request too large")).await;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let resp = match parse_head(&head) {
        None => text(400, "bad request"),
        Some(req) => {
            let exec2 = exec.clone();
            tokio::task::spawn_blocking(move || answer(&exec2, workload.as_deref(), &req))
                .await
                .unwrap_or_else(|_| text(500, "internal error"))
        }
    };
    write(&mut stream, resp).await
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn write(stream: &mut tokio::net::TcpStream, r: Response) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\nServer: EC2ws\r\n",
        r.status,
        reason(r.status),
        r.body.len()
    );
    for (n, v) in &r.extra {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&r.body).await?;
    stream.flush().await?;
    let _ = stream.shutdown().await;
    Ok(())
}

/// Answer one request for the instance `workload`.
pub(crate) fn answer(exec: &Exec, workload: Option<&str>, req: &Request) -> Response {
    let Some(rec) = workload.and_then(|w| instances::load(exec.store.as_ref(), w)) else {
        return text(404, "not found");
    };
    if rec.http_endpoint == "disabled" {
        return text(403, "forbidden");
    }
    let now = fc_protocol::value::now_secs();
    if req.path == "/latest/api/token" {
        if req.method != "PUT" {
            return text(405, "method not allowed");
        }
        if req.header("x-forwarded-for").is_some() {
            return text(403, "forbidden");
        }
        let ttl = req
            .header("x-aws-ec2-metadata-token-ttl-seconds")
            .and_then(|v| v.parse::<u64>().ok());
        let Some(ttl) = ttl.filter(|t| (1..=21600).contains(t)) else {
            return text(400, "bad request");
        };
        let token = base64::engine::general_purpose::STANDARD
            .encode(fc_types::ids::random_hex(40).as_bytes());
        let mut tokens = exec.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.retain(|_, (_, exp)| *exp > now);
        tokens.insert(token.clone(), (rec.instance_id.clone(), now + ttl as f64));
        let mut r = text(200, token);
        r.extra.push((
            "X-Aws-Ec2-Metadata-Token-Ttl-Seconds".into(),
            ttl.to_string(),
        ));
        return r;
    }
    if req.method != "GET" && req.method != "HEAD" {
        return text(405, "method not allowed");
    }
    match req.header("x-aws-ec2-metadata-token") {
        Some(t) => {
            let tokens = exec.tokens.lock().unwrap_or_else(|e| e.into_inner());
            match tokens.get(t) {
                Some((id, exp)) if *id == rec.instance_id && *exp > now => {}
                _ => return text(401, "unauthorized"),
            }
        }
        None if rec.http_tokens == "required" => return text(401, "unauthorized"),
        None => {}
    }
    let path = req.path.trim_start_matches('/');
    let Some(path) = path.strip_prefix("latest/") else {
        return if path.is_empty() || path == "latest" {
            text(200, "dynamic\nmeta-data\nuser-data")
        } else {
            text(404, "not found")
        };
    };
    if path.is_empty() {
        return text(200, "dynamic\nmeta-data\nuser-data");
    }
    if path == "user-data" {
        return match rec.user_data.as_deref().and_then(|u| {
            let cleaned: String = u.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(cleaned)
                .ok()
        }) {
            Some(b) => text(200, b),
            None => text(404, "not found"),
        };
    }
    let leaves = leaves(exec, &rec);
    if let Some((_, v)) = leaves.iter().find(|(k, _)| k == path) {
        if v == PENDING_CREDENTIALS {
            return match role_credentials(exec, &rec) {
                Some(doc) => text(200, doc),
                None => text(404, "not found"),
            };
        }
        return text(200, v.clone());
    }
    // A directory: its immediate children.
    let dir = if path.ends_with('/') {
        path.to_string()
    } else {
        format!("{path}/")
    };
    if dir == "meta-data/public-keys/" {
        return match &rec.key_name {
            Some(k) => text(200, format!("0={k}")),
            None => text(404, "not found"),
        };
    }
    let mut children = BTreeSet::new();
    for (k, _) in &leaves {
        if let Some(rest) = k.strip_prefix(&dir) {
            match rest.split_once('/') {
                Some((d, _)) => children.insert(format!("{d}/")),
                None => children.insert(rest.to_string()),
            };
        }
    }
    if children.is_empty() {
        return text(404, "not found");
    }
    text(200, children.into_iter().collect::<Vec<_>>().join("\n"))
}

/// The role of an instance profile: (role name, role arn, role id).
fn profile_role(exec: &Exec, rec: &InstanceRecord) -> Option<(String, String, String)> {
    let (arn, _) = rec.iam_profile.as_ref()?;
    let name = arn.rsplit('/').next()?.to_lowercase();
    let scope = Scope::global(&rec.owner_id);
    let profile: Value = exec
        .store
        .get_json(&scope, "iam_instance_profiles", &name)
        .ok()??;
    let role_name = profile["roles"].as_array()?.first()?.as_str()?.to_string();
    let role: Value = exec
        .store
        .get_json(&scope, "iam_roles", &role_name.to_lowercase())
        .ok()??;
    Some((
        role["name"].as_str().unwrap_or(&role_name).to_string(),
        role["arn"].as_str()?.to_string(),
        role["id"].as_str().unwrap_or_default().to_string(),
    ))
}

/// Temporary credentials for the instance profile's role (like `AssumeRole`).
fn role_credentials(exec: &Exec, rec: &InstanceRecord) -> Option<String> {
    let (role, _role_arn, role_id) = profile_role(exec, rec)?;
    let now = fc_protocol::value::now_secs();
    let expires = now + 6.0 * 3600.0;
    let cred = crate::identity::Credential {
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
        account: rec.owner_id.clone(),
        arn: format!(
            "arn:aws:sts::{}:assumed-role/{role}/{}",
            rec.owner_id, rec.instance_id
        ),
        user_id: format!("{role_id}:{}", rec.instance_id),
        expires: Some(expires),
        status: "Active".into(),
    };
    if let Err(e) = crate::identity::save(exec.store.as_ref(), &cred) {
        tracing::warn!(error = %e, "cannot save instance credentials");
        return None;
    }
    let doc = json!({
        "Code": "Success",
        "LastUpdated": fc_protocol::value::format_iso8601(now.floor()).replace(".000", ""),
        "Type": "AWS-HMAC",
        "AccessKeyId": cred.access_key_id,
        "SecretAccessKey": cred.secret_access_key,
        "Token": cred.session_token,
        "Expiration": fc_protocol::value::format_iso8601(expires.floor()).replace(".000", ""),
    });
    serde_json::to_string_pretty(&doc).ok()
}

/// Every leaf path under `latest/` with its value.
fn leaves(exec: &Exec, rec: &InstanceRecord) -> Vec<(String, String)> {
    let host = format!("ip-{}", rec.private_ip.replace('.', "-"));
    let dns = if rec.region == "us-east-1" {
        format!("{host}.ec2.internal")
    } else {
        format!("{host}.{}.compute.internal", rec.region)
    };
    let mac = {
        let h = &rec.instance_id[2..];
        format!(
            "0e:{}:{}:{}:{}:{}",
            &h[0..2],
            &h[2..4],
            &h[4..6],
            &h[6..8],
            &h[8..10]
        )
    };
    let m = |k: &str, v: String| (format!("meta-data/{k}"), v);
    let mut out = vec![
        m("ami-id", rec.image_id.clone()),
        m("ami-launch-index", rec.launch_index.to_string()),
        m("ami-manifest-path", "(unknown)".into()),
        m("block-device-mapping/ami", rec.root_device_name.clone()),
        m("block-device-mapping/root", rec.root_device_name.clone()),
        m("hostname", dns.clone()),
        m("local-hostname", dns),
        m("instance-action", "none".into()),
        m("instance-id", rec.instance_id.clone()),
        m("instance-life-cycle", "on-demand".into()),
        m("instance-type", rec.instance_type.clone()),
        m("local-ipv4", rec.private_ip.clone()),
        m("mac", mac.clone()),
        m("placement/availability-zone", rec.availability_zone.clone()),
        m("placement/region", rec.region.clone()),
        m("reservation-id", rec.reservation_id.clone()),
        m(
            "security-groups",
            rec.groups
                .iter()
                .map(|g| g.1.clone())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        m("services/domain", "amazonaws.com".into()),
        m("services/partition", "aws".into()),
        m(
            &format!("network/interfaces/macs/{mac}/local-ipv4s"),
            rec.private_ip.clone(),
        ),
        m(
            &format!("network/interfaces/macs/{mac}/subnet-id"),
            rec.subnet_id.clone(),
        ),
        m(
            &format!("network/interfaces/macs/{mac}/vpc-id"),
            rec.vpc_id.clone(),
        ),
        m(
            &format!("network/interfaces/macs/{mac}/security-group-ids"),
            rec.groups
                .iter()
                .map(|g| g.0.clone())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    ];
    if let Some(k) = &rec.key_name {
        if let Some(pk) = super::public_key(exec.store.as_ref(), &rec.owner_id, &rec.region, k) {
            out.push(m("public-keys/0/openssh-key", pk));
        }
    }
    if let Some((arn, id)) = &rec.iam_profile {
        out.push(m(
            "iam/info",
            serde_json::to_string_pretty(&json!({
                "Code": "Success",
                "LastUpdated": fc_protocol::value::format_iso8601(rec.launch_time).replace(".000", ""),
                "InstanceProfileArn": arn,
                "InstanceProfileId": id,
            }))
            .unwrap_or_default(),
        ));
        if let Some((role, _, _)) = profile_role(exec, rec) {
            // Credentials are issued lazily, only when this very path is asked for.
            out.push(m(
                &format!("iam/security-credentials/{role}"),
                PENDING_CREDENTIALS.into(),
            ));
        }
    }
    let doc = json!({
        "accountId": rec.owner_id,
        "architecture": rec.architecture,
        "availabilityZone": rec.availability_zone,
        "billingProducts": null,
        "devpayProductCodes": null,
        "marketplaceProductCodes": null,
        "imageId": rec.image_id,
        "instanceId": rec.instance_id,
        "instanceType": rec.instance_type,
        "kernelId": null,
        "pendingTime": fc_protocol::value::format_iso8601(rec.launch_time).replace(".000", ""),
        "privateIp": rec.private_ip,
        "ramdiskId": null,
        "region": rec.region,
        "version": "2017-09-30",
    });
    out.push((
        "dynamic/instance-identity/document".into(),
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    ));
    super::purchasing::imds_patch(exec.store.as_ref(), rec, &mut out);
    out.extend(super::storage::imds_leaves(exec.store.as_ref(), rec));
    out
}
