//! Fuzz target `data_frames` (see `weir_fuzz::data_frames`). Built by `cargo afl build`
//! it runs under AFL++; built plainly it runs the input on standard input
//! once (to replay a crash: `cargo run --bin data_frames < input`).
fn main() {
    #[cfg(fuzzing)]
    afl::fuzz!(|data: &[u8]| {
        weir_fuzz::data_frames(data);
    });
    #[cfg(not(fuzzing))]
    {
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut data).expect("stdin");
        weir_fuzz::data_frames(&data);
    }
}
