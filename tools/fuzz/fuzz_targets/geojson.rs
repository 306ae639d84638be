//! Any bytes as a GeoJSON (QuPath) regions file for a 100,000 × 80,000 slide: parsing must
//! answer with regions or an error, never panic; what parses passes the checks and, written
//! back, parses again to the same regions.
#![no_main]

use evidentia::annotations::geojson::{self, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_vertices: 100_000, max_features: 10_000, max_bytes: 1 << 20, ..Limits::for_slide(100_000.0, 80_000.0) };
    let Ok(regions) = geojson::parse(data, &limits) else { return };
    if geojson::check(&regions, &limits).is_err() {
        return;
    }
    let mut out = Vec::new();
    geojson::write(&regions, &mut out).expect("writing to memory");
    let again = geojson::parse(&out, &Limits { max_bytes: usize::MAX, ..limits }).expect("what was written parses");
    assert_eq!(again.len(), regions.len(), "the same number of regions");
});
