//! Fuzz target `control_frames` (see `weir_fuzz::control_frames`). Built by `cargo afl build`
//! it runs under AFL++; built plainly it runs the input on standard input
//! once (to replay a crash: `cargo run --bin control_frames < input`).
fn main() {
    #[cfg(fuzzing)]
    afl::fuzz!(|data: &[u8]| {
        weir_fuzz::control_frames(data);
    });
    #[cfg(not(fuzzing))]
    {
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut data).expect("stdin");
        weir_fuzz::control_frames(&data);
    }
}
