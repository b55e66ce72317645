//! The mio event loop: the only code that reads the clock or makes syscalls.
//!
//! [`run`] creates and configures the TUN, draws the ISN secret, builds the [`Endpoint`] and
//! turns the loop until SIGINT/SIGTERM: then it stops accepting, lets open connections close
//! for up to [`SHUTDOWN_GRACE`], resets whatever is left and logs the counters.

pub mod commands;
pub mod control;
mod control_server;
mod event_loop;
mod impaired;
mod notify;
mod observe;
pub mod pcap;
pub mod socket_dir;

pub use event_loop::{Clock, Core, Device, EventLoop, LoopStats};
pub use impaired::Impaired;

use crate::cli::{Args, SetupError};
use crate::device::{Tun, ip_commands};
use crate::endpoint::{Endpoint, EndpointConfig};
use crate::services::ServiceKind;
use crate::time::Duration;
use std::net::IpAddr;
use tracing::{debug, info, warn};

/// How long open connections get to close after the first SIGINT/SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Run synack as `args` say until a signal stops it.
pub fn run(args: &Args) -> Result<(), SetupError> {
    for warning in args.warnings() {
        warn!("{warning}");
    }
    let tun = Tun::open(&args.iface, args.offload())?;
    if args.no_configure {
        info!(
            "{} created but left unconfigured (--no-configure); run the commands printed on stdout",
            tun.name()
        );
        for cmd in ip_commands(tun.name(), &args.host_addrs, args.mtu) {
            // User-facing output, not diagnostics: meant to be copied or piped to a shell.
            println!("{cmd}");
        }
    } else {
        tun.configure(&args.host_addrs, args.mtu)?;
        debug!(
            iface = tun.name(),
            mtu = args.mtu,
            host_addrs = ?args.host_addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "interface configured and up"
        );
    }

    // RFC 6528 §3: the ISN function is keyed by a secret the peer cannot guess.
    let mut secret = [0u8; 16];
    getrandom::fill(&mut secret).map_err(|e| SetupError::Random(e.to_string()))?;

    let event_loop = EventLoop::new(&tun, &[libc::SIGINT, libc::SIGTERM], SHUTDOWN_GRACE)?
        .observe(observers(args)?)?;
    let clock = Clock::start();
    let config = EndpointConfig {
        gso: tun.offloads(),
        ..args.endpoint_config()
    };
    debug!(
        offloads = tun.offloads(),
        "TCP segmentation and checksum offload {}",
        if tun.offloads() { "on" } else { "off" }
    );
    let mut endpoint = Endpoint::new(config, secret, clock.now()).with_limits(args.limits());
    let line = startup_line(args, tun.name());
    info!("{line}");
    // The interface is up and configured, the listeners are open (the kernel queues what
    // arrives before the first poll): tell systemd, if it started us.
    notify::ready(&line);
    match &args.impair {
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

/// `--pcap`, `--ladder` and the control socket.
fn observers(args: &Args) -> Result<observe::Observers, SetupError> {
    let capture = match &args.pcap {
        Some(path) => observe::Capture::open(path)?,
        None => observe::Capture::default(),
    };
    let pcap_on_stdout = args.pcap.as_deref() == Some(std::path::Path::new("-"));
    let ladder = args.ladder.then_some(if pcap_on_stdout {
        observe::LadderOut::Stderr
    } else {
        observe::LadderOut::Stdout
    });
    let path = args.control_path();
    // Issue #14: without its control socket the endpoint still works; say so once, with the fix.
    let control = match control_server::ControlServer::bind(&path) {
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
pub fn startup_line(args: &Args, iface: &str) -> String {
    let addrs: Vec<String> = args.addrs.iter().map(ToString::to_string).collect();
    let listeners: Vec<String> = args.listen.iter().map(ToString::to_string).collect();
    let mut line = format!(
        "synack listening on {} via {iface} ({})",
        join_and(&addrs),
        listeners.join(" ")
    );
    // Suggest the first IPv4 address: it works even where IPv6 is off.
    let Some(addr) = args
        .addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(args.addrs.first())
    else {
        return line;
    };
    let mut tries = Vec::new();
    let stream = args
        .listen
        .iter()
        .find(|l| l.service == ServiceKind::Echo)
        .or_else(|| args.listen.iter().find(|l| l.service != ServiceKind::Http));
    if let Some(l) = stream {
        tries.push(format!("nc {addr} {}", l.port));
    }
    if let Some(l) = args.listen.iter().find(|l| l.service == ServiceKind::Http) {
        let host = match addr {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        let port = if l.port == 80 {
            String::new()
        } else {
            format!(":{}", l.port)
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

    fn args(extra: &[&str]) -> Args {
        Args::try_from_iter(std::iter::once("synack").chain(extra.iter().copied())).unwrap()
    }

    #[test]
    fn startup_line_with_defaults_names_addresses_listeners_and_tries() {
        assert_eq!(
            startup_line(&args(&[]), "synack0"),
            "synack listening on 198.18.0.2 and 2001:2::2 via synack0 \
             (7=echo 9=discard 19=chargen 80=http) — try: nc 198.18.0.2 7, \
             curl http://198.18.0.2/, ping 198.18.0.2"
        );
    }

    #[test]
    fn startup_line_for_ipv6_only_and_http_on_another_port() {
        let a = args(&[
            "--addr",
            "2001:2::5",
            "-l",
            "8080=http",
            "--host-addr",
            "2001:2::1/64",
        ]);
        assert_eq!(
            startup_line(&a, "tun7"),
            "synack listening on 2001:2::5 via tun7 (8080=http) — try: \
             curl http://[2001:2::5]:8080/, ping 2001:2::5"
        );
    }

    #[test]
    fn join_and_reads_as_english() {
        let s = |v: &[&str]| join_and(&v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(s(&[]), "");
        assert_eq!(s(&["a"]), "a");
        assert_eq!(s(&["a", "b", "c"]), "a, b and c");
    }
}
