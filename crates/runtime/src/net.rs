//! Workload networking for the linux driver, entirely inside network namespaces ferrocloud
//! creates: a per-instance "router" namespace (`fc-<instance hash>`) holds one bridge per
//! network with the gateway address and the link-local service addresses on its loopback;
//! every workload namespace gets a veth into its network's bridge. Published ports and
//! link-local services are userspace TCP sockets created inside the router namespace by a
//! short-lived thread that `setns`es into it (sockets keep their namespace). Nothing is ever
//! configured on the host's own interfaces.
//!
//! Routing domains (the subnets of one VPC) route to each other through the router namespace;
//! nothing else is ever forwarded. Each domain has a routing table of its own (a network
//! without a domain gets a table to itself) holding only its networks' subnets and an
//! `unreachable` default, and policy rules send everything that arrives on a bridge
//! (`iif`) or leaves through one from a bound socket (`oif`) to its domain's table, so the
//! main table never decides for a workload and domains whose address ranges overlap stay
//! apart. A filter in the router namespace (loaded like a workload firewall) marks packets
//! with their ingress bridge's table and forwards only to a bridge of the same table; the
//! mark also routes the replies of the link-local services (`tcp_fwmark_accept`) and tells
//! them which domain a peer address belongs to. Bridge state (table, gateway, domain) is kept
//! in the bridge's alias, so a restarted server finds it again. Where the filter cannot be
//! loaded (no iptables), forwarding stays off: networks are all isolated from each other.
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::firewall::RenderedFirewall;
use crate::{sys, Result, RuntimeError};

/// FNV-1a, for short stable names.
pub fn short_hash(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0u8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")[..12].to_string()
}

/// A parsed IPv4 CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr> {
        let bad = || RuntimeError::InvalidSpec(format!("bad cidr {s}"));
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(RuntimeError::InvalidSpec(format!(
                "cidr {s}: prefix must be between /8 and /30"
            )));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Cidr {
            network: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }
    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
    }
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }
    fn broadcast(&self) -> u32 {
        u32::from(self.network) | !self.mask()
    }
    /// Usable workload addresses (AWS reserves network+0..3 and the broadcast address).
    pub fn is_assignable(&self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        let first = u32::from(self.network) + if self.prefix <= 28 { 4 } else { 2 };
        self.contains(ip) && n >= first && n < self.broadcast()
    }
    pub fn first_free(&self, used: &[Ipv4Addr]) -> Option<Ipv4Addr> {
        let first = u32::from(self.network) + if self.prefix <= 28 { 4 } else { 2 };
        (first..self.broadcast())
            .map(Ipv4Addr::from)
            .find(|ip| !used.contains(ip))
    }
}

/// Runs `f` on a fresh thread that has joined the network namespace at `ns`.
pub fn in_netns<T: Send + 'static>(
    ns: PathBuf,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    std::thread::spawn(move || {
        let file = File::open(&ns)?;
        sys::setns(sys::raw(&file), libc::CLONE_NEWNET)?;
        f()
    })
    .join()
    .map_err(|_| std::io::Error::other("namespace thread panicked"))?
}

/// Runs `ip -batch -` with `script` inside the namespace at `ns` (None = current).
fn ip_batch(ns: Option<PathBuf>, script: String, force: bool) -> Result<()> {
    let run = move || -> std::io::Result<std::process::Output> {
        let mut cmd = Command::new("ip");
        if force {
            cmd.arg("-force");
        }
        let mut child = cmd
            .args(["-batch", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes())?;
        }
        child.wait_with_output()
    };
    let out = match ns {
        Some(ns) => in_netns(ns, run),
        None => run(),
    }
    .map_err(|e| RuntimeError::Network(format!("run ip: {e}")))?;
    if !out.status.success() && !force {
        return Err(RuntimeError::Network(format!(
            "ip failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn ip_output(ns: PathBuf, args: &'static [&'static str]) -> Result<String> {
    let out = in_netns(ns, move || Command::new("ip").args(args).output())
        .map_err(|e| RuntimeError::Network(format!("run ip: {e}")))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first routing table (and packet mark) given to a domain in a router namespace.
const FIRST_TABLE: u32 = 1000;
/// Priority of the per-bridge policy rules (before `main`, after `local`).
const BRIDGE_RULE_PREF: u32 = 1000;
/// Priority of the per-domain mark rules.
const MARK_RULE_PREF: u32 = 1001;

/// The key of a network's routing domain: its domain, or the network alone when it has none.
pub fn domain_key(network: &str, domain: Option<&str>) -> String {
    match domain {
        Some(d) => short_hash(&["domain", d]),
        None => short_hash(&["network", network]),
    }
}

/// What the router namespace knows about one of its bridges.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BridgeInfo {
    /// Routing table and packet mark of the bridge's domain.
    table: u32,
    /// [`domain_key`] of the bridge's domain.
    key: String,
    gateway: Ipv4Addr,
    cidr: Cidr,
}

impl BridgeInfo {
    /// The bridge's alias, which keeps this in the namespace: `fc,<table>,<gw>/<len>,<key>`.
    fn alias(&self) -> String {
        format!(
            "fc,{},{}/{},{}",
            self.table, self.gateway, self.cidr.prefix, self.key
        )
    }

    fn parse_alias(alias: &str) -> Option<BridgeInfo> {
        let mut it = alias.trim().splitn(4, ',');
        if it.next()? != "fc" {
            return None;
        }
        let table: u32 = it.next()?.parse().ok()?;
        let gw = it.next()?;
        let key = it.next()?.to_string();
        let cidr = Cidr::parse(gw).ok()?;
        let gateway: Ipv4Addr = gw.split_once('/')?.0.parse().ok()?;
        Some(BridgeInfo {
            table,
            key,
            gateway,
            cidr,
        })
    }
}

/// Bridges (name, alias) in `ip -o link show type bridge` output.
fn parse_bridges(out: &str) -> Vec<(String, Option<String>)> {
    out.lines()
        .filter_map(|l| {
            let name = l.split(": ").nth(1)?.split('@').next()?.to_string();
            let alias = l
                .split_once("alias ")
                .map(|(_, a)| a.split('\\').next().unwrap_or(a).trim().to_string());
            Some((name, alias))
        })
        .collect()
}

/// (interface, its subnet) for each address in `ip -o -4 addr show` output.
fn parse_addrs(out: &str) -> Vec<(String, Cidr)> {
    out.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.nth(1)?.to_string();
            let addr = words.skip_while(|w| *w != "inet").nth(1)?;
            Some((name, Cidr::parse(addr).ok()?))
        })
        .collect()
}

/// The router namespace's filter, as iptables-restore input: packets are marked with the table
/// of the bridge they arrive on; forwarding is allowed only to a bridge of the same table; from
/// a bridge the router itself accepts only the link-local services and its domain's gateways.
fn render_filter(bridges: &BTreeMap<String, BridgeInfo>) -> RenderedFirewall {
    let mut v4 = String::from(
        "# ferrocloud router filter (generated)\n*mangle\n:PREROUTING ACCEPT [0:0]\n\
         :INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         :POSTROUTING ACCEPT [0:0]\n",
    );
    for (name, b) in bridges {
        v4.push_str(&format!(
            "-A PREROUTING -i {name} -j MARK --set-xmark {:#x}/0xffffffff\n",
            b.table
        ));
    }
    v4.push_str(
        "COMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
         -A INPUT -i fcb+ -d 169.254.0.0/16 -j ACCEPT\n",
    );
    for b in bridges.values() {
        v4.push_str(&format!(
            "-A INPUT -i fcb+ -d {}/32 -m mark --mark {:#x} -j ACCEPT\n",
            b.gateway, b.table
        ));
    }
    v4.push_str("-A INPUT -i fcb+ -j DROP\n");
    for (name, b) in bridges {
        v4.push_str(&format!(
            "-A FORWARD -o {name} -m mark --mark {:#x} -j ACCEPT\n",
            b.table
        ));
    }
    v4.push_str("COMMIT\n");
    // IPv6 is never routed between bridges.
    let v6 = "# ferrocloud router filter (generated)\n*filter\n:INPUT ACCEPT [0:0]\n\
              :FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
        .to_string();
    RenderedFirewall { ipv4: v4, ipv6: v6 }
}

/// The per-instance router namespace.
#[derive(Debug)]
pub struct Router {
    pub name: String,
    pub ns_path: PathBuf,
    /// The bridges configured in the namespace, by name.
    bridges: Mutex<BTreeMap<String, BridgeInfo>>,
    /// Whether the filter is loaded; without it (no iptables here) nothing is forwarded at
    /// all and the link-local services know peers by address alone.
    filtered: AtomicBool,
}

impl Router {
    /// The router namespace `name`, without touching it (e.g. to destroy it).
    pub fn named(name: &str) -> Router {
        Router {
            name: name.to_string(),
            ns_path: PathBuf::from("/run/netns").join(name),
            bridges: Mutex::new(BTreeMap::new()),
            filtered: AtomicBool::new(true),
        }
    }

    /// Creates (or re-uses) the router namespace with loopback up and the given link-local
    /// addresses on it, loads its filter and turns forwarding on (routing between the networks
    /// of a domain).
    pub fn ensure(name: &str, link_local: &[Ipv4Addr]) -> Result<Router> {
        let r = Router::named(name);
        if !r.ns_path.exists() {
            let out = Command::new("ip")
                .args(["netns", "add", name])
                .output()
                .map_err(|e| RuntimeError::Network(format!("run ip netns add: {e}")))?;
            if !out.status.success() && !r.ns_path.exists() {
                return Err(RuntimeError::Network(format!(
                    "ip netns add {name}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        let mut script = String::from("link set lo up\n");
        for a in link_local {
            script.push_str(&format!("addr replace {a}/32 dev lo\n"));
        }
        ip_batch(Some(r.ns_path.clone()), script, false)?;
        in_netns(r.ns_path.clone(), || {
            // Bridged frames (one network) stay out of the router's filter: it only decides
            // what is routed. (Absent without bridge netfilter.)
            for f in ["iptables", "ip6tables", "arptables"] {
                let _ = std::fs::write(format!("/proc/sys/net/bridge/bridge-nf-call-{f}"), "0");
            }
            // Accepted connections take the mark of their first packet: the link-local
            // services answer through the table of the peer's domain. So do the kernel's own
            // answers (resets, ICMP errors).
            std::fs::write("/proc/sys/net/ipv4/tcp_fwmark_accept", "1")?;
            std::fs::write("/proc/sys/net/ipv4/fwmark_reflect", "1")
        })
        .map_err(|e| RuntimeError::Network(format!("configure router {name}: {e}")))?;
        // The bridges an earlier run configured.
        let links = ip_output(r.ns_path.clone(), &["-o", "link", "show", "type", "bridge"])?;
        let mut legacy = Vec::new();
        {
            let mut known = lock(&r.bridges);
            for (name, alias) in parse_bridges(&links) {
                match alias.as_deref().and_then(BridgeInfo::parse_alias) {
                    Some(b) => {
                        known.insert(name, b);
                    }
                    None => legacy.push(name),
                }
            }
        }
        if let Err(e) = r.load_filter() {
            tracing::warn!(
                error = %e,
                "router filter unavailable: networks of one routing domain will not reach each other"
            );
            r.filtered.store(false, Ordering::SeqCst);
        }
        // Bridges of a version without routing domains (workloads may still run on them):
        // each becomes a domain of its own, as isolated as it was; the next workload started
        // on its network moves it into that network's domain.
        if !legacy.is_empty() {
            let addrs = ip_output(r.ns_path.clone(), &["-o", "-4", "addr", "show"])?;
            for (bridge, cidr) in parse_addrs(&addrs) {
                if legacy.contains(&bridge) {
                    r.ensure_bridge(&bridge, &cidr, &domain_key(&bridge, None))?;
                }
            }
        }
        // Only now that the filter is in place: route between the networks of a domain (a new
        // namespace may also inherit the host's setting).
        let forward = if r.filtered() { "1" } else { "0" };
        in_netns(r.ns_path.clone(), move || {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", forward)
        })
        .map_err(|e| RuntimeError::Network(format!("enable forwarding in {name}: {e}")))?;
        Ok(r)
    }

    pub fn exists(name: &str) -> bool {
        PathBuf::from("/run/netns").join(name).exists()
    }

    fn filtered(&self) -> bool {
        self.filtered.load(Ordering::SeqCst)
    }

    /// Whether a connection with socket mark `mark` (see [`socket_mark`]) from a workload's
    /// address can come from the workload on `bridge`.
    pub fn peer_on(&self, bridge: &str, mark: u32) -> bool {
        !self.filtered() || self.table_of(bridge) == Some(mark)
    }

    /// Loads the filter for the bridges known now.
    fn load_filter(&self) -> Result<()> {
        let rendered = render_filter(&lock(&self.bridges));
        crate::firewall::apply(&self.ns_path, &rendered)
            .map_err(|e| RuntimeError::Network(format!("router {} filter: {e}", self.name)))
    }

    pub fn add_link_local(&self, ip: Ipv4Addr) -> Result<()> {
        ip_batch(
            Some(self.ns_path.clone()),
            format!("addr replace {ip}/32 dev lo\n"),
            false,
        )
    }

    /// The routing table (= packet mark) of a bridge's domain.
    fn table_of(&self, bridge: &str) -> Option<u32> {
        lock(&self.bridges).get(bridge).map(|b| b.table)
    }

    /// Ensures the bridge for a network exists, with the gateway address, in the routing
    /// domain `key` (see [`domain_key`]).
    pub fn ensure_bridge(&self, bridge: &str, cidr: &Cidr, key: &str) -> Result<()> {
        // Check-then-create: two workloads starting on a new network at once must not both
        // create its bridge ("RTNETLINK answers: File exists").
        static BRIDGES: Mutex<()> = Mutex::new(());
        let _one = lock(&BRIDGES);
        let previous = lock(&self.bridges).get(bridge).cloned();
        if let Some(b) = &previous {
            if b.key == key && b.cidr == *cidr {
                return Ok(());
            }
        }
        let table = {
            let known = lock(&self.bridges);
            known
                .iter()
                .find(|(n, b)| b.key == key && n.as_str() != bridge)
                .map(|(_, b)| b.table)
                .unwrap_or_else(|| {
                    known
                        .values()
                        .map(|b| b.table + 1)
                        .max()
                        .unwrap_or(FIRST_TABLE)
                        .max(FIRST_TABLE)
                })
        };
        let info = BridgeInfo {
            table,
            key: key.to_string(),
            gateway: cidr.gateway(),
            cidr: *cidr,
        };
        let links = ip_output(
            self.ns_path.clone(),
            &["-o", "link", "show", "type", "bridge"],
        )?;
        let exists = parse_bridges(&links).iter().any(|(n, _)| n == bridge);
        let mut script = String::new();
        if !exists {
            // A fixed address: otherwise the bridge takes the lowest address of its ports,
            // which changes as workloads come and go, and workloads that cached the gateway's
            // old address lose their connections until their neighbour entry expires (~30 s).
            script.push_str(&format!(
                "link add {bridge} address {} type bridge\n",
                bridge_mac(bridge)
            ));
        }
        script.push_str(&format!(
            "addr replace {gw}/{len} dev {bridge}\nlink set {bridge} up\n\
             route replace {net}/{len} dev {bridge} src {gw} table {table}\n\
             route replace unreachable default table {table}\n",
            gw = info.gateway,
            len = cidr.prefix,
            net = cidr.network,
        ));
        ip_batch(Some(self.ns_path.clone()), script, false)?;
        // Rules: whatever an earlier configuration left goes first (errors are expected).
        let mut stale = format!(
            "rule del pref {BRIDGE_RULE_PREF} iif {bridge}\nrule del pref {BRIDGE_RULE_PREF} oif {bridge}\n"
        );
        if let Some(old) = &previous {
            if old.table != table || old.cidr != *cidr {
                stale.push_str(&format!(
                    "route del {}/{} table {}\n",
                    old.cidr.network, old.cidr.prefix, old.table
                ));
            }
        }
        ip_batch(Some(self.ns_path.clone()), stale, true)?;
        ip_batch(
            Some(self.ns_path.clone()),
            format!(
                "rule add pref {BRIDGE_RULE_PREF} iif {bridge} lookup {table}\n\
                 rule add pref {BRIDGE_RULE_PREF} oif {bridge} lookup {table}\n"
            ),
            false,
        )?;
        // Shared by the domain's bridges: "File exists" when it is already there.
        ip_batch(
            Some(self.ns_path.clone()),
            format!("rule add pref {MARK_RULE_PREF} fwmark {table} lookup {table}\n"),
            true,
        )?;
        let alias = info.alias();
        lock(&self.bridges).insert(bridge.to_string(), info);
        // The alias last: a bridge that has it is fully configured.
        let res = if self.filtered() {
            self.load_filter()
        } else {
            Ok(())
        }
        .and_then(|_| {
            ip_batch(
                Some(self.ns_path.clone()),
                format!("link set {bridge} alias {alias}\n"),
                false,
            )
        });
        if res.is_err() {
            // Unknown to the filter means never forwarded; forget it so the next start retries.
            lock(&self.bridges).remove(bridge);
        }
        res
    }

    /// Creates the veth pair for the workload whose network namespace is that of `pid`.
    pub fn attach(
        &self,
        pid: i32,
        bridge: &str,
        host_veth: &str,
        ip: Ipv4Addr,
        cidr: &Cidr,
    ) -> Result<()> {
        ip_batch(
            Some(self.ns_path.clone()),
            format!(
                "link add {host_veth} type veth peer name eth0 netns {pid}\n\
                 link set {host_veth} master {bridge}\nlink set {host_veth} up\n"
            ),
            false,
        )?;
        ip_batch(
            Some(PathBuf::from(format!("/proc/{pid}/ns/net"))),
            format!(
                "link set lo up\naddr add {ip}/{} dev eth0\nlink set eth0 up\n\
                 route add default via {}\n",
                cidr.prefix,
                cidr.gateway()
            ),
            false,
        )
    }

    /// Removes a workload's veth (it also vanishes with the workload's namespace).
    pub fn detach(&self, host_veth: &str) {
        let _ = ip_batch(
            Some(self.ns_path.clone()),
            format!("link del {host_veth}\n"),
            true,
        );
    }

    /// Host-side veth names present in the router namespace.
    pub fn veths(&self) -> Vec<String> {
        ip_output(
            self.ns_path.clone(),
            &["-o", "link", "show", "type", "veth"],
        )
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let name = l.split(": ").nth(1)?;
            Some(name.split('@').next()?.to_string())
        })
        .collect()
    }

    /// Deletes the namespace (bridges and veths go with it).
    pub fn destroy(&self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }

    /// Binds a listener inside the router namespace.
    pub fn listen(&self, addr: SocketAddr) -> Result<TcpListener> {
        // A listener of a driver object that was just dropped may still be closing: retry.
        let mut tries = 0;
        let l = loop {
            match in_netns(self.ns_path.clone(), move || TcpListener::bind(addr)) {
                Ok(l) => break l,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    return Err(RuntimeError::Network(format!(
                        "listen on {addr} in router: {e}"
                    )))
                }
            }
        };
        l.set_nonblocking(true)
            .map_err(|e| RuntimeError::Network(format!("nonblocking listener: {e}")))?;
        Ok(l)
    }

    /// A TCP socket of the router namespace bound to `bridge`, so that connecting it routes
    /// through the bridge's domain (addresses of different domains may overlap).
    pub fn socket(ns_path: PathBuf, bridge: String) -> std::io::Result<tokio::net::TcpSocket> {
        in_netns(ns_path, move || {
            let s = tokio::net::TcpSocket::new_v4()?;
            s.bind_device(Some(bridge.as_bytes()))?;
            Ok(s)
        })
    }
}

/// The MAC address of a bridge, derived from its name.
fn bridge_mac(bridge: &str) -> String {
    let hex: Vec<u8> = bridge
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .chain(std::iter::repeat(b'0'))
        .take(10)
        .collect();
    let hex = String::from_utf8_lossy(&hex);
    format!(
        "02:{}:{}:{}:{}:{}",
        &hex[0..2],
        &hex[2..4],
        &hex[4..6],
        &hex[6..8],
        &hex[8..10]
    )
}

/// The mark of a socket (`SO_MARK`; 0 when unmarked or unknown). An accepted connection in the
/// router namespace carries the table of the domain it came from.
pub fn socket_mark(fd: &impl AsRawFd) -> u32 {
    let mut mark: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `mark`, which lives for the call;
    // an invalid descriptor only makes it fail.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MARK,
            (&mut mark as *mut u32).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        mark
    } else {
        0
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_math() {
        let c = Cidr::parse("10.1.2.77/24").unwrap();
        assert_eq!(c.network, Ipv4Addr::new(10, 1, 2, 0));
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 1, 2, 1));
        assert_eq!(c.first_free(&[]), Some(Ipv4Addr::new(10, 1, 2, 4)));
        assert_eq!(
            c.first_free(&[Ipv4Addr::new(10, 1, 2, 4)]),
            Some(Ipv4Addr::new(10, 1, 2, 5))
        );
        assert!(c.is_assignable(Ipv4Addr::new(10, 1, 2, 254)));
        assert!(!c.is_assignable(Ipv4Addr::new(10, 1, 2, 255)));
        assert!(!c.is_assignable(Ipv4Addr::new(10, 1, 2, 1)));
        assert!(!c.is_assignable(Ipv4Addr::new(10, 1, 3, 9)));
        assert!(Cidr::parse("10.0.0.0/31").is_err());
        assert!(Cidr::parse("nope").is_err());
    }

    #[test]
    fn bridge_state_survives_in_its_alias() {
        let b = BridgeInfo {
            table: 1003,
            key: domain_key("subnet-1", Some("vpc-1")),
            gateway: Ipv4Addr::new(10, 0, 1, 1),
            cidr: Cidr::parse("10.0.1.0/24").unwrap(),
        };
        assert_eq!(BridgeInfo::parse_alias(&b.alias()), Some(b.clone()));
        assert_eq!(BridgeInfo::parse_alias("something else"), None);
        let out = format!(
            "2: fcbaa: <BROADCAST,UP> mtu 1500 qdisc noqueue\\    link/ether 02:aa brd ff\\    alias {}\n\
             3: fcbbb: <BROADCAST> mtu 1500 qdisc noop\\    link/ether 02:bb brd ff\n",
            b.alias()
        );
        assert_eq!(
            parse_bridges(&out),
            vec![
                ("fcbaa".to_string(), Some(b.alias())),
                ("fcbbb".to_string(), None)
            ]
        );
        // Subnets of one VPC share a domain; networks without one are each alone.
        assert_eq!(
            domain_key("subnet-1", Some("vpc-1")),
            domain_key("subnet-2", Some("vpc-1"))
        );
        assert_ne!(
            domain_key("subnet-1", Some("vpc-1")),
            domain_key("subnet-1", Some("vpc-2"))
        );
        assert_ne!(domain_key("a", None), domain_key("b", None));
    }

    #[test]
    fn addresses_of_legacy_bridges_parse() {
        let out = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                   5: fcbaa    inet 10.231.7.1/24 scope global fcbaa\\       valid_lft forever\n";
        assert_eq!(
            parse_addrs(out),
            vec![
                ("lo".to_string(), Cidr::parse("127.0.0.0/8").unwrap()),
                ("fcbaa".to_string(), Cidr::parse("10.231.7.0/24").unwrap())
            ]
        );
    }

    #[test]
    fn router_filter_forwards_only_within_a_domain() {
        let info = |table, cidr: &str| BridgeInfo {
            table,
            key: format!("k{table}"),
            gateway: Cidr::parse(cidr).unwrap().gateway(),
            cidr: Cidr::parse(cidr).unwrap(),
        };
        let mut bridges = BTreeMap::new();
        bridges.insert("fcb1".to_string(), info(1000, "10.0.1.0/24"));
        bridges.insert("fcb2".to_string(), info(1000, "10.0.2.0/24"));
        bridges.insert("fcb3".to_string(), info(1001, "10.0.1.0/24"));
        let f = render_filter(&bridges);
        let lines: Vec<&str> = f.ipv4.lines().collect();
        for l in [
            "-A PREROUTING -i fcb1 -j MARK --set-xmark 0x3e8/0xffffffff",
            "-A PREROUTING -i fcb3 -j MARK --set-xmark 0x3e9/0xffffffff",
            ":FORWARD DROP [0:0]",
            "-A FORWARD -o fcb1 -m mark --mark 0x3e8 -j ACCEPT",
            "-A FORWARD -o fcb2 -m mark --mark 0x3e8 -j ACCEPT",
            "-A FORWARD -o fcb3 -m mark --mark 0x3e9 -j ACCEPT",
            "-A INPUT -i fcb+ -d 169.254.0.0/16 -j ACCEPT",
            "-A INPUT -i fcb+ -d 10.0.2.1/32 -m mark --mark 0x3e8 -j ACCEPT",
            "-A INPUT -i fcb+ -j DROP",
        ] {
            assert!(lines.contains(&l), "{l} missing in\n{}", f.ipv4);
        }
        assert_eq!(lines.iter().filter(|l| l.contains("FORWARD -")).count(), 3);
        assert!(f.ipv6.contains(":FORWARD DROP"));
    }

    #[test]
    fn hashes_are_short_and_stable() {
        let a = short_hash(&["x", "y"]);
        assert_eq!(a.len(), 12);
        assert_eq!(a, short_hash(&["x", "y"]));
        assert_ne!(a, short_hash(&["xy"]));
    }
}
