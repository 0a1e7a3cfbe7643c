//! Fuzz target `operator_snapshots` (see `weir_fuzz::operator_snapshots`). Built by `cargo afl build`
//! it runs under AFL++; built plainly it runs the input on standard input
//! once (to replay a crash: `cargo run --bin operator_snapshots < input`).
fn main() {
    #[cfg(fuzzing)]
    afl::fuzz!(|data: &[u8]| {
        weir_fuzz::operator_snapshots(data);
    });
    #[cfg(not(fuzzing))]
    {
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut data).expect("stdin");
        weir_fuzz::operator_snapshots(&data);
    }
}
