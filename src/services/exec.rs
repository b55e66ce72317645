//! `exec:COMMAND [ARGS...]` and `forward:HOST:PORT`: what to run or where to connect for each
//! connection. Parsing only (pure); the driver checks that the command exists and runs it
//! (src/driver/exec.rs), and connects to the upstream (src/driver/forward.rs).

use std::fmt;
use std::net::SocketAddr;

/// A parsed `exec:` service: the program and its arguments, split the way a shell would
/// (quotes and backslashes, no expansions), and run without a shell.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ExecSpec {
    argv: Vec<String>,
    /// `exec:` and the command as the user wrote it, for the startup line and `status`.
    label: String,
}

impl ExecSpec {
    /// Split `command` (what follows `exec:`) into words.
    pub fn parse(command: &str) -> Result<ExecSpec, String> {
        let argv = shell_words::split(command)
            .map_err(|e| format!("cannot split 'exec:{command}' into words: {e}"))?;
        if argv.first().is_none_or(|c| c.is_empty()) {
            return Err("exec: needs a command, for example exec:cat".to_owned());
        }
        Ok(ExecSpec {
            argv,
            label: format!("exec:{}", command.trim()),
        })
    }

    /// Keep the spec for the life of the process (listeners are configured once at startup),
    /// so that [`super::ServiceKind`] stays `Copy`.
    pub fn leak(self) -> &'static ExecSpec {
        Box::leak(Box::new(self))
    }

    /// The program to run (searched in `PATH` if it has no `/`).
    pub fn program(&self) -> &str {
        self.argv.first().map_or("", String::as_str)
    }

    /// Its arguments.
    pub fn args(&self) -> &[String] {
        self.argv.get(1..).unwrap_or(&[])
    }

    /// `exec:COMMAND ARGS`, as given.
    pub fn label(&self) -> &str {
        &self.label
    }
}

impl fmt::Debug for ExecSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

/// A parsed `forward:HOST:PORT` service: the upstream every connection is relayed to.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ForwardSpec {
    addr: SocketAddr,
    /// `forward:` and the address as given, for the startup line and `status`.
    label: String,
}

impl ForwardSpec {
    /// Parse what follows `forward:`: an IP address and a port, IPv6 as `[ADDR]:PORT`.
    pub fn parse(target: &str) -> Result<ForwardSpec, String> {
        let target = target.trim();
        let addr: SocketAddr = target.parse().map_err(|_| {
            format!(
                "'forward:{target}' is not forward:HOST:PORT (an IP address and a port, IPv6 as \
                 [ADDR]:PORT, e.g. forward:127.0.0.1:8000 or forward:[::1]:8000)"
            )
        })?;
        if addr.port() == 0 || addr.ip().is_unspecified() || addr.ip().is_multicast() {
            return Err(format!(
                "'forward:{target}': cannot connect to {addr} (give a unicast address and a port \
                 between 1 and 65535)"
            ));
        }
        Ok(ForwardSpec {
            addr,
            label: format!("forward:{target}"),
        })
    }

    /// Keep the spec for the life of the process (see [`ExecSpec::leak`]).
    pub fn leak(self) -> &'static ForwardSpec {
        Box::leak(Box::new(self))
    }

    /// The upstream's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `forward:HOST:PORT`, as given.
    pub fn label(&self) -> &str {
        &self.label
    }
}

impl fmt::Debug for ForwardSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::ServiceKind;

    #[test]
    fn words_are_split_as_a_shell_would() {
        let spec = ExecSpec::parse("/bin/sh -c 'sleep 5; echo \"done\"'").unwrap();
        assert_eq!(spec.program(), "/bin/sh");
        assert_eq!(spec.args(), ["-c", "sleep 5; echo \"done\""]);
        assert_eq!(spec.label(), "exec:/bin/sh -c 'sleep 5; echo \"done\"'");
    }

    #[test]
    fn bad_commands_are_refused_with_a_reason() {
        assert!(ExecSpec::parse("").unwrap_err().contains("needs a command"));
        assert!(ExecSpec::parse("  ").is_err());
        assert!(
            ExecSpec::parse("cat 'open")
                .unwrap_err()
                .contains("cannot split")
        );
    }

    #[test]
    fn forward_targets_parse_and_bad_ones_say_why() {
        let kind: ServiceKind = "forward:127.0.0.1:8000".parse().unwrap();
        assert_eq!(kind.name(), "forward:127.0.0.1:8000");
        let spec = ForwardSpec::parse("[::1]:22").unwrap();
        assert_eq!(spec.addr(), "[::1]:22".parse().unwrap());
        for bad in [
            "localhost",
            "127.0.0.1",
            "::1:22",
            "127.0.0.1:0",
            "0.0.0.0:80",
            "1.2.3.4:99999",
        ] {
            let err = ForwardSpec::parse(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn exec_services_parse_and_name_themselves() {
        let kind: ServiceKind = "exec:cat -u".parse().unwrap();
        assert_eq!(kind.name(), "exec:cat -u");
        let ServiceKind::Exec(spec) = kind else {
            panic!("not exec: {kind:?}")
        };
        assert_eq!(
            (spec.program(), spec.args()),
            ("cat", &["-u".to_owned()][..])
        );
    }
}
