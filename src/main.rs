fn main() {
    println!("classroom {}", env!("CARGO_PKG_VERSION"));
}
