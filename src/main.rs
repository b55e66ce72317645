fn main() {
    todo!("main")
}
