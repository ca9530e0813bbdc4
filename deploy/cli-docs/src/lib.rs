//! Man pages and shell completions for lb-director, lbctl and lb-agent, written from the very
//! clap definitions the binaries parse, so they cannot drift from the flags. deploy/package.sh
//! runs this and puts the files in the Debian packages; nothing here is installed itself.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::roff::{roman, Roff};
use clap_mangen::Man;

/// One program: its command line, and its man section (8 for daemons in /usr/sbin).
pub struct Program {
    pub command: clap::Command,
    pub section: &'static str,
}

pub fn programs() -> Vec<Program> {
    vec![
        Program {
            command: lb_director::cli::DirectorArgs::command(),
            section: "8",
        },
        Program {
            command: lb_director::lbctl::Cli::command(),
            section: "1",
        },
        Program {
            command: lb_realserver::cli::AgentArgs::command(),
            section: "8",
        },
    ]
}

/// Writes, under `out`:
/// - `man/manN/PROGRAM.N` for each program and each of its subcommands (`lbctl-drain.1`),
/// - `completions/bash/PROGRAM`, `completions/zsh/_PROGRAM`, `completions/fish/PROGRAM.fish`:
///   the names bash-completion, zsh and fish look for in their vendor directories.
///
/// Returns every file written.
pub fn write_all(out: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for program in programs() {
        let mut command = program.command.disable_help_subcommand(true);
        command.build();
        let man_dir = out.join(format!("man/man{}", program.section));
        fs::create_dir_all(&man_dir)?;
        write_man_pages(&command, program.section, &man_dir, &mut written)?;
        let name = command.get_name().to_owned();
        for (shell, file) in [
            (Shell::Bash, name.clone()),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let dir = out.join(format!("completions/{shell}"));
            fs::create_dir_all(&dir)?;
            let path = dir.join(file);
            let mut file = File::create(&path)?;
            clap_complete::generate(shell, &mut command, &name, &mut file);
            file.flush()?;
            written.push(path);
        }
    }
    Ok(written)
}

fn write_man_pages(
    command: &clap::Command,
    section: &str,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> io::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man_pages(sub, section, dir, written)?;
    }
    let man = Man::new(command.clone())
        .section(section)
        .manual("lb")
        .source(format!("lb {}", env!("CARGO_PKG_VERSION")));
    let path = dir.join(man.get_filename());
    let mut file = File::create(&path)?;
    render(&man, command, &mut file)?;
    file.flush()?;
    written.push(path);
    Ok(())
}

/// clap_mangen's page, except that the long help's closing text ("Files:", "Exit status:")
/// becomes proper sections (FILES, EXIT STATUS) instead of one "EXTRA".
fn render(man: &Man, command: &clap::Command, w: &mut dyn Write) -> io::Result<()> {
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    let has_options = command
        .get_arguments()
        .any(|a| !a.is_hide_set() && !a.is_positional())
        || command.get_positionals().next().is_some();
    if has_options {
        man.render_options_section(w)?;
    }
    if command.has_subcommands() {
        man.render_subcommands_section(w)?;
    }
    if let Some(text) = command
        .get_after_long_help()
        .or_else(|| command.get_after_help())
    {
        sections(&text.to_string()).to_writer(w)?;
    }
    if command.get_version().is_some() {
        man.render_version_section(w)?;
    }
    Ok(())
}

/// "Heading:" lines open a section; the indented lines under one stay as they are (they are
/// aligned columns), each on its own line.
fn sections(text: &str) -> Roff {
    let mut roff = Roff::default();
    let mut open = false;
    for line in text.lines() {
        if let Some(heading) = line.strip_suffix(':').filter(|_| !line.starts_with(' ')) {
            if open {
                roff.control("fi", []);
            }
            roff.control("SH", [heading.to_uppercase().as_str()]);
            roff.control("nf", []);
            open = true;
        } else if open && !line.trim().is_empty() {
            roff.text([roman(line.trim_start())]);
        } else if !line.trim().is_empty() {
            // Text before any heading: a paragraph of its own.
            roff.control("SH", ["NOTES"]);
            roff.text([roman(line)]);
        }
    }
    if open {
        roff.control("fi", []);
    }
    roff
}
