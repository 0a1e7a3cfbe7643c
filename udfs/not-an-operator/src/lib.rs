//! A component of another world: Weir must refuse it with a clear error.

wit_bindgen::generate!({
    inline: "package test:other; world other { export hello: func() -> string; }",
});

struct Component;

impl Guest for Component {
    fn hello() -> String {
        "not an operator".into()
    }
}

export!(Component);
