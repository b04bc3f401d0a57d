//! The instance-type catalog (`instance_types.json`: the figures AWS publishes, in the
//! `InstanceTypeInfo` shape of the API) and `DescribeInstanceTypes` /
//! `DescribeInstanceTypeOfferings`. Every type is offered in every region; the large
//! accelerator and memory families (p3, p4d, f1, x1e, x2idn) only in a region's first two
//! availability zones.

use super::{check_dry_run_v, filters, invalid_value, page_output, paginate, str_list, vpcs, Ctx};
use fc_protocol::ApiError;
use serde_json::{json, Value};
use std::sync::OnceLock;

/// One instance type.
#[derive(Debug, Clone)]
pub struct InstanceTypeInfo {
    /// `t3.micro`.
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// `x86_64`, `arm64` (and `i386` for the smallest t2 types).
    pub architectures: Vec<String>,
    /// The full `InstanceTypeInfo` value as the API returns it.
    pub raw: Value,
}

fn catalog() -> &'static [InstanceTypeInfo] {
    static CATALOG: OnceLock<Vec<InstanceTypeInfo>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let all: Vec<Value> = serde_json::from_str(include_str!("instance_types.json"))
            .expect("the embedded instance-type catalog is valid JSON (checked by a unit test)");
        all.into_iter()
            .map(|raw| InstanceTypeInfo {
                name: raw["InstanceType"].as_str().unwrap_or_default().to_string(),
                vcpus: raw["VCpuInfo"]["DefaultVCpus"].as_u64().unwrap_or(0) as u32,
                memory_mib: raw["MemoryInfo"]["SizeInMiB"].as_u64().unwrap_or(0),
                architectures: raw["ProcessorInfo"]["SupportedArchitectures"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                raw,
            })
            .collect()
    })
}

/// The catalog entry of an instance type.
pub fn instance_type(name: &str) -> Option<&'static InstanceTypeInfo> {
    catalog().iter().find(|t| t.name == name)
}

/// Filter name -> path of member names in `InstanceTypeInfo`.
const FILTERS: &[(&str, &[&str])] = &[
    ("instance-type", &["InstanceType"]),
    ("current-generation", &["CurrentGeneration"]),
    ("free-tier-eligible", &["FreeTierEligible"]),
    ("bare-metal", &["BareMetal"]),
    (
        "burstable-performance-supported",
        &["BurstablePerformanceSupported"],
    ),
    ("dedicated-hosts-supported", &["DedicatedHostsSupported"]),
    ("auto-recovery-supported", &["AutoRecoverySupported"]),
    ("hibernation-supported", &["HibernationSupported"]),
    ("hypervisor", &["Hypervisor"]),
    ("instance-storage-supported", &["InstanceStorageSupported"]),
    ("nitro-enclaves-support", &["NitroEnclavesSupport"]),
    ("nitro-tpm-support", &["NitroTpmSupport"]),
    ("supported-boot-mode", &["SupportedBootModes"]),
    ("supported-root-device-type", &["SupportedRootDeviceTypes"]),
    ("supported-usage-class", &["SupportedUsageClasses"]),
    (
        "supported-virtualization-type",
        &["SupportedVirtualizationTypes"],
    ),
    (
        "ebs-info.ebs-optimized-support",
        &["EbsInfo", "EbsOptimizedSupport"],
    ),
    (
        "ebs-info.encryption-support",
        &["EbsInfo", "EncryptionSupport"],
    ),
    ("ebs-info.nvme-support", &["EbsInfo", "NvmeSupport"]),
    (
        "instance-storage-info.disk.count",
        &["InstanceStorageInfo", "Disks", "Count"],
    ),
    (
        "instance-storage-info.disk.size-in-gb",
        &["InstanceStorageInfo", "Disks", "SizeInGB"],
    ),
    (
        "instance-storage-info.disk.type",
        &["InstanceStorageInfo", "Disks", "Type"],
    ),
    (
        "instance-storage-info.encryption-support",
        &["InstanceStorageInfo", "EncryptionSupport"],
    ),
    (
        "instance-storage-info.nvme-support",
        &["InstanceStorageInfo", "NvmeSupport"],
    ),
    (
        "instance-storage-info.total-size-in-gb",
        &["InstanceStorageInfo", "TotalSizeInGB"],
    ),
    ("memory-info.size-in-mib", &["MemoryInfo", "SizeInMiB"]),
    (
        "network-info.efa-supported",
        &["NetworkInfo", "EfaSupported"],
    ),
    (
        "network-info.efa-info.maximum-efa-interfaces",
        &["NetworkInfo", "EfaInfo", "MaximumEfaInterfaces"],
    ),
    ("network-info.ena-support", &["NetworkInfo", "EnaSupport"]),
    (
        "network-info.encryption-in-transit-supported",
        &["NetworkInfo", "EncryptionInTransitSupported"],
    ),
    (
        "network-info.ipv4-addresses-per-interface",
        &["NetworkInfo", "Ipv4AddressesPerInterface"],
    ),
    (
        "network-info.ipv6-addresses-per-interface",
        &["NetworkInfo", "Ipv6AddressesPerInterface"],
    ),
    (
        "network-info.ipv6-supported",
        &["NetworkInfo", "Ipv6Supported"],
    ),
    (
        "network-info.maximum-network-cards",
        &["NetworkInfo", "MaximumNetworkCards"],
    ),
    (
        "network-info.maximum-network-interfaces",
        &["NetworkInfo", "MaximumNetworkInterfaces"],
    ),
    (
        "network-info.network-performance",
        &["NetworkInfo", "NetworkPerformance"],
    ),
    (
        "processor-info.manufacturer",
        &["ProcessorInfo", "Manufacturer"],
    ),
    (
        "processor-info.supported-architecture",
        &["ProcessorInfo", "SupportedArchitectures"],
    ),
    (
        "processor-info.supported-features",
        &["ProcessorInfo", "SupportedFeatures"],
    ),
    (
        "processor-info.sustained-clock-speed-in-ghz",
        &["ProcessorInfo", "SustainedClockSpeedInGhz"],
    ),
    ("vcpu-info.default-cores", &["VCpuInfo", "DefaultCores"]),
    (
        "vcpu-info.default-threads-per-core",
        &["VCpuInfo", "DefaultThreadsPerCore"],
    ),
    ("vcpu-info.default-vcpus", &["VCpuInfo", "DefaultVCpus"]),
    ("vcpu-info.valid-cores", &["VCpuInfo", "ValidCores"]),
    (
        "vcpu-info.valid-threads-per-core",
        &["VCpuInfo", "ValidThreadsPerCore"],
    ),
];

/// The leaf values at `path`, through any lists on the way, as filter strings.
fn values_at(v: &Value, path: &[&str]) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().flat_map(|i| values_at(i, path)).collect(),
        _ => match path.split_first() {
            Some((first, rest)) => v
                .get(*first)
                .map(|x| values_at(x, rest))
                .unwrap_or_default(),
            None => match v {
                Value::String(s) => vec![s.clone()],
                Value::Null => vec![],
                Value::Object(_) => vec![],
                other => vec![other.to_string()],
            },
        },
    }
}

fn type_field(t: &InstanceTypeInfo, name: &str) -> Option<Vec<String>> {
    FILTERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, path)| values_at(&t.raw, path))
}

pub(crate) fn describe_instance_types(c: &Ctx<'_>, input: &Value) -> Result<Value, ApiError> {
    let known: Vec<&str> = FILTERS.iter().map(|(n, _)| *n).collect();
    let fs = filters(input, &known, false)?;
    let wanted = str_list(input, "InstanceTypes");
    let unknown: Vec<&String> = wanted
        .iter()
        .filter(|w| instance_type(w).is_none())
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::client(
            "InvalidInstanceType",
            format!(
                "The following supplied instance types do not exist: [{}]",
                unknown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    check_dry_run_v(input)?;
    let mut items: Vec<(String, Value)> = catalog()
        .iter()
        .filter(|t| wanted.is_empty() || wanted.contains(&t.name))
        .filter(|t| fc_types::filter::matches(&fs, |n| type_field(t, n)))
        .map(|t| (t.name.clone(), t.raw.clone()))
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(c, input, items, (5, 100), Some(100))?;
    Ok(page_output("InstanceTypes", page, next))
}

/// Whether a type is offered in the zone with index `zone_index` of its region.
fn offered_in_zone(name: &str, zone_index: usize) -> bool {
    let family = name.split('.').next().unwrap_or_default();
    !matches!(family, "p3" | "p4d" | "f1" | "x1e" | "x2idn") || zone_index < 2
}

pub(crate) fn describe_instance_type_offerings(
    c: &Ctx<'_>,
    input: &Value,
) -> Result<Value, ApiError> {
    let fs = filters(input, &["location", "instance-type"], false)?;
    let location_type = super::opt_str(input, "LocationType").unwrap_or("region");
    check_dry_run_v(input)?;
    let region = c.region();
    let mut items = Vec::new();
    for t in catalog() {
        let locations: Vec<String> = match location_type {
            "region" => vec![region.to_string()],
            "availability-zone" | "availability-zone-id" => vpcs::zones(region)
                .into_iter()
                .enumerate()
                .filter(|(i, _)| offered_in_zone(&t.name, *i))
                .map(|(_, z)| {
                    if location_type == "availability-zone" {
                        z.name
                    } else {
                        z.id
                    }
                })
                .collect(),
            other => {
                return Err(invalid_value(format!(
                    "Value ({other}) for parameter locationType is invalid."
                )))
            }
        };
        for l in locations {
            let ok = fc_types::filter::matches(&fs, |n| match n {
                "location" => Some(vec![l.clone()]),
                "instance-type" => Some(vec![t.name.clone()]),
                _ => None,
            });
            if ok {
                items.push((
                    format!("{}\u{0}{l}", t.name),
                    json!({"InstanceType": t.name, "LocationType": location_type, "Location": l}),
                ));
            }
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let (page, next) = paginate(c, input, items, (5, 1000), Some(1000))?;
    Ok(page_output("InstanceTypeOfferings", page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_complete() {
        let all = catalog();
        assert!(all.len() >= 60, "{} types", all.len());
        let t = instance_type("t3.micro").expect("t3.micro");
        assert_eq!(t.vcpus, 2);
        assert_eq!(t.memory_mib, 1024);
        assert_eq!(t.architectures, vec!["x86_64"]);
        let g = instance_type("c7g.large").expect("c7g.large");
        assert_eq!(g.architectures, vec!["arm64"]);
        for family in [
            "t2", "t3", "t3a", "t4g", "m5", "m6i", "m7i", "c5", "c6i", "c7g", "r5", "r6i", "x1e",
            "x2idn", "i3", "i4i", "d3", "g4dn", "g5", "p3", "p4d", "f1",
        ] {
            assert!(
                all.iter()
                    .any(|t| t.name.starts_with(&format!("{family}."))),
                "{family}"
            );
        }
        for t in all {
            assert!(t.vcpus > 0 && t.memory_mib > 0, "{}", t.name);
        }
    }

    #[test]
    fn filter_paths() {
        let t = instance_type("p3.8xlarge").unwrap();
        assert_eq!(
            type_field(t, "processor-info.sustained-clock-speed-in-ghz").unwrap(),
            vec!["2.3"]
        );
        assert_eq!(type_field(t, "current-generation").unwrap(), vec!["true"]);
        let i = instance_type("i3.16xlarge").unwrap();
        assert_eq!(
            type_field(i, "instance-storage-info.disk.size-in-gb").unwrap(),
            vec!["1900"]
        );
        assert!(type_field(i, "nope").is_none());
    }
}
