//! `synack man` and `synack completions <bash|zsh|fish>`: the man page and the shell
//! completion scripts, generated from the clap definitions (`clap_mangen`, `clap_complete`),
//! so they can never disagree with `synack --help`.

use super::Args;
use clap::{CommandFactory, ValueEnum};
use clap_mangen::Man;
use std::io::{self, Write};

/// The shells `synack completions` writes a script for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    fn generator(self) -> clap_complete::Shell {
        match self {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell.generator(), &mut Args::command(), "synack", &mut out);
    out
}

/// Sections after the generated ones: where things are, the environment, the exit codes.
const EXTRA_SECTIONS: &str = r#".SH "CONTROL SOCKET"
The subcommands
\fBstatus\fR, \fBstats\fR, \fBconnect\fR and \fBtrace\fR
talk to the running daemon over a Unix socket (mode 0600).
Unless \fB\-\-control\fR says otherwise, the daemon and every subcommand use:
.TP
.I /run/synack/<IFACE>.sock
when run as root (systemd's \fBRuntimeDirectory=synack\fR makes the directory);
.TP
.I $XDG_RUNTIME_DIR/synack/<IFACE>.sock
for any other user;
.TP
.I /tmp/synack\-<UID>/<IFACE>.sock
for any other user without \fBXDG_RUNTIME_DIR\fR; the directory is made mode 0700, and one
that is a symbolic link, belongs to someone else or is open to other users is refused.
.PP
If the socket cannot be created, the daemon logs one warning and runs without it.
.SH "RUNNING WITHOUT ROOT"
synack needs \fBCAP_NET_ADMIN\fR to create and configure the TUN interface, not root as such,
and read and write access to \fI/dev/net/tun\fR:
.PP
.RS
.nf
sudo setcap cap_net_admin+ep ./target/release/synack
\&./target/release/synack
.fi
.RE
.SH SYSTEMD
\fIcontrib/synack.service\fR (installed as \fI/usr/lib/systemd/system/synack.service\fR by the
Debian package) runs synack as a \fBType=notify\fR service with \fBDynamicUser=yes\fR and
\fBAmbientCapabilities=CAP_NET_ADMIN\fR.
synack sends \fBREADY=1\fR to \fBNOTIFY_SOCKET\fR once the interface is up and the listeners
are open, and \fBSTOPPING=1\fR when SIGINT or SIGTERM starts the shutdown.
.SH ENVIRONMENT
.TP
.B RUST_LOG
overrides \fB\-v\fR and \fB\-q\fR, e.g. \fBRUST_LOG=synack=trace\fR.
.TP
.B XDG_RUNTIME_DIR
where a user's control socket goes (see \fBCONTROL SOCKET\fR).
.TP
.B NOTIFY_SOCKET
set by systemd: where \fBREADY=1\fR and \fBSTOPPING=1\fR go (nothing is sent without it).
.SH "EXIT STATUS"
0 after a clean shutdown or a successful subcommand; 1 when setup or the subcommand fails; 2
for a bad flag.
.SH "SEE ALSO"
\fBip\fR(8), \fBtcpdump\fR(8), \fBss\fR(8), \fBsystemd.exec\fR(5), \fBcapabilities\fR(7)
"#;

/// The roff man page: the generated NAME, SYNOPSIS, DESCRIPTION and OPTIONS of `synack`,
/// then a SUBCOMMANDS section with each subcommand's synopsis and options (one page for
/// all, where clap_mangen alone would point at a page per subcommand), then
/// [`EXTRA_SECTIONS`].
pub fn man_page() -> io::Result<Vec<u8>> {
    // NAME reads "synack \- a complete TCP endpoint...", not "synack \- synack: a ...".
    let mut cmd =
        Args::command().about("a complete TCP endpoint in userspace, served over a TUN interface");
    cmd.build();
    let man = Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    // clap_mangen's synopsis names the flags but not their arguments (`[--mtu]`).
    out.extend_from_slice(b".SH SYNOPSIS\n");
    out.extend_from_slice(synopsis(&cmd).as_bytes());
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    out.extend_from_slice(b".SH SUBCOMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("synack {}", sub.get_name());
        // Options that are global are listed once, under OPTIONS.
        let sub = sub
            .clone()
            .bin_name(&name)
            .mut_args(|a| if a.is_global_set() { a.hide(true) } else { a });
        writeln!(out, ".SS \"{name}\"")?;
        if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
            writeln!(out, "{}", escape(&about.to_string()))?;
        }
        let mut section = format!(".PP\n{}", synopsis(&sub)).into_bytes();
        let sub_man = Man::new(sub);
        sub_man.render_options_section(&mut section)?;
        // Their `.SH` headings would end the SUBCOMMANDS section: paragraph breaks instead.
        for line in section.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".SH ") {
                out.extend_from_slice(b".PP\n");
            } else {
                out.extend_from_slice(line);
            }
        }
    }
    out.extend_from_slice(EXTRA_SECTIONS.as_bytes());
    man.render_version_section(&mut out)?;
    Ok(break_after_commas(&out))
}

/// A synopsis line that names each option's argument, as man pages do:
/// `synack [-i|--iface <NAME>] [--mtu <BYTES>] [-v]... [SUBCOMMAND]`.
fn synopsis(cmd: &clap::Command) -> String {
    let name = cmd.get_bin_name().unwrap_or(cmd.get_name());
    let mut line = format!("\\fB{}\\fR", escape(name));
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let values: Vec<String> = arg
            .get_value_names()
            .unwrap_or_default()
            .iter()
            .map(|v| format!("\\fI<{}>\\fR", escape(v)))
            .collect();
        let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
        let flag = match (arg.get_short(), arg.get_long()) {
            (Some(short), Some(long)) => {
                format!("\\fB\\-{short}\\fR|\\fB\\-\\-{}\\fR", escape(long))
            }
            (None, Some(long)) => format!("\\fB\\-\\-{}\\fR", escape(long)),
            (Some(short), None) => format!("\\fB\\-{short}\\fR"),
            // A positional argument: its value name alone.
            (None, None) => {
                let value = values.join(" ");
                line.push(' ');
                line.push_str(&if arg.is_required_set() {
                    value
                } else {
                    format!("[{value}]")
                });
                continue;
            }
        };
        let word = if takes_value && !values.is_empty() {
            format!("{flag} {}", values.join(" "))
        } else {
            flag
        };
        let repeats = matches!(
            arg.get_action(),
            clap::ArgAction::Append | clap::ArgAction::Count
        );
        line.push_str(&format!(" [{word}]{}", if repeats { "..." } else { "" }));
    }
    if cmd.has_subcommands() {
        line.push_str(" [\\fISUBCOMMAND\\fR]");
    }
    line.push('\n');
    line
}

/// Let troff break a long value list (`loss=2%,dup=1%,...`) after its commas (`\:` is an
/// invisible break point), and set such a line ragged-right (`.ad l`, then back to `.ad b`):
/// a line holding one long list has no space to stretch, and troff would warn "cannot adjust
/// line".
fn break_after_commas(page: &[u8]) -> Vec<u8> {
    let list_comma = |line: &[u8], i: usize| {
        line.get(i) == Some(&b',') && line.get(i + 1).is_some_and(|n| !n.is_ascii_whitespace())
    };
    let mut out = Vec::with_capacity(page.len() + 256);
    for line in page.split_inclusive(|&b| b == b'\n') {
        let request = line.starts_with(b".") || line.starts_with(b"'");
        if request || !(0..line.len()).any(|i| list_comma(line, i)) {
            out.extend_from_slice(line);
            continue;
        }
        out.extend_from_slice(b".ad l\n");
        for (i, &b) in line.iter().enumerate() {
            out.push(b);
            if list_comma(line, i) {
                out.extend_from_slice(b"\\:");
            }
        }
        out.extend_from_slice(b".ad b\n");
    }
    out
}

/// Text for a roff line: backslashes and hyphens escaped, no leading control character.
fn escape(text: &str) -> String {
    let s = text.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// `synack man` and `synack completions`: write the page or the script to stdout.
pub fn print(what: io::Result<Vec<u8>>) -> Result<(), String> {
    let text = what.map_err(|e| format!("cannot render: {}", crate::config::plain(&e)))?;
    let mut out = io::stdout().lock();
    match out.write_all(&text).and_then(|()| out.flush()) {
        // `synack man | head`: the reader has what it wanted.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| {
            format!(
                "cannot write to standard output: {}",
                crate::config::plain(&e)
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn man() -> String {
        String::from_utf8(man_page().unwrap()).unwrap()
    }

    #[test]
    fn the_man_page_has_name_synopsis_options_and_every_subcommand() {
        let page = man();
        for heading in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH OPTIONS",
            ".SH SUBCOMMANDS",
            ".SH ENVIRONMENT",
        ] {
            assert!(page.contains(heading), "no {heading} in\n{page}");
        }
        for sub in Args::command().get_subcommands() {
            let heading = format!(".SS \"synack {}\"", sub.get_name());
            assert!(page.contains(&heading), "no {heading} in\n{page}");
        }
        // Subcommand options are listed under their subcommand.
        assert!(page.contains("\\-\\-follow"), "{page}");
        assert!(page.contains("\\-\\-watch"), "{page}");
        assert!(
            page.contains("synack \\- a complete TCP endpoint"),
            "{page}"
        );
    }

    #[test]
    fn the_man_page_names_the_default_control_sockets() {
        let page = man();
        assert!(page.contains("/run/synack/<IFACE>.sock"), "{page}");
        assert!(
            page.contains("$XDG_RUNTIME_DIR/synack/<IFACE>.sock"),
            "{page}"
        );
    }

    #[test]
    fn completions_know_the_subcommands_and_flags() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = String::from_utf8(completions(shell)).unwrap();
            for word in ["status", "completions", "man", "iface", "control", "bash"] {
                assert!(script.contains(word), "{shell:?} script lacks {word}");
            }
        }
    }

    #[test]
    fn the_synopsis_names_each_options_argument() {
        let page = man();
        let synopsis = page
            .split(".SH SYNOPSIS\n")
            .nth(1)
            .and_then(|rest| rest.lines().find(|l| !l.starts_with(".ad")))
            .unwrap();
        for want in [
            "[\\fB\\-\\-mtu\\fR \\fI<BYTES>\\fR]",
            "[\\fB\\-l\\fR|\\fB\\-\\-listen\\fR \\fI<PORT=SERVICE>\\fR]...",
            "[\\fB\\-\\-ladder\\fR]",
            "[\\fISUBCOMMAND\\fR]",
        ] {
            assert!(synopsis.contains(want), "{want} not in {synopsis}");
        }
        // A subcommand's positional argument, by its value name.
        assert!(
            page.contains("\\fBsynack connect\\fR \\fI<ADDR:PORT>\\fR"),
            "{page}"
        );
    }

    #[test]
    fn long_value_lists_may_break_after_their_commas() {
        let page = man();
        assert!(page.contains("loss=2%,\\:dup=1%,\\:"), "{page}");
        assert_eq!(
            break_after_commas(b".TH a,b\nx,y, z\nno list, here\n"),
            b".TH a,b\n.ad l\nx,\\:y, z\n.ad b\nno list, here\n"
        );
    }

    #[test]
    fn escape_keeps_roff_control_characters_out() {
        assert_eq!(escape(".hidden"), "\\&.hidden");
        assert_eq!(escape("a-b\\c"), "a\\-b\\ec");
    }
}
