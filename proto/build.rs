//! Generates the gRPC code for `proto/cellkv.proto`, in both the normal and the simulated
//! (madsim) flavour, with the protoc that ships inside `protoc-bin-vendored`, so building needs
//! no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // prost-build finds protoc through this variable; build scripts run single-threaded.
    std::env::set_var("PROTOC", protoc);
    tonic_build::configure()
        // Payloads become `Bytes`, so decoding a large append or snapshot chunk does not copy.
        .bytes(["."])
        .compile_protos(&["proto/cellkv.proto"], &["proto"])?;
    Ok(())
}
