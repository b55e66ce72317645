use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
    Args::try_from_iter(std::iter::once("synack").chain(extra.iter().copied()))
}

fn parse_err(extra: &[&str]) -> String {
    parse(extra).unwrap_err().to_string()
}

#[test]
fn defaults_match_the_documented_command_line() {
    let a = parse(&[]).unwrap();
    assert_eq!(a.iface, "synack0");
    assert_eq!(
        a.addrs,
        [
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            IpAddr::V6("2001:2::2".parse::<Ipv6Addr>().unwrap())
        ]
    );
    let hosts: Vec<String> = a.host_addrs.iter().map(ToString::to_string).collect();
    assert_eq!(hosts, ["198.18.0.1/24", "2001:2::1/64"]);
    assert!(!a.no_configure);
    assert_eq!(a.mtu, 1500);
    let listen: Vec<String> = a.listen.iter().map(ToString::to_string).collect();
    assert_eq!(listen, ["7=echo", "9=discard", "19=chargen", "80=http"]);
    assert_eq!(a.time_wait, Duration::from_secs(60));
    assert_eq!(a.log_level(), tracing::Level::INFO);
    assert!(a.warnings().is_empty());
}

#[test]
fn repeatable_flags_replace_the_defaults() {
    let a = parse(&[
        "-i",
        "tun9",
        "--addr",
        "198.18.1.2",
        "--addr",
        "198.18.1.3",
        "--host-addr",
        "198.18.1.1/24",
        "-l",
        "7=echo",
        "--listen",
        "8080=http",
        "--mtu",
        "9000",
        "--time-wait",
        "500ms",
        "--no-configure",
    ])
    .unwrap();
    assert_eq!(a.iface, "tun9");
    assert_eq!(a.addrs.len(), 2);
    assert_eq!(a.host_addrs.len(), 1);
    assert_eq!(
        a.listen,
        [
            Listen {
                port: 7,
                service: ServiceKind::Echo
            },
            Listen {
                port: 8080,
                service: ServiceKind::Http
            }
        ]
    );
    assert_eq!(a.mtu, 9000);
    assert_eq!(a.time_wait, Duration::from_millis(500));
    assert!(a.no_configure);
}

#[test]
fn verbosity_flags_set_the_level() {
    assert_eq!(parse(&["-v"]).unwrap().log_level(), tracing::Level::DEBUG);
    assert_eq!(parse(&["-vv"]).unwrap().log_level(), tracing::Level::TRACE);
    assert_eq!(parse(&["-q"]).unwrap().log_level(), tracing::Level::WARN);
    assert!(parse(&["-v", "-q"]).is_err());
}

#[test]
fn bad_listen_values_are_one_clear_sentence() {
    assert!(parse_err(&["-l", "7"]).contains("is not PORT=SERVICE"));
    assert!(parse_err(&["-l", "0=echo"]).contains("not a port number between 1 and 65535"));
    assert!(parse_err(&["-l", "70000=echo"]).contains("not a port number"));
    assert!(parse_err(&["-l", "7=telnet"]).contains("unknown service 'telnet'"));
    assert!(parse_err(&["-l", "7=echo", "-l", "7=http"]).contains("port 7 is given twice"));
}

#[test]
fn bad_time_wait_is_rejected() {
    assert!(parse_err(&["--time-wait", "soon"]).contains("not a duration"));
    assert!(parse_err(&["--time-wait", "5y"]).contains("unknown unit"));
}

#[test]
fn bad_host_addr_is_rejected() {
    assert!(parse_err(&["--host-addr", "198.18.0.1"]).contains("needs a prefix length"));
    assert!(parse_err(&["--host-addr", "198.18.0.1/33"]).contains("between 0 and 32"));
    assert!(parse_err(&["--host-addr", "2001:2::1/129"]).contains("between 0 and 128"));
    assert!(parse_err(&["--host-addr", "nope/24"]).contains("not an IPv4 or IPv6 address"));
    assert!(parse_err(&["--host-addr", "198.18.0.2/24"]).contains("both --addr and --host-addr"));
}

#[test]
fn bad_addr_and_iface_are_rejected() {
    assert!(parse_err(&["--addr", "0.0.0.0"]).contains("cannot be the endpoint's address"));
    assert!(parse_err(&["--addr", "example"]).contains("not an IPv4 or IPv6 address"));
    assert!(parse_err(&["-i", "a-very-long-interface"]).contains("1 to 15 characters"));
    assert!(parse_err(&["-i", "a/b"]).contains("not a valid interface name"));
}

#[test]
fn mtu_range_depends_on_ipv6() {
    assert!(parse_err(&["--mtu", "575"]).contains("575"));
    for bad in ["50", "70000"] {
        let err = parse_err(&["--mtu", bad]);
        assert!(
            err.contains("must be between 576 and 65535 (1280 with IPv6 addresses)"),
            "{err}"
        );
        assert!(!err.contains("..="), "no Rust range syntax: {err}");
    }
    assert!(parse_err(&["--mtu", "big"]).contains("'big' is not a whole number of bytes"));
    let low = parse_err(&["--mtu", "1000"]);
    assert!(low.contains("below 1280"), "{low}");
    let v4 = parse(&[
        "--mtu",
        "1000",
        "--addr",
        "198.18.0.2",
        "--host-addr",
        "198.18.0.1/24",
    ]);
    assert_eq!(v4.unwrap().mtu, 1000);
    assert_eq!(parse(&["--mtu", "65535"]).unwrap().mtu, 65535);
}

#[test]
fn bad_flags_exit_with_usage_code() {
    assert_eq!(parse(&["--listen", "x"]).unwrap_err().exit_code(), 2);
    assert_eq!(parse(&["--mtu", "1000"]).unwrap_err().exit_code(), 2);
}

#[test]
fn args_map_to_endpoint_config() {
    let a = parse(&[
        "-l",
        "7=echo",
        "-l",
        "8080=http",
        "--mtu",
        "1400",
        "--time-wait",
        "2s",
    ])
    .unwrap();
    let c = a.endpoint_config();
    assert_eq!(c.addrs, a.addrs);
    assert_eq!(
        c.listeners,
        [(7, ServiceKind::Echo), (8080, ServiceKind::Http)]
    );
    assert_eq!(c.mtu, 1400);
    assert_eq!(c.time_wait, Duration::from_secs(2));
}

#[test]
fn addr_outside_every_host_prefix_is_warned_about() {
    let a = parse(&["--addr", "198.19.5.5"]).unwrap();
    let w = a.warnings();
    assert_eq!(w.len(), 1);
    assert!(
        w[0].contains("198.19.5.5 is outside every --host-addr prefix"),
        "{w:?}"
    );
    assert!(
        parse(&["--addr", "198.19.5.5", "--no-configure"])
            .unwrap()
            .warnings()
            .is_empty()
    );
}

#[test]
fn host_addr_prefix_containment() {
    let h: HostAddr = "198.18.0.1/24".parse().unwrap();
    assert!(h.contains("198.18.0.200".parse().unwrap()));
    assert!(!h.contains("198.18.1.2".parse().unwrap()));
    assert!(!h.contains("2001:2::2".parse().unwrap()));
    let all: HostAddr = "198.18.0.1/0".parse().unwrap();
    assert!(all.contains("10.0.0.1".parse().unwrap()));
    let v6: HostAddr = "2001:2::1/64".parse().unwrap();
    assert!(v6.contains("2001:2::ffff".parse().unwrap()));
    assert!(!v6.contains("2001:2:0:1::1".parse().unwrap()));
}

#[test]
fn setup_errors_say_what_failed_and_what_to_do() {
    let taken = SetupError::NameTaken {
        iface: "synack0".into(),
    }
    .to_string();
    assert_eq!(
        taken,
        "interface name synack0 is already taken — pick another with --iface or remove it \
         (ip link del synack0)"
    );
    assert_eq!(
        SetupError::TunMissing.to_string(),
        "/dev/net/tun does not exist — load the tun module (modprobe tun)"
    );
    let denied = SetupError::TunOpenDenied {
        exe: "/x/synack".into(),
    }
    .to_string();
    assert!(denied.starts_with("cannot open /dev/net/tun: permission denied — run as root"));
    assert!(denied.contains("setcap cap_net_admin+ep /x/synack"));
    let eperm = std::io::Error::from_raw_os_error(libc::EPERM);
    let cfg = SetupError::configure("synack0", "set MTU 1500".into(), eperm, false).to_string();
    assert_eq!(
        cfg,
        "cannot set MTU 1500 on synack0: operation not permitted — run as root or give the \
         binary CAP_NET_ADMIN, or pass --no-configure and run the printed ip commands yourself"
    );
    let eacces = std::io::Error::from_raw_os_error(libc::EACCES);
    let v6 = SetupError::configure("synack0", "add address 2001:2::1/64".into(), eacces, true);
    assert!(v6.to_string().contains("IPv6 seems disabled"));
}

#[test]
fn observation_flags_and_their_defaults() {
    let a = parse(&[]).unwrap();
    assert_eq!(
        (a.pcap.clone(), a.ladder, a.command.clone()),
        (None, false, None)
    );
    // The default depends on who runs it (root: /run/synack/synack0.sock); the daemon and
    // every subcommand agree on it.
    let default = crate::driver::socket_dir::default_socket_path("synack0");
    assert_eq!(a.control_path(), default);
    assert!(default.ends_with("synack0.sock"));
    for sub in ["status", "stats", "trace"] {
        assert_eq!(parse(&[sub]).unwrap().control_path(), default, "{sub}");
    }
    let a = parse(&["-i", "tun7", "--pcap", "-", "--ladder"]).unwrap();
    assert_eq!(a.pcap, Some("-".into()));
    assert!(a.ladder);
    assert_eq!(
        a.control_path(),
        crate::driver::socket_dir::default_socket_path("tun7")
    );
    let a = parse(&["--control", "/tmp/x.sock", "status"]).unwrap();
    assert_eq!(a.control_path(), std::path::PathBuf::from("/tmp/x.sock"));
}

#[test]
fn subcommands_parse_with_their_flags() {
    let cmd = |extra: &[&str]| parse(extra).unwrap().command.unwrap();
    assert_eq!(
        cmd(&["status", "--json", "--watch"]),
        Command::Status {
            json: true,
            watch: true,
            info: false
        }
    );
    assert_eq!(
        cmd(&["status", "--info"]),
        Command::Status {
            json: false,
            watch: false,
            info: true
        }
    );
    assert_eq!(cmd(&["stats"]), Command::Stats { json: false });
    assert_eq!(
        cmd(&["connect", "198.18.0.1:8080", "--send", "-"]),
        Command::Connect {
            addr: "198.18.0.1:8080".parse().unwrap(),
            send: Some("-".into()),
            fastopen: false,
        }
    );
    assert_eq!(
        cmd(&["connect", "[2001:2::1]:80"]),
        Command::Connect {
            addr: "[2001:2::1]:80".parse().unwrap(),
            send: None,
            fastopen: false,
        }
    );
    assert_eq!(
        cmd(&["connect", "198.18.0.1:80", "--fastopen"]),
        Command::Connect {
            addr: "198.18.0.1:80".parse().unwrap(),
            send: None,
            fastopen: true,
        }
    );
    assert_eq!(
        cmd(&["trace", "--follow"]),
        Command::Trace {
            follow: true,
            svg: None
        }
    );
    assert_eq!(
        cmd(&["trace", "--svg", "/tmp/d", "--follow"]),
        Command::Trace {
            follow: true,
            svg: Some("/tmp/d".into())
        }
    );
    assert!(
        parse(&["connect", "198.18.0.1"]).is_err(),
        "a port is needed"
    );
}

#[test]
fn loss_recovery_defaults_to_rack_and_reaches_the_endpoint() {
    use crate::tcp::RecoveryKind;
    assert_eq!(parse(&[]).unwrap().recovery, RecoveryKind::Rack);
    let args = parse(&["--recovery", "classic"]).unwrap();
    assert_eq!(args.endpoint_config().recovery, RecoveryKind::Classic);
    assert!(parse(&["--recovery", "fack"]).is_err());
}

#[test]
fn congestion_control_defaults_to_cubic_and_reaches_the_endpoint() {
    use crate::tcp::CcKind;
    assert_eq!(parse(&[]).unwrap().cc, CcKind::Cubic);
    let args = parse(&["--cc", "newreno"]).unwrap();
    assert_eq!(args.endpoint_config().cc, CcKind::NewReno);
    assert!(parse(&["--cc", "bbr"]).is_err());
}

#[test]
fn startup_line_with_defaults_names_addresses_listeners_and_tries() {
    let config = parse(&[]).unwrap().daemon_config();
    assert_eq!(
        driver::startup_line(&config.endpoint, "synack0"),
        "synack listening on 198.18.0.2 and 2001:2::2 via synack0 \
         (7=echo 9=discard 19=chargen 80=http) — try: nc 198.18.0.2 7, \
         curl http://198.18.0.2/, ping 198.18.0.2"
    );
}

#[test]
fn startup_line_for_ipv6_only_and_http_on_another_port() {
    let a = parse(&[
        "--addr",
        "2001:2::5",
        "-l",
        "8080=http",
        "--host-addr",
        "2001:2::1/64",
    ])
    .unwrap();
    assert_eq!(
        driver::startup_line(&a.daemon_config().endpoint, "tun7"),
        "synack listening on 2001:2::5 via tun7 (8080=http) — try: \
         curl http://[2001:2::5]:8080/, ping 2001:2::5"
    );
}

#[test]
fn startup_line_of_a_transparent_relay_suggests_no_port_zero() {
    let a = parse(&[
        "--addr",
        "any",
        "-l",
        "*=direct",
        "--upstream-interface",
        "eth0",
    ])
    .unwrap();
    assert_eq!(
        driver::startup_line(&a.daemon_config().endpoint, "synack0"),
        "synack listening on 198.18.0.2, 2001:2::2 and every address routed to it via \
         synack0 (*=direct) — try: ping 198.18.0.2"
    );
}

#[test]
fn man_and_completions_parse() {
    use super::generate::Shell;
    let cmd = |extra: &[&str]| parse(extra).unwrap().command.unwrap();
    assert_eq!(cmd(&["man"]), Command::Man);
    for (name, shell) in [
        ("bash", Shell::Bash),
        ("zsh", Shell::Zsh),
        ("fish", Shell::Fish),
    ] {
        assert_eq!(cmd(&["completions", name]), Command::Completions { shell });
    }
    assert!(parse_err(&["completions", "tcsh"]).contains("tcsh"));
}

#[test]
fn control_and_iface_go_before_or_after_the_subcommand() {
    for sub in [
        &["status"][..],
        &["stats", "--json"],
        &["trace"],
        &["connect", "198.18.0.1:7"],
    ] {
        let before: Vec<&str> = ["--control", "/tmp/x.sock", "-i", "tun7"]
            .into_iter()
            .chain(sub.iter().copied())
            .collect();
        let after: Vec<&str> = sub
            .iter()
            .copied()
            .chain(["--control", "/tmp/x.sock", "-i", "tun7"])
            .collect();
        for argv in [before, after] {
            let a = parse(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            assert_eq!(a.control_path(), std::path::PathBuf::from("/tmp/x.sock"));
            assert_eq!(a.iface, "tun7", "{argv:?}");
            assert!(a.command.is_some());
        }
    }
    // Only -i after the subcommand: the default socket follows the interface.
    let a = parse(&["stats", "-i", "tun9"]).unwrap();
    assert_eq!(
        a.control_path(),
        crate::driver::socket_dir::default_socket_path("tun9")
    );
    // Given before the subcommand and not after, it is not reset to its default.
    let a = parse(&["-i", "tun9", "stats"]).unwrap();
    assert_eq!(a.iface, "tun9");
}

#[test]
fn offload_stays_on_under_an_impairment_that_only_delays() {
    let offload = |extra: &[&str]| parse(extra).map(|a| a.offload()).unwrap();
    assert!(offload(&[]));
    assert!(offload(&["--impair", "delay=20ms"]));
    assert!(offload(&["--impair", "delay=20ms,jitter=5ms,seed=3"]));
    assert!(!offload(&["--impair", "delay=20ms", "--no-offload"]));
    for fault in [
        "loss=1%",
        "dup=1%",
        "reorder=1%",
        "corrupt=1%",
        "rate=100mbit",
    ] {
        assert!(
            !offload(&["--impair", &format!("delay=20ms,{fault}")]),
            "{fault}"
        );
    }
}

#[test]
fn a_transparent_relay_parses_and_keeps_its_own_addresses() {
    let a = parse(&[
        "--addr",
        "any",
        "-l",
        "*=direct",
        "-l",
        "22=socks5:198.19.9.9:1080",
        "--upstream-interface",
        "up0",
        "--upstream-mark",
        "7",
    ])
    .unwrap();
    assert!(a.any_addr());
    let c = a.endpoint_config();
    assert!(c.any_addr);
    assert_eq!(
        c.addrs,
        [
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)),
            IpAddr::V6("2001:2::2".parse::<Ipv6Addr>().unwrap())
        ],
        "with only `any`, the default addresses stay ours"
    );
    assert_eq!(c.listeners[0], (0, ServiceKind::Direct));
    let listen: Vec<String> = a.listen.iter().map(ToString::to_string).collect();
    assert_eq!(listen, ["*=direct", "22=socks5:198.19.9.9:1080"]);
    let d = a.daemon_config();
    assert_eq!(d.upstream.interface.as_deref(), Some("up0"));
    assert_eq!(d.upstream.mark, Some(7));
    // `any` beside an address: that address is ours.
    let b = parse(&["--addr", "any", "--addr", "198.18.0.9", "-l", "80=http"]).unwrap();
    assert_eq!(
        b.endpoint_config().addrs,
        [IpAddr::V4(Ipv4Addr::new(198, 18, 0, 9))]
    );
    assert!(parse_err(&["--addr", "0.0.0.0"]).contains("cannot be the endpoint's address"));
}

#[test]
fn a_relay_that_would_loop_is_refused_naming_the_flag() {
    let err = parse_err(&["--addr", "any", "-l", "*=direct"]);
    assert!(err.contains("--upstream-interface"), "{err}");
    assert!(err.contains("loop back into synack"), "{err}");
    assert!(parse(&["-l", "*=direct", "--upstream-mark", "1"]).is_ok());
    let err = parse_err(&["-l", "*=direct", "--upstream-interface", "synack0"]);
    assert!(err.contains("synack's own interface"), "{err}");
    // A SOCKS5 proxy on a prefix routed into synack0 loops; one elsewhere does not.
    let err = parse_err(&["-l", "*=socks5:198.18.0.77:1080"]);
    assert!(err.contains("--upstream-interface"), "{err}");
    assert!(parse(&["-l", "*=socks5:198.19.7.7:1080"]).is_ok());
    let err = parse_err(&["-l", "0=echo"]);
    assert!(err.contains("or * for every port"), "{err}");
}
