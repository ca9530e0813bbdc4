//! `cargo run -p lb-cli-docs -- DIR`: writes the man pages and shell completions of
//! lb-director, lbctl and lb-agent under DIR (see `lb_cli_docs::write_all`).

use std::path::PathBuf;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        anyhow::bail!("usage: lb-cli-docs DIR (writes DIR/man and DIR/completions)");
    };
    let out = PathBuf::from(out);
    let written = lb_cli_docs::write_all(&out).with_context(|| {
        format!(
            "cannot write the man pages and completions under {}",
            out.display()
        )
    })?;
    println!("{} files under {}", written.len(), out.display());
    Ok(())
}
