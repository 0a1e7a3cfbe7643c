//! Large files reach object stores in parts: a shared file bigger than
//! `MULTIPART_PART_BYTES` goes to S3 (moto), Azure Blob Storage (Azurite)
//! and Google Cloud Storage (a fake of its XML API) as a multipart upload and reads back byte for byte; a small
//! one goes in one PUT.

#![allow(clippy::unwrap_used)]

use weir_checkpoint::{CheckpointStorage, MULTIPART_PART_BYTES};
use weir_tests::emulators::Emulator;

/// `len` bytes that differ from part to part (a linear congruential
/// sequence), so a part sent twice or out of order shows.
fn pseudo_random_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

fn assert_files_round_trip(emulator: &Emulator) {
    let mut config = weir_checkpoint::CheckpointConfig::default();
    for pair in emulator.settings() {
        config.set_pair(&pair).unwrap();
    }
    let storage = CheckpointStorage::open(&config, "uploads").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Two and a half parts, then a file smaller than one part.
    for (name, len) in [
        ("large.sst", MULTIPART_PART_BYTES * 5 / 2),
        ("small.sst", 1000),
    ] {
        let path = dir.path().join(name);
        let bytes = pseudo_random_bytes(len);
        std::fs::write(&path, &bytes).unwrap();
        let stored = storage.write_shared_file(name, &path).unwrap();
        assert_eq!(stored, format!("shared/{name}"));
        let back = storage.read_state(&stored).unwrap();
        assert_eq!(back.len(), bytes.len(), "{name}");
        assert!(back == bytes, "{name} reads back as written");
    }
    assert_eq!(
        storage.files().unwrap(),
        ["shared/large.sst", "shared/small.sst"]
    );
    let e = storage
        .write_shared_file("missing.sst", &dir.path().join("missing.sst"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing.sst") && e.contains("cannot read"),
        "{e}"
    );
}

#[test]
fn large_shared_files_go_to_s3_in_parts() {
    assert_files_round_trip(&Emulator::s3("uploads").unwrap());
}

#[test]
fn large_shared_files_go_to_azure_blob_storage_in_parts() {
    assert_files_round_trip(&Emulator::azure("uploads").unwrap());
}

#[test]
fn large_shared_files_go_to_google_cloud_storage_in_parts() {
    assert_files_round_trip(&Emulator::gcs("uploads", 1000).unwrap());
}
