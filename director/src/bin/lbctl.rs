//! lbctl: see `lb_director::lbctl`.

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = lb_director::lbctl::Cli::parse();
    let mut out = std::io::stdout().lock();
    if let Err(error) = lb_director::lbctl::run(cli, &mut out).await {
        eprintln!("lbctl: {error}");
        std::process::exit(1);
    }
}
