//! Compiles `lb/v1/lb.proto` with protox, so no system `protoc` is needed, and writes the
//! encoded descriptor set that the director's server reflection serves (grpcurl reads it).

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "lb/v1/lb.proto";
    let fds = protox::compile([proto], ["."])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // With source info, so `grpcurl describe` shows the .proto's comments.
    std::fs::write(out.join("lb_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    // compile_fds emits no rerun-if-changed lines of its own.
    println!("cargo:rerun-if-changed={proto}");
    Ok(())
}
