//! Compiles `lb/v1/lb.proto` with protox, so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "lb/v1/lb.proto";
    let fds = protox::compile([proto], ["."])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    // compile_fds emits no rerun-if-changed lines of its own.
    println!("cargo:rerun-if-changed={proto}");
    Ok(())
}
