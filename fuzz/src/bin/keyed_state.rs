//! Fuzz target `keyed_state` (see `weir_fuzz::keyed_state`). Built by `cargo afl build`
//! it runs under AFL++; built plainly it runs the input on standard input
//! once (to replay a crash: `cargo run --bin keyed_state < input`).
fn main() {
    #[cfg(fuzzing)]
    afl::fuzz!(|data: &[u8]| {
        weir_fuzz::keyed_state(data);
    });
    #[cfg(not(fuzzing))]
    {
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut data).expect("stdin");
        weir_fuzz::keyed_state(&data);
    }
}
