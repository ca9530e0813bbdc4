//! lbctl: see `lb_director::lbctl`.

use clap::Parser;

use lb_director::lbctl::{Cli, Output};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(error) = lb_director::lbctl::run(cli, &mut Output::stdout()).await {
        eprintln!("lbctl: {error}");
        std::process::exit(i32::from(error.exit_code()));
    }
}
