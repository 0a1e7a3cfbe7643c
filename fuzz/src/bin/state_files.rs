//! Fuzz target `state_files` (see `weir_fuzz::state_files`). Built by `cargo afl build`
//! it runs under AFL++; built plainly it runs the input on standard input
//! once (to replay a crash: `cargo run --bin state_files < input`).
fn main() {
    #[cfg(fuzzing)]
    afl::fuzz!(|data: &[u8]| {
        weir_fuzz::state_files(data);
    });
    #[cfg(not(fuzzing))]
    {
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut data).expect("stdin");
        weir_fuzz::state_files(&data);
    }
}
