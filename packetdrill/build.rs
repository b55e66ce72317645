//! C's variadic `fcntl(fd, cmd, ...)` and `ioctl(fd, request, ...)` callbacks cannot be
//! defined in stable Rust: src/variadic.c takes the argument off the list and calls Rust.
fn main() {
    println!("cargo::rerun-if-changed=src/variadic.c");
    cc::Build::new()
        .file("src/variadic.c")
        .warnings(true)
        .compile("synack_packetdrill_variadic");
}
