//! Security groups and their rules. Each stored rule allows one peer (an IPv4 or IPv6 CIDR,
//! another group, or a prefix list) for one protocol and port range, with its own `sgr-` id;
//! `DescribeSecurityGroups` groups rules back into `IpPermissions`.
//!
//! Enforcement on traffic comes with instances: the future enforcer reads
//! [`SecurityGroupRecord`]s through [`security_groups`]. A packet is allowed when any rule of
//! any group of the interface matches it: direction (`egress`), protocol (`"-1"` any,
//! `"tcp"`, `"udp"`, `"icmp"`, `"icmpv6"` or an IP protocol number as a string), the port
//! range (`from_port..=to_port`; ICMP type and code; `-1` = any) and the peer.

use super::{
    check_dry_run_v, check_id, filters, invalid_value, matches, one, opt_i64, opt_str, page_output,
    paginate, req_str, spec_tags, str_list, tags, vpcs, with_tags, Ctx, SGS,
};
use fc_protocol::ApiError;
use fc_store::{Scope, Store};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

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
            fc_store::StoreExt::get_json::<SecurityGroupRecord>(store, &scope, SGS, id)
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
    Ok(json!({"Return": true}))
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
