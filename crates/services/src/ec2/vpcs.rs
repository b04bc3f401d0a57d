//! VPCs, subnets, availability zones, regions and account attributes, and the default VPC
//! (`172.31.0.0/16`, one `/20` default subnet per zone, a default security group) that every
//! account gets lazily in every region it uses.

use super::{
    bool_s, check_dry_run_v, check_id, filters, invalid_value, matches, one, opt_bool, opt_str,
    page_output, paginate, req_str, security_groups, spec_tags, str_list, tags, with_tags, Ctx,
    META, SGS, SUBNETS, VPCS,
};
use fc_protocol::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The DHCP options set every VPC uses.
pub(crate) const DHCP_OPTIONS_ID: &str = "dopt-0a1b2c3d4e5f60718";

/// Regions: name and whether it is enabled without opting in.
const REGIONS: &[(&str, bool)] = &[
    ("af-south-1", false),
    ("ap-east-1", false),
    ("ap-northeast-1", true),
    ("ap-northeast-2", true),
    ("ap-northeast-3", true),
    ("ap-south-1", true),
    ("ap-south-2", false),
    ("ap-southeast-1", true),
    ("ap-southeast-2", true),
    ("ap-southeast-3", false),
    ("ap-southeast-4", false),
    ("ap-southeast-5", false),
    ("ap-southeast-7", false),
    ("ca-central-1", true),
    ("ca-west-1", false),
    ("eu-central-1", true),
    ("eu-central-2", false),
    ("eu-north-1", true),
    ("eu-south-1", false),
    ("eu-south-2", false),
    ("eu-west-1", true),
    ("eu-west-2", true),
    ("eu-west-3", true),
    ("il-central-1", false),
    ("me-central-1", false),
    ("me-south-1", false),
    ("mx-central-1", false),
    ("sa-east-1", true),
    ("us-east-1", true),
    ("us-east-2", true),
    ("us-west-1", true),
    ("us-west-2", true),
];

/// One availability zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Zone {
    pub name: String,
    pub id: String,
}

/// `us-east-1` -> `use1`, `ap-southeast-2` -> `apse2`: the prefix of zone ids.
fn region_short(region: &str) -> String {
    let parts: Vec<&str> = region.split('-').collect();
    if parts.len() != 3 {
        return region.replace('-', "");
    }
    let dir = match parts[1] {
        "east" => "e",
        "west" => "w",
        "north" => "n",
        "south" => "s",
        "central" => "c",
        "northeast" => "ne",
        "northwest" => "nw",
        "southeast" => "se",
        "southwest" => "sw",
        other => other,
    };
    format!("{}{dir}{}", parts[0], parts[2])
}

/// The availability zones of a region: six in us-east-1, four in us-west-2, three elsewhere.
pub(crate) fn zones(region: &str) -> Vec<Zone> {
    let n = match region {
        "us-east-1" => 6,
        "us-west-2" => 4,
        _ => 3,
    };
    let short = region_short(region);
    (0..n)
        .map(|i| Zone {
            name: format!("{region}{}", (b'a' + i as u8) as char),
            id: format!("{short}-az{}", i + 1),
        })
        .collect()
}

/// The zone named `name` (or with zone id `name`) in the caller's region.
pub(crate) fn zone(region: &str, name: &str) -> Option<Zone> {
    zones(region)
        .into_iter()
        .find(|z| z.name == name || z.id == name)
}

// ---- CIDRs ----

/// An IPv4 CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    pub addr: u32,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = s.split_once('/')?;
        let prefix: u8 = p.parse().ok()?;
        if prefix > 32 || p.starts_with('+') {
            return None;
        }
        let ip: std::net::Ipv4Addr = a.parse().ok()?;
        let addr = u32::from(ip);
        let c = Cidr { addr, prefix };
        (addr & c.mask() == addr).then_some(c)
    }

    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        }
    }

    pub fn contains(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && other.addr & self.mask() == self.addr
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other) || other.contains(self)
    }

    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", std::net::Ipv4Addr::from(self.addr), self.prefix)
    }
}

// ---- records ----

/// A VPC.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VpcRecord {
    pub vpc_id: String,
    pub cidr_block: String,
    pub is_default: bool,
    pub instance_tenancy: String,
    pub owner_id: String,
    pub cidr_association_id: String,
    #[serde(default = "yes")]
    pub enable_dns_support: bool,
    #[serde(default)]
    pub enable_dns_hostnames: bool,
    #[serde(default)]
    pub enable_network_address_usage_metrics: bool,
}

fn yes() -> bool {
    true
}

/// A subnet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SubnetRecord {
    pub subnet_id: String,
    pub vpc_id: String,
    pub cidr_block: String,
    pub availability_zone: String,
    pub availability_zone_id: String,
    pub default_for_az: bool,
    pub map_public_ip_on_launch: bool,
    pub owner_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Defaults {
    vpc_id: String,
}

/// Create the default VPC, its subnets and its default security group the first time an
/// account uses a region.
pub(crate) fn ensure_defaults(c: &Ctx<'_>) -> Result<(), ApiError> {
    if c.get::<Defaults>(META, "defaults")?.is_some() {
        return Ok(());
    }
    create_default_records(c)?;
    Ok(())
}

/// The default VPC with one default subnet per zone and its default security group.
fn create_default_records(c: &Ctx<'_>) -> Result<VpcRecord, ApiError> {
    let vpc_id = fc_types::ids::ec2_id("vpc");
    let vpc = VpcRecord {
        vpc_id: vpc_id.clone(),
        cidr_block: "172.31.0.0/16".into(),
        is_default: true,
        instance_tenancy: "default".into(),
        owner_id: c.account().to_string(),
        cidr_association_id: fc_types::ids::ec2_id("vpc-cidr-assoc"),
        enable_dns_support: true,
        enable_dns_hostnames: true,
        enable_network_address_usage_metrics: false,
    };
    c.put(VPCS, &vpc_id, &vpc)?;
    let taken: Vec<String> = c
        .all::<SubnetRecord>(SUBNETS)?
        .into_iter()
        .filter(|(_, s)| s.default_for_az)
        .map(|(_, s)| s.availability_zone)
        .collect();
    for (i, z) in zones(c.region()).into_iter().enumerate() {
        if taken.contains(&z.name) {
            continue;
        }
        let id = fc_types::ids::ec2_id("subnet");
        let s = SubnetRecord {
            subnet_id: id.clone(),
            vpc_id: vpc_id.clone(),
            cidr_block: format!("172.31.{}.0/20", i * 16),
            availability_zone: z.name,
            availability_zone_id: z.id,
            default_for_az: true,
            map_public_ip_on_launch: true,
            owner_id: c.account().to_string(),
        };
        c.put(SUBNETS, &id, &s)?;
    }
    security_groups::create_default_group(c, &vpc_id, "default VPC security group")?;
    c.put(META, "defaults", &Defaults { vpc_id })?;
    Ok(vpc)
}

pub(crate) fn create_default_vpc(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    if let Some(id) = default_vpc_id(c)? {
        return Err(ApiError::client(
            "DefaultVpcAlreadyExists",
            format!("A Default VPC already exists for this account in this region ({id})."),
        ));
    }
    check_dry_run_v(input)?;
    let vpc = create_default_records(c)?;
    let mut v = vpc_value(c, &vpc)?;
    v["State"] = json!("pending");
    Ok(json!({ "Vpc": v }))
}

fn attribute_flag(input: &Value, key: &str) -> Option<bool> {
    input
        .get(key)
        .and_then(|v| v.get("Value"))
        .and_then(Value::as_bool)
}

pub(crate) fn describe_vpc_attribute(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "VpcId")?;
    check_id(id, "vpc", "InvalidVpcID.Malformed")?;
    let attr = req_str(input, "Attribute")?;
    let vpc = find_vpc(c, id)?;
    check_dry_run_v(input)?;
    let (key, value) = match attr {
        "enableDnsSupport" => ("EnableDnsSupport", vpc.enable_dns_support),
        "enableDnsHostnames" => ("EnableDnsHostnames", vpc.enable_dns_hostnames),
        "enableNetworkAddressUsageMetrics" => (
            "EnableNetworkAddressUsageMetrics",
            vpc.enable_network_address_usage_metrics,
        ),
        other => {
            return Err(invalid_value(format!(
                "Value ({other}) for parameter attribute is invalid. Unknown attribute."
            )))
        }
    };
    Ok(json!({"VpcId": id, key: {"Value": value}}))
}

pub(crate) fn modify_vpc_attribute(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "VpcId")?;
    check_id(id, "vpc", "InvalidVpcID.Malformed")?;
    let mut vpc = find_vpc(c, id)?;
    let dns = attribute_flag(input, "EnableDnsSupport");
    let hostnames = attribute_flag(input, "EnableDnsHostnames");
    let metrics = attribute_flag(input, "EnableNetworkAddressUsageMetrics");
    let given = [dns, hostnames, metrics]
        .iter()
        .filter(|x| x.is_some())
        .count();
    if given != 1 {
        return Err(ApiError::client(
            "InvalidParameterCombination",
            "Exactly one attribute may be modified per request.",
        ));
    }
    if hostnames == Some(true) && !vpc.enable_dns_support {
        return Err(ApiError::client(
            "InvalidParameterValue",
            "DNS hostnames can only be enabled when DNS support is enabled.",
        ));
    }
    check_dry_run_v(input)?;
    if let Some(v) = dns {
        vpc.enable_dns_support = v;
    }
    if let Some(v) = hostnames {
        vpc.enable_dns_hostnames = v;
    }
    if let Some(v) = metrics {
        vpc.enable_network_address_usage_metrics = v;
    }
    c.put(VPCS, id, &vpc)?;
    Ok(json!({}))
}

pub(crate) fn modify_subnet_attribute(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "SubnetId")?;
    check_id(id, "subnet", "InvalidSubnetID.Malformed")?;
    let mut s = find_subnet(c, id)?;
    let public = attribute_flag(input, "MapPublicIpOnLaunch");
    if public.is_none() {
        let known = [
            "AssignIpv6AddressOnCreation",
            "EnableDns64",
            "MapCustomerOwnedIpOnLaunch",
        ];
        if !known
            .iter()
            .any(|k| attribute_flag(input, k) == Some(false))
        {
            return Err(ApiError::client(
                "InvalidParameterCombination",
                "ferrocloud supports MapPublicIpOnLaunch on subnets (IPv6 and customer-owned addresses are not modeled)",
            ));
        }
    }
    check_dry_run_v(input)?;
    if let Some(p) = public {
        s.map_public_ip_on_launch = p;
        c.put(SUBNETS, id, &s)?;
    }
    Ok(json!({}))
}

/// The id of the default VPC, if it still exists.
pub(crate) fn default_vpc_id(c: &Ctx<'_>) -> Result<Option<String>, ApiError> {
    let Some(d) = c.get::<Defaults>(META, "defaults")? else {
        return Ok(None);
    };
    Ok(c.get::<VpcRecord>(VPCS, &d.vpc_id)?.map(|v| v.vpc_id))
}

pub(crate) fn find_vpc(c: &Ctx<'_>, id: &str) -> Result<VpcRecord, ApiError> {
    c.get::<VpcRecord>(VPCS, id)?.ok_or_else(|| {
        ApiError::client(
            "InvalidVpcID.NotFound",
            format!("The vpc ID '{id}' does not exist"),
        )
    })
}

fn vpc_value(c: &Ctx<'_>, v: &VpcRecord) -> Result<Value, ApiError> {
    let t = tags::get(c, &v.vpc_id)?;
    Ok(with_tags(
        json!({
            "VpcId": v.vpc_id,
            "CidrBlock": v.cidr_block,
            "State": "available",
            "DhcpOptionsId": DHCP_OPTIONS_ID,
            "InstanceTenancy": v.instance_tenancy,
            "IsDefault": v.is_default,
            "OwnerId": v.owner_id,
            "CidrBlockAssociationSet": [{
                "AssociationId": v.cidr_association_id,
                "CidrBlock": v.cidr_block,
                "CidrBlockState": {"State": "associated"}
            }],
            "BlockPublicAccessStates": {"InternetGatewayBlockMode": "off"},
        }),
        &t,
    ))
}

pub(crate) fn describe_vpcs(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let fs = filters(
        input,
        &[
            "vpc-id",
            "cidr",
            "cidr-block-association.cidr-block",
            "cidr-block-association.association-id",
            "cidr-block-association.state",
            "dhcp-options-id",
            "is-default",
            "owner-id",
            "state",
        ],
        true,
    )?;
    let ids = str_list(input, "VpcIds");
    for id in &ids {
        check_id(id, "vpc", "InvalidVpcID.Malformed")?;
    }
    check_dry_run_v(input)?;
    let mut items = Vec::new();
    for id in &ids {
        find_vpc(c, id)?;
    }
    for (id, v) in c.all::<VpcRecord>(VPCS)? {
        if !ids.is_empty() && !ids.contains(&id) {
            continue;
        }
        let t = tags::get(c, &id)?;
        let ok = matches(&fs, &t, |n| match n {
            "vpc-id" => one(&v.vpc_id),
            "cidr" | "cidr-block-association.cidr-block" => one(&v.cidr_block),
            "cidr-block-association.association-id" => one(&v.cidr_association_id),
            "cidr-block-association.state" => one("associated"),
            "dhcp-options-id" => one(DHCP_OPTIONS_ID),
            "is-default" => bool_s(v.is_default),
            "owner-id" => one(&v.owner_id),
            "state" => one("available"),
            _ => None,
        });
        if ok {
            items.push((id.clone(), vpc_value(c, &v)?));
        }
    }
    let (page, next) = paginate(c, input, items, (5, 1000), None)?;
    Ok(page_output("Vpcs", page, next))
}

pub(crate) fn create_vpc(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let cidr_s = req_str(input, "CidrBlock")?;
    let cidr = Cidr::parse(cidr_s).ok_or_else(|| {
        invalid_value(format!(
            "Value ({cidr_s}) for parameter cidrBlock is invalid. This is not a valid CIDR block."
        ))
    })?;
    if !(16..=28).contains(&cidr.prefix) {
        return Err(ApiError::client(
            "InvalidVpc.Range",
            format!("The CIDR '{cidr_s}' is invalid."),
        ));
    }
    let tenancy = opt_str(input, "InstanceTenancy").unwrap_or("default");
    if !matches!(tenancy, "default" | "dedicated") {
        return Err(invalid_value(format!(
            "Value ({tenancy}) for parameter instanceTenancy is invalid."
        )));
    }
    let t = spec_tags(input, "vpc")?;
    check_dry_run_v(input)?;
    let vpc_id = fc_types::ids::ec2_id("vpc");
    let vpc = VpcRecord {
        vpc_id: vpc_id.clone(),
        cidr_block: cidr.to_string(),
        is_default: false,
        instance_tenancy: tenancy.to_string(),
        owner_id: c.account().to_string(),
        cidr_association_id: fc_types::ids::ec2_id("vpc-cidr-assoc"),
        enable_dns_support: true,
        enable_dns_hostnames: false,
        enable_network_address_usage_metrics: false,
    };
    c.put(VPCS, &vpc_id, &vpc)?;
    tags::add(c, &vpc_id, &t)?;
    security_groups::create_default_group(c, &vpc_id, "default VPC security group")?;
    let mut v = vpc_value(c, &vpc)?;
    v["State"] = json!("pending");
    Ok(json!({ "Vpc": v }))
}

pub(crate) fn delete_vpc(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "VpcId")?;
    check_id(id, "vpc", "InvalidVpcID.Malformed")?;
    find_vpc(c, id)?;
    let dependency = || {
        ApiError::client(
            "DependencyViolation",
            format!("The vpc '{id}' has dependencies and cannot be deleted."),
        )
    };
    if c.all::<SubnetRecord>(SUBNETS)?
        .iter()
        .any(|(_, s)| s.vpc_id == id)
    {
        return Err(dependency());
    }
    let groups = security_groups::groups_of_vpc(c, id)?;
    if groups.iter().any(|g| g.group_name != "default") {
        return Err(dependency());
    }
    check_dry_run_v(input)?;
    for g in groups {
        c.delete(SGS, &g.group_id)?;
        tags::drop_all(c, &g.group_id)?;
    }
    c.delete(VPCS, id)?;
    tags::drop_all(c, id)?;
    Ok(json!({}))
}

pub(crate) fn find_subnet(c: &Ctx<'_>, id: &str) -> Result<SubnetRecord, ApiError> {
    c.get::<SubnetRecord>(SUBNETS, id)?.ok_or_else(|| {
        ApiError::client(
            "InvalidSubnetID.NotFound",
            format!("The subnet ID '{id}' does not exist"),
        )
    })
}

fn subnet_value(c: &Ctx<'_>, s: &SubnetRecord) -> Result<Value, ApiError> {
    let t = tags::get(c, &s.subnet_id)?;
    let avail = Cidr::parse(&s.cidr_block).map_or(0, |x| x.size().saturating_sub(5));
    Ok(with_tags(
        json!({
            "SubnetId": s.subnet_id,
            "VpcId": s.vpc_id,
            "CidrBlock": s.cidr_block,
            "AvailabilityZone": s.availability_zone,
            "AvailabilityZoneId": s.availability_zone_id,
            "AvailableIpAddressCount": avail,
            "DefaultForAz": s.default_for_az,
            "MapPublicIpOnLaunch": s.map_public_ip_on_launch,
            "MapCustomerOwnedIpOnLaunch": false,
            "State": "available",
            "OwnerId": s.owner_id,
            "AssignIpv6AddressOnCreation": false,
            "Ipv6CidrBlockAssociationSet": [],
            "SubnetArn": format!("arn:aws:ec2:{}:{}:subnet/{}", c.region(), s.owner_id, s.subnet_id),
            "EnableDns64": false,
            "Ipv6Native": false,
            "PrivateDnsNameOptionsOnLaunch": {
                "HostnameType": "ip-name",
                "EnableResourceNameDnsARecord": false,
                "EnableResourceNameDnsAAAARecord": false
            },
            "BlockPublicAccessStates": {"InternetGatewayBlockMode": "off"},
        }),
        &t,
    ))
}

pub(crate) fn describe_subnets(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let fs = filters(
        input,
        &[
            "subnet-id",
            "vpc-id",
            "cidr",
            "cidr-block",
            "cidrBlock",
            "availability-zone",
            "availabilityZone",
            "availability-zone-id",
            "default-for-az",
            "defaultForAz",
            "map-public-ip-on-launch",
            "owner-id",
            "state",
            "subnet-arn",
            "available-ip-address-count",
        ],
        true,
    )?;
    let ids = str_list(input, "SubnetIds");
    for id in &ids {
        check_id(id, "subnet", "InvalidSubnetID.Malformed")?;
    }
    check_dry_run_v(input)?;
    for id in &ids {
        find_subnet(c, id)?;
    }
    let mut items = Vec::new();
    for (id, s) in c.all::<SubnetRecord>(SUBNETS)? {
        if !ids.is_empty() && !ids.contains(&id) {
            continue;
        }
        let t = tags::get(c, &id)?;
        let avail = Cidr::parse(&s.cidr_block).map_or(0, |x| x.size().saturating_sub(5));
        let ok = matches(&fs, &t, |n| match n {
            "subnet-id" => one(&s.subnet_id),
            "vpc-id" => one(&s.vpc_id),
            "cidr" | "cidr-block" | "cidrBlock" => one(&s.cidr_block),
            "availability-zone" | "availabilityZone" => one(&s.availability_zone),
            "availability-zone-id" => one(&s.availability_zone_id),
            "default-for-az" | "defaultForAz" => bool_s(s.default_for_az),
            "map-public-ip-on-launch" => bool_s(s.map_public_ip_on_launch),
            "owner-id" => one(&s.owner_id),
            "state" => one("available"),
            "subnet-arn" => one(format!(
                "arn:aws:ec2:{}:{}:subnet/{}",
                c.region(),
                s.owner_id,
                s.subnet_id
            )),
            "available-ip-address-count" => one(avail.to_string()),
            _ => None,
        });
        if ok {
            items.push((id.clone(), subnet_value(c, &s)?));
        }
    }
    let (page, next) = paginate(c, input, items, (5, 1000), None)?;
    Ok(page_output("Subnets", page, next))
}

pub(crate) fn create_subnet(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let vpc_id = req_str(input, "VpcId")?;
    check_id(vpc_id, "vpc", "InvalidVpcID.Malformed")?;
    let cidr_s = req_str(input, "CidrBlock")?;
    let cidr = Cidr::parse(cidr_s).ok_or_else(|| {
        invalid_value(format!(
            "Value ({cidr_s}) for parameter cidrBlock is invalid. This is not a valid CIDR block."
        ))
    })?;
    let vpc = find_vpc(c, vpc_id)?;
    let vpc_cidr = Cidr::parse(&vpc.cidr_block)
        .ok_or_else(|| ApiError::internal(format!("stored vpc {vpc_id} has a bad cidr")))?;
    if !(16..=28).contains(&cidr.prefix) || !vpc_cidr.contains(&cidr) {
        return Err(ApiError::client(
            "InvalidSubnet.Range",
            format!("The CIDR '{cidr_s}' is invalid."),
        ));
    }
    let existing = c.all::<SubnetRecord>(SUBNETS)?;
    if existing.iter().any(|(_, s)| {
        s.vpc_id == vpc_id && Cidr::parse(&s.cidr_block).is_some_and(|x| x.overlaps(&cidr))
    }) {
        return Err(ApiError::client(
            "InvalidSubnet.Conflict",
            format!("The CIDR '{cidr_s}' conflicts with another subnet"),
        ));
    }
    let z = match (
        opt_str(input, "AvailabilityZone"),
        opt_str(input, "AvailabilityZoneId"),
    ) {
        (Some(n), _) | (None, Some(n)) => zone(c.region(), n).ok_or_else(|| {
            invalid_value(format!(
                "Value ({n}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {}.",
                zones(c.region()).iter().map(|z| z.name.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?,
        (None, None) => zones(c.region())
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal("region without zones"))?,
    };
    let t = spec_tags(input, "subnet")?;
    check_dry_run_v(input)?;
    let id = fc_types::ids::ec2_id("subnet");
    let s = SubnetRecord {
        subnet_id: id.clone(),
        vpc_id: vpc_id.to_string(),
        cidr_block: cidr.to_string(),
        availability_zone: z.name,
        availability_zone_id: z.id,
        default_for_az: false,
        map_public_ip_on_launch: false,
        owner_id: c.account().to_string(),
    };
    c.put(SUBNETS, &id, &s)?;
    tags::add(c, &id, &t)?;
    let mut v = subnet_value(c, &s)?;
    v["State"] = json!("available");
    Ok(json!({ "Subnet": v }))
}

pub(crate) fn delete_subnet(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let id = req_str(input, "SubnetId")?;
    check_id(id, "subnet", "InvalidSubnetID.Malformed")?;
    find_subnet(c, id)?;
    check_dry_run_v(input)?;
    c.delete(SUBNETS, id)?;
    tags::drop_all(c, id)?;
    Ok(json!({}))
}

pub(crate) fn describe_availability_zones(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let fs = filters(
        input,
        &[
            "zone-name",
            "zone-id",
            "region-name",
            "state",
            "zone-type",
            "group-name",
            "opt-in-status",
            "network-border-group",
            "message",
        ],
        false,
    )?;
    let names = str_list(input, "ZoneNames");
    let ids = str_list(input, "ZoneIds");
    check_dry_run_v(input)?;
    let region = c.region();
    let all = zones(region);
    for n in &names {
        if !all.iter().any(|z| &z.name == n) {
            return Err(invalid_value(format!(
                "The zone '{n}' does not exist in the current region"
            )));
        }
    }
    for n in &ids {
        if !all.iter().any(|z| &z.id == n) {
            return Err(invalid_value(format!(
                "The zone-id '{n}' does not exist in the current region"
            )));
        }
    }
    let out: Vec<Value> = all
        .into_iter()
        .filter(|z| names.is_empty() || names.contains(&z.name))
        .filter(|z| ids.is_empty() || ids.contains(&z.id))
        .filter(|z| {
            fc_types::filter::matches(&fs, |n| match n {
                "zone-name" => one(&z.name),
                "zone-id" => one(&z.id),
                "region-name" => one(region),
                "state" => one("available"),
                "zone-type" => one("availability-zone"),
                "group-name" | "network-border-group" => one(region),
                "opt-in-status" => one("opt-in-not-required"),
                "message" => Some(Vec::new()),
                _ => None,
            })
        })
        .map(|z| {
            json!({
                "ZoneName": z.name,
                "ZoneId": z.id,
                "State": "available",
                "OptInStatus": "opt-in-not-required",
                "Messages": [],
                "RegionName": region,
                "GroupName": region,
                "NetworkBorderGroup": region,
                "ZoneType": "availability-zone",
                "GroupLongName": region,
            })
        })
        .collect();
    Ok(json!({ "AvailabilityZones": out }))
}

pub(crate) fn describe_regions(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let fs = filters(input, &["endpoint", "opt-in-status", "region-name"], false)?;
    let names = str_list(input, "RegionNames");
    let all_regions = opt_bool(input, "AllRegions").unwrap_or(false);
    check_dry_run_v(input)?;
    for n in &names {
        if !REGIONS.iter().any(|(r, _)| r == n) && n != c.region() {
            return Err(invalid_value(format!("Invalid region: {n}")));
        }
    }
    let mut list: Vec<(String, bool)> = REGIONS
        .iter()
        .map(|(r, enabled)| (r.to_string(), *enabled))
        .collect();
    if !list.iter().any(|(r, _)| r == c.region()) {
        list.push((c.region().to_string(), true));
    }
    let out: Vec<Value> = list
        .into_iter()
        .filter(|(r, enabled)| {
            if names.is_empty() {
                all_regions || *enabled
            } else {
                names.contains(r)
            }
        })
        .filter_map(|(r, enabled)| {
            let status = if enabled {
                "opt-in-not-required"
            } else {
                "not-opted-in"
            };
            let endpoint = format!("ec2.{r}.amazonaws.com");
            let ok = fc_types::filter::matches(&fs, |n| match n {
                "endpoint" => one(&endpoint),
                "opt-in-status" => one(status),
                "region-name" => one(&r),
                _ => None,
            });
            ok.then(|| json!({"RegionName": r, "Endpoint": endpoint, "OptInStatus": status}))
        })
        .collect();
    Ok(json!({ "Regions": out }))
}

pub(crate) fn describe_account_attributes(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let names = str_list(input, "AttributeNames");
    check_dry_run_v(input)?;
    let default_vpc = default_vpc_id(c)?.unwrap_or_else(|| "none".to_string());
    let attrs: Vec<(&str, Vec<String>)> = vec![
        ("supported-platforms", vec!["VPC".to_string()]),
        ("vpc-max-security-groups-per-interface", vec!["5".into()]),
        ("max-elastic-ips", vec!["5".into()]),
        ("max-instances", vec!["20".into()]),
        ("vpc-max-elastic-ips", vec!["5".into()]),
        ("default-vpc", vec![default_vpc]),
    ];
    for n in &names {
        if !attrs.iter().any(|(a, _)| a == n) {
            return Err(invalid_value(format!(
                "Value ({n}) for parameter attributeName is invalid."
            )));
        }
    }
    let out: Vec<Value> = attrs
        .into_iter()
        .filter(|(a, _)| names.is_empty() || names.iter().any(|n| n == a))
        .map(|(a, vals)| {
            json!({
                "AttributeName": a,
                "AttributeValues": vals.iter().map(|v| json!({"AttributeValue": v})).collect::<Vec<_>>()
            })
        })
        .collect();
    Ok(json!({ "AccountAttributes": out }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let v = Cidr::parse("172.31.0.0/16").unwrap();
        let s = Cidr::parse("172.31.16.0/20").unwrap();
        assert!(v.contains(&s));
        assert!(!s.contains(&v));
        assert!(s.overlaps(&v));
        assert!(Cidr::parse("172.31.0.1/16").is_none());
        assert!(Cidr::parse("300.0.0.0/8").is_none());
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert_eq!(s.size(), 4096);
        assert_eq!(s.to_string(), "172.31.16.0/20");
    }

    #[test]
    fn zone_names() {
        let z = zones("us-east-1");
        assert_eq!(z.len(), 6);
        assert_eq!(z[0].name, "us-east-1a");
        assert_eq!(z[5].id, "use1-az6");
        assert_eq!(zones("ap-southeast-2")[1].id, "apse2-az2");
        assert_eq!(zones("eu-central-1")[2].name, "eu-central-1c");
    }
}
