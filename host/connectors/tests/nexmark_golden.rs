//! The Nexmark generator's events are pinned to a golden file: the first
//! 150 events (persons, auctions and bids) for seed 42 at 10,000 events/s
//! must equal `tests/golden/nexmark-seed42.jsonl` byte for byte, so that a
//! speed-up of the generator cannot change the stream unnoticed (replayed
//! files, benchmark comparisons and the query oracles all depend on it).
//!
//! A change that alters the events on purpose rewrites the file with
//! `WEIR_BLESS=1 cargo test -p weir-connectors --test nexmark_golden`; say
//! why in the commit.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use weir_connectors::NexmarkConfig;
use weir_types::jobgraph::NexmarkKind;

const EVENTS: u64 = 150;

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/nexmark-seed42.jsonl")
}

/// `timestamp<TAB>event` per line, for events 0..EVENTS.
fn generated() -> String {
    let config = NexmarkConfig {
        seed: 42,
        rate: 10_000,
        base_time: 1_436_918_400_000,
        kinds: NexmarkKind::all(),
    };
    let mut text = String::new();
    for n in 0..EVENTS {
        let mut event = Vec::new();
        let timestamp = config.write_event(n, &mut event);
        text.push_str(&format!(
            "{timestamp}\t{}\n",
            String::from_utf8(event).unwrap()
        ));
    }
    text
}

#[test]
fn generated_events_equal_the_golden_file() {
    let text = generated();
    if std::env::var_os("WEIR_BLESS").is_some() {
        std::fs::write(golden_path(), &text).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(golden_path())
        .expect("golden file missing: run with WEIR_BLESS=1 to write it");
    for (n, (got, want)) in text.lines().zip(golden.lines()).enumerate() {
        assert_eq!(got, want, "event {n} differs from the golden file");
    }
    assert_eq!(text.lines().count(), golden.lines().count());
}
