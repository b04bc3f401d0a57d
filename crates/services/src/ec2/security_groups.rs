//! Security groups and their rules, and their enforcement on instance traffic. Each stored
//! rule allows one peer (an IPv4 or IPv6 CIDR, another group, or a prefix list) for one
//! protocol and port range, with its own `sgr-` id; `DescribeSecurityGroups` groups rules back
//! into `IpPermissions`.
//!
//! Enforcement: a packet is allowed when any rule of any group of the instance matches it:
//! direction (`egress`), protocol (`"-1"` any, `"tcp"`, `"udp"`, `"icmp"`, `"icmpv6"` or an IP
//! protocol number as a string), the port range (`from_port..=to_port`; ICMP type and code;
//! `-1` = any) and the peer. [`firewall_for`] turns an instance's groups plus the current
//! members of the groups its rules name (their private IPs) into an [`fc_runtime::Firewall`],
//! which the execution layer loads into the instance's own network namespace (linux driver;
//! the process driver cannot enforce). Connections from the host through published ports
//! (e.g. ssh) arrive from the subnet's gateway address: a CIDR rule admits them when it
//! contains the gateway or 127.0.0.1. Prefix-list peers match nothing (there are no prefix
//! lists). Rule changes (`Authorize*`, `Revoke*`, `ModifySecurityGroupRules`,
//! `ModifyInstanceAttribute` groups) are applied before the call returns; instances joining
//! (booting) or leaving (stopping, terminating) a group update the instances whose rules name
//! it in the background, coalesced per account and region.
//!
//! The same boot hook gives instances SSH access ([`Exec::prepare_boot`], [`SSH_SETUP`]): the
//! key pair's public key into `/root/.ssh/authorized_keys` and the AMI's default user's, and
//! `sshd` (when the image has `/usr/sbin/sshd`) on port 22, published on a host 127.0.0.1 port
//! that the console output tells (`ferrocloud: ssh -i <key>.pem -p <port> <user>@127.0.0.1`),
//! and so does the instance tag `ferrocloud:ssh-port` when the instance carries it (opt-in:
//! launch or tag it with that key and any value; the service keeps the value current).

use super::instances::{Exec, InstanceIndex, Workload};
use super::{
    check_dry_run_v, check_id, filters, invalid_value, matches, one, opt_i64, opt_str, page_output,
    paginate, req_str, spec_tags, str_list, tags, vpcs, with_tags, Ctx, SGS,
};
use super::{InstanceRecord, INSTANCES, TAGS};
use fc_protocol::ApiError;
use fc_runtime::{Firewall, FirewallProtocol, FirewallRule, RuntimeError};
use fc_store::{Scope, Store, StoreExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

/// At most this many rules per group and direction.
const MAX_RULES: usize = 60;

/// A security group as stored (`ec2_security_groups`, key: group id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupRecord {
    pub group_id: String,
    pub group_name: String,
    pub description: String,
    pub vpc_id: String,
    pub owner_id: String,
    /// Ingress and egress rules, in the order they were added.
    pub rules: Vec<SgRule>,
}

/// One rule: allows one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SgRule {
    pub rule_id: String,
    pub egress: bool,
    /// `"-1"`, `"tcp"`, `"udp"`, `"icmp"`, `"icmpv6"` or a protocol number.
    pub protocol: String,
    /// First port (ICMP: type); `-1` when the protocol has no ports.
    pub from_port: i64,
    /// Last port (ICMP: code); `-1` when the protocol has no ports.
    pub to_port: i64,
    pub peer: Peer,
    #[serde(default)]
    pub description: Option<String>,
}

/// Who a rule allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Peer {
    Ipv4 { cidr: String },
    Ipv6 { cidr: String },
    Group { group_id: String, user_id: String },
    PrefixList { id: String },
}

/// The security groups `ids` of an account in a region (missing ones are left out), for the
/// traffic enforcer.
pub fn security_groups(
    store: &dyn Store,
    account: &str,
    region: &str,
    ids: &[String],
) -> Vec<SecurityGroupRecord> {
    let scope = Scope::new(account, region);
    ids.iter()
        .filter_map(|id| {
            store
                .get_json::<SecurityGroupRecord>(&scope, SGS, id)
                .ok()
                .flatten()
        })
        .collect()
}

fn has_ports(protocol: &str) -> bool {
    matches!(protocol, "tcp" | "udp" | "icmp" | "icmpv6")
}

/// `tcp`/`6` -> `tcp`, `all` -> `-1`, other numbers stay numbers.
fn normalize_protocol(p: &str) -> Result<String, ApiError> {
    let l = p.to_ascii_lowercase();
    Ok(match l.as_str() {
        "-1" | "all" => "-1".into(),
        "tcp" | "6" => "tcp".into(),
        "udp" | "17" => "udp".into(),
        "icmp" | "1" => "icmp".into(),
        "icmpv6" | "58" => "icmpv6".into(),
        n => match n.parse::<u16>() {
            Ok(v) if v <= 255 => v.to_string(),
            _ => {
                return Err(invalid_value(format!(
                    "Invalid value '{p}' for IP protocol. Unknown protocol."
                )))
            }
        },
    })
}

fn ports(protocol: &str, from: Option<i64>, to: Option<i64>) -> Result<(i64, i64), ApiError> {
    match protocol {
        "tcp" | "udp" => {
            let (Some(f), Some(t)) = (from, to) else {
                return Err(invalid_value(
                    "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange",
                ));
            };
            if !(0..=65535).contains(&f) || !(0..=65535).contains(&t) || f > t {
                return Err(invalid_value(format!(
                    "Invalid value '{f}-{t}' for portRange. Must be between 0 and 65535 and from must not exceed to."
                )));
            }
            Ok((f, t))
        }
        "icmp" | "icmpv6" => {
            let f = from.unwrap_or(-1);
            let t = to.unwrap_or(-1);
            if !(-1..=255).contains(&f) || !(-1..=255).contains(&t) {
                return Err(invalid_value(format!(
                    "Invalid value '{f}' for ICMP type/code. Must be between -1 and 255."
                )));
            }
            Ok((f, if f == -1 { -1 } else { t }))
        }
        _ => Ok((-1, -1)),
    }
}

fn check_cidr4(s: &str) -> Result<String, ApiError> {
    vpcs::Cidr::parse(s)
        .map(|c| c.to_string())
        .ok_or_else(|| invalid_value(format!("CIDR block {s} is malformed")))
}

fn check_cidr6(s: &str) -> Result<String, ApiError> {
    let ok = s
        .split_once('/')
        .and_then(|(a, p)| {
            let prefix: u8 = p.parse().ok()?;
            let _: std::net::Ipv6Addr = a.parse().ok()?;
            (prefix <= 128).then_some(())
        })
        .is_some();
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(invalid_value(format!("CIDR block {s} is malformed")))
    }
}

pub(crate) fn find(c: &Ctx<'_>, id: &str) -> Result<Option<SecurityGroupRecord>, ApiError> {
    c.get::<SecurityGroupRecord>(SGS, id)
}

fn group_not_found(id: &str) -> ApiError {
    ApiError::client(
        "InvalidGroup.NotFound",
        format!("The security group '{id}' does not exist"),
    )
}

fn require(c: &Ctx<'_>, id: &str) -> Result<SecurityGroupRecord, ApiError> {
    check_id(id, "sg", "InvalidGroupId.Malformed")?;
    find(c, id)?.ok_or_else(|| group_not_found(id))
}

/// A group of the default VPC by name.
fn by_name_in_default_vpc(c: &Ctx<'_>, name: &str) -> Result<SecurityGroupRecord, ApiError> {
    let vpc = vpcs::default_vpc_id(c)?.unwrap_or_default();
    c.all::<SecurityGroupRecord>(SGS)?
        .into_iter()
        .map(|(_, g)| g)
        .find(|g| g.group_name == name && g.vpc_id == vpc)
        .ok_or_else(|| {
            ApiError::client(
                "InvalidGroup.NotFound",
                format!("The security group '{name}' does not exist in default VPC '{vpc}'"),
            )
        })
}

/// The group a request names by `GroupId` or `GroupName`.
fn target(c: &Ctx<'_>, input: &Value) -> Result<SecurityGroupRecord, ApiError> {
    match (opt_str(input, "GroupId"), opt_str(input, "GroupName")) {
        (Some(id), _) => require(c, id),
        (None, Some(name)) => by_name_in_default_vpc(c, name),
        (None, None) => Err(ApiError::missing("MissingParameter", "GroupId")),
    }
}

pub(crate) fn groups_of_vpc(
    c: &Ctx<'_>,
    vpc_id: &str,
) -> Result<Vec<SecurityGroupRecord>, ApiError> {
    Ok(c.all::<SecurityGroupRecord>(SGS)?
        .into_iter()
        .map(|(_, g)| g)
        .filter(|g| g.vpc_id == vpc_id)
        .collect())
}

/// The group holding rule `rule_id`, if any.
pub(crate) fn find_rule(
    c: &Ctx<'_>,
    rule_id: &str,
) -> Result<Option<(SecurityGroupRecord, SgRule)>, ApiError> {
    for (_, g) in c.all::<SecurityGroupRecord>(SGS)? {
        if let Some(r) = g.rules.iter().find(|r| r.rule_id == rule_id).cloned() {
            return Ok(Some((g, r)));
        }
    }
    Ok(None)
}

fn all_traffic_rule(egress: bool, peer: Peer) -> SgRule {
    SgRule {
        rule_id: fc_types::ids::ec2_id("sgr"),
        egress,
        protocol: "-1".into(),
        from_port: -1,
        to_port: -1,
        peer,
        description: None,
    }
}

/// The `default` group of a new VPC: all traffic from itself in, all traffic out.
pub(crate) fn create_default_group(
    c: &Ctx<'_>,
    vpc_id: &str,
    description: &str,
) -> Result<SecurityGroupRecord, ApiError> {
    let id = fc_types::ids::ec2_id("sg");
    let g = SecurityGroupRecord {
        group_id: id.clone(),
        group_name: "default".into(),
        description: description.into(),
        vpc_id: vpc_id.into(),
        owner_id: c.account().into(),
        rules: vec![
            all_traffic_rule(
                false,
                Peer::Group {
                    group_id: id.clone(),
                    user_id: c.account().into(),
                },
            ),
            all_traffic_rule(
                true,
                Peer::Ipv4 {
                    cidr: "0.0.0.0/0".into(),
                },
            ),
        ],
    };
    c.put(SGS, &id, &g)?;
    Ok(g)
}

fn arn(c: &Ctx<'_>, owner: &str, kind: &str, id: &str) -> String {
    format!("arn:aws:ec2:{}:{owner}:{kind}/{id}", c.region())
}

pub(crate) fn create_security_group(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let name = req_str(input, "GroupName")?;
    let description = req_str(input, "Description")?;
    if name.len() > 255 || description.len() > 255 {
        return Err(invalid_value(
            "Group names and descriptions may be at most 255 characters",
        ));
    }
    if name.to_ascii_lowercase().starts_with("sg-") {
        return Err(invalid_value("Group names may not be in the format sg-*"));
    }
    let vpc_id = match opt_str(input, "VpcId") {
        Some(v) => {
            check_id(v, "vpc", "InvalidVpcID.Malformed")?;
            vpcs::find_vpc(c, v)?.vpc_id
        }
        None => vpcs::default_vpc_id(c)?.ok_or_else(|| {
            ApiError::client(
                "VPCIdNotSpecified",
                "No default VPC for this user. GroupName is only supported for EC2-Classic and default VPC.",
            )
        })?,
    };
    if name == "default" {
        return Err(ApiError::client(
            "InvalidGroup.Reserved",
            "The security group 'default' is reserved",
        ));
    }
    if groups_of_vpc(c, &vpc_id)?
        .iter()
        .any(|g| g.group_name == name)
    {
        return Err(ApiError::client(
            "InvalidGroup.Duplicate",
            format!("The security group '{name}' already exists for VPC '{vpc_id}'"),
        ));
    }
    let t = spec_tags(input, "security-group")?;
    check_dry_run_v(input)?;
    let id = fc_types::ids::ec2_id("sg");
    let g = SecurityGroupRecord {
        group_id: id.clone(),
        group_name: name.into(),
        description: description.into(),
        vpc_id,
        owner_id: c.account().into(),
        rules: vec![all_traffic_rule(
            true,
            Peer::Ipv4 {
                cidr: "0.0.0.0/0".into(),
            },
        )],
    };
    c.put(SGS, &id, &g)?;
    tags::add(c, &id, &t)?;
    Ok(with_tags(
        json!({"GroupId": id, "SecurityGroupArn": arn(c, c.account(), "security-group", &id)}),
        &t,
    ))
}

pub(crate) fn delete_security_group(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let g = target(c, input)?;
    if g.group_name == "default" {
        return Err(ApiError::client(
            "CannotDelete",
            format!(
                "the specified group: \"{}\" name: \"default\" cannot be deleted by a user",
                g.group_id
            ),
        ));
    }
    for (_, other) in c.all::<SecurityGroupRecord>(SGS)? {
        if other.group_id != g.group_id
            && other
                .rules
                .iter()
                .any(|r| matches!(&r.peer, Peer::Group { group_id, .. } if *group_id == g.group_id))
        {
            return Err(ApiError::client(
                "DependencyViolation",
                format!("resource {} has a dependent object", g.group_id),
            ));
        }
    }
    let in_use = c
        .all::<InstanceRecord>(INSTANCES)?
        .into_iter()
        .any(|(_, i)| i.state != "terminated" && i.groups.iter().any(|(id, _)| *id == g.group_id));
    if in_use {
        return Err(ApiError::client(
            "DependencyViolation",
            format!("resource {} has a dependent object", g.group_id),
        ));
    }
    check_dry_run_v(input)?;
    c.delete(SGS, &g.group_id)?;
    tags::drop_all(c, &g.group_id)?;
    for r in &g.rules {
        tags::drop_all(c, &r.rule_id)?;
    }
    Ok(json!({"Return": true, "GroupId": g.group_id}))
}

fn permission_key(r: &SgRule) -> (String, i64, i64) {
    (r.protocol.clone(), r.from_port, r.to_port)
}

/// Rules grouped into `IpPermission` values.
fn permissions(c: &Ctx<'_>, rules: &[&SgRule]) -> Result<Vec<Value>, ApiError> {
    let mut order: Vec<(String, i64, i64)> = Vec::new();
    for r in rules {
        let k = permission_key(r);
        if !order.contains(&k) {
            order.push(k);
        }
    }
    let mut out = Vec::new();
    for k in order {
        let mut p = Map::new();
        p.insert("IpProtocol".into(), json!(k.0));
        if has_ports(&k.0) {
            p.insert("FromPort".into(), json!(k.1));
            p.insert("ToPort".into(), json!(k.2));
        }
        let (mut v4, mut v6, mut groups, mut pls) = (vec![], vec![], vec![], vec![]);
        for r in rules.iter().filter(|r| permission_key(r) == k) {
            let mut item = match &r.peer {
                Peer::Ipv4 { cidr } => json!({"CidrIp": cidr}),
                Peer::Ipv6 { cidr } => json!({"CidrIpv6": cidr}),
                Peer::Group { group_id, user_id } => {
                    let mut v = json!({"GroupId": group_id, "UserId": user_id});
                    if let Some(g) = find(c, group_id)? {
                        if Some(g.vpc_id.as_str()) == vpcs::default_vpc_id(c)?.as_deref() {
                            v["GroupName"] = json!(g.group_name);
                        }
                    }
                    v
                }
                Peer::PrefixList { id } => json!({"PrefixListId": id}),
            };
            if let Some(d) = &r.description {
                item["Description"] = json!(d);
            }
            match &r.peer {
                Peer::Ipv4 { .. } => v4.push(item),
                Peer::Ipv6 { .. } => v6.push(item),
                Peer::Group { .. } => groups.push(item),
                Peer::PrefixList { .. } => pls.push(item),
            }
        }
        p.insert("IpRanges".into(), Value::Array(v4));
        p.insert("Ipv6Ranges".into(), Value::Array(v6));
        p.insert("UserIdGroupPairs".into(), Value::Array(groups));
        p.insert("PrefixListIds".into(), Value::Array(pls));
        out.push(Value::Object(p));
    }
    Ok(out)
}

fn group_value(c: &Ctx<'_>, g: &SecurityGroupRecord) -> Result<Value, ApiError> {
    let t = tags::get(c, &g.group_id)?;
    let ingress: Vec<&SgRule> = g.rules.iter().filter(|r| !r.egress).collect();
    let egress: Vec<&SgRule> = g.rules.iter().filter(|r| r.egress).collect();
    Ok(with_tags(
        json!({
            "GroupId": g.group_id,
            "GroupName": g.group_name,
            "Description": g.description,
            "VpcId": g.vpc_id,
            "OwnerId": g.owner_id,
            "SecurityGroupArn": arn(c, &g.owner_id, "security-group", &g.group_id),
            "IpPermissions": permissions(c, &ingress)?,
            "IpPermissionsEgress": permissions(c, &egress)?,
        }),
        &t,
    ))
}

/// Filter values of a group's rules in one direction (`field` without the
/// `ip-permission.` prefix).
fn rule_field(c: &Ctx<'_>, rules: &[&SgRule], field: &str) -> Option<Vec<String>> {
    let vals = rules.iter().filter_map(|r| match field {
        "protocol" => Some(r.protocol.clone()),
        "from-port" => Some(r.from_port.to_string()),
        "to-port" => Some(r.to_port.to_string()),
        "cidr" => match &r.peer {
            Peer::Ipv4 { cidr } => Some(cidr.clone()),
            _ => None,
        },
        "ipv6-cidr" => match &r.peer {
            Peer::Ipv6 { cidr } => Some(cidr.clone()),
            _ => None,
        },
        "group-id" => match &r.peer {
            Peer::Group { group_id, .. } => Some(group_id.clone()),
            _ => None,
        },
        "group-name" => match &r.peer {
            Peer::Group { group_id, .. } => find(c, group_id).ok().flatten().map(|g| g.group_name),
            _ => None,
        },
        "user-id" => match &r.peer {
            Peer::Group { user_id, .. } => Some(user_id.clone()),
            _ => None,
        },
        "prefix-list-id" => match &r.peer {
            Peer::PrefixList { id } => Some(id.clone()),
            _ => None,
        },
        _ => None,
    });
    let known = matches!(
        field,
        "protocol"
            | "from-port"
            | "to-port"
            | "cidr"
            | "ipv6-cidr"
            | "group-id"
            | "group-name"
            | "user-id"
            | "prefix-list-id"
    );
    known.then(|| vals.collect())
}

pub(crate) fn describe_security_groups(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let fs = filters(
        input,
        &[
            "description",
            "group-id",
            "group-name",
            "owner-id",
            "vpc-id",
            "ip-permission.*",
            "egress.ip-permission.*",
        ],
        true,
    )?;
    let ids = str_list(input, "GroupIds");
    let names = str_list(input, "GroupNames");
    for id in &ids {
        check_id(id, "sg", "InvalidGroupId.Malformed")?;
    }
    check_dry_run_v(input)?;
    for id in &ids {
        require(c, id)?;
    }
    let mut wanted_ids = ids.clone();
    for n in &names {
        wanted_ids.push(by_name_in_default_vpc(c, n)?.group_id);
    }
    let mut items = Vec::new();
    for (id, g) in c.all::<SecurityGroupRecord>(SGS)? {
        if !wanted_ids.is_empty() && !wanted_ids.contains(&id) {
            continue;
        }
        let t = tags::get(c, &id)?;
        let ingress: Vec<&SgRule> = g.rules.iter().filter(|r| !r.egress).collect();
        let egress: Vec<&SgRule> = g.rules.iter().filter(|r| r.egress).collect();
        let ok = matches(&fs, &t, |n| match n {
            "description" => one(&g.description),
            "group-id" => one(&g.group_id),
            "group-name" => one(&g.group_name),
            "owner-id" => one(&g.owner_id),
            "vpc-id" => one(&g.vpc_id),
            _ => {
                if let Some(f) = n.strip_prefix("egress.ip-permission.") {
                    rule_field(c, &egress, f)
                } else if let Some(f) = n.strip_prefix("ip-permission.") {
                    rule_field(c, &ingress, f)
                } else {
                    None
                }
            }
        });
        if ok {
            items.push((id.clone(), group_value(c, &g)?));
        }
    }
    let (page, next) = paginate(c, input, items, (5, 1000), None)?;
    Ok(page_output("SecurityGroups", page, next))
}

/// Rules a request describes (without ids), from `IpPermissions` or the legacy top-level
/// members.
fn requested_rules(
    c: &Ctx<'_>,
    g: &SecurityGroupRecord,
    input: &Value,
    egress: bool,
) -> Result<Vec<SgRule>, ApiError> {
    let mut perms: Vec<Value> = input
        .get("IpPermissions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(proto) = opt_str(input, "IpProtocol") {
        let mut p = json!({"IpProtocol": proto});
        if let Some(f) = opt_i64(input, "FromPort") {
            p["FromPort"] = json!(f);
        }
        if let Some(t) = opt_i64(input, "ToPort") {
            p["ToPort"] = json!(t);
        }
        if let Some(cidr) = opt_str(input, "CidrIp") {
            p["IpRanges"] = json!([{"CidrIp": cidr}]);
        }
        if let Some(name) = opt_str(input, "SourceSecurityGroupName") {
            let mut pair = json!({"GroupName": name});
            if let Some(o) = opt_str(input, "SourceSecurityGroupOwnerId") {
                pair["UserId"] = json!(o);
            }
            p["UserIdGroupPairs"] = json!([pair]);
        }
        perms.push(p);
    } else if let Some(name) = opt_str(input, "SourceSecurityGroupName") {
        // A whole group as the source: every protocol and port.
        let mut pair = json!({"GroupName": name});
        if let Some(o) = opt_str(input, "SourceSecurityGroupOwnerId") {
            pair["UserId"] = json!(o);
        }
        for proto in ["tcp", "udp"] {
            perms.push(json!({"IpProtocol": proto, "FromPort": 0, "ToPort": 65535, "UserIdGroupPairs": [pair]}));
        }
        perms.push(
            json!({"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "UserIdGroupPairs": [pair]}),
        );
    } else if let Some(cidr) = opt_str(input, "CidrIp") {
        perms.push(json!({"IpProtocol": "-1", "IpRanges": [{"CidrIp": cidr}]}));
    }
    if perms.is_empty() {
        return Err(ApiError::client(
            "MissingParameter",
            "The request must contain the parameter ipPermissions",
        ));
    }
    let mut out = Vec::new();
    for p in &perms {
        let proto_in = p
            .get("IpProtocol")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::missing("MissingParameter", "ipProtocol"))?;
        let protocol = normalize_protocol(proto_in)?;
        let (from, to) = ports(
            &protocol,
            p.get("FromPort").and_then(Value::as_i64),
            p.get("ToPort").and_then(Value::as_i64),
        )?;
        let mut peers: Vec<(Peer, Option<String>)> = Vec::new();
        let desc = |v: &Value| {
            v.get("Description")
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        for r in p
            .get("IpRanges")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let cidr = r
                .get("CidrIp")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::missing("MissingParameter", "cidrIp"))?;
            peers.push((
                Peer::Ipv4 {
                    cidr: check_cidr4(cidr)?,
                },
                desc(r),
            ));
        }
        for r in p
            .get("Ipv6Ranges")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let cidr = r
                .get("CidrIpv6")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::missing("MissingParameter", "cidrIpv6"))?;
            peers.push((
                Peer::Ipv6 {
                    cidr: check_cidr6(cidr)?,
                },
                desc(r),
            ));
        }
        for r in p
            .get("UserIdGroupPairs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let other = match (
                r.get("GroupId").and_then(Value::as_str),
                r.get("GroupName").and_then(Value::as_str),
            ) {
                (Some(id), _) => {
                    if id == g.group_id {
                        g.clone()
                    } else {
                        require(c, id)?
                    }
                }
                (None, Some(name)) => {
                    let found = groups_of_vpc(c, &g.vpc_id)?
                        .into_iter()
                        .find(|x| x.group_name == name);
                    found.ok_or_else(|| group_not_found(name))?
                }
                (None, None) => return Err(ApiError::missing("MissingParameter", "groupId")),
            };
            let user = r
                .get("UserId")
                .and_then(Value::as_str)
                .unwrap_or(&other.owner_id)
                .to_string();
            peers.push((
                Peer::Group {
                    group_id: other.group_id,
                    user_id: user,
                },
                desc(r),
            ));
        }
        for r in p
            .get("PrefixListIds")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let id = r
                .get("PrefixListId")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::missing("MissingParameter", "prefixListId"))?;
            check_id(id, "pl", "InvalidPrefixListId.Malformed")?;
            peers.push((Peer::PrefixList { id: id.into() }, desc(r)));
        }
        if peers.is_empty() {
            return Err(ApiError::client(
                "InvalidParameterValue",
                "The request must specify at least one source or destination (IpRanges, Ipv6Ranges, UserIdGroupPairs or PrefixListIds)",
            ));
        }
        for (peer, description) in peers {
            out.push(SgRule {
                rule_id: String::new(),
                egress,
                protocol: protocol.clone(),
                from_port: from,
                to_port: to,
                peer,
                description,
            });
        }
    }
    Ok(out)
}

fn same_rule(a: &SgRule, b: &SgRule) -> bool {
    a.egress == b.egress
        && a.protocol == b.protocol
        && a.from_port == b.from_port
        && a.to_port == b.to_port
        && a.peer == b.peer
}

fn describe_rule(r: &SgRule) -> String {
    let peer = match &r.peer {
        Peer::Ipv4 { cidr } | Peer::Ipv6 { cidr } => cidr.clone(),
        Peer::Group { group_id, .. } => group_id.clone(),
        Peer::PrefixList { id } => id.clone(),
    };
    let proto = match r.protocol.as_str() {
        "-1" => "ALL".to_string(),
        p => p.to_ascii_uppercase(),
    };
    if has_ports(&r.protocol) {
        format!(
            "peer: {peer}, {proto}, from port: {}, to port: {}, ALLOW",
            r.from_port, r.to_port
        )
    } else {
        format!("peer: {peer}, {proto}, ALLOW")
    }
}

fn rule_value(c: &Ctx<'_>, g: &SecurityGroupRecord, r: &SgRule) -> Result<Value, ApiError> {
    let mut v = json!({
        "SecurityGroupRuleId": r.rule_id,
        "GroupId": g.group_id,
        "GroupOwnerId": g.owner_id,
        "IsEgress": r.egress,
        "IpProtocol": r.protocol,
        "FromPort": r.from_port,
        "ToPort": r.to_port,
        "SecurityGroupRuleArn": arn(c, &g.owner_id, "security-group-rule", &r.rule_id),
    });
    match &r.peer {
        Peer::Ipv4 { cidr } => v["CidrIpv4"] = json!(cidr),
        Peer::Ipv6 { cidr } => v["CidrIpv6"] = json!(cidr),
        Peer::Group { group_id, user_id } => {
            v["ReferencedGroupInfo"] = json!({"GroupId": group_id, "UserId": user_id})
        }
        Peer::PrefixList { id } => v["PrefixListId"] = json!(id),
    }
    if let Some(d) = &r.description {
        v["Description"] = json!(d);
    }
    let t = tags::get(c, &r.rule_id)?;
    Ok(with_tags(v, &t))
}

pub(crate) fn authorize(c: &Ctx<'_>, input: &Value, egress: bool) -> Result<Value, ApiError> {
    let mut g = target(c, input)?;
    let new = requested_rules(c, &g, input, egress)?;
    for (i, r) in new.iter().enumerate() {
        if g.rules.iter().any(|x| same_rule(x, r)) || new[..i].iter().any(|x| same_rule(x, r)) {
            return Err(ApiError::client(
                "InvalidPermission.Duplicate",
                format!("the specified rule \"{}\" already exists", describe_rule(r)),
            ));
        }
    }
    let count = g.rules.iter().filter(|r| r.egress == egress).count() + new.len();
    if count > MAX_RULES {
        return Err(ApiError::client(
            "RulesPerSecurityGroupLimitExceeded",
            "The maximum number of rules per security group has been reached.",
        ));
    }
    let t = spec_tags(input, "security-group-rule")?;
    check_dry_run_v(input)?;
    let mut added = Vec::new();
    for mut r in new {
        r.rule_id = fc_types::ids::ec2_id("sgr");
        tags::add(c, &r.rule_id, &t)?;
        g.rules.push(r.clone());
        added.push(r);
    }
    c.put(SGS, &g.group_id, &g)?;
    enforce(c);
    let rules: Result<Vec<Value>, ApiError> = added.iter().map(|r| rule_value(c, &g, r)).collect();
    Ok(json!({"Return": true, "SecurityGroupRules": rules?}))
}

fn revoked_value(g: &SecurityGroupRecord, r: &SgRule) -> Value {
    let mut v = json!({
        "SecurityGroupRuleId": r.rule_id,
        "GroupId": g.group_id,
        "IsEgress": r.egress,
        "IpProtocol": r.protocol,
        "FromPort": r.from_port,
        "ToPort": r.to_port,
    });
    match &r.peer {
        Peer::Ipv4 { cidr } => v["CidrIpv4"] = json!(cidr),
        Peer::Ipv6 { cidr } => v["CidrIpv6"] = json!(cidr),
        Peer::Group { group_id, .. } => v["ReferencedGroupId"] = json!(group_id),
        Peer::PrefixList { id } => v["PrefixListId"] = json!(id),
    }
    if let Some(d) = &r.description {
        v["Description"] = json!(d);
    }
    v
}

pub(crate) fn revoke(c: &Ctx<'_>, input: &Value, egress: bool) -> Result<Value, ApiError> {
    let mut g = target(c, input)?;
    let rule_ids = str_list(input, "SecurityGroupRuleIds");
    let mut remove: Vec<String> = Vec::new();
    let mut unknown: Vec<Value> = Vec::new();
    if !rule_ids.is_empty() {
        for id in &rule_ids {
            match g
                .rules
                .iter()
                .find(|r| &r.rule_id == id && r.egress == egress)
            {
                Some(r) => remove.push(r.rule_id.clone()),
                None => {
                    return Err(ApiError::client(
                        "InvalidSecurityGroupRuleId.NotFound",
                        format!("The security group rule ID '{id}' does not exist"),
                    ))
                }
            }
        }
    } else {
        for r in requested_rules(c, &g, input, egress)? {
            match g.rules.iter().find(|x| same_rule(x, &r)) {
                Some(x) => remove.push(x.rule_id.clone()),
                None => unknown.extend(permissions(c, &[&r])?),
            }
        }
        if remove.is_empty() {
            return Err(ApiError::client(
                "InvalidPermission.NotFound",
                "The specified rule does not exist in this security group.",
            ));
        }
    }
    check_dry_run_v(input)?;
    let revoked: Vec<Value> = g
        .rules
        .iter()
        .filter(|r| remove.contains(&r.rule_id))
        .map(|r| revoked_value(&g, r))
        .collect();
    g.rules.retain(|r| !remove.contains(&r.rule_id));
    c.put(SGS, &g.group_id, &g)?;
    enforce(c);
    for id in &remove {
        tags::drop_all(c, id)?;
    }
    let mut out = json!({"Return": true, "RevokedSecurityGroupRules": revoked});
    if !unknown.is_empty() {
        out["UnknownIpPermissions"] = Value::Array(unknown);
    }
    Ok(out)
}

pub(crate) fn describe_security_group_rules(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let fs = filters(input, &["group-id", "security-group-rule-id"], true)?;
    let ids = str_list(input, "SecurityGroupRuleIds");
    check_dry_run_v(input)?;
    let mut items = Vec::new();
    let mut seen = Vec::new();
    for (_, g) in c.all::<SecurityGroupRecord>(SGS)? {
        for r in &g.rules {
            if !ids.is_empty() && !ids.contains(&r.rule_id) {
                continue;
            }
            seen.push(r.rule_id.clone());
            let t = tags::get(c, &r.rule_id)?;
            let ok = matches(&fs, &t, |n| match n {
                "group-id" => one(&g.group_id),
                "security-group-rule-id" => one(&r.rule_id),
                _ => None,
            });
            if ok {
                items.push((r.rule_id.clone(), rule_value(c, &g, r)?));
            }
        }
    }
    if let Some(missing) = ids.iter().find(|id| !seen.contains(id)) {
        return Err(ApiError::client(
            "InvalidSecurityGroupRuleId.NotFound",
            format!("The security group rule ID '{missing}' does not exist"),
        ));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(c, input, items, (5, 1000), None)?;
    Ok(page_output("SecurityGroupRules", page, next))
}

pub(crate) fn modify_security_group_rules(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "GroupId")?;
    let mut g = require(c, id)?;
    let updates = input
        .get("SecurityGroupRules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if updates.is_empty() {
        return Err(ApiError::missing("MissingParameter", "SecurityGroupRule"));
    }
    let mut changed = g.rules.clone();
    for u in &updates {
        let rid = u
            .get("SecurityGroupRuleId")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::missing("MissingParameter", "SecurityGroupRuleId"))?;
        let spec = u.get("SecurityGroupRule").cloned().unwrap_or(json!({}));
        let Some(slot) = changed.iter_mut().find(|r| r.rule_id == rid) else {
            return Err(ApiError::client(
                "InvalidSecurityGroupRuleId.NotFound",
                format!("The security group rule ID '{rid}' does not exist"),
            ));
        };
        let proto = spec
            .get("IpProtocol")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::missing("MissingParameter", "IpProtocol"))?;
        let protocol = normalize_protocol(proto)?;
        let (from, to) = ports(
            &protocol,
            spec.get("FromPort").and_then(Value::as_i64),
            spec.get("ToPort").and_then(Value::as_i64),
        )?;
        let peer = if let Some(cidr) = spec.get("CidrIpv4").and_then(Value::as_str) {
            Peer::Ipv4 {
                cidr: check_cidr4(cidr)?,
            }
        } else if let Some(cidr) = spec.get("CidrIpv6").and_then(Value::as_str) {
            Peer::Ipv6 {
                cidr: check_cidr6(cidr)?,
            }
        } else if let Some(gid) = spec.get("ReferencedGroupId").and_then(Value::as_str) {
            let other = require(c, gid)?;
            Peer::Group {
                group_id: other.group_id,
                user_id: other.owner_id,
            }
        } else if let Some(pl) = spec.get("PrefixListId").and_then(Value::as_str) {
            Peer::PrefixList { id: pl.into() }
        } else {
            return Err(invalid_value(
                "A security group rule must have a CIDR, a prefix list or a referenced group",
            ));
        };
        slot.protocol = protocol;
        slot.from_port = from;
        slot.to_port = to;
        slot.peer = peer;
        slot.description = spec
            .get("Description")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    check_dry_run_v(input)?;
    g.rules = changed;
    c.put(SGS, &g.group_id, &g)?;
    enforce(c);
    Ok(json!({"Return": true}))
}

// ---- enforcement ----

/// Instance states whose private IP counts as a member of the instance's groups.
fn v4_contains(cidr: &str, ip: Ipv4Addr) -> bool {
    let Some((a, p)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(a), Ok(p)) = (a.parse::<Ipv4Addr>(), p.parse::<u32>()) else {
        return false;
    };
    if p > 32 {
        return false;
    }
    let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
    u32::from(a) & mask == u32::from(ip) & mask
}

/// The firewall protocol of a rule (`None`: a protocol number that does not parse).
fn protocol_of(r: &SgRule) -> Option<FirewallProtocol> {
    let port = |p: i64, default: u16| u16::try_from(p).unwrap_or(default);
    let byte = |p: i64| u8::try_from(p).ok();
    Some(match r.protocol.as_str() {
        "-1" => FirewallProtocol::All,
        "tcp" => FirewallProtocol::Tcp {
            from: port(r.from_port, 0),
            to: port(r.to_port, 65535),
        },
        "udp" => FirewallProtocol::Udp {
            from: port(r.from_port, 0),
            to: port(r.to_port, 65535),
        },
        "icmp" | "icmpv6" => {
            let icmp_type = byte(r.from_port);
            let code = icmp_type.and(byte(r.to_port));
            if r.protocol == "icmp" {
                FirewallProtocol::Icmp { icmp_type, code }
            } else {
                FirewallProtocol::Icmpv6 { icmp_type, code }
            }
        }
        n => FirewallProtocol::Number(n.parse().ok()?),
    })
}

/// The firewall of an instance in `groups`. `members` gives the private IPs of the instances
/// currently in each group (by group id), for rules naming a group; `gateway` is the address
/// host connections through published ports come from (admitted by CIDR rules that contain
/// it or 127.0.0.1). Pure: no I/O.
pub(crate) fn firewall_for(
    groups: &[SecurityGroupRecord],
    members: &HashMap<String, Vec<Ipv4Addr>>,
    gateway: Option<Ipv4Addr>,
) -> Firewall {
    let mut fw = Firewall::default();
    for r in groups.iter().flat_map(|g| g.rules.iter()) {
        let Some(protocol) = protocol_of(r) else {
            continue;
        };
        let peers: Vec<String> = match &r.peer {
            Peer::Ipv4 { cidr } => {
                let mut v = vec![cidr.clone()];
                if let Some(gw) = gateway {
                    if !r.egress && v4_contains(cidr, Ipv4Addr::LOCALHOST) && !v4_contains(cidr, gw)
                    {
                        v.push(format!("{gw}/32"));
                    }
                }
                v
            }
            Peer::Ipv6 { cidr } => vec![cidr.clone()],
            Peer::Group { group_id, .. } => members
                .get(group_id)
                .map(|ips| ips.iter().map(|ip| format!("{ip}/32")).collect())
                .unwrap_or_default(),
            Peer::PrefixList { .. } => Vec::new(),
        };
        if peers.is_empty() {
            continue;
        }
        let rule = FirewallRule { protocol, peers };
        if r.egress {
            fw.egress.push(rule);
        } else {
            fw.ingress.push(rule);
        }
    }
    fw
}

/// (supervisor pid, start time) of the boot a firewall was computed for, and the firewall.
type Wanted = ((i32, i64), Firewall);

/// The latest computed firewall per running instance.
static DESIRED: LazyLock<Mutex<HashMap<String, Wanted>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
/// What was loaded into each instance; its lock also serializes loading.
static APPLIED: LazyLock<tokio::sync::Mutex<HashMap<String, Wanted>>> =
    LazyLock::new(|| tokio::sync::Mutex::new(HashMap::new()));
/// Background recomputations per (account, region): true = run once more when done.
static PENDING: LazyLock<Mutex<HashMap<(String, String), bool>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The addresses of the members of `wanted` groups (all groups with members when `None`) in
/// `scope` and in the scopes of the other accounts the rules of `groups` name (their members
/// live there), from the instance index.
fn members_of(
    store: &dyn Store,
    index: &InstanceIndex,
    scope: &Scope,
    groups: &[&SecurityGroupRecord],
    wanted: Option<&[String]>,
) -> HashMap<String, Vec<Ipv4Addr>> {
    let mut scopes = vec![scope.clone()];
    for r in groups.iter().flat_map(|g| g.rules.iter()) {
        if let Peer::Group { user_id, .. } = &r.peer {
            let other = Scope::new(user_id, &scope.region);
            if !scopes.contains(&other) {
                scopes.push(other);
            }
        }
    }
    let mut members: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
    for sc in &scopes {
        let res = index.with(store, sc, |ix| {
            let names = match wanted {
                Some(w) => w.to_vec(),
                None => ix.groups(),
            };
            for g in names {
                let ips = ix.members(&g);
                if ips.is_empty() {
                    continue;
                }
                let l = members.entry(g).or_default();
                for ip in ips {
                    if !l.contains(&ip) {
                        l.push(ip);
                    }
                }
            }
        });
        if let Err(e) = res {
            tracing::warn!(error = %e.message, "cannot read security group members");
        }
    }
    members
}

/// Computes the firewall of every running instance of a scope and records it as wanted;
/// returns their ids. Blocking; the caller holds the service lock. Reads the scope's groups
/// and the instance index, not the instance records.
fn compute(store: &dyn Store, index: &InstanceIndex, account: &str, region: &str) -> Vec<String> {
    let scope = Scope::new(account, region);
    let groups: HashMap<String, SecurityGroupRecord> =
        super::scan_all::<SecurityGroupRecord>(store, &scope, SGS)
            .unwrap_or_default()
            .into_iter()
            .collect();
    let all: Vec<&SecurityGroupRecord> = groups.values().collect();
    let members = members_of(store, index, &scope, &all, None);
    // (id, groups, workload) of the running instances, and every instance id of the scope.
    let running = index.with(store, &scope, |ix| {
        let running: Vec<(String, Vec<String>, Workload)> = ix
            .running()
            .filter_map(|(id, e)| e.workload.map(|w| (id.clone(), e.groups.clone(), w)))
            .collect();
        running
    });
    let running = match running {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e.message, "cannot compute firewalls");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    let mut desired = lock(&DESIRED);
    // Instances of this scope that stopped running are wanted no more.
    let now_running: std::collections::HashSet<&String> =
        running.iter().map(|(id, _, _)| id).collect();
    let stale: Vec<String> = desired
        .keys()
        .filter(|k| !now_running.contains(k))
        .cloned()
        .collect();
    if !stale.is_empty() {
        let _ = index.with(store, &scope, |ix| {
            for k in stale {
                if ix.entry(&k).is_some() {
                    desired.remove(&k);
                }
            }
        });
    }
    // Instances in the same groups behind the same gateway get the same firewall.
    let mut made: HashMap<(Vec<String>, Option<Ipv4Addr>), Firewall> = HashMap::new();
    for (id, gs, (pid, started, gateway)) in running {
        let fw = made
            .entry((gs, gateway))
            .or_insert_with_key(|(gs, gateway)| {
                let own: Vec<SecurityGroupRecord> =
                    gs.iter().filter_map(|g| groups.get(g).cloned()).collect();
                firewall_for(&own, &members, *gateway)
            })
            .clone();
        desired.insert(id.clone(), ((pid, started), fw));
        out.push(id);
    }
    out
}

/// Computes the firewall of one instance (when it runs) and records it as wanted: its own
/// groups and the members of the groups their rules name. Blocking; the caller holds the
/// service lock.
fn compute_one(store: &dyn Store, index: &InstanceIndex, account: &str, region: &str, id: &str) {
    let scope = Scope::new(account, region);
    let entry = index
        .with(store, &scope, |ix| ix.entry(id).cloned())
        .ok()
        .flatten();
    let Some((e, (pid, started, gateway))) = entry.and_then(|e| e.workload.map(|w| (e, w))) else {
        lock(&DESIRED).remove(id);
        return;
    };
    let own: Vec<SecurityGroupRecord> = e
        .groups
        .iter()
        .filter_map(|g| store.get_json(&scope, SGS, g).ok().flatten())
        .collect();
    let mut named: Vec<String> = Vec::new();
    for r in own.iter().flat_map(|g| g.rules.iter()) {
        if let Peer::Group { group_id, .. } = &r.peer {
            if !named.contains(group_id) {
                named.push(group_id.clone());
            }
        }
    }
    let refs: Vec<&SecurityGroupRecord> = own.iter().collect();
    let members = members_of(store, index, &scope, &refs, Some(&named));
    let fw = firewall_for(&own, &members, gateway);
    lock(&DESIRED).insert(id.to_string(), ((pid, started), fw));
}

fn instances_of(store: &dyn Store, scope: &Scope) -> Vec<InstanceRecord> {
    super::scan_all::<InstanceRecord>(store, scope, INSTANCES)
        .map(|l| l.into_iter().map(|(_, r)| r).collect())
        .unwrap_or_default()
}

/// Loads the wanted firewall of each of `ids` whose loaded one differs (a few namespaces at a
/// time: they are independent).
async fn apply(exec: &Exec, ids: &[String]) {
    // The lock is taken per chunk, so a boot waiting for its own firewall waits for a few
    // loads, not for a whole scope's.
    for chunk in ids.chunks(8) {
        let mut applied = APPLIED.lock().await;
        let mut set = tokio::task::JoinSet::new();
        for id in chunk {
            let want = lock(&DESIRED).get(id).cloned();
            match want {
                None => {
                    applied.remove(id);
                }
                Some(w) if applied.get(id) != Some(&w) => {
                    let driver = exec.driver.clone();
                    let id = id.clone();
                    set.spawn(async move {
                        let res = driver.set_firewall(&id, &w.1).await;
                        (id, w, res)
                    });
                }
                Some(_) => {}
            }
        }
        while let Some(done) = set.join_next().await {
            let Ok((id, want, res)) = done else {
                continue;
            };
            match res {
                Ok(()) | Err(RuntimeError::Unsupported { .. }) => {
                    applied.insert(id, want);
                }
                Err(RuntimeError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(instance = %id, error = %e, "cannot enforce security groups")
                }
            }
        }
    }
    let mut applied = APPLIED.lock().await;
    let desired = lock(&DESIRED);
    applied.retain(|k, _| desired.contains_key(k));
}

/// Enforces the security groups of every running instance of the caller's account and region
/// before returning (for handlers, which hold the service lock).
pub(crate) fn enforce(c: &Ctx<'_>) {
    let Some(exec) = c.exec else {
        return;
    };
    let ids = compute(c.store, c.index, c.account(), c.region());
    let exec: &Exec = exec;
    // A thread of its own: the handler may run where blocking on the runtime is not allowed.
    std::thread::scope(|s| {
        let _ = s.spawn(|| exec.rt.block_on(apply(exec, &ids))).join();
    });
}

/// The AMI's default login user, by its name (as on AWS).
fn default_user(image_name: &str) -> &'static str {
    let n = image_name.to_ascii_lowercase();
    if n.contains("bitnami") {
        "bitnami"
    } else if n.contains("ubuntu") {
        "ubuntu"
    } else if n.contains("debian") {
        "admin"
    } else {
        "ec2-user"
    }
}

/// The instance's SSH port on the host, as a tag: kept up to date on instances launched (or
/// tagged) with this key, whatever its value (empty while the instance does not run). Opt-in,
/// so instances show exactly the tags their owner gave them.
pub(crate) const SSH_PORT_TAG: &str = "ferrocloud:ssh-port";

fn set_ssh_tag(store: &dyn Store, scope: &Scope, id: &str, port: Option<u16>) {
    let mut t: Vec<(String, String)> = store
        .get_json(scope, TAGS, id)
        .ok()
        .flatten()
        .unwrap_or_default();
    let Some(slot) = t.iter_mut().find(|(k, _)| k == SSH_PORT_TAG) else {
        return;
    };
    let value = port.map(|p| p.to_string()).unwrap_or_default();
    if slot.1 == value {
        return;
    }
    slot.1 = value;
    if let Err(e) = store.put_json(scope, TAGS, id, &t) {
        tracing::warn!(instance = id, error = %e, "cannot tag the instance's ssh port");
    }
}

/// Run inside the instance at every boot (before user data): the default user, the key pair's
/// public key, `sshd`. Its output is console output.
pub(crate) const SSH_SETUP: &str = r#"# ferrocloud: SSH access to the instance (written by ferrocloud; runs at every boot)
B="${FC_BOOT:-/.ferrocloud}/ssh"
U=""
[ -f "$B/user" ] && read -r U < "$B/user"
# Shell builtins where they do (each process costs a boot about a millisecond), and only
# tools every image has: /usr/bin/awk is often an alternatives link an image lacks.
# free_id FILE N: ID = the first id >= N in the third field of no line of FILE.
free_id() {
  ID=$2
  while :; do
    used=""
    while IFS=: read -r _ _ id _; do
      [ "$id" = "$ID" ] && used=1 && break
    done < "$1"
    [ -z "$used" ] && return 0
    ID=$((ID + 1))
  done
}
if [ -n "$U" ] && [ -w /etc/passwd ] && ! grep -q "^$U:" /etc/passwd; then
  free_id /etc/passwd 1000
  uid=$ID
  gid=""
  while IFS=: read -r name _ id _; do
    [ "$name" = "$U" ] && gid=$id && break
  done < /etc/group
  if [ -z "$gid" ]; then
    free_id /etc/group "$uid"
    gid=$ID
    echo "$U:x:$gid:" >> /etc/group
  fi
  shell=/bin/bash
  [ -x "$shell" ] || shell=/bin/sh
  echo "$U:x:$uid:$gid::/home/$U:$shell" >> /etc/passwd
  if [ -f /etc/shadow ] && ! grep -q "^$U:" /etc/shadow; then
    echo "$U:*:20000:0:99999:7:::" >> /etc/shadow
  fi
  mkdir -p -m 755 "/home/$U" && chown "$uid:$gid" "/home/$U"
  if [ -d /etc/sudoers.d ]; then
    (umask 337 && echo "$U ALL=(ALL) NOPASSWD:ALL" > /etc/sudoers.d/90-ferrocloud-users)
  fi
  echo "ferrocloud: created user $U"
fi
# A locked password must not lock key logins out.
if [ -n "$U" ] && [ -w /etc/shadow ] && grep -q "^$U:!" /etc/shadow; then
  sed -i "s/^$U:![^:]*:/$U:*:/" /etc/shadow
fi
install_keys() {
  found="" home="" owner=""
  while IFS=: read -r name _ uid gid _ dir _; do
    if [ "$name" = "$1" ]; then
      found=1 home=$dir owner="$uid:$gid"
      break
    fi
  done < /etc/passwd
  [ -n "$found" ] && [ -n "$home" ] || return 0
  mkdir -p -m 700 "$home/.ssh"
  f="$home/.ssh/authorized_keys"
  (umask 177 && touch "$f")
  chmod go-rwx "$home/.ssh" "$f"
  while IFS= read -r k; do
    [ -n "$k" ] || continue
    grep -qxF "$k" "$f" || printf '%s\n' "$k" >> "$f"
  done < "$B/authorized_keys"
  chown -R "$owner" "$home/.ssh"
}
if [ -s "$B/authorized_keys" ]; then
  install_keys root
  [ -n "$U" ] && [ "$U" != root ] && install_keys "$U"
fi
# sshd starts beside the rest of the boot (host keys are generated on the first boot).
[ -x /usr/sbin/sshd ] && (
  mkdir -p /etc/ssh /run/sshd && chmod 755 /run/sshd
  # Host keys are the instance's own: an image made from another instance brings that one's.
  if [ "$(cat /etc/ssh/.ferrocloud-instance 2>/dev/null)" != "$FC_INSTANCE_ID" ]; then
    rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
    echo "$FC_INSTANCE_ID" > /etc/ssh/.ferrocloud-instance
  fi
  for t in ed25519 ecdsa; do
    [ -f "/etc/ssh/ssh_host_${t}_key" ] || ssh-keygen -q -t "$t" -N '' -f "/etc/ssh/ssh_host_${t}_key" >/dev/null 2>&1
  done
  if ! grep -q '^sshd:' /etc/passwd; then
    free_id /etc/passwd 100
    echo "sshd:x:$ID:65534::/run/sshd:/usr/sbin/nologin" >> /etc/passwd
  fi
  if [ ! -f /etc/ssh/sshd_config ]; then
    printf '%s\n' "PasswordAuthentication no" "KbdInteractiveAuthentication no" \
      "PubkeyAuthentication yes" "PermitRootLogin prohibit-password" "PrintMotd no" \
      "HostKey /etc/ssh/ssh_host_ed25519_key" "HostKey /etc/ssh/ssh_host_ecdsa_key" \
      "Subsystem sftp /usr/lib/openssh/sftp-server" > /etc/ssh/sshd_config
  fi
  if /usr/sbin/sshd -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no -E /var/log/sshd.log; then
    echo "ferrocloud: sshd started"
    [ -f "$B/console" ] && cat "$B/console"
  else
    echo "ferrocloud: sshd did not start (see /var/log/sshd.log)"
  fi
) &
"#;

impl Exec {
    /// Before an instance boots (blocking): the boot waits for `net-ready` again, and the SSH
    /// files go into the boot directory (`ssh/`; only for drivers with a root filesystem of
    /// the instance's own: the process driver would change the host's).
    pub(crate) fn prepare_boot(&self, rec: &InstanceRecord, boot: &Path, isolated: bool) {
        let _ = std::fs::remove_file(boot.join("net-ready"));
        let ssh = boot.join("ssh");
        if !isolated {
            let _ = std::fs::remove_dir_all(&ssh);
            return;
        }
        if let Err(e) = std::fs::create_dir_all(&ssh) {
            tracing::warn!(instance = %rec.instance_id, error = %e, "cannot prepare ssh access");
            return;
        }
        let _ = std::fs::remove_file(ssh.join("console"));
        let image = super::images::image(
            self.store.as_ref(),
            &rec.owner_id,
            &rec.region,
            &rec.image_id,
        );
        let user = default_user(image.as_ref().map(|i| i.name.as_str()).unwrap_or(""));
        let _ = std::fs::write(ssh.join("setup.sh"), SSH_SETUP);
        let _ = std::fs::write(ssh.join("user"), format!("{user}\n"));
        // A key pair deleted since launch stays in the instance, as on AWS.
        if let Some(name) = &rec.key_name {
            if let Some(k) =
                super::key_pairs::public_key(self.store.as_ref(), &rec.owner_id, &rec.region, name)
            {
                let k = k.trim();
                let line = if k.split_whitespace().count() < 3 {
                    format!("{k} {name}\n")
                } else {
                    format!("{k}\n")
                };
                let _ = std::fs::write(ssh.join("authorized_keys"), line);
            }
        }
    }

    /// After an instance booted: its security groups are enforced, then its boot goes on
    /// (`net-ready`) with the ssh line for the console; instances whose rules name its groups
    /// follow in the background.
    pub(crate) async fn after_boot(self: &Arc<Self>, account: &str, region: &str, id: &str) {
        let me = self.clone();
        let (a, r) = (account.to_string(), region.to_string());
        let i = id.to_string();
        let _ = tokio::task::spawn_blocking(move || {
            let _g = lock(&me.lock);
            compute_one(me.store.as_ref(), &me.index, &a, &r, &i)
        })
        .await;
        apply(self, &[id.to_string()]).await;
        let port = match self.driver.inspect(id).await {
            Ok(w) => w
                .network
                .and_then(|n| n.ports.into_iter().find(|p| p.container_port == 22))
                .map(|p| p.host.port()),
            Err(_) => None,
        };
        let me = self.clone();
        let (a, r, i) = (account.to_string(), region.to_string(), id.to_string());
        let _ = tokio::task::spawn_blocking(move || {
            let scope = Scope::new(&a, &r);
            let rec: Option<InstanceRecord> = {
                let _g = lock(&me.lock);
                set_ssh_tag(me.store.as_ref(), &scope, &i, port);
                me.store.get_json(&scope, INSTANCES, &i).ok().flatten()
            };
            let boot = super::instances::instance_dir(&me.data_dir, &i).join("boot");
            if let (Some(p), Some(rec)) = (port, rec) {
                let user = std::fs::read_to_string(boot.join("ssh/user")).unwrap_or_default();
                let user = user.trim();
                let key = match &rec.key_name {
                    Some(k) => format!("-i {k}.pem "),
                    None => String::new(),
                };
                let line = format!(
                    "ferrocloud: ssh {key}-p {p} {user}@127.0.0.1 (port 22 of {i} is published \
                     on 127.0.0.1:{p}; its security groups must allow tcp/22)\n"
                );
                if boot.join("ssh").is_dir() {
                    let _ = std::fs::write(boot.join("ssh/console"), line);
                }
            }
            let _ = std::fs::write(boot.join("net-ready"), b"");
        })
        .await;
        self.schedule_enforce(account, region);
    }

    /// After an instance stopped or terminated: it left its groups.
    pub(crate) async fn after_halt(self: &Arc<Self>, account: &str, region: &str, id: &str) {
        let me = self.clone();
        let (a, r, i) = (account.to_string(), region.to_string(), id.to_string());
        let _ = tokio::task::spawn_blocking(move || {
            let _g = lock(&me.lock);
            set_ssh_tag(me.store.as_ref(), &Scope::new(&a, &r), &i, None);
        })
        .await;
        self.schedule_enforce(account, region);
    }

    /// After re-adopting instances (server restart): firewalls and ssh tags of every scope.
    pub(crate) async fn after_recover(self: &Arc<Self>) {
        let me = self.clone();
        let scopes =
            tokio::task::spawn_blocking(move || me.store.scopes(INSTANCES).unwrap_or_default())
                .await
                .unwrap_or_default();
        for scope in scopes {
            let me = self.clone();
            let sc = scope.clone();
            let running: Vec<String> = tokio::task::spawn_blocking(move || {
                instances_of(me.store.as_ref(), &sc)
                    .into_iter()
                    .filter(|i| i.state == "running")
                    .map(|i| i.instance_id)
                    .collect()
            })
            .await
            .unwrap_or_default();
            for id in running {
                let port = match self.driver.inspect(&id).await {
                    Ok(w) => w
                        .network
                        .and_then(|n| n.ports.into_iter().find(|p| p.container_port == 22))
                        .map(|p| p.host.port()),
                    Err(_) => continue,
                };
                let me = self.clone();
                let sc = scope.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let _g = lock(&me.lock);
                    set_ssh_tag(me.store.as_ref(), &sc, &id, port);
                })
                .await;
            }
            self.schedule_enforce(&scope.account, &scope.region);
        }
    }

    /// Recompute and enforce the firewalls of a scope in the background; calls while one runs
    /// make it run once more (so bursts of boots coalesce).
    pub(crate) fn schedule_enforce(self: &Arc<Self>, account: &str, region: &str) {
        let key = (account.to_string(), region.to_string());
        {
            let mut p = lock(&PENDING);
            if let Some(again) = p.get_mut(&key) {
                *again = true;
                return;
            }
            p.insert(key.clone(), false);
        }
        let me = self.clone();
        self.rt.spawn(async move {
            loop {
                let m = me.clone();
                let k = key.clone();
                let ids = tokio::task::spawn_blocking(move || {
                    let _g = lock(&m.lock);
                    compute(m.store.as_ref(), &m.index, &k.0, &k.1)
                })
                .await
                .unwrap_or_default();
                apply(&me, &ids).await;
                let mut p = lock(&PENDING);
                if p.get(&key) == Some(&true) {
                    p.insert(key.clone(), false);
                } else {
                    p.remove(&key);
                    break;
                }
            }
        });
    }
}

/// The host port 22 of an instance is published on (linux driver).
pub(crate) fn instance_ports() -> Vec<fc_runtime::PortSpec> {
    vec![fc_runtime::PortSpec {
        container_port: 22,
        host_port: 0,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_and_ports() {
        assert_eq!(normalize_protocol("6").unwrap(), "tcp");
        assert_eq!(normalize_protocol("ALL").unwrap(), "-1");
        assert_eq!(normalize_protocol("50").unwrap(), "50");
        assert!(normalize_protocol("bogus").is_err());
        assert!(normalize_protocol("300").is_err());
        assert_eq!(ports("tcp", Some(22), Some(22)).unwrap(), (22, 22));
        assert!(ports("tcp", Some(23), Some(22)).is_err());
        assert!(ports("udp", None, Some(22)).is_err());
        assert_eq!(ports("icmp", Some(-1), Some(5)).unwrap(), (-1, -1));
        assert_eq!(ports("-1", Some(1), Some(2)).unwrap(), (-1, -1));
    }

    fn group(id: &str, rules: Vec<(bool, &str, i64, i64, Peer)>) -> SecurityGroupRecord {
        SecurityGroupRecord {
            group_id: id.into(),
            group_name: id.into(),
            description: String::new(),
            vpc_id: "vpc-1".into(),
            owner_id: "000000000000".into(),
            rules: rules
                .into_iter()
                .enumerate()
                .map(|(i, (egress, protocol, from_port, to_port, peer))| SgRule {
                    rule_id: format!("sgr-{i}"),
                    egress,
                    protocol: protocol.into(),
                    from_port,
                    to_port,
                    peer,
                    description: None,
                })
                .collect(),
        }
    }

    fn v4(cidr: &str) -> Peer {
        Peer::Ipv4 { cidr: cidr.into() }
    }

    fn of_group(id: &str) -> Peer {
        Peer::Group {
            group_id: id.into(),
            user_id: "000000000000".into(),
        }
    }

    fn rules_of(text: &str) -> Vec<&str> {
        text.lines().filter(|l| l.starts_with("-A fc-")).collect()
    }

    #[test]
    fn default_group_admits_its_members_and_allows_all_out() {
        let g = group(
            "sg-default",
            vec![
                (false, "-1", -1, -1, of_group("sg-default")),
                (true, "-1", -1, -1, v4("0.0.0.0/0")),
            ],
        );
        let members = HashMap::from([(
            "sg-default".to_string(),
            vec![Ipv4Addr::new(172, 31, 0, 4), Ipv4Addr::new(172, 31, 0, 5)],
        )]);
        let gw = Some(Ipv4Addr::new(172, 31, 0, 1));
        let text = fc_runtime::render_firewall(&firewall_for(&[g], &members, gw)).unwrap();
        assert_eq!(
            rules_of(&text.ipv4),
            [
                "-A fc-ingress -s 172.31.0.4/32 -j ACCEPT",
                "-A fc-ingress -s 172.31.0.5/32 -j ACCEPT",
                "-A fc-egress -d 0.0.0.0/0 -j ACCEPT",
            ]
        );
        assert!(text.ipv4.contains(":INPUT DROP"));
        assert!(text.ipv4.contains("-A OUTPUT -d 169.254.0.0/16 -j ACCEPT"));
        assert!(rules_of(&text.ipv6).is_empty());
    }

    #[test]
    fn ports_protocols_and_peers_render() {
        let web = group(
            "sg-web",
            vec![
                (false, "tcp", 80, 80, v4("0.0.0.0/0")),
                (false, "tcp", 8000, 8100, of_group("sg-app")),
                (false, "udp", 53, 53, v4("10.0.0.0/8")),
                (false, "icmp", 8, -1, v4("10.0.0.0/8")),
                (false, "icmp", -1, -1, v4("192.168.0.0/16")),
                (
                    false,
                    "icmpv6",
                    128,
                    0,
                    Peer::Ipv6 {
                        cidr: "::/0".into(),
                    },
                ),
                (
                    false,
                    "tcp",
                    443,
                    443,
                    Peer::Ipv6 {
                        cidr: "2001:db8::/32".into(),
                    },
                ),
                (false, "50", -1, -1, v4("10.1.0.0/16")),
                (false, "tcp", 22, 22, of_group("sg-empty")),
                (false, "tcp", 25, 25, Peer::PrefixList { id: "pl-1".into() }),
                (false, "tcp", 22, 22, v4("127.0.0.1/32")),
                (true, "tcp", 5432, 5432, of_group("sg-app")),
            ],
        );
        let members = HashMap::from([("sg-app".to_string(), vec![Ipv4Addr::new(10, 0, 1, 9)])]);
        let gw = Some(Ipv4Addr::new(10, 0, 1, 1));
        let text = fc_runtime::render_firewall(&firewall_for(&[web], &members, gw)).unwrap();
        assert_eq!(
            rules_of(&text.ipv4),
            [
                "-A fc-ingress -s 0.0.0.0/0 -p tcp -m tcp --dport 80 -j ACCEPT",
                "-A fc-ingress -s 10.0.1.9/32 -p tcp -m tcp --dport 8000:8100 -j ACCEPT",
                "-A fc-ingress -s 10.0.0.0/8 -p udp -m udp --dport 53 -j ACCEPT",
                "-A fc-ingress -s 10.0.0.0/8 -p icmp -m icmp --icmp-type 8 -j ACCEPT",
                "-A fc-ingress -s 192.168.0.0/16 -p icmp -j ACCEPT",
                "-A fc-ingress -s 10.1.0.0/16 -p 50 -j ACCEPT",
                // Host connections (published ports) come from the gateway.
                "-A fc-ingress -s 127.0.0.1/32 -p tcp -m tcp --dport 22 -j ACCEPT",
                "-A fc-ingress -s 10.0.1.1/32 -p tcp -m tcp --dport 22 -j ACCEPT",
                "-A fc-egress -d 10.0.1.9/32 -p tcp -m tcp --dport 5432 -j ACCEPT",
            ]
        );
        assert_eq!(
            rules_of(&text.ipv6),
            [
                "-A fc-ingress -s ::/0 -p ipv6-icmp -m icmp6 --icmpv6-type 128/0 -j ACCEPT",
                "-A fc-ingress -s 2001:db8::/32 -p tcp -m tcp --dport 443 -j ACCEPT",
            ]
        );
        // No egress rule at all: nothing new goes out (but link-local still does).
        assert!(!text.ipv4.contains("-A fc-egress -d 0.0.0.0/0"));
    }

    #[test]
    fn rules_of_all_groups_add_up() {
        let a = group("sg-a", vec![(false, "tcp", 22, 22, v4("10.0.0.0/8"))]);
        let b = group("sg-b", vec![(true, "-1", -1, -1, v4("0.0.0.0/0"))]);
        let fw = firewall_for(&[a, b], &HashMap::new(), None);
        assert_eq!(fw.ingress.len(), 1);
        assert_eq!(fw.egress.len(), 1);
        assert_eq!(
            fw.ingress[0].protocol,
            FirewallProtocol::Tcp { from: 22, to: 22 }
        );
        assert!(firewall_for(&[], &HashMap::new(), None) == Firewall::default());
    }

    #[test]
    fn default_users_by_ami_name() {
        assert_eq!(
            default_user("al2023-ami-2023.6.20241212.0-kernel-6.1-x86_64"),
            "ec2-user"
        );
        assert_eq!(
            default_user("amzn2-ami-kernel-5.10-hvm-2.0-x86_64-gp2"),
            "ec2-user"
        );
        assert_eq!(
            default_user("ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server"),
            "ubuntu"
        );
        assert_eq!(default_user("debian-12-amd64-20241201-1948"), "admin");
        assert_eq!(
            default_user("bitnami-nginx-1.27.3-0-linux-debian-12-x86_64"),
            "bitnami"
        );
        assert_eq!(default_user("my-custom-image"), "ec2-user");
    }

    #[test]
    fn rule_description() {
        let r = SgRule {
            rule_id: "sgr-1".into(),
            egress: false,
            protocol: "tcp".into(),
            from_port: 22,
            to_port: 22,
            peer: Peer::Ipv4 {
                cidr: "0.0.0.0/0".into(),
            },
            description: None,
        };
        assert_eq!(
            describe_rule(&r),
            "peer: 0.0.0.0/0, TCP, from port: 22, to port: 22, ALLOW"
        );
    }
}
