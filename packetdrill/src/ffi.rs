//! packetdrill's shared-object interface: the callback table, C types in and out, errno, and
//! the blocking calls.
//!
//! `struct packetdrill_interface` is declared here from its documented layout (packetdrill.h
//! at commit 2c4001c: the fields in this order, all C function pointers after `userdata`);
//! packetdrill's own header is not copied. The two variadic entries, fcntl and ioctl, are
//! defined in C (src/variadic.c), which calls `synack_pd_fcntl_arg` / `synack_pd_ioctl_arg`.
//!
//! packetdrill runs a blocking system call on a second thread and decides that it blocked by
//! reading the thread's state in /proc (`S`). A call here that would block waits on a
//! condition variable (a futex: state `S`) and is woken whenever anything changes: a packet
//! in, virtual time moving on, another socket call.
#![allow(clippy::missing_safety_doc)]

use std::ffi::{CStr, c_char, c_int, c_long, c_longlong, c_uint, c_ulong, c_void};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use libc::{iovec, msghdr, nfds_t, pollfd, size_t, sockaddr, socklen_t, ssize_t, timeval};

use crate::api::{SockOpt, SockOptName};
use crate::sockets::{Stack, SysResult};

type Ud = *mut c_void;

/// packetdrill's `struct packetdrill_interface`, field for field.
#[repr(C)]
pub struct PacketdrillInterface {
    pub userdata: Ud,
    pub free: Option<unsafe extern "C" fn(Ud)>,
    pub socket: Option<unsafe extern "C" fn(Ud, c_int, c_int, c_int) -> c_int>,
    pub bind: Option<unsafe extern "C" fn(Ud, c_int, *const sockaddr, socklen_t) -> c_int>,
    pub listen: Option<unsafe extern "C" fn(Ud, c_int, c_int) -> c_int>,
    pub accept: Option<unsafe extern "C" fn(Ud, c_int, *mut sockaddr, *mut socklen_t) -> c_int>,
    pub connect: Option<unsafe extern "C" fn(Ud, c_int, *const sockaddr, socklen_t) -> c_int>,
    pub read: Option<unsafe extern "C" fn(Ud, c_int, *mut c_void, size_t) -> ssize_t>,
    pub readv: Option<unsafe extern "C" fn(Ud, c_int, *const iovec, c_int) -> ssize_t>,
    pub recv: Option<unsafe extern "C" fn(Ud, c_int, *mut c_void, size_t, c_int) -> ssize_t>,
    pub recvfrom: Option<
        unsafe extern "C" fn(
            Ud,
            c_int,
            *mut c_void,
            size_t,
            c_int,
            *mut sockaddr,
            *mut socklen_t,
        ) -> ssize_t,
    >,
    pub recvmsg: Option<unsafe extern "C" fn(Ud, c_int, *mut msghdr, c_int) -> ssize_t>,
    pub write: Option<unsafe extern "C" fn(Ud, c_int, *const c_void, size_t) -> ssize_t>,
    pub writev: Option<unsafe extern "C" fn(Ud, c_int, *const iovec, c_int) -> ssize_t>,
    pub send: Option<unsafe extern "C" fn(Ud, c_int, *const c_void, size_t, c_int) -> ssize_t>,
    pub sendto: Option<
        unsafe extern "C" fn(
            Ud,
            c_int,
            *const c_void,
            size_t,
            c_int,
            *const sockaddr,
            socklen_t,
        ) -> ssize_t,
    >,
    pub sendmsg: Option<unsafe extern "C" fn(Ud, c_int, *const msghdr, c_int) -> ssize_t>,
    pub fcntl: Option<unsafe extern "C" fn(Ud, c_int, c_int, ...) -> c_int>,
    pub ioctl: Option<unsafe extern "C" fn(Ud, c_int, c_ulong, ...) -> c_int>,
    pub close: Option<unsafe extern "C" fn(Ud, c_int) -> c_int>,
    pub shutdown: Option<unsafe extern "C" fn(Ud, c_int, c_int) -> c_int>,
    pub getsockopt:
        Option<unsafe extern "C" fn(Ud, c_int, c_int, c_int, *mut c_void, *mut socklen_t) -> c_int>,
    pub setsockopt:
        Option<unsafe extern "C" fn(Ud, c_int, c_int, c_int, *const c_void, socklen_t) -> c_int>,
    pub poll: Option<unsafe extern "C" fn(Ud, *mut pollfd, nfds_t, c_int) -> c_int>,
    pub netdev_send: Option<unsafe extern "C" fn(Ud, *const c_void, size_t) -> c_int>,
    pub netdev_receive:
        Option<unsafe extern "C" fn(Ud, *mut c_void, *mut size_t, *mut c_longlong) -> c_int>,
    pub usleep: Option<unsafe extern "C" fn(Ud, libc::useconds_t) -> c_int>,
    pub gettimeofday: Option<unsafe extern "C" fn(Ud, *mut timeval, *mut c_void) -> c_int>,
    pub epoll_create: Option<unsafe extern "C" fn(Ud, c_int) -> c_int>,
    pub epoll_ctl:
        Option<unsafe extern "C" fn(Ud, c_int, c_int, c_int, *mut libc::epoll_event) -> c_int>,
    pub epoll_wait:
        Option<unsafe extern "C" fn(Ud, c_int, *mut libc::epoll_event, c_int, c_int) -> c_int>,
    pub pipe: Option<unsafe extern "C" fn(Ud, *mut c_int) -> c_int>,
    pub splice: Option<
        unsafe extern "C" fn(
            Ud,
            c_int,
            *mut libc::loff_t,
            c_int,
            *mut libc::loff_t,
            size_t,
            c_uint,
        ) -> c_int,
    >,
}

unsafe extern "C" {
    fn synack_pd_fcntl(ud: Ud, fd: c_int, cmd: c_int, ...) -> c_int;
    fn synack_pd_ioctl(ud: Ud, fd: c_int, request: c_ulong, ...) -> c_int;
}

/// The library's one instance: the stack, and the condition blocked calls wait on.
pub struct Shared {
    stack: Mutex<Stack>,
    changed: Condvar,
}

impl Shared {
    pub fn new(stack: Stack) -> Self {
        Shared {
            stack: Mutex::new(stack),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Stack> {
        self.stack
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A socket call: run `f` on the stack, send what it made due (one `Endpoint::poll`),
    /// and wake every waiting call.
    fn with<R>(&self, f: impl FnOnce(&mut Stack) -> R) -> R {
        self.clocked(|stack| {
            stack.apply_sysctls();
            let r = f(stack);
            stack.settle();
            r
        })
    }

    /// Packets and time (`netdev_*`, `usleep`, `gettimeofday`): `f` polls the endpoint
    /// itself, as each needs; then every waiting call is woken.
    fn clocked<R>(&self, f: impl FnOnce(&mut Stack) -> R) -> R {
        let mut stack = self.lock();
        let r = f(&mut stack);
        drop(stack);
        self.changed.notify_all();
        r
    }

    /// Run `f` until it no longer fails with `EAGAIN` on a blocking descriptor (`fd`; not
    /// with MSG_DONTWAIT), waiting for a change between tries.
    fn blocking<T>(
        &self,
        fd: c_int,
        dontwait: bool,
        mut f: impl FnMut(&mut Stack) -> SysResult<T>,
    ) -> SysResult<T> {
        let mut stack = self.lock();
        loop {
            let r = f(&mut stack);
            stack.settle();
            self.changed.notify_all();
            match r {
                Err(e) if e == libc::EAGAIN && !dontwait && stack.blocks(fd) => {
                    stack = self.changed.wait(stack).unwrap_or_else(|p| p.into_inner());
                }
                r => return r,
            }
        }
    }
}

/// The table packetdrill gets, with every entry filled in.
pub fn interface(userdata: *mut Shared) -> PacketdrillInterface {
    PacketdrillInterface {
        userdata: userdata.cast(),
        free: Some(free),
        socket: Some(socket),
        bind: Some(bind),
        listen: Some(listen),
        accept: Some(accept),
        connect: Some(connect),
        read: Some(read),
        readv: Some(readv),
        recv: Some(recv),
        recvfrom: Some(recvfrom),
        recvmsg: Some(recvmsg),
        write: Some(write),
        writev: Some(writev),
        send: Some(send),
        sendto: Some(sendto),
        sendmsg: Some(sendmsg),
        fcntl: Some(synack_pd_fcntl),
        ioctl: Some(synack_pd_ioctl),
        close: Some(close),
        shutdown: Some(shutdown),
        getsockopt: Some(getsockopt),
        setsockopt: Some(setsockopt),
        poll: Some(poll),
        netdev_send: Some(netdev_send),
        netdev_receive: Some(netdev_receive),
        usleep: Some(usleep),
        gettimeofday: Some(gettimeofday),
        epoll_create: Some(epoll_create),
        epoll_ctl: Some(epoll_ctl),
        epoll_wait: Some(epoll_wait),
        pipe: Some(pipe),
        splice: Some(splice),
    }
}

unsafe fn shared<'a>(ud: Ud) -> &'a Shared {
    // SAFETY: `ud` is the pointer `packetdrill_interface_init` leaked, live until `free`.
    unsafe { &*ud.cast::<Shared>() }
}

fn set_errno(e: c_int) {
    // SAFETY: the calling thread's errno, which packetdrill reads after a -1 return.
    unsafe { *libc::__errno_location() = e }
}

/// A result as C returns it: the value, or -1 with errno set.
fn ret<T: TryInto<R>, R: From<i8>>(r: SysResult<T>) -> R {
    match r {
        Ok(v) => v.try_into().unwrap_or_else(|_| R::from(-1)),
        Err(e) => {
            set_errno(e);
            R::from(-1)
        }
    }
}

/// A `struct sockaddr` (AF_INET or AF_INET6) as an address.
unsafe fn read_addr(addr: *const sockaddr, len: socklen_t) -> SysResult<SocketAddr> {
    if addr.is_null() {
        return Err(libc::EFAULT);
    }
    let len = len as usize;
    // SAFETY: packetdrill passes a sockaddr of `len` bytes; the family says which.
    unsafe {
        match c_int::from((*addr).sa_family) {
            libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
                let sin = &*addr.cast::<libc::sockaddr_in>();
                Ok(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
                let sin6 = &*addr.cast::<libc::sockaddr_in6>();
                Ok(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            libc::AF_INET | libc::AF_INET6 => Err(libc::EINVAL),
            _ => Err(libc::EAFNOSUPPORT),
        }
    }
}

/// Write `addr` into a caller's `struct sockaddr` of `*len` bytes (truncated as the kernel
/// does), setting `*len` to the full size. Null pointers are skipped.
unsafe fn write_addr(addr: SocketAddr, out: *mut sockaddr, len: *mut socklen_t) {
    if out.is_null() || len.is_null() {
        return;
    }
    // SAFETY: the zeroed sockaddr_in/_in6 are plain C structs; `out` holds `*len` bytes.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let size = match addr {
            SocketAddr::V4(v4) => {
                let sin = &mut *(&raw mut storage).cast::<libc::sockaddr_in>();
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = v4.port().to_be();
                sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
                size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(v6) => {
                let sin6 = &mut *(&raw mut storage).cast::<libc::sockaddr_in6>();
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = v6.port().to_be();
                sin6.sin6_addr.s6_addr = v6.ip().octets();
                sin6.sin6_flowinfo = v6.flowinfo();
                sin6.sin6_scope_id = v6.scope_id();
                size_of::<libc::sockaddr_in6>()
            }
        };
        let n = size.min(*len as usize);
        std::ptr::copy_nonoverlapping((&raw const storage).cast::<u8>(), out.cast::<u8>(), n);
        *len = size as socklen_t;
    }
}

/// The bytes of an iovec array, joined (for writev/sendmsg).
unsafe fn gather(iov: *const iovec, count: usize) -> Vec<u8> {
    let mut data = Vec::new();
    if iov.is_null() {
        return data;
    }
    // SAFETY: packetdrill passes `count` iovecs, each `iov_len` readable bytes.
    unsafe {
        for v in std::slice::from_raw_parts(iov, count) {
            if !v.iov_base.is_null() {
                data.extend_from_slice(std::slice::from_raw_parts(
                    v.iov_base.cast::<u8>(),
                    v.iov_len,
                ));
            }
        }
    }
    data
}

/// Spread `data` over an iovec array (for readv/recvmsg).
unsafe fn scatter(iov: *const iovec, count: usize, mut data: &[u8]) {
    if iov.is_null() {
        return;
    }
    // SAFETY: packetdrill passes `count` iovecs, each `iov_len` writable bytes.
    unsafe {
        for v in std::slice::from_raw_parts(iov, count) {
            let n = v.iov_len.min(data.len());
            if n > 0 {
                std::ptr::copy_nonoverlapping(data.as_ptr(), v.iov_base.cast::<u8>(), n);
            }
            data = &data[n..];
        }
    }
}

unsafe fn iov_len(iov: *const iovec, count: usize) -> usize {
    if iov.is_null() {
        return 0;
    }
    // SAFETY: as in `gather`.
    unsafe {
        std::slice::from_raw_parts(iov, count)
            .iter()
            .map(|v| v.iov_len)
            .sum()
    }
}

// ---- the callbacks ----------------------------------------------------------------------

unsafe extern "C" fn free(ud: Ud) {
    crate::forget_instance(ud.cast());
    // SAFETY: the box `packetdrill_interface_init` leaked; packetdrill calls free once.
    drop(unsafe { Box::from_raw(ud.cast::<Shared>()) });
}

unsafe extern "C" fn socket(ud: Ud, domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    let s = unsafe { shared(ud) };
    ret(s.with(|st| st.socket(domain, ty, protocol)))
}

unsafe extern "C" fn bind(ud: Ud, fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let s = unsafe { shared(ud) };
    let r = unsafe { read_addr(addr, len) }.and_then(|a| s.with(|st| st.bind(fd, a)));
    ret(r.map(|()| 0))
}

unsafe extern "C" fn listen(ud: Ud, fd: c_int, backlog: c_int) -> c_int {
    let s = unsafe { shared(ud) };
    ret(s.with(|st| st.listen(fd, backlog)).map(|()| 0))
}

unsafe extern "C" fn accept(ud: Ud, fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    let s = unsafe { shared(ud) };
    let r = s.blocking(fd, false, |st| st.accept(fd));
    ret(r.map(|(child, peer)| {
        unsafe { write_addr(peer, addr, len) };
        child
    }))
}

unsafe extern "C" fn connect(ud: Ud, fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let s = unsafe { shared(ud) };
    let remote = match unsafe { read_addr(addr, len) } {
        Ok(a) => a,
        Err(e) => return ret::<i32, c_int>(Err(e)),
    };
    // A blocking connect waits for the handshake's end: the first call starts it
    // (EINPROGRESS), later ones say EALREADY until it is established (0) or failed.
    let r = s.blocking(fd, false, |st| match st.connect(fd, remote) {
        Err(e) if (e == libc::EINPROGRESS || e == libc::EALREADY) && st.blocks(fd) => {
            Err(libc::EAGAIN)
        }
        r => r,
    });
    ret(r.map(|()| 0))
}

/// read/recv/recvfrom/readv/recvmsg: into `buf`, blocking unless the descriptor or
/// MSG_DONTWAIT says not to.
fn receive(s: &Shared, fd: c_int, buf: &mut [u8], flags: c_int) -> SysResult<usize> {
    let dontwait = flags & libc::MSG_DONTWAIT != 0;
    s.blocking(fd, dontwait, |st| st.recv(fd, buf, flags))
}

unsafe fn buf_mut<'a>(buf: *mut c_void, len: size_t) -> &'a mut [u8] {
    if buf.is_null() || len == 0 {
        return &mut [];
    }
    // SAFETY: packetdrill's buffer of `len` bytes.
    unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), len) }
}

unsafe fn buf_ref<'a>(buf: *const c_void, len: size_t) -> &'a [u8] {
    if buf.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: packetdrill's buffer of `len` bytes.
    unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) }
}

unsafe extern "C" fn read(ud: Ud, fd: c_int, buf: *mut c_void, len: size_t) -> ssize_t {
    let s = unsafe { shared(ud) };
    ret(receive(s, fd, unsafe { buf_mut(buf, len) }, 0))
}

unsafe extern "C" fn recv(
    ud: Ud,
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
) -> ssize_t {
    let s = unsafe { shared(ud) };
    ret(receive(s, fd, unsafe { buf_mut(buf, len) }, flags))
}

unsafe extern "C" fn recvfrom(
    ud: Ud,
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
) -> ssize_t {
    let s = unsafe { shared(ud) };
    let r = receive(s, fd, unsafe { buf_mut(buf, len) }, flags);
    if r.is_ok()
        && !addr.is_null()
        && let Ok(peer) = s.with(|st| st.peer_addr(fd))
    {
        unsafe { write_addr(peer, addr, addrlen) };
    }
    ret(r)
}

unsafe extern "C" fn readv(ud: Ud, fd: c_int, iov: *const iovec, count: c_int) -> ssize_t {
    let s = unsafe { shared(ud) };
    let count = usize::try_from(count).unwrap_or(0);
    let mut data = vec![0; unsafe { iov_len(iov, count) }];
    let r = receive(s, fd, &mut data, 0);
    if let Ok(n) = r {
        unsafe { scatter(iov, count, &data[..n]) };
    }
    ret(r)
}

unsafe extern "C" fn recvmsg(ud: Ud, fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    let s = unsafe { shared(ud) };
    if msg.is_null() {
        return ret::<usize, ssize_t>(Err(libc::EFAULT));
    }
    // SAFETY: packetdrill's msghdr.
    let msg = unsafe { &mut *msg };
    let count = msg.msg_iovlen;
    let mut data = vec![0; unsafe { iov_len(msg.msg_iov, count) }];
    let r = receive(s, fd, &mut data, flags);
    if let Ok(n) = r {
        unsafe { scatter(msg.msg_iov, count, &data[..n]) };
        msg.msg_controllen = 0;
        msg.msg_flags = 0;
        if !msg.msg_name.is_null()
            && let Ok(peer) = s.with(|st| st.peer_addr(fd))
        {
            unsafe { write_addr(peer, msg.msg_name.cast(), &raw mut msg.msg_namelen) };
        }
    }
    ret(r)
}

/// write/send/sendto/writev/sendmsg. A blocking descriptor takes everything before it
/// returns (as Linux's blocking send does); a nonblocking one what fits, or EAGAIN.
fn transmit(s: &Shared, fd: c_int, data: &[u8], flags: c_int) -> SysResult<usize> {
    let dontwait = flags & libc::MSG_DONTWAIT != 0;
    let mut done = 0;
    s.blocking(fd, dontwait, |st| {
        let waits = st.blocks(fd) && !dontwait;
        loop {
            match st.send(fd, &data[done..]) {
                Ok(n) => {
                    done += n;
                    if done == data.len() || !waits || n == 0 {
                        return Ok(done);
                    }
                }
                // Nonblocking: what fitted. Blocking: EAGAIN makes `blocking` wait for room.
                Err(e) if e == libc::EAGAIN && done > 0 && !waits => return Ok(done),
                Err(e) => return Err(e),
            }
        }
    })
}

unsafe extern "C" fn write(ud: Ud, fd: c_int, buf: *const c_void, len: size_t) -> ssize_t {
    let s = unsafe { shared(ud) };
    ret(transmit(s, fd, unsafe { buf_ref(buf, len) }, 0))
}

unsafe extern "C" fn send(
    ud: Ud,
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
) -> ssize_t {
    let s = unsafe { shared(ud) };
    ret(transmit(s, fd, unsafe { buf_ref(buf, len) }, flags))
}

unsafe extern "C" fn sendto(
    ud: Ud,
    fd: c_int,
    buf: *const c_void,
    len: size_t,
    flags: c_int,
    _addr: *const sockaddr,
    _addrlen: socklen_t,
) -> ssize_t {
    // A connected TCP socket ignores the address, as Linux's does.
    let s = unsafe { shared(ud) };
    ret(transmit(s, fd, unsafe { buf_ref(buf, len) }, flags))
}

unsafe extern "C" fn writev(ud: Ud, fd: c_int, iov: *const iovec, count: c_int) -> ssize_t {
    let s = unsafe { shared(ud) };
    let data = unsafe { gather(iov, usize::try_from(count).unwrap_or(0)) };
    ret(transmit(s, fd, &data, 0))
}

unsafe extern "C" fn sendmsg(ud: Ud, fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    let s = unsafe { shared(ud) };
    if msg.is_null() {
        return ret::<usize, ssize_t>(Err(libc::EFAULT));
    }
    // SAFETY: packetdrill's msghdr.
    let msg = unsafe { &*msg };
    let data = unsafe { gather(msg.msg_iov, msg.msg_iovlen) };
    ret(transmit(s, fd, &data, flags))
}

/// fcntl, its argument taken off C's variadic list by src/variadic.c.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn synack_pd_fcntl_arg(ud: Ud, fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    let s = unsafe { shared(ud) };
    ret(s.with(|st| match cmd {
        libc::F_GETFL => {
            let nonblocking = st.nonblocking(fd)?;
            Ok(libc::O_RDWR | if nonblocking { libc::O_NONBLOCK } else { 0 })
        }
        libc::F_SETFL => st
            .set_nonblocking(fd, arg & c_long::from(libc::O_NONBLOCK) != 0)
            .map(|()| 0),
        libc::F_GETFD | libc::F_SETFD => st.nonblocking(fd).map(|_| 0),
        _ => Err(libc::EINVAL),
    }))
}

/// ioctl, its pointer argument taken off C's variadic list by src/variadic.c.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn synack_pd_ioctl_arg(
    ud: Ud,
    fd: c_int,
    request: c_ulong,
    arg: *mut c_void,
) -> c_int {
    let s = unsafe { shared(ud) };
    let r = s.with(|st| match request {
        // FIONREAD is SIOCINQ.
        libc::FIONREAD => st.queued(fd).map(|(received, _)| received),
        libc::TIOCOUTQ => st.queued(fd).map(|(_, sent)| sent),
        libc::FIONBIO => {
            // SAFETY: FIONBIO's argument is an int*.
            let on = !arg.is_null() && unsafe { *arg.cast::<c_int>() } != 0;
            st.set_nonblocking(fd, on).map(|()| 0)
        }
        _ => st.nonblocking(fd).and(Err(libc::ENOTTY)),
    });
    match r {
        Ok(n) => {
            if (request == libc::FIONREAD || request == libc::TIOCOUTQ) && !arg.is_null() {
                // SAFETY: SIOCINQ's and SIOCOUTQ's argument is an int*.
                unsafe { *arg.cast::<c_int>() = c_int::try_from(n).unwrap_or(c_int::MAX) };
            }
            0
        }
        Err(e) => ret::<i32, c_int>(Err(e)),
    }
}

unsafe extern "C" fn close(ud: Ud, fd: c_int) -> c_int {
    let s = unsafe { shared(ud) };
    c_result(close_fd(s, fd))
}

pub fn close_fd(s: &Shared, fd: c_int) -> SysResult<()> {
    s.with(|st| st.close(fd))
}

/// 0, or -1 with errno set.
pub fn c_result(r: SysResult<()>) -> c_int {
    ret(r.map(|()| 0))
}

unsafe extern "C" fn shutdown(ud: Ud, fd: c_int, how: c_int) -> c_int {
    let s = unsafe { shared(ud) };
    ret(s.with(|st| st.shutdown(fd, how)).map(|()| 0))
}

/// Linux's `TCP_CC_INFO` and `SO_MEMINFO` (include/uapi/linux/tcp.h, asm-generic/socket.h).
const TCP_CC_INFO: c_int = 26;
const SO_MEMINFO: c_int = 55;

/// The socket options the corpus uses, by level and name.
fn option_name(level: c_int, name: c_int) -> Option<SockOptName> {
    Some(match (level, name) {
        (libc::SOL_SOCKET, libc::SO_REUSEADDR) => SockOptName::ReuseAddr,
        (libc::SOL_SOCKET, libc::SO_RCVBUF) => SockOptName::RcvBuf,
        (libc::SOL_SOCKET, libc::SO_SNDBUF) => SockOptName::SndBuf,
        (libc::SOL_SOCKET, libc::SO_LINGER) => SockOptName::Linger,
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => SockOptName::KeepAlive,
        (libc::IPPROTO_TCP, libc::TCP_NODELAY) => SockOptName::NoDelay,
        (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => SockOptName::MaxSeg,
        (libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT) => SockOptName::UserTimeout,
        _ => return None,
    })
}

unsafe fn write_opt<T: Copy>(value: T, out: *mut c_void, len: *mut socklen_t) -> SysResult<()> {
    if out.is_null() || len.is_null() {
        return Err(libc::EFAULT);
    }
    // SAFETY: the caller's buffer of `*len` bytes; at most that much is written.
    unsafe {
        let n = size_of::<T>().min(*len as usize);
        std::ptr::copy_nonoverlapping((&raw const value).cast::<u8>(), out.cast::<u8>(), n);
        *len = n as socklen_t;
    }
    Ok(())
}

/// getsockopt on one of our descriptors (also reached from the preloaded `getsockopt`).
pub unsafe fn get_option(
    s: &Shared,
    fd: c_int,
    level: c_int,
    name: c_int,
    out: *mut c_void,
    len: *mut socklen_t,
) -> SysResult<()> {
    let int = |v: usize| c_int::try_from(v).unwrap_or(c_int::MAX);
    match (level, name) {
        (libc::SOL_SOCKET, libc::SO_ERROR) => {
            let e = s.with(|st| st.take_error(fd))?;
            unsafe { write_opt::<c_int>(e, out, len) }
        }
        (libc::SOL_SOCKET, libc::SO_TYPE) => {
            s.with(|st| st.nonblocking(fd))?;
            unsafe { write_opt::<c_int>(libc::SOCK_STREAM, out, len) }
        }
        // packetdrill's `%{ }%` blocks also read these; synack has nothing for them: no
        // congestion-control details (an empty answer, as Linux gives for reno), zeroed
        // socket memory counters.
        (libc::IPPROTO_TCP, TCP_CC_INFO) => {
            s.with(|st| st.nonblocking(fd))?;
            if !len.is_null() {
                unsafe { *len = 0 };
            }
            Ok(())
        }
        (libc::SOL_SOCKET, SO_MEMINFO) => {
            s.with(|st| st.nonblocking(fd))?;
            unsafe { write_opt([0u32; 9], out, len) }
        }
        (libc::IPPROTO_TCP, libc::TCP_INFO) => {
            let info = s.with(|st| st.tcp_info(fd))?;
            unsafe { write_opt(crate::tcp_info::linux(&info), out, len) }
        }
        _ => {
            let opt_name = option_name(level, name).ok_or(libc::ENOPROTOOPT)?;
            let value = s.with(|st| st.get_option(fd, opt_name))?;
            unsafe {
                match value {
                    SockOpt::ReuseAddr(on) | SockOpt::NoDelay(on) | SockOpt::KeepAlive(on) => {
                        write_opt::<c_int>(c_int::from(on), out, len)
                    }
                    SockOpt::RcvBuf(n) | SockOpt::SndBuf(n) => write_opt::<c_int>(int(n), out, len),
                    SockOpt::MaxSeg(mss) => write_opt::<c_int>(c_int::from(mss), out, len),
                    SockOpt::UserTimeout(ms) => write_opt::<c_uint>(ms, out, len),
                    SockOpt::Linger(secs) => write_opt(
                        libc::linger {
                            l_onoff: c_int::from(secs.is_some()),
                            l_linger: secs.map_or(0, |s| c_int::try_from(s).unwrap_or(c_int::MAX)),
                        },
                        out,
                        len,
                    ),
                }
            }
        }
    }
}

unsafe extern "C" fn getsockopt(
    ud: Ud,
    fd: c_int,
    level: c_int,
    name: c_int,
    out: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    let s = unsafe { shared(ud) };
    ret(unsafe { get_option(s, fd, level, name, out, len) }.map(|()| 0))
}

unsafe extern "C" fn setsockopt(
    ud: Ud,
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    let s = unsafe { shared(ud) };
    let read_int = || -> SysResult<c_int> {
        if value.is_null() || (len as usize) < size_of::<c_int>() {
            return Err(libc::EINVAL);
        }
        // SAFETY: at least an int's bytes, as checked.
        Ok(unsafe { value.cast::<c_int>().read_unaligned() })
    };
    let opt = (|| -> SysResult<SockOpt> {
        let name = option_name(level, name).ok_or(libc::ENOPROTOOPT)?;
        Ok(match name {
            SockOptName::ReuseAddr => SockOpt::ReuseAddr(read_int()? != 0),
            SockOptName::NoDelay => SockOpt::NoDelay(read_int()? != 0),
            SockOptName::KeepAlive => SockOpt::KeepAlive(read_int()? != 0),
            SockOptName::RcvBuf => SockOpt::RcvBuf(usize::try_from(read_int()?).unwrap_or(0)),
            SockOptName::SndBuf => SockOpt::SndBuf(usize::try_from(read_int()?).unwrap_or(0)),
            SockOptName::MaxSeg => {
                SockOpt::MaxSeg(u16::try_from(read_int()?).map_err(|_| libc::EINVAL)?)
            }
            SockOptName::UserTimeout => {
                SockOpt::UserTimeout(u32::try_from(read_int()?).map_err(|_| libc::EINVAL)?)
            }
            SockOptName::Linger => {
                if value.is_null() || (len as usize) < size_of::<libc::linger>() {
                    return Err(libc::EINVAL);
                }
                // SAFETY: a struct linger's bytes, as checked.
                let l = unsafe { value.cast::<libc::linger>().read_unaligned() };
                SockOpt::Linger((l.l_onoff != 0).then(|| u32::try_from(l.l_linger).unwrap_or(0)))
            }
        })
    })();
    ret(opt
        .and_then(|opt| s.with(|st| st.set_option(fd, opt)))
        .map(|()| 0))
}

unsafe extern "C" fn poll(ud: Ud, fds: *mut pollfd, nfds: nfds_t, timeout_ms: c_int) -> c_int {
    let s = unsafe { shared(ud) };
    if fds.is_null() && nfds > 0 {
        return ret::<i32, c_int>(Err(libc::EFAULT));
    }
    // SAFETY: packetdrill's array of `nfds` pollfds.
    let fds = if nfds == 0 {
        &mut []
    } else {
        unsafe { std::slice::from_raw_parts_mut(fds, nfds as usize) }
    };
    let mut stack = s.lock();
    let deadline = stack.deadline_after(timeout_ms);
    loop {
        let mut ready = 0;
        for p in fds.iter_mut() {
            p.revents = if p.fd < 0 {
                0
            } else {
                stack.revents(p.fd, p.events)
            };
            if p.revents != 0 {
                ready += 1;
            }
        }
        if ready > 0 || deadline.is_some_and(|d| stack.now() >= d) {
            return ready;
        }
        stack = s.changed.wait(stack).unwrap_or_else(|p| p.into_inner());
    }
}

unsafe extern "C" fn netdev_send(ud: Ud, buf: *const c_void, len: size_t) -> c_int {
    let s = unsafe { shared(ud) };
    let packet = unsafe { buf_ref(buf, len) };
    s.clocked(|st| {
        st.apply_sysctls();
        st.clock.receive(packet);
    });
    0
}

unsafe extern "C" fn netdev_receive(
    ud: Ud,
    buf: *mut c_void,
    count: *mut size_t,
    time_usecs: *mut c_longlong,
) -> c_int {
    let s = unsafe { shared(ud) };
    let out = unsafe { buf_mut(buf, if count.is_null() { 0 } else { *count }) };
    match s.clocked(|st| st.clock.next_packet()) {
        Ok((at, packet)) => {
            let n = packet.len().min(out.len());
            out[..n].copy_from_slice(&packet[..n]);
            unsafe {
                *count = n;
                *time_usecs = c_longlong::try_from(crate::clock::EPOCH_MICROS + at.as_micros())
                    .unwrap_or(c_longlong::MAX);
            }
            0
        }
        Err(silence) => {
            // packetdrill's so mode retries a failed receive forever; a packet it cannot
            // parse ends the script instead, after our explanation.
            crate::error(&silence.to_string());
            if let Some(first) = out.first_mut() {
                *first = 0;
                unsafe { *count = 1 };
            }
            0
        }
    }
}

unsafe extern "C" fn usleep(ud: Ud, usec: libc::useconds_t) -> c_int {
    let s = unsafe { shared(ud) };
    s.clocked(|st| st.clock.sleep(Duration::from_micros(u64::from(usec))));
    0
}

unsafe extern "C" fn gettimeofday(ud: Ud, tv: *mut timeval, _tz: *mut c_void) -> c_int {
    let s = unsafe { shared(ud) };
    let micros = s.clocked(|st| st.clock.gettimeofday());
    if !tv.is_null() {
        unsafe {
            (*tv).tv_sec = (micros / 1_000_000) as libc::time_t;
            (*tv).tv_usec = (micros % 1_000_000) as libc::suseconds_t;
        }
    }
    0
}

fn unsupported(what: &str) -> c_int {
    crate::note(&format!(
        "{what} is not supported in synack's mode (ENOSYS)"
    ));
    set_errno(libc::ENOSYS);
    -1
}

unsafe extern "C" fn epoll_create(_ud: Ud, _size: c_int) -> c_int {
    unsupported("epoll_create")
}

unsafe extern "C" fn epoll_ctl(
    _: Ud,
    _: c_int,
    _: c_int,
    _: c_int,
    _: *mut libc::epoll_event,
) -> c_int {
    unsupported("epoll_ctl")
}

unsafe extern "C" fn epoll_wait(
    _: Ud,
    _: c_int,
    _: *mut libc::epoll_event,
    _: c_int,
    _: c_int,
) -> c_int {
    unsupported("epoll_wait")
}

unsafe extern "C" fn pipe(_: Ud, _: *mut c_int) -> c_int {
    unsupported("pipe")
}

unsafe extern "C" fn splice(
    _: Ud,
    _: c_int,
    _: *mut libc::loff_t,
    _: c_int,
    _: *mut libc::loff_t,
    _: size_t,
    _: c_uint,
) -> c_int {
    unsupported("splice")
}

/// `--so_flags`: comma-separated `key=value`s (see lib.rs).
pub unsafe fn flags_str<'a>(flags: *const c_char) -> &'a str {
    if flags.is_null() {
        return "";
    }
    // SAFETY: packetdrill's NUL-terminated --so_flags string.
    unsafe { CStr::from_ptr(flags) }.to_str().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clocked;
    use etherparse::PacketBuilder;
    use std::net::IpAddr;
    use synack::endpoint::{Endpoint, EndpointConfig};

    const LOCAL: [u8; 4] = [198, 18, 0, 1];
    const REMOTE: [u8; 4] = [198, 19, 0, 1];

    fn shared() -> Shared {
        let config = EndpointConfig {
            addrs: vec![IpAddr::from(LOCAL)],
            listeners: vec![],
            ..EndpointConfig::default()
        };
        let ep = Endpoint::new(config, [7; 16], crate::clock::START);
        Shared::new(Stack::new(Clocked::new(ep), None))
    }

    /// A segment from REMOTE:40000 to LOCAL:8080.
    fn segment(syn: bool, seq: u32, ack: Option<u32>) -> Vec<u8> {
        let mut b = PacketBuilder::ipv4(REMOTE, LOCAL, 64).tcp(40000, 8080, seq, 65535);
        if syn {
            b = b.syn();
        }
        if let Some(ack) = ack {
            b = b.ack(ack);
        }
        let mut packet = Vec::new();
        b.write(&mut packet, &[]).unwrap();
        packet
    }

    fn listener(s: &Shared) -> c_int {
        let fd = s
            .with(|st| st.socket(libc::AF_INET, libc::SOCK_STREAM, 0))
            .unwrap();
        s.with(|st| st.bind(fd, "198.18.0.1:8080".parse().unwrap()))
            .unwrap();
        s.with(|st| st.listen(fd, 1)).unwrap();
        fd
    }

    /// packetdrill.h (2c4001c): `userdata` and 32 function pointers, in this order; packetdrill
    /// calls `netdev_send` as the 25th entry and `splice` as the last.
    #[test]
    fn the_callback_table_has_packetdrills_layout() {
        let word = size_of::<usize>();
        assert_eq!(size_of::<PacketdrillInterface>(), 33 * word);
        assert_eq!(std::mem::offset_of!(PacketdrillInterface, socket), 2 * word);
        assert_eq!(std::mem::offset_of!(PacketdrillInterface, fcntl), 17 * word);
        assert_eq!(std::mem::offset_of!(PacketdrillInterface, poll), 23 * word);
        assert_eq!(
            std::mem::offset_of!(PacketdrillInterface, netdev_send),
            24 * word
        );
        assert_eq!(
            std::mem::offset_of!(PacketdrillInterface, gettimeofday),
            27 * word
        );
        assert_eq!(
            std::mem::offset_of!(PacketdrillInterface, splice),
            32 * word
        );
    }

    #[test]
    fn a_blocking_accept_waits_for_the_handshake_and_a_nonblocking_one_does_not() {
        let s = shared();
        let fd = listener(&s);
        std::thread::scope(|scope| {
            let accepting = scope.spawn(|| s.blocking(fd, false, |st| st.accept(fd)));
            s.clocked(|st| st.clock.receive(&segment(true, 100, None)));
            let (_, synack) = s.clocked(|st| st.clock.next_packet()).unwrap();
            let isn = u32::from_be_bytes(synack[24..28].try_into().unwrap());
            // Without the final ACK the accept cannot have returned.
            assert!(!accepting.is_finished());
            s.clocked(|st| {
                st.clock
                    .receive(&segment(false, 101, Some(isn.wrapping_add(1))))
            });
            let (child, peer) = accepting.join().unwrap().unwrap();
            assert!(child >= crate::sockets::FIRST_FD);
            assert_eq!(peer, "198.19.0.1:40000".parse().unwrap());
        });
        s.with(|st| st.set_nonblocking(fd, true)).unwrap();
        assert_eq!(s.blocking(fd, false, |st| st.accept(fd)), Err(libc::EAGAIN));
    }

    #[test]
    fn a_waiting_poll_times_out_in_virtual_time() {
        let s = shared();
        let fd = listener(&s);
        std::thread::scope(|scope| {
            // poll with a 100 ms timeout returns 0 once virtual time has passed it.
            let polling = scope.spawn(|| {
                let mut fds = [pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                }];
                unsafe { poll((&raw const s).cast_mut().cast(), fds.as_mut_ptr(), 1, 100) }
            });
            while !polling.is_finished() {
                s.clocked(|st| st.clock.sleep(Duration::from_millis(10)));
                std::thread::yield_now();
            }
            assert_eq!(polling.join().unwrap(), 0);
            let waited = s
                .clocked(|st| st.now())
                .saturating_since(crate::clock::START);
            assert!(
                waited >= Duration::from_millis(100),
                "returned after {waited:?}"
            );
        });
    }
}
