//! The generated man pages and completions: one of each per program, every flag in them, and
//! each file accepted by the tool that reads it (man's own warnings, `bash -n`).
#![allow(clippy::unwrap_used)] // a panic is the failure report

use std::path::Path;
use std::process::Command;

fn generated() -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    lb_cli_docs::write_all(out.path()).unwrap();
    out
}

#[test]
fn every_program_gets_a_man_page_and_three_completions_naming_every_flag() {
    let out = generated();
    for program in lb_cli_docs::programs() {
        let name = program.command.get_name().to_owned();
        let page = out
            .path()
            .join(format!("man/man{0}/{name}.{0}", program.section));
        let page = std::fs::read_to_string(&page).unwrap();
        let bash =
            std::fs::read_to_string(out.path().join(format!("completions/bash/{name}"))).unwrap();
        let zsh =
            std::fs::read_to_string(out.path().join(format!("completions/zsh/_{name}"))).unwrap();
        let fish =
            std::fs::read_to_string(out.path().join(format!("completions/fish/{name}.fish")))
                .unwrap();
        for arg in program.command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            // roff escapes the dashes: \-\-config.
            assert!(
                page.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                "{name}.{}: no --{long}",
                program.section
            );
            assert!(
                bash.contains(&format!("--{long}")),
                "bash {name}: no --{long}"
            );
            assert!(
                zsh.contains(&format!("--{long}")),
                "zsh {name}: no --{long}"
            );
            assert!(
                fish.contains(&format!("-l {long}")),
                "fish {name}: no --{long}"
            );
        }
        assert!(
            page.contains(".SH \"EXIT STATUS\"") || page.contains(".SH EXIT STATUS"),
            "{page}"
        );
    }
    for sub in [
        "status",
        "drain",
        "undrain",
        "weight",
        "certs",
        "certs-init",
        "certs-issue",
    ] {
        let page = out.path().join(format!("man/man1/lbctl-{sub}.1"));
        assert!(page.exists(), "no {}", page.display());
    }
    let drain = std::fs::read_to_string(out.path().join("man/man1/lbctl-drain.1")).unwrap();
    assert!(
        drain.contains("\\-\\-wait") && drain.contains("\\-\\-timeout"),
        "{drain}"
    );
}

#[test]
fn man_renders_every_page_without_a_warning() {
    let out = generated();
    let mut pages = 0;
    for section in ["man1", "man8"] {
        for entry in std::fs::read_dir(out.path().join("man").join(section)).unwrap() {
            let page = entry.unwrap().path();
            let run = Command::new("man")
                .env("MANWIDTH", "80")
                .args(["--warnings", "-E", "UTF-8", "-l"])
                .arg(&page)
                .output()
                .expect("man (Debian package man-db) is needed for this test");
            let stderr = String::from_utf8_lossy(&run.stderr);
            assert!(
                run.status.success() && stderr.is_empty(),
                "{}: {stderr}",
                page.display()
            );
            assert!(!run.stdout.is_empty());
            pages += 1;
        }
    }
    assert_eq!(
        pages, 10,
        "lb-director, lb-agent, lbctl and its 7 subcommand pages"
    );
}

#[test]
fn bash_parses_the_bash_completions() {
    let out = generated();
    for name in ["lbctl", "lb-director", "lb-agent"] {
        let file = out.path().join("completions/bash").join(name);
        assert_bash_parses(&file);
    }
}

fn assert_bash_parses(file: &Path) {
    let run = Command::new("bash").arg("-n").arg(file).output().unwrap();
    assert!(
        run.status.success(),
        "{}: {}",
        file.display(),
        String::from_utf8_lossy(&run.stderr)
    );
}
