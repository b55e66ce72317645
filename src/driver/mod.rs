//! The mio event loop: the only code that reads the clock or makes syscalls.
//!
//! [`run`] creates and configures the TUN, draws the ISN secret, builds the [`Endpoint`] and
//! turns the loop until SIGINT/SIGTERM: then it stops accepting, lets open connections close
//! for up to [`SHUTDOWN_GRACE`], resets whatever is left and logs the counters. It takes a
//! [`DaemonConfig`], which `cli` builds from the flags.

pub mod control;
mod control_server;
mod event_loop;
mod exec;
mod forward;
pub use exec::check_program;
mod impaired;
mod notify;
mod observe;
pub mod pcap;
pub mod socket_dir;
mod trim;

pub use event_loop::{Clock, Core, Device, EventLoop, LoopStats};
pub use forward::UpstreamOptions;
pub use impaired::Impaired;

use crate::config::{HostAddr, SetupError};
use crate::device::impair::ImpairSpec;
use crate::device::{Tun, ip_commands};
use crate::endpoint::{Endpoint, EndpointConfig, Limits};
use crate::services::ServiceKind;
use crate::time::Duration;
use std::net::IpAddr;
use std::path::PathBuf;
use tracing::{debug, info, warn};

/// How long open connections get to close after the first SIGINT/SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The most a relay reads from a program's stdout or an upstream socket per `read()`,
/// straight into the connection's send buffer.
const PEER_READ: usize = 256 * 1024;

/// One `read()` from a program's stdout or an upstream socket straight into the send buffer
/// of `relay`'s connection (no copy in between). `None`: no room (the client's window is
/// full, or the stream is over); otherwise the read's outcome (`Ok(0)`: end of stream).
fn read_into(
    relay: &mut crate::services::RelayIo<'_>,
    src: &mut impl std::io::Read,
) -> Option<std::io::Result<usize>> {
    let mut outcome = None;
    relay.peer_read_with(PEER_READ, &mut |dst| match src.read(dst) {
        Ok(n) => {
            outcome = Some(Ok(n));
            n
        }
        Err(e) => {
            outcome = Some(Err(e));
            0
        }
    });
    outcome
}

/// Everything the daemon needs to run, already validated (`cli` builds it from the flags).
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// The TUN interface to create.
    pub iface: String,
    /// Addresses for the kernel's side of the interface.
    pub host_addrs: Vec<HostAddr>,
    /// Create the interface but print the `ip` commands instead of configuring it.
    pub no_configure: bool,
    /// The interface MTU.
    pub mtu: u16,
    /// Ask the TUN for segmentation and checksum offload.
    pub offload: bool,
    /// The sans-IO endpoint's addresses, listeners and TCP settings (`gso` is set from the
    /// TUN once it is open).
    pub endpoint: EndpointConfig,
    /// Backlogs, connection and memory limits, keep-alive.
    pub limits: Limits,
    /// Impair the link inside the daemon.
    pub impair: Option<ImpairSpec>,
    /// Write every packet to this pcap file (`-` for stdout).
    pub pcap: Option<PathBuf>,
    /// Print each connection's sequence diagram when it closes.
    pub ladder: bool,
    /// How long the event loop polls without sleeping after sending data, a SYN or a FIN
    /// (`--busy-poll`).
    pub busy_poll: std::time::Duration,
    /// Where the control socket is bound.
    pub control: PathBuf,
    /// How relayed connections' upstream sockets leave the host (`--upstream-interface`,
    /// `--upstream-mark`).
    pub upstream: UpstreamOptions,
}

/// glibc's heap: buffers up to 4 MiB come from the heap rather than from `mmap`, and up to
/// 32 MiB of free memory at its top stays mapped (glibc's defaults adapt from 128 KiB).
/// A connection's queues are freed whenever it is idle (`tcp/memory.rs`), and a relayed
/// download's send queue is idle after every chunk the client acknowledges: each chunk then
/// cost an `mmap` or a heap trim, page faults and zeroed pages. Ten relayed downloads spent a
/// tenth of the daemon's CPU in page faults; with this, none (issue 21). Idle connections
/// still hold nothing; the heap keeps at most 32 MiB beyond what is in use. Only glibc has
/// `mallopt`; elsewhere the allocator's defaults stay.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets glibc's malloc parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
    }
}

/// Run synack as `config` says until a signal stops it.
pub fn run(config: &DaemonConfig) -> Result<(), SetupError> {
    tune_allocator();
    let tun = Tun::open(&config.iface, config.offload)?;
    if config.no_configure {
        info!(
            "{} created but left unconfigured (--no-configure); run the commands printed on stdout",
            tun.name()
        );
        for cmd in ip_commands(tun.name(), &config.host_addrs, config.mtu) {
            // User-facing output, not diagnostics: meant to be copied or piped to a shell.
            println!("{cmd}");
        }
    } else {
        tun.configure(&config.host_addrs, config.mtu)?;
        wait_until_local(&tun, &config.host_addrs);
        debug!(
            iface = tun.name(),
            mtu = config.mtu,
            host_addrs = ?config.host_addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "interface configured and up"
        );
    }

    // RFC 6528 §3: the ISN function is keyed by a secret the peer cannot guess.
    let mut secret = [0u8; 16];
    getrandom::fill(&mut secret).map_err(|e| SetupError::Random(e.to_string()))?;

    let event_loop = EventLoop::new(&tun, &[libc::SIGINT, libc::SIGTERM], SHUTDOWN_GRACE)?
        .upstream_options(config.upstream.clone())
        .busy_poll(config.busy_poll)
        .observe(observers(config)?)?;
    let clock = Clock::start();
    let endpoint_config = EndpointConfig {
        gso: tun.offloads(),
        ..config.endpoint.clone()
    };
    debug!(
        offloads = tun.offloads(),
        "TCP segmentation and checksum offload {}",
        if tun.offloads() { "on" } else { "off" }
    );
    let mut endpoint =
        Endpoint::new(endpoint_config, secret, clock.now()).with_limits(config.limits.clone());
    // GET /connections.json is `synack status --json`, encoded by the same code.
    endpoint.set_status_json(control::status_json);
    let line = startup_line(&config.endpoint, tun.name());
    info!("{line}");
    // The interface is up and configured, the listeners are open (the kernel queues what
    // arrives before the first poll): tell systemd, if it started us.
    notify::ready(&line);
    match &config.impair {
        Some(spec) => {
            info!("impairing the link in both directions: --impair {spec}");
            let mut core = Impaired::new(endpoint, spec.clone());
            event_loop.run(&mut core, &clock)?;
        }
        None => {
            event_loop.run(&mut endpoint, &clock)?;
        }
    }
    Ok(())
}

/// How long [`wait_until_local`] waits for the kernel to deliver the host addresses locally.
const LOCAL_ROUTE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Wait, at most [`LOCAL_ROUTE_WAIT`], until the kernel delivers every host address locally
/// (`Tun::host_addrs_local`: IPv6 addresses get their local route a few milliseconds after
/// the link is up), so that the startup line and systemd's READY=1 mean "usable". Past the
/// wait, or if netlink fails, go on: the route will come, and a client's SYN retransmission
/// covers the gap.
fn wait_until_local(tun: &Tun, host_addrs: &[HostAddr]) {
    let start = std::time::Instant::now();
    loop {
        match tun.host_addrs_local(host_addrs) {
            Ok(true) => break,
            Ok(false) if start.elapsed() < LOCAL_ROUTE_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Ok(false) => {
                debug!("the host addresses have no local route yet; going on");
                break;
            }
            Err(e) => {
                debug!("cannot ask the kernel for the host addresses' routes: {e}");
                break;
            }
        }
    }
    debug!(waited = ?start.elapsed(), "host addresses delivered locally");
}

/// `--pcap`, `--ladder` and the control socket.
fn observers(config: &DaemonConfig) -> Result<observe::Observers, SetupError> {
    let capture = match &config.pcap {
        Some(path) => observe::Capture::open(path)?,
        None => observe::Capture::default(),
    };
    let pcap_on_stdout = config.pcap.as_deref() == Some(std::path::Path::new("-"));
    let ladder = config.ladder.then_some(if pcap_on_stdout {
        observe::LadderOut::Stderr
    } else {
        observe::LadderOut::Stdout
    });
    let path = &config.control;
    // Issue #14: without its control socket the endpoint still works; say so once, with the fix.
    let control = match control_server::ControlServer::bind(path) {
        Ok(control) => {
            debug!(path = %path.display(), "control socket ready");
            Some(control)
        }
        Err(why) => {
            warn!(
                "no control socket at {} ({why}): running without one, so `synack status`, \
                 `stats`, `connect` and `trace` cannot reach this daemon; give it a path you \
                 may write with --control PATH (and the same --control to the subcommands)",
                path.display()
            );
            None
        }
    };
    Ok(observe::Observers {
        capture,
        ladder,
        control,
    })
}

/// The one line that says where synack is reachable and how to try it.
pub fn startup_line(endpoint: &EndpointConfig, iface: &str) -> String {
    let mut addrs: Vec<String> = endpoint.addrs.iter().map(ToString::to_string).collect();
    if endpoint.any_addr {
        addrs.push("every address routed to it".to_owned());
    }
    let listeners: Vec<String> = endpoint
        .listeners
        .iter()
        .map(|(port, service)| match port {
            0 => format!("*={service}"),
            _ => format!("{port}={service}"),
        })
        .collect();
    let mut line = format!(
        "synack listening on {} via {iface} ({})",
        join_and(&addrs),
        listeners.join(" ")
    );
    // Suggest the first IPv4 address: it works even where IPv6 is off.
    let Some(addr) = endpoint
        .addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(endpoint.addrs.first())
    else {
        return line;
    };
    let mut tries = Vec::new();
    // Not a listener for every port (port 0), nor one that relays to where the client asked
    // (synack's own address is closed to it).
    let stream = endpoint
        .listeners
        .iter()
        .find(|(_, service)| *service == ServiceKind::Echo)
        .or_else(|| {
            endpoint.listeners.iter().find(|(port, service)| {
                *service != ServiceKind::Http && *port != 0 && !service.relays_to_destination()
            })
        });
    if let Some((port, _)) = stream {
        tries.push(format!("nc {addr} {port}"));
    }
    if let Some((port, _)) = endpoint
        .listeners
        .iter()
        .find(|(_, service)| *service == ServiceKind::Http)
    {
        let host = match addr {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        // `*=http` answers on port 80 too.
        let port = if *port == 80 || *port == 0 {
            String::new()
        } else {
            format!(":{port}")
        };
        tries.push(format!("curl http://{host}{port}/"));
    }
    tries.push(format!("ping {addr}"));
    line.push_str(" — try: ");
    line.push_str(&tries.join(", "));
    line
}

/// "a", "a and b", "a, b and c".
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_and_reads_as_english() {
        let s = |v: &[&str]| join_and(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&[]), "");
        assert_eq!(s(&["a"]), "a");
        assert_eq!(s(&["a", "b", "c"]), "a, b and c");
    }
}
