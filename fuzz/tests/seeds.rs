//! Every seed of every target runs through it without a panic (the seeds
//! are also where regression inputs of crashes found go).

#[test]
fn every_seed_runs_through_its_target() {
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for (name, target) in weir_fuzz::TARGETS {
        let dir = seeds.join(name);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            target(&bytes);
            n += 1;
        }
        assert!(n > 0, "no seed for {name}");
    }
}
