use super::*;
use std::process::Command;

fn hosts(list: &[&str]) -> Vec<HostAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn ip_commands_configure_both_families_and_the_link() {
    let cmds = ip_commands("synack0", &hosts(&["198.18.0.1/24", "2001:2::1/64"]), 1500);
    assert_eq!(
        cmds,
        [
            "ip addr add 198.18.0.1/24 dev synack0",
            "ip -6 addr add 2001:2::1/64 dev synack0 nodad",
            "ip link set dev synack0 mtu 1500 txqueuelen 100000 up",
        ]
    );
}

/// Run `f` on a fresh thread moved into a private network namespace, so nothing it creates is
/// visible on the host. Returns None (test skipped) if we lack the privilege to do so; it never
/// falls back to the host's namespace.
fn in_private_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    std::thread::spawn(move || {
        // SAFETY: unshare affects only this thread's network namespace.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            eprintln!(
                "skipped: cannot unshare(CLONE_NEWNET): {}",
                io::Error::last_os_error()
            );
            return None;
        }
        Some(f())
    })
    .join()
    .unwrap()
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn configured_tun_has_both_addresses_usable_mtu_and_is_up() {
    let Some(show) = in_private_netns(|| {
        let tun = Tun::open("synack0", true).expect("create TUN");
        tun.configure(&hosts(&["198.18.0.1/24", "2001:2::1/64"]), 1400)
            .expect("configure");
        ip(&["addr", "show", "dev", "synack0"])
    }) else {
        return;
    };
    assert!(show.contains("inet 198.18.0.1/24"), "{show}");
    assert!(show.contains("inet6 2001:2::1/64"), "{show}");
    let v6_line = show.lines().find(|l| l.contains("2001:2::1/64")).unwrap();
    assert!(!v6_line.contains("tentative"), "{show}");
    assert!(show.contains("mtu 1400"), "{show}");
    assert!(show.contains("qlen 100000"), "{show}");
    assert!(show.contains(",UP") || show.contains("<UP"), "{show}");
}

#[test]
fn taken_name_is_reported_as_taken() {
    // With offload (our TUNSETIFF) and without (tun-tap's).
    for offload in [true, false] {
        let Some(result) = in_private_netns(move || {
            ip(&["tuntap", "add", "dev", "synack0", "mode", "tun"]);
            Tun::open("synack0", offload).map(|_| ())
        }) else {
            return;
        };
        match result {
            Err(SetupError::NameTaken { iface }) => assert_eq!(iface, "synack0"),
            other => panic!("expected NameTaken, got {other:?}"),
        }
    }
}

#[test]
fn packets_flow_through_the_tun() {
    // The kernel answers our ping to its own address: a packet sent into the TUN comes back,
    // with offloads (virtio-net headers around every packet) and without.
    for offload in [false, true] {
        let Some(reply) = in_private_netns(move || {
            let tun = Tun::open("synack0", offload).expect("create TUN");
            assert_eq!(tun.offloads(), offload, "this kernel takes TSO on a TUN");
            tun.configure(&hosts(&["198.18.0.1/24"]), 1500)
                .expect("configure");
            let request = icmp_echo_request([198, 18, 0, 2], [198, 18, 0, 1]);
            tun.send(&request).expect("send");
            let mut buf = [0u8; 2048];
            // Bounded wait: up to 2 s, polling the non-blocking fd.
            let mut pfd = libc::pollfd {
                fd: tun.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            for _ in 0..20 {
                // SAFETY: `pfd` is a valid pollfd for the duration of the call.
                unsafe { libc::poll(&mut pfd, 1, 100) };
                match tun.recv(&mut buf) {
                    Ok((n, _)) if buf[0] >> 4 == 4 && buf[9] == 1 && buf[20] == 0 => {
                        return Some(buf[..n].to_vec());
                    }
                    _ => continue,
                }
            }
            None
        }) else {
            return;
        };
        let reply = reply.expect("an ICMP echo reply within 2 s");
        assert_eq!(&reply[12..16], &[198, 18, 0, 1]);
        assert_eq!(&reply[16..20], &[198, 18, 0, 2]);
        assert_eq!(checksum(&reply[20..]), 0, "the reply's ICMP checksum");
    }
}

fn icmp_echo_request(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, b'h', b'i'];
    let sum = checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 1, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
