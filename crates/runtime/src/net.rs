//! Workload networking for the linux driver, entirely inside network namespaces ferrocloud
//! creates: a per-instance "router" namespace (`fc-<instance hash>`) holds one bridge per
//! network with the gateway address and the link-local service addresses on its loopback;
//! every workload namespace gets a veth into its network's bridge. Published ports and
//! link-local services are userspace TCP sockets created inside the router namespace by a
//! short-lived thread that `setns`es into it (sockets keep their namespace). Nothing is ever
//! configured on the host's own interfaces.

use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

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

/// The per-instance router namespace.
#[derive(Debug)]
pub struct Router {
    pub name: String,
    pub ns_path: PathBuf,
}

impl Router {
    /// Creates (or re-uses) the router namespace with loopback up and the given link-local
    /// addresses on it.
    pub fn ensure(name: &str, link_local: &[Ipv4Addr]) -> Result<Router> {
        let ns_path = PathBuf::from("/run/netns").join(name);
        if !ns_path.exists() {
            let out = Command::new("ip")
                .args(["netns", "add", name])
                .output()
                .map_err(|e| RuntimeError::Network(format!("run ip netns add: {e}")))?;
            if !out.status.success() && !ns_path.exists() {
                return Err(RuntimeError::Network(format!(
                    "ip netns add {name}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        let r = Router {
            name: name.to_string(),
            ns_path,
        };
        let mut script = String::from("link set lo up\n");
        for a in link_local {
            script.push_str(&format!("addr replace {a}/32 dev lo\n"));
        }
        ip_batch(Some(r.ns_path.clone()), script, false)?;
        // Forwarding between bridges stays off: networks are isolated from each other (a new
        // namespace may inherit the host's setting).
        in_netns(r.ns_path.clone(), || {
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "0")
        })
        .map_err(|e| RuntimeError::Network(format!("disable forwarding in {name}: {e}")))?;
        Ok(r)
    }

    pub fn exists(name: &str) -> bool {
        PathBuf::from("/run/netns").join(name).exists()
    }

    pub fn add_link_local(&self, ip: Ipv4Addr) -> Result<()> {
        ip_batch(
            Some(self.ns_path.clone()),
            format!("addr replace {ip}/32 dev lo\n"),
            false,
        )
    }

    /// Ensures the bridge for a network exists, with the gateway address.
    pub fn ensure_bridge(&self, bridge: &str, cidr: &Cidr) -> Result<()> {
        // Check-then-create: two workloads starting on a new network at once must not both
        // create its bridge ("RTNETLINK answers: File exists").
        static BRIDGES: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = BRIDGES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let links = ip_output(
            self.ns_path.clone(),
            &["-o", "link", "show", "type", "bridge"],
        )?;
        if links.contains(&format!(": {bridge}:")) {
            return Ok(());
        }
        // A fixed address: otherwise the bridge takes the lowest address of its ports, which
        // changes as workloads come and go, and workloads that cached the gateway's old address
        // lose their connections until their neighbour entry expires (~30 s).
        let hex: Vec<u8> = bridge
            .bytes()
            .filter(u8::is_ascii_hexdigit)
            .chain(std::iter::repeat(b'0'))
            .take(10)
            .collect();
        let hex = String::from_utf8_lossy(&hex);
        let mac = format!(
            "02:{}:{}:{}:{}:{}",
            &hex[0..2],
            &hex[2..4],
            &hex[4..6],
            &hex[6..8],
            &hex[8..10]
        );
        ip_batch(
            Some(self.ns_path.clone()),
            format!(
                "link add {bridge} address {mac} type bridge\naddr add {}/{} dev {bridge}\nlink set {bridge} up\n",
                cidr.gateway(),
                cidr.prefix
            ),
            false,
        )
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

    /// Connects to `addr` from inside the router namespace.
    pub fn connect(ns_path: PathBuf, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let s = in_netns(ns_path, move || {
            TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        })?;
        s.set_nonblocking(true)?;
        Ok(s)
    }
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
    fn hashes_are_short_and_stable() {
        let a = short_hash(&["x", "y"]);
        assert_eq!(a.len(), 12);
        assert_eq!(a, short_hash(&["x", "y"]));
        assert_ne!(a, short_hash(&["xy"]));
    }
}
