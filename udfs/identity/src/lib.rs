//! Passes every record through unchanged, without decoding it: the
//! baseline for measuring the cost of the Wasm boundary.

use weir_guest::prelude::*;

struct Identity;

impl MapFunction for Identity {
    type Config = ();
    type In = Raw;
    type Out = Raw;

    fn open(_config: (), _ctx: &OpenContext) -> Result<Self, String> {
        Ok(Identity)
    }

    fn map(&mut self, value: Raw) -> Result<Raw, String> {
        Ok(value)
    }
}

weir_guest::export!(map Identity);
