//! `barrage completions` and `barrage man`: the shell completion scripts
//! and the manual page, generated from the clap definitions so they never
//! drift from the flags.

use std::io::Write;

use clap::{Args, CommandFactory};
use clap_complete::Shell;
use roff::{Roff, bold, roman};

use super::Cli;
use crate::runner::exit;
use crate::ui;

/// `barrage completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in: bash, zsh, fish, powershell or elvish. The
    /// script goes to stdout, e.g. `barrage completions bash >
    /// ~/.local/share/bash-completion/completions/barrage`.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Prints the completion script for `a.shell`.
pub(super) fn completions(a: &CompletionsArgs) -> u8 {
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut Cli::command(), "barrage", &mut out);
    emit(&out)
}

/// Prints the manual page, roff for `man -l`: one page for the whole tool,
/// as one file is what gets installed as barrage.1 (`man barrage`). It
/// holds the top-level NAME, SYNOPSIS and DESCRIPTION, a list of the
/// subcommands, and then a section per subcommand (`BARRAGE RUN`, ...)
/// with its own synopsis, description and options.
pub(super) fn man() -> u8 {
    match render_man() {
        Ok(page) => emit(&page),
        Err(e) => {
            ui::error(&format!("cannot render the manual page: {e}"));
            exit::RUN_FAILED
        }
    }
}

/// The whole manual page (see [`man`]).
fn render_man() -> std::io::Result<Vec<u8>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let top = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    top.render_title(&mut page)?;
    top.render_name_section(&mut page)?;
    top.render_synopsis_section(&mut page)?;
    top.render_description_section(&mut page)?;
    top.render_options_section(&mut page)?;

    let mut list = Roff::new();
    list.control("SH", ["SUBCOMMANDS"]);
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    for sub in &subs {
        list.control("TP", []);
        list.text([bold(format!("barrage {}", sub.get_name()))]);
        if let Some(about) = sub.get_about() {
            list.text([roman(about.to_string())]);
        }
    }
    list.control("PP", []);
    list.text([roman(
        "Each has its own section below, named after it (BARRAGE RUN, ...).",
    )]);
    page.extend(fragment(&list.render(), false).into_bytes());

    for sub in subs {
        subcommand_sections(sub, &mut page)?;
    }
    let mut version = Vec::new();
    top.render_version_section(&mut version)?;
    page.extend(fragment(&String::from_utf8_lossy(&version), false).into_bytes());
    Ok(page)
}

/// A section for `sub` (heading: its full name in capitals) with its
/// synopsis, description and options as subsections, then its own
/// subcommands' sections, if any.
fn subcommand_sections(sub: &clap::Command, page: &mut Vec<u8>) -> std::io::Result<()> {
    let name = sub.get_bin_name().unwrap_or_else(|| sub.get_name());
    let mut heading = Roff::new();
    heading.control("SH", [name.to_uppercase().as_str()]);
    page.extend(fragment(&heading.render(), false).into_bytes());

    let man = clap_mangen::Man::new(sub.clone());
    let mut parts = Vec::new();
    man.render_synopsis_section(&mut parts)?;
    man.render_description_section(&mut parts)?;
    if sub.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut parts)?;
    }
    page.extend(fragment(&String::from_utf8_lossy(&parts), true).into_bytes());
    for s in sub.get_subcommands().filter(|s| !s.is_hide_set()) {
        subcommand_sections(s, page)?;
    }
    Ok(())
}

/// Roff rendered on its own, made fit to follow the page's start: the
/// apostrophe preamble every render repeats is dropped (the title's
/// copy stays), and, with `demote`, section headings become subsection
/// headings.
fn fragment(roff: &str, demote: bool) -> String {
    let mut out = String::new();
    for line in roff.lines() {
        if line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq") {
            continue;
        }
        match line.strip_prefix(".SH ") {
            Some(rest) if demote => out.push_str(&format!(".SS {rest}")),
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Writes `bytes` to stdout. A closed pipe (`barrage man | head`) is not an
/// error; any other write failure is (exit 3).
fn emit(bytes: &[u8]) -> u8 {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => exit::PASSED,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::PASSED,
        Err(e) => {
            ui::error(&format!("cannot write to stdout: {e}"));
            exit::RUN_FAILED
        }
    }
}
