//! `exec:COMMAND [ARGS...]`: what to run for each connection. Parsing only (pure); the
//! driver checks that the command exists and runs it (src/driver/exec.rs).

use std::fmt;

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
