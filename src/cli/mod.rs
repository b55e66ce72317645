//! Command-line flags, their validation, logging setup and the setup errors shown to the user.
//!
//! Flag names, short flags and defaults are part of the user interface (issue #2, "Command
//! line"): keep them as they are.

pub mod commands;
pub mod generate;
mod limits;

// Setup errors and host addresses live in the leaf module `crate::config`, which the device
// and the driver depend on; re-exported here for code written against `crate::cli`.
pub use crate::config::{HostAddr, SetupError};
pub use limits::{BufferTriple, ByteSize, KeepaliveArg};

use crate::device::impair::ImpairSpec;
use crate::driver::{self, DaemonConfig};
use crate::endpoint::EndpointConfig;
use crate::services::ServiceKind;
use crate::tcp::{CcKind, RecoveryKind};
use crate::time::{Duration, parse_duration};
use clap::{CommandFactory, Parser, Subcommand};
use std::ffi::OsString;
use std::fmt;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// The smallest MTU every IPv6 link must carry (RFC 8200 §5).
pub const IPV6_MIN_MTU: u16 = 1280;
/// The smallest datagram every IPv4 host must accept (RFC 791).
pub const IPV4_MIN_MTU: u16 = 576;
/// Longest interface name the kernel accepts (IFNAMSIZ − 1).
const IFNAME_MAX: usize = 15;

/// synack: a complete TCP endpoint in userspace, served over a TUN interface.
///
/// Runs in the foreground until SIGINT/SIGTERM. Try it with nc, curl and ping.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "synack", version)]
pub struct Args {
    /// TUN interface to create (a subcommand: the daemon's interface); before or after the
    /// subcommand
    #[arg(short = 'i', long = "iface", value_name = "NAME", default_value = "synack0",
          value_parser = parse_iface_name, global = true)]
    pub iface: String,

    /// Address the endpoint answers as (repeatable); `any`: every destination routed into the
    /// interface (a transparent relay, with `-l '*=direct'`), answering ICMP echo only for its
    /// own addresses (the other --addr, or the defaults)
    #[arg(long = "addr", value_name = "IP|any", default_values = ["198.18.0.2", "2001:2::2"],
          value_parser = parse_endpoint_addr)]
    pub addrs: Vec<IpAddr>,

    /// Address given to the kernel's side of the interface (repeatable)
    #[arg(long = "host-addr", value_name = "IP/PREFIX",
          default_values = ["198.18.0.1/24", "2001:2::1/64"])]
    pub host_addrs: Vec<HostAddr>,

    /// Create the interface but leave addresses, MTU and link state to the user (print the `ip`
    /// commands to run)
    #[arg(long = "no-configure")]
    pub no_configure: bool,

    /// Interface MTU; MSS = MTU-40 (IPv4) / MTU-60 (IPv6)
    #[arg(long = "mtu", value_name = "BYTES", default_value_t = 1500,
          value_parser = limits::parse_mtu)]
    pub mtu: u16,

    /// A listening port and its service (repeatable): echo, discard, chargen, http,
    /// `exec:COMMAND [ARGS...]` (quote it: a program per connection on its stdin/stdout),
    /// `forward:HOST:PORT` (each connection relayed to a kernel TCP socket; IPv6 as
    /// `[ADDR]:PORT`), `direct` (relayed to the address and port the client asked for) or
    /// `socks5:[USER:PASSWORD@]HOST:PORT` (the same through a SOCKS5 proxy); PORT `*`: every
    /// port without a listener of its own
    #[arg(short = 'l', long = "listen", value_name = "PORT=SERVICE",
          default_values = ["7=echo", "9=discard", "19=chargen", "80=http"])]
    pub listen: Vec<Listen>,

    /// How long TIME-WAIT lasts (2·MSL), e.g. 500ms, 2s, 1m
    #[arg(long = "time-wait", value_name = "DURATION", default_value = "60s",
          value_parser = parse_duration)]
    pub time_wait: Duration,

    /// Congestion control: cubic (RFC 9438) or newreno (RFC 5681, RFC 6582)
    #[arg(long = "cc", value_name = "ALGORITHM", default_value = "cubic")]
    pub cc: CcKind,

    /// ECN (RFC 3168, as net.ipv4.tcp_ecn): off, on (also ask for it in synack connect and the
    /// socket API's connect), server (accept it when a client asks), accecn (ask for Accurate
    /// ECN, RFC 9768, on our SYNs); all but off also accept AccECN when a client asks
    #[arg(long = "ecn", value_name = "MODE", default_value = "server")]
    pub ecn: crate::tcp::EcnMode,

    /// TCP Fast Open (RFC 7413) for the listeners, as bit 0x2 of Linux's
    /// net.ipv4.tcp_fastopen (off by default, as on Linux): give clients cookies, and take
    /// the data on a SYN that carries a valid one (synack connect --fastopen is the client)
    #[arg(long = "fastopen")]
    pub fastopen: bool,

    /// Loss detection: rack (RACK-TLP, RFC 8985: time-based, with tail loss probes) or
    /// classic (three duplicate ACKs and RFC 6675's IsLost), like Linux's
    /// net.ipv4.tcp_recovery; connections without SACK always use classic
    #[arg(long = "recovery", value_name = "MODE", default_value = "rack")]
    pub recovery: RecoveryKind,

    /// Path MTU black-hole detection (RFC 4821, as Linux's tcp_mtu_probing): off (only ICMP
    /// lowers the MSS), blackhole (after three timeouts in a row with no ICMP, fall back to an
    /// MSS of 1024 and halve it on), always (start every connection at MSS 1024)
    #[arg(long = "mtu-probing", value_name = "MODE", default_value = "blackhole")]
    pub mtu_probing: crate::tcp::MtuProbing,

    /// Impair the link inside the daemon, both directions, e.g.
    /// loss=2%,dup=1%,reorder=2%,delay=10ms,jitter=5ms,corrupt=0.1%,rate=100mbit,seed=42;
    /// mtu=1280 (a smaller next hop: larger packets dropped and answered with ICMP),
    /// blackhole-mtu=1280 (dropped silently)
    #[arg(long = "impair", value_name = "SPEC")]
    pub impair: Option<ImpairSpec>,

    /// Exchange only wire-sized packets with the kernel: no TCP segmentation or checksum
    /// offload on the TUN (offloads are on by default, and off under an --impair that does more
    /// than delay)
    #[arg(long = "no-offload")]
    pub no_offload: bool,

    /// Microseconds to keep polling the TUN without sleeping after sending data, a SYN or a
    /// FIN, as Linux's net.core.busy_poll: the answer often comes sooner than a sleep and
    /// wake-up would take; 0 sleeps at once (less CPU, more latency)
    #[arg(long = "busy-poll", value_name = "USEC", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub busy_poll: u32,

    /// Per listener: the most half-open connections (beyond it SYNs get SYN cookies) and the
    /// most established ones not yet taken by their service
    #[arg(long = "backlog", value_name = "N", default_value_t = 1024,
          value_parser = limits::parse_count)]
    pub backlog: usize,

    /// The most connections in any state but TIME-WAIT; past it new SYNs are dropped
    /// silently. Each idle connection costs about 1 KiB (see docs/PERFORMANCE.md), so the
    /// default table holds about 64 MiB of connections; buffers are counted apart
    /// (--max-buffer-memory)
    #[arg(long = "max-connections", value_name = "N", default_value_t = 65536,
          value_parser = limits::parse_count)]
    pub max_connections: usize,

    /// The most programs running at once for `exec:` listeners; past it new connections to
    /// exec ports are refused with RST (counted as exec_limit)
    #[arg(long = "max-exec", value_name = "N", default_value_t = 1024,
          value_parser = limits::parse_count)]
    pub max_exec: usize,

    /// The most connections in TIME-WAIT (like net.ipv4.tcp_max_tw_buckets); they hold no
    /// buffers, and past it a closing connection skips TIME-WAIT
    #[arg(long = "max-time-wait", value_name = "N", default_value_t = 65536,
          value_parser = limits::parse_count)]
    pub max_time_wait: usize,

    /// Receive buffer sizes MIN,DEFAULT,MAX (like net.ipv4.tcp_rmem): each connection
    /// starts at DEFAULT and autotuning grows it up to MAX, to twice what the application
    /// reads per round trip; e.g. 4KiB,128KiB,32MiB
    #[arg(
        long = "rmem",
        value_name = "MIN,DEFAULT,MAX",
        default_value = "4KiB,128KiB,32MiB"
    )]
    pub rmem: BufferTriple,

    /// Send buffer sizes MIN,DEFAULT,MAX (like net.ipv4.tcp_wmem): each connection starts
    /// at DEFAULT and grows with its congestion window and the peer's window up to MAX
    #[arg(
        long = "wmem",
        value_name = "MIN,DEFAULT,MAX",
        default_value = "4KiB,64KiB,32MiB"
    )]
    pub wmem: BufferTriple,

    /// The most memory all connections' queues (send, receive and out-of-order data) may
    /// hold, like net.ipv4.tcp_mem; above two thirds of it buffers stop growing and new
    /// windows are offered smaller; e.g. 512MiB, 64KiB or plain bytes
    #[arg(
        long = "max-buffer-memory",
        value_name = "SIZE",
        default_value = "512MiB"
    )]
    pub max_buffer_memory: ByteSize,

    /// Bind the upstream sockets of `direct`, `socks5:` and `forward:` to this interface
    /// (SO_BINDTODEVICE), so that they never route back into synack's
    #[arg(long = "upstream-interface", value_name = "IFACE", value_parser = parse_iface_name)]
    pub upstream_interface: Option<String>,

    /// Mark the upstream sockets of `direct`, `socks5:` and `forward:` (SO_MARK), for a
    /// routing rule that keeps them off synack's interface
    #[arg(long = "upstream-mark", value_name = "N")]
    pub upstream_mark: Option<u32>,

    /// Probe connections idle this long (off by default); PORT=DURATION for one listener
    /// only (repeatable); 9 unanswered probes, at most 75 s apart, abort the connection
    #[arg(long = "keepalive", value_name = "[PORT=]DURATION")]
    pub keepalive: Vec<KeepaliveArg>,

    /// More logging (-v debug, -vv trace); RUST_LOG overrides
    #[arg(short = 'v', action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less logging (warnings and errors only); RUST_LOG overrides
    #[arg(short = 'q')]
    pub quiet: bool,

    /// Write every packet received and sent to FILE in pcap format (`-` for stdout, e.g.
    /// `synack --pcap - | tcpdump -nr -`)
    #[arg(long = "pcap", value_name = "FILE")]
    pub pcap: Option<PathBuf>,

    /// Print each connection's sequence diagram when it closes
    #[arg(long = "ladder")]
    pub ladder: bool,

    /// The control socket of the daemon [default: /run/synack/<IFACE>.sock for root, else
    /// $XDG_RUNTIME_DIR/synack/<IFACE>.sock, or /tmp/synack-<UID>/<IFACE>.sock without
    /// XDG_RUNTIME_DIR]; before or after the subcommand
    #[arg(long = "control", value_name = "PATH", global = true)]
    pub control: Option<PathBuf>,

    /// Talk to the running daemon instead of starting one, or print the man page or a
    /// completion script
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands: most talk to a running daemon over its control socket; `man` and
/// `completions` print documentation generated from these definitions.
#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// One row per connection and listener, like `ss -tan`
    Status {
        /// Print JSON, for scripts
        #[arg(long = "json")]
        json: bool,
        /// Refresh every second until interrupted
        #[arg(long = "watch")]
        watch: bool,
        /// Show each connection's TCP internals, like `ss -ti`: congestion control, window
        /// scales, RTO, RTT, MSS, cwnd, ssthresh, totals, windows, delivery rate, what limits it
        #[arg(long = "info")]
        info: bool,
    },
    /// The counters, like `nstat`, with the name of Linux's counter beside synack's where Linux
    /// counts the same thing
    Stats {
        /// Print JSON, for scripts
        #[arg(long = "json")]
        json: bool,
    },
    /// Open a connection from the endpoint, send data, print what comes back, close
    Connect {
        /// Where to connect, e.g. 198.18.0.1:8080 or [2001:2::1]:8080
        #[arg(value_name = "ADDR:PORT")]
        addr: SocketAddr,
        /// Send the contents of FILE (`-` for standard input); nothing by default
        #[arg(long = "send", value_name = "FILE")]
        send: Option<PathBuf>,
        /// TCP Fast Open (RFC 7413): ask the server for a cookie, and once synack holds one
        /// for that address, send the data on the SYN
        #[arg(long = "fastopen")]
        fastopen: bool,
    },
    /// The sequence diagram of every open connection
    Trace {
        /// Keep running and print each connection's diagram when it closes
        #[arg(long = "follow")]
        follow: bool,
        /// Write each diagram as an SVG picture into DIR (one file per connection, named by
        /// its 4-tuple) instead of printing it
        #[arg(long = "svg", value_name = "DIR")]
        svg: Option<PathBuf>,
    },
    /// Print a shell completion script for bash, zsh or fish, e.g.
    /// `synack completions bash > ~/.local/share/bash-completion/completions/synack`
    Completions {
        /// The shell to complete for
        #[arg(value_name = "SHELL")]
        shell: generate::Shell,
    },
    /// Print the man page (roff), e.g. `synack man | man -l -`
    Man,
}

/// One `--listen PORT=SERVICE`; port 0 stands for `*` (every port without a listener of its
/// own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    pub port: u16,
    pub service: ServiceKind,
}

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let Some((port, service)) = s.split_once('=') else {
            return Err(format!(
                "'{s}' is not PORT=SERVICE (for example 7=echo or 8080=http)"
            ));
        };
        let port = match port.trim().parse::<u16>() {
            _ if port.trim() == "*" => 0,
            Ok(0) | Err(_) => {
                return Err(format!(
                    "'{port}' is not a port number between 1 and 65535 (or * for every port)"
                ));
            }
            Ok(p) => p,
        };
        let service = service.trim().parse::<ServiceKind>()?;
        Ok(Listen { port, service })
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port == 0 {
            write!(f, "*={}", self.service)
        } else {
            write!(f, "{}={}", self.port, self.service)
        }
    }
}

fn parse_iface_name(s: &str) -> Result<String, String> {
    // The kernel's dev_valid_name(): 1..IFNAMSIZ bytes, not "." or "..", no '/', ':' or space.
    if s.is_empty() || s.len() > IFNAME_MAX {
        return Err(format!(
            "an interface name has 1 to {IFNAME_MAX} characters ('{s}' has {})",
            s.len()
        ));
    }
    if s == "." || s == ".." || s.contains(|c: char| c == '/' || c == ':' || c.is_whitespace()) {
        return Err(format!(
            "'{s}' is not a valid interface name (no '/', ':' or spaces)"
        ));
    }
    Ok(s.to_owned())
}

/// `--addr any` is kept as the unspecified address, which no endpoint address can be
/// (see [`Args::any_addr`]).
fn parse_endpoint_addr(s: &str) -> Result<IpAddr, String> {
    if s == "any" {
        return Ok(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    }
    let addr: IpAddr = s
        .parse()
        .map_err(|_| format!("'{s}' is not an IPv4 or IPv6 address"))?;
    if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
        return Err(format!(
            "{addr} cannot be the endpoint's address (use a unicast address)"
        ));
    }
    Ok(addr)
}

impl Args {
    /// Parse the process's arguments; on a bad flag print clap's message and exit with 2.
    pub fn from_env() -> Args {
        match Args::try_from_iter(std::env::args_os()) {
            Ok(args) => args,
            Err(e) => e.exit(),
        }
    }

    /// Parse and validate `argv` (whose first item is the program name).
    pub fn try_from_iter<I, T>(argv: I) -> Result<Args, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args = Args::try_parse_from(argv)?;
        args.validate()
            .map_err(|msg| Args::command().error(clap::error::ErrorKind::ValueValidation, msg))?;
        Ok(args)
    }

    /// Checks that involve more than one flag.
    pub fn validate(&self) -> Result<(), String> {
        let uses_ipv6 = self.endpoint_addrs().iter().any(IpAddr::is_ipv6)
            || self.host_addrs.iter().any(|h| h.addr.is_ipv6());
        if uses_ipv6 && self.mtu < IPV6_MIN_MTU {
            return Err(format!(
                "--mtu {} is below {IPV6_MIN_MTU}, the smallest MTU IPv6 allows; raise it or \
                 give only IPv4 addresses with --addr and --host-addr",
                self.mtu
            ));
        }
        for (i, l) in self.listen.iter().enumerate() {
            if let Some(other) = self.listen.iter().skip(i + 1).find(|o| o.port == l.port) {
                return Err(format!(
                    "port {} is given twice (--listen {l} and --listen {other})",
                    l.port
                ));
            }
        }
        self.validate_keepalive()?;
        self.validate_upstreams()?;
        for l in &self.listen {
            if let ServiceKind::Exec(spec) = l.service {
                crate::driver::check_program(spec)?;
            }
        }
        if let Some(h) = self
            .host_addrs
            .iter()
            .find(|h| self.addrs.contains(&h.addr))
        {
            return Err(format!(
                "{} is both --addr and --host-addr; the endpoint and the kernel need different \
                 addresses",
                h.addr
            ));
        }
        Ok(())
    }

    /// `--addr any`: the endpoint answers for every destination routed into its interface.
    pub fn any_addr(&self) -> bool {
        self.addrs.iter().any(IpAddr::is_unspecified)
    }

    /// The endpoint's own addresses: the `--addr` IPs, or with only `--addr any` the default
    /// ones (ICMP echo is answered for them, and `synack connect` sends from them).
    pub fn endpoint_addrs(&self) -> Vec<IpAddr> {
        let own: Vec<IpAddr> = self
            .addrs
            .iter()
            .copied()
            .filter(|a| !a.is_unspecified())
            .collect();
        if own.is_empty() {
            vec![
                IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 2)),
                IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2)),
            ]
        } else {
            own
        }
    }

    /// Loop safety (issue #21): a relay's upstream sockets must never be routed back into
    /// synack's interface.
    fn validate_upstreams(&self) -> Result<(), String> {
        let pinned = self.upstream_interface.is_some() || self.upstream_mark.is_some();
        if pinned {
            if self.upstream_interface.as_deref() == Some(self.iface.as_str()) {
                return Err(format!(
                    "--upstream-interface {} is synack's own interface: upstream connections \
                     would loop back into synack; name the interface that leads to the \
                     destinations (e.g. eth0)",
                    self.iface
                ));
            }
            return Ok(());
        }
        for l in &self.listen {
            match l.service {
                ServiceKind::Direct => {
                    return Err(format!(
                        "--listen {l} relays each connection to the address the client asked \
                         for, which is routed into {iface}: its upstream connections would loop \
                         back into synack. Give --upstream-interface IFACE (the interface that \
                         leads to the destinations, e.g. eth0) or --upstream-mark N with a \
                         routing rule that keeps marked packets off {iface}",
                        iface = self.iface
                    ));
                }
                ServiceKind::Socks5(spec) => {
                    let proxy = spec.proxy().ip();
                    let ours = self.any_addr()
                        || self.endpoint_addrs().contains(&proxy)
                        || self.host_addrs.iter().any(|h| h.contains(proxy));
                    if ours && !self.no_configure {
                        return Err(format!(
                            "--listen {l}: the proxy {proxy} is routed into {iface}, so \
                             connections to it would loop back into synack. Give \
                             --upstream-interface IFACE (the interface that leads to the \
                             proxy) or --upstream-mark N with a routing rule",
                            iface = self.iface
                        ));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Things that are allowed but probably not what the user wants, one sentence each.
    pub fn warnings(&self) -> Vec<String> {
        if self.no_configure {
            return Vec::new();
        }
        self.endpoint_addrs()
            .iter()
            .filter(|a| !self.host_addrs.iter().any(|h| h.contains(**a)))
            .map(|a| {
                format!(
                    "--addr {a} is outside every --host-addr prefix, so the kernel will not \
                     route to it through {} unless you add a route",
                    self.iface
                )
            })
            .collect()
    }

    /// The configuration handed to the sans-IO endpoint.
    pub fn endpoint_config(&self) -> EndpointConfig {
        EndpointConfig {
            addrs: self.endpoint_addrs(),
            any_addr: self.any_addr(),
            listeners: self.listen.iter().map(|l| (l.port, l.service)).collect(),
            mtu: self.mtu,
            time_wait: self.time_wait,
            cc: self.cc,
            recovery: self.recovery,
            gso: false,
            rmem: self.rmem.0,
            wmem: self.wmem.0,
            mtu_probing: self.mtu_probing,
            ecn: self.ecn,
            fastopen: self.fastopen,
        }
    }

    /// What the daemon runs with: the flags, validated and put in the driver's terms.
    pub fn daemon_config(&self) -> DaemonConfig {
        DaemonConfig {
            iface: self.iface.clone(),
            host_addrs: self.host_addrs.clone(),
            no_configure: self.no_configure,
            mtu: self.mtu,
            offload: self.offload(),
            endpoint: self.endpoint_config(),
            limits: self.limits(),
            impair: self.impair.clone(),
            pcap: self.pcap.clone(),
            ladder: self.ladder,
            busy_poll: std::time::Duration::from_micros(u64::from(self.busy_poll)),
            control: self.control_path(),
            upstream: driver::UpstreamOptions {
                interface: self.upstream_interface.clone(),
                mark: self.upstream_mark,
            },
        }
    }

    /// Whether to ask the TUN for segmentation and checksum offload: unless `--no-offload`,
    /// and not under an `--impair` whose faults apply to wire-sized packets (one that only
    /// delays keeps it).
    pub fn offload(&self) -> bool {
        !self.no_offload && self.impair.as_ref().is_none_or(ImpairSpec::only_delays)
    }

    /// Where the daemon's control socket is: `--control`, or the default for this user and
    /// interface (`/run/synack/<iface>.sock` for root; see `driver::socket_dir`).
    pub fn control_path(&self) -> PathBuf {
        self.control
            .clone()
            .unwrap_or_else(|| driver::socket_dir::default_socket_path(&self.iface))
    }

    /// The log level when RUST_LOG is not set.
    pub fn log_level(&self) -> tracing::Level {
        match (self.quiet, self.verbose) {
            (true, _) => tracing::Level::WARN,
            (false, 0) => tracing::Level::INFO,
            (false, 1) => tracing::Level::DEBUG,
            (false, _) => tracing::Level::TRACE,
        }
    }
}

/// Run what `args` ask for: a subcommand against the running daemon, or the daemon itself
/// until a signal stops it. The error is one sentence for the user.
pub fn run(args: &Args) -> Result<(), String> {
    match &args.command {
        Some(cmd) => commands::run(args, cmd),
        None => {
            for warning in args.warnings() {
                tracing::warn!("{warning}");
            }
            driver::run(&args.daemon_config()).map_err(|e| e.to_string())
        }
    }
}

/// Log to stderr at `level`, or as RUST_LOG says if it is set; colour only on a terminal.
pub fn init_logging(level: tracing::Level) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(level.as_str().to_ascii_lowercase()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

#[cfg(test)]
mod tests;
