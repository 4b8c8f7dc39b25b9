fn main() {
    println!("ferrocache skeleton");
}
