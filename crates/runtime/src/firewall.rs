//! Packet filtering of one workload, inside the workload's own network namespace (linux
//! driver): a [`Firewall`] (allow rules for new inbound and outbound connections) is rendered
//! into `iptables-restore` / `ip6tables-restore` input ([`render`], a pure function) and loaded
//! by the host's `iptables-restore` run in a child that joined the workload's namespace
//! (`setns`), replacing that namespace's whole `filter` table at once. The host's own network
//! namespace is never touched: [`apply`] refuses a namespace that is the caller's own.
//!
//! Always allowed, whatever the rules: loopback, packets of established or related
//! connections (filtering is stateful, like security groups), and traffic to and from
//! link-local addresses (169.254.0.0/16: the instance metadata service, ferrocloud's API) and
//! IPv6 neighbour discovery. Everything else new is dropped (not rejected) unless a rule allows
//! it. What a rule *means* (security groups, their members) is the caller's business.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::{Result, RuntimeError};

/// Allow rules for a workload's traffic. The empty firewall drops every new connection in and
/// out (except the always-allowed traffic in the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firewall {
    /// New inbound connections allowed (peer = source).
    pub ingress: Vec<FirewallRule>,
    /// New outbound connections allowed (peer = destination).
    pub egress: Vec<FirewallRule>,
}

/// One allow rule: a protocol (with ports) for a set of peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallRule {
    pub protocol: FirewallProtocol,
    /// IPv4 or IPv6 addresses or CIDRs (`10.0.0.0/16`, `10.0.0.5`, `::/0`). Empty: the rule
    /// matches nothing.
    pub peers: Vec<String>,
}

/// What a rule matches besides the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FirewallProtocol {
    /// Every protocol, IPv4 and IPv6.
    All,
    /// TCP destination ports `from..=to`.
    Tcp { from: u16, to: u16 },
    /// UDP destination ports `from..=to`.
    Udp { from: u16, to: u16 },
    /// ICMP (IPv4 only); `None` = any type / any code.
    Icmp {
        icmp_type: Option<u8>,
        code: Option<u8>,
    },
    /// ICMPv6 (IPv6 only); `None` = any type / any code.
    Icmpv6 {
        icmp_type: Option<u8>,
        code: Option<u8>,
    },
    /// Any other IP protocol, by number.
    Number(u8),
}

/// The `iptables-restore` and `ip6tables-restore` input of a [`Firewall`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFirewall {
    pub ipv4: String,
    pub ipv6: String,
}

/// A peer, checked and in canonical `address/prefix` form.
fn parse_peer(p: &str) -> Result<(IpAddr, u8)> {
    let bad = || RuntimeError::InvalidSpec(format!("firewall peer {p:?} is not an IP CIDR"));
    let (a, prefix) = match p.split_once('/') {
        Some((a, n)) => (a, Some(n.parse::<u8>().map_err(|_| bad())?)),
        None => (p, None),
    };
    let ip: IpAddr = a.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    if prefix > max {
        return Err(bad());
    }
    // The network address (iptables would mask it the same way).
    let ip = match ip {
        IpAddr::V4(v) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(v) & mask))
        }
        IpAddr::V6(v) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(v) & mask))
        }
    };
    Ok((ip, prefix))
}

fn ports(from: u16, to: u16) -> String {
    if from == to {
        from.to_string()
    } else {
        format!("{}:{}", from.min(to), from.max(to))
    }
}

fn icmp_match(kind: &str, icmp_type: Option<u8>, code: Option<u8>) -> String {
    match (icmp_type, code) {
        (None, _) => String::new(),
        (Some(t), None) => format!(" -m {kind} --{kind}-type {t}"),
        (Some(t), Some(c)) => format!(" -m {kind} --{kind}-type {t}/{c}"),
    }
}

/// The match of `protocol` in one family (`None`: the protocol does not exist there).
fn protocol_match(protocol: &FirewallProtocol, v6: bool) -> Option<String> {
    Some(match *protocol {
        FirewallProtocol::All => String::new(),
        FirewallProtocol::Tcp { from, to } => format!(" -p tcp -m tcp --dport {}", ports(from, to)),
        FirewallProtocol::Udp { from, to } => format!(" -p udp -m udp --dport {}", ports(from, to)),
        FirewallProtocol::Icmp { icmp_type, code } => {
            if v6 {
                return None;
            }
            format!(" -p icmp{}", icmp_match("icmp", icmp_type, code))
        }
        FirewallProtocol::Icmpv6 { icmp_type, code } => {
            if !v6 {
                return None;
            }
            // The iptables match is `icmp6` with `--icmpv6-type`.
            let m = match (icmp_type, code) {
                (None, _) => String::new(),
                (Some(t), None) => format!(" -m icmp6 --icmpv6-type {t}"),
                (Some(t), Some(c)) => format!(" -m icmp6 --icmpv6-type {t}/{c}"),
            };
            format!(" -p ipv6-icmp{m}")
        }
        FirewallProtocol::Number(n) => format!(" -p {n}"),
    })
}

fn family(
    rules: &[FirewallRule],
    v6: bool,
    peer_flag: &str,
    chain: &str,
    out: &mut String,
) -> Result<()> {
    for r in rules {
        let Some(m) = protocol_match(&r.protocol, v6) else {
            // Still check the peers, so a bad rule is refused whatever its protocol.
            for p in &r.peers {
                parse_peer(p)?;
            }
            continue;
        };
        let mut seen: Vec<(IpAddr, u8)> = Vec::new();
        for p in &r.peers {
            let (ip, prefix) = parse_peer(p)?;
            if ip.is_ipv6() != v6 || seen.contains(&(ip, prefix)) {
                continue;
            }
            seen.push((ip, prefix));
            out.push_str(&format!(
                "-A {chain} {peer_flag} {ip}/{prefix}{m} -j ACCEPT\n"
            ));
        }
    }
    Ok(())
}

/// Renders `fw` as the input of `iptables-restore` (IPv4) and `ip6tables-restore` (IPv6): the
/// whole `filter` table, default policy DROP, the always-allowed traffic first, then one
/// `ACCEPT` per rule and peer in the chains `fc-ingress` and `fc-egress`.
pub fn render(fw: &Firewall) -> Result<RenderedFirewall> {
    let mut v4 = String::from(
        "# ferrocloud workload firewall (generated)\n*filter\n:INPUT DROP [0:0]\n\
         :FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n:fc-ingress - [0:0]\n:fc-egress - [0:0]\n\
         -A INPUT -i lo -j ACCEPT\n\
         -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
         -A INPUT -s 169.254.0.0/16 -j ACCEPT\n\
         -A INPUT -m conntrack --ctstate INVALID -j DROP\n\
         -A INPUT -j fc-ingress\n\
         -A OUTPUT -o lo -j ACCEPT\n\
         -A OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
         -A OUTPUT -d 169.254.0.0/16 -j ACCEPT\n\
         -A OUTPUT -j fc-egress\n",
    );
    family(&fw.ingress, false, "-s", "fc-ingress", &mut v4)?;
    family(&fw.egress, false, "-d", "fc-egress", &mut v4)?;
    v4.push_str("COMMIT\n");
    // Neighbour discovery (router/neighbour solicitation and advertisement) keeps IPv6 working
    // at all; link-local IPv6 is otherwise filtered like any address (instances on a bridge
    // could reach each other through it).
    let mut v6 = String::from(
        "# ferrocloud workload firewall (generated)\n*filter\n:INPUT DROP [0:0]\n\
         :FORWARD DROP [0:0]\n:OUTPUT DROP [0:0]\n:fc-ingress - [0:0]\n:fc-egress - [0:0]\n\
         -A INPUT -i lo -j ACCEPT\n\
         -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n",
    );
    for t in 133..=136 {
        v6.push_str(&format!(
            "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j ACCEPT\n"
        ));
    }
    v6.push_str(
        "-A INPUT -m conntrack --ctstate INVALID -j DROP\n\
         -A INPUT -j fc-ingress\n\
         -A OUTPUT -o lo -j ACCEPT\n\
         -A OUTPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n",
    );
    for t in 133..=136 {
        v6.push_str(&format!(
            "-A OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j ACCEPT\n"
        ));
    }
    v6.push_str("-A OUTPUT -j fc-egress\n");
    family(&fw.ingress, true, "-s", "fc-ingress", &mut v6)?;
    family(&fw.egress, true, "-d", "fc-egress", &mut v6)?;
    v6.push_str("COMMIT\n");
    Ok(RenderedFirewall { ipv4: v4, ipv6: v6 })
}

/// `name` on the PATH or in the usual sbin directories.
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The `<family>-restore` tools to try, best first: the legacy (x_tables) backend loads a
/// namespace's table in about a third of the time the nf_tables one takes (it need not fetch and
/// diff a ruleset cache), and a workload's namespace is only ever filled by us, so either is
/// right; the default `<family>-restore` is the fallback.
fn tools(family: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for name in [
        format!("{family}-legacy-restore"),
        format!("{family}-restore"),
    ] {
        if let Some(p) = tool(&name) {
            if !found.contains(&p) {
                found.push(p);
            }
        }
    }
    found
}

/// Why firewalls cannot be applied here, if they cannot.
pub fn support() -> std::result::Result<(), String> {
    match tool("iptables-restore") {
        Some(_) => Ok(()),
        None => Err("iptables-restore (package iptables) is not installed".into()),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Starts `<tool> -w 10` with `text` on its stdin (closed once written).
fn restore(tool: &Path, text: &str) -> std::io::Result<std::process::Child> {
    let mut child = Command::new(tool)
        .args(["-w", "10"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        if let Err(e) = stdin.write_all(text.as_bytes()) {
            drop(stdin);
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    }
    Ok(child)
}

/// Loads `rendered` into the network namespace at `netns` (e.g. `/proc/<pid>/ns/net`),
/// replacing its `filter` tables. Blocking. Refuses the caller's own namespace.
pub(crate) fn apply(netns: &Path, rendered: &RenderedFirewall) -> Result<()> {
    if !netns.exists() {
        return Err(RuntimeError::Network(format!(
            "network namespace {} is gone",
            netns.display()
        )));
    }
    if same_file(netns, Path::new("/proc/self/ns/net"))
        || same_file(netns, Path::new("/proc/thread-self/ns/net"))
    {
        return Err(RuntimeError::Network(
            "refusing to load a firewall into ferrocloud's own network namespace".into(),
        ));
    }
    let v4 = tools("iptables");
    if v4.is_empty() {
        return Err(RuntimeError::Unsupported {
            driver: "linux",
            what: "firewalls: iptables-restore (package iptables) is not installed".into(),
        });
    }
    let v6 = tools("ip6tables");
    let (t4, t6) = (rendered.ipv4.clone(), rendered.ipv6.clone());
    let res = crate::net::in_netns(netns.to_path_buf(), move || {
        // Both families at once: they are independent tables.
        let c4 = restore(&v4[0], &t4)?;
        let c6 = v6.first().and_then(|t| restore(t, &t6).ok());
        let mut out4 = c4.wait_with_output()?;
        let mut ipv6_ok = match c6 {
            Some(c) => c.wait_with_output()?.status.success(),
            None => false,
        };
        // The next backend where the preferred one cannot work here.
        for t in v4.iter().skip(1) {
            if out4.status.success() {
                break;
            }
            out4 = restore(t, &t4)?.wait_with_output()?;
        }
        for t in v6.iter().skip(1) {
            if ipv6_ok {
                break;
            }
            ipv6_ok = restore(t, &t6)?.wait_with_output()?.status.success();
        }
        if !ipv6_ok {
            // No IPv6 filter: no IPv6 at all in this namespace rather than an open one.
            let _ = std::fs::write("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
            let _ = std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
        }
        if !out4.status.success() {
            return Ok(Err(format!(
                "iptables-restore: {}",
                String::from_utf8_lossy(&out4.stderr).trim()
            )));
        }
        Ok(Ok(()))
    })
    .map_err(|e| RuntimeError::Network(format!("run iptables-restore: {e}")))?;
    res.map_err(RuntimeError::Network)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: FirewallProtocol, peers: &[&str]) -> FirewallRule {
        FirewallRule {
            protocol,
            peers: peers.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn empty_firewall_drops_everything_new_but_keeps_link_local() {
        let r = render(&Firewall::default()).unwrap();
        assert!(r.ipv4.contains(":INPUT DROP"));
        assert!(r.ipv4.contains(":OUTPUT DROP"));
        assert!(r.ipv4.contains("-A INPUT -i lo -j ACCEPT"));
        assert!(r.ipv4.contains("-A OUTPUT -d 169.254.0.0/16 -j ACCEPT"));
        assert!(r.ipv4.contains("--ctstate RELATED,ESTABLISHED -j ACCEPT"));
        assert!(!r.ipv4.contains("-A fc-ingress"));
        assert!(!r.ipv4.contains("-A fc-egress"));
        assert!(r.ipv4.ends_with("COMMIT\n"));
        assert!(r.ipv6.contains("--icmpv6-type 135 -j ACCEPT"));
        assert!(!r.ipv6.contains("169.254"));
    }

    #[test]
    fn rules_render_per_family_and_peer() {
        let fw = Firewall {
            ingress: vec![
                rule(
                    FirewallProtocol::Tcp { from: 22, to: 22 },
                    &["0.0.0.0/0", "10.1.2.3", "::/0"],
                ),
                rule(FirewallProtocol::Udp { from: 53, to: 60 }, &["10.0.0.7/8"]),
                rule(
                    FirewallProtocol::Icmp {
                        icmp_type: Some(8),
                        code: None,
                    },
                    &["10.0.0.0/8"],
                ),
                rule(
                    FirewallProtocol::Icmp {
                        icmp_type: Some(3),
                        code: Some(4),
                    },
                    &["10.0.0.0/8", "10.0.0.0/8"],
                ),
                rule(
                    FirewallProtocol::Icmpv6 {
                        icmp_type: None,
                        code: None,
                    },
                    &["::/0", "10.0.0.0/8"],
                ),
                rule(FirewallProtocol::Number(50), &["172.16.0.0/12"]),
                rule(FirewallProtocol::All, &[]),
            ],
            egress: vec![rule(FirewallProtocol::All, &["0.0.0.0/0", "::/0"])],
        };
        let r = render(&fw).unwrap();
        let v4: Vec<&str> = r.ipv4.lines().filter(|l| l.starts_with("-A fc-")).collect();
        assert_eq!(
            v4,
            [
                "-A fc-ingress -s 0.0.0.0/0 -p tcp -m tcp --dport 22 -j ACCEPT",
                "-A fc-ingress -s 10.1.2.3/32 -p tcp -m tcp --dport 22 -j ACCEPT",
                "-A fc-ingress -s 10.0.0.0/8 -p udp -m udp --dport 53:60 -j ACCEPT",
                "-A fc-ingress -s 10.0.0.0/8 -p icmp -m icmp --icmp-type 8 -j ACCEPT",
                "-A fc-ingress -s 10.0.0.0/8 -p icmp -m icmp --icmp-type 3/4 -j ACCEPT",
                "-A fc-ingress -s 172.16.0.0/12 -p 50 -j ACCEPT",
                "-A fc-egress -d 0.0.0.0/0 -j ACCEPT",
            ]
        );
        let v6: Vec<&str> = r.ipv6.lines().filter(|l| l.starts_with("-A fc-")).collect();
        assert_eq!(
            v6,
            [
                "-A fc-ingress -s ::/0 -p tcp -m tcp --dport 22 -j ACCEPT",
                "-A fc-ingress -s ::/0 -p ipv6-icmp -j ACCEPT",
                "-A fc-egress -d ::/0 -j ACCEPT",
            ]
        );
    }

    #[test]
    fn bad_peers_are_refused() {
        for bad in ["10.0.0.0/33", "nope", "10.0.0/8", "::/129", ""] {
            let fw = Firewall {
                ingress: vec![rule(FirewallProtocol::All, &[bad])],
                egress: vec![],
            };
            assert!(render(&fw).is_err(), "{bad}");
        }
    }

    /// Two network namespaces of the test's own joined by a veth (root only; skipped
    /// otherwise). Removed on drop.
    struct Pair {
        a: String,
        b: String,
    }

    impl Drop for Pair {
        fn drop(&mut self) {
            for n in [&self.a, &self.b] {
                let _ = Command::new("ip").args(["netns", "del", n]).output();
            }
        }
    }

    fn ip(args: &[&str]) -> bool {
        Command::new("ip")
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn pair() -> Option<Pair> {
        if crate::linux_support().is_err() || support().is_err() {
            eprintln!("skipped: needs root, namespaces, iproute2 and iptables-restore");
            return None;
        }
        let id = std::process::id();
        let p = Pair {
            a: format!("fwtest-{id}-a"),
            b: format!("fwtest-{id}-b"),
        };
        assert!(ip(&["netns", "add", &p.a]) && ip(&["netns", "add", &p.b]));
        assert!(ip(&[
            "-n", &p.a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
            &p.b
        ]));
        for (n, addr) in [(&p.a, "10.99.0.1/24"), (&p.b, "10.99.0.2/24")] {
            assert!(ip(&["-n", n, "addr", "add", addr, "dev", "eth0"]));
            assert!(ip(&["-n", n, "link", "set", "eth0", "up"]));
            assert!(ip(&["-n", n, "link", "set", "lo", "up"]));
        }
        Some(p)
    }

    fn ns(name: &str) -> PathBuf {
        PathBuf::from("/run/netns").join(name)
    }

    fn reaches(from: &str, to: std::net::SocketAddr) -> bool {
        crate::net::in_netns(ns(from), move || {
            Ok(
                std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_millis(500))
                    .is_ok(),
            )
        })
        .unwrap()
    }

    #[test]
    fn rules_filter_traffic_between_namespaces() {
        let Some(p) = pair() else {
            return;
        };
        let server: std::net::SocketAddr = "10.99.0.2:7000".parse().unwrap();
        // The kernel completes handshakes on a listening socket without accept().
        let _listener =
            crate::net::in_netns(ns(&p.b), move || std::net::TcpListener::bind(server)).unwrap();
        assert!(reaches(&p.a, server));
        let set = |n: &str, fw: &Firewall| apply(&ns(n), &render(fw).unwrap()).unwrap();
        let allow_out = FirewallRule {
            protocol: FirewallProtocol::All,
            peers: vec!["0.0.0.0/0".into()],
        };
        // Nothing allowed in: dropped.
        set(
            &p.b,
            &Firewall {
                ingress: vec![],
                egress: vec![allow_out.clone()],
            },
        );
        assert!(!reaches(&p.a, server));
        // The port from the client's address: in.
        let port_from = |peer: &str, from: u16, to: u16| Firewall {
            ingress: vec![FirewallRule {
                protocol: FirewallProtocol::Tcp { from, to },
                peers: vec![peer.into()],
            }],
            egress: vec![allow_out.clone()],
        };
        set(&p.b, &port_from("10.99.0.1", 7000, 7000));
        assert!(reaches(&p.a, server));
        set(&p.b, &port_from("10.99.0.9/32", 7000, 7000));
        assert!(!reaches(&p.a, server));
        set(&p.b, &port_from("10.99.0.0/24", 7001, 8000));
        assert!(!reaches(&p.a, server));
        set(&p.b, &port_from("10.99.0.0/24", 6000, 7000));
        assert!(reaches(&p.a, server));
        // No egress rule on the client: it can't connect out; loopback still works there.
        set(&p.a, &Firewall::default());
        assert!(!reaches(&p.a, server));
        let local: std::net::SocketAddr = "127.0.0.1:7100".parse().unwrap();
        let _l2 =
            crate::net::in_netns(ns(&p.a), move || std::net::TcpListener::bind(local)).unwrap();
        assert!(reaches(&p.a, local));
        set(
            &p.a,
            &Firewall {
                ingress: vec![],
                egress: vec![allow_out.clone()],
            },
        );
        assert!(reaches(&p.a, server));
    }

    #[test]
    fn own_namespace_is_refused() {
        let r = render(&Firewall::default()).unwrap();
        let e = apply(Path::new("/proc/self/ns/net"), &r).unwrap_err();
        assert!(e.to_string().contains("own network namespace"), "{e}");
    }
}
