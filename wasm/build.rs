//! Rebuild when the development-build settings change (they are read with
//! `option_env!` only under the `dev` feature).
fn main() {
    for var in [
        "SPAREBAND_RELAY_URL",
        "SPAREBAND_ALLOW_TARGETS",
        "SPAREBAND_AUTOSTART",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
}
