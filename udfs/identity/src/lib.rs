//! Passes every record through unchanged, without decoding or copying it
//! in the guest: the baseline for measuring the cost of the Wasm boundary.
//! (A filter that keeps everything: a kept record's bytes go from the
//! input batch straight to the output batch.)

use weir_guest::prelude::*;

struct Identity;

impl FilterFunction for Identity {
    type Config = ();
    type In<'a> = RawRef<'a>;

    fn open(_config: (), _ctx: &OpenContext) -> Result<Self, String> {
        Ok(Identity)
    }

    fn filter(&mut self, _value: &RawRef<'_>) -> Result<bool, String> {
        Ok(true)
    }
}

weir_guest::export!(filter Identity);
