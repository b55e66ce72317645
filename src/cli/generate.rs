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
    man.render_synopsis_section(&mut out)?;
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
        let sub_man = Man::new(sub);
        let mut section = Vec::new();
        sub_man.render_synopsis_section(&mut section)?;
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
    Ok(out)
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
    fn escape_keeps_roff_control_characters_out() {
        assert_eq!(escape(".hidden"), "\\&.hidden");
        assert_eq!(escape("a-b\\c"), "a\\-b\\ec");
    }
}
