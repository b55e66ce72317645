//! Where the control socket lives by default, and how its directory is made and trusted.
//!
//! The daemon and every subcommand compute the same default (issue #14):
//! - root: `/run/synack/<iface>.sock`;
//! - anyone else: `$XDG_RUNTIME_DIR/synack/<iface>.sock`, the per-user runtime directory
//!   that systemd-logind (`pam_systemd`) creates mode 0700 for each login;
//! - anyone else without `XDG_RUNTIME_DIR` (a `su` shell, cron, a container):
//!   `/tmp/synack-<uid>/<iface>.sock`, in a directory mode 0700 that only that user owns.
//!
//! `/tmp` is shared by every user, so the last directory is trusted only if it is a real
//! directory (not a symlink), owned by the caller and closed to group and others: one that
//! someone else made first is refused, by the daemon (it would hand them the socket) and by
//! the subcommands (they could be talking to an impostor, and `connect --send` sends a file).
//! It is `/tmp` itself and not `$TMPDIR`, because the C library drops `TMPDIR` from the
//! environment of a binary with file capabilities (`setcap cap_net_admin+ep`), so the daemon
//! and an ordinary `synack status` would otherwise disagree.

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The directory root's daemons use (systemd's `RuntimeDirectory=synack` makes it too).
pub const ROOT_DIR: &str = "/run/synack";

/// The default control socket of the daemon on `iface`, for the user running this process.
pub fn default_socket_path(iface: &str) -> PathBuf {
    default_socket_path_for(
        iface,
        euid(),
        std::env::var_os("XDG_RUNTIME_DIR").as_deref(),
    )
}

/// The effective user id: the owner of the files this process makes.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// [`default_socket_path`] for user `euid` with `XDG_RUNTIME_DIR` as given.
pub fn default_socket_path_for(iface: &str, euid: u32, xdg_runtime_dir: Option<&OsStr>) -> PathBuf {
    if euid == 0 {
        return root_socket_path(iface);
    }
    let file = format!("{iface}.sock");
    // The XDG Base Directory spec: a relative path is invalid and must be ignored.
    match xdg_runtime_dir.map(Path::new).filter(|d| d.is_absolute()) {
        Some(dir) => dir.join("synack").join(file),
        None => per_user_dir(euid).join(file),
    }
}

/// `/run/synack/<iface>.sock`: root's default.
pub fn root_socket_path(iface: &str) -> PathBuf {
    Path::new(ROOT_DIR).join(format!("{iface}.sock"))
}

/// `/tmp/synack-<uid>`: the directory for a user without `XDG_RUNTIME_DIR`.
pub fn per_user_dir(euid: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/synack-{euid}"))
}

/// Whether `dir` is the shared-`/tmp` fallback, which has to be checked before it is trusted.
fn is_per_user_dir(dir: &Path, euid: u32) -> bool {
    dir == per_user_dir(euid)
}

/// Why a directory in a shared place cannot be trusted with our socket; `None` if it can.
pub fn untrusted_reason(meta: &std::fs::Metadata, euid: u32) -> Option<String> {
    let mode = meta.mode() & 0o7777;
    if meta.file_type().is_symlink() {
        Some("is a symbolic link".to_owned())
    } else if !meta.is_dir() {
        Some("is not a directory".to_owned())
    } else if meta.uid() != euid {
        Some(format!(
            "is owned by uid {}, not by you (uid {euid})",
            meta.uid()
        ))
    } else if mode & 0o077 != 0 {
        Some(format!(
            "has mode {mode:04o}, open to other users (it must be 0700)"
        ))
    } else {
        None
    }
}

/// Check that the directory of `socket` may be trusted by the user running this process:
/// only the per-user directory under `/tmp` needs it (the others are not shared).
pub fn check_socket_dir(socket: &Path) -> Result<(), String> {
    let euid = euid();
    let Some(dir) = socket.parent().filter(|d| is_per_user_dir(d, euid)) else {
        return Ok(());
    };
    match std::fs::symlink_metadata(dir) {
        Ok(meta) => match untrusted_reason(&meta, euid) {
            Some(why) => Err(format!(
                "{} {why}; someone else may have made it: remove it, or use --control PATH",
                dir.display()
            )),
            None => Ok(()),
        },
        // Missing: nothing can answer there, and the connect says so.
        Err(_) => Ok(()),
    }
}

/// Make the directory of `socket` if it is missing: mode 0700 for a user's own directories,
/// 0755 for root's `/run/synack` (the socket itself is 0600). The per-user directory under
/// `/tmp` is then checked with [`check_socket_dir`].
pub fn make_socket_dir(socket: &Path) -> Result<(), String> {
    let Some(dir) = socket.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let euid = euid();
    let mode = if euid == 0 { 0o755 } else { 0o700 };
    // Not recursive for the /tmp fallback: mkdir either makes the directory ours or finds one
    // that is then checked, never follows a planted symlink to make a parent.
    let recursive = !is_per_user_dir(dir, euid);
    match std::fs::DirBuilder::new()
        .recursive(recursive)
        .mode(mode)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(format!(
                "cannot create {}: {}",
                dir.display(),
                crate::config::plain(&e)
            ));
        }
    }
    check_socket_dir(socket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn root_uses_run_synack_whatever_xdg_says() {
        assert_eq!(
            default_socket_path_for("synack0", 0, Some(OsStr::new("/run/user/0"))),
            PathBuf::from("/run/synack/synack0.sock")
        );
        assert_eq!(
            default_socket_path_for("tun7", 0, None),
            PathBuf::from("/run/synack/tun7.sock")
        );
    }

    #[test]
    fn a_user_uses_xdg_runtime_dir() {
        assert_eq!(
            default_socket_path_for("synack0", 1000, Some(OsStr::new("/run/user/1000"))),
            PathBuf::from("/run/user/1000/synack/synack0.sock")
        );
    }

    #[test]
    fn a_user_without_a_usable_xdg_runtime_dir_uses_tmp_synack_uid() {
        for xdg in [None, Some(OsStr::new("")), Some(OsStr::new("relative/dir"))] {
            assert_eq!(
                default_socket_path_for("synack0", 65534, xdg),
                PathBuf::from("/tmp/synack-65534/synack0.sock"),
                "XDG_RUNTIME_DIR={xdg:?}"
            );
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("synack-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn only_a_private_directory_of_ours_is_trusted() {
        let dir = temp_dir("trust");
        let euid = euid();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        assert_eq!(untrusted_reason(&meta, euid), None);
        assert_eq!(
            untrusted_reason(&meta, euid + 1),
            Some(format!(
                "is owned by uid {euid}, not by you (uid {})",
                euid + 1
            ))
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        assert_eq!(
            untrusted_reason(&meta, euid),
            Some("has mode 0755, open to other users (it must be 0700)".to_owned())
        );
        let link = dir.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert_eq!(
            untrusted_reason(&meta, euid),
            Some("is a symbolic link".to_owned())
        );
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn make_socket_dir_creates_missing_parents() {
        let dir = temp_dir("make");
        let socket = dir.join("a/b/synack0.sock");
        make_socket_dir(&socket).unwrap();
        assert!(dir.join("a/b").is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
