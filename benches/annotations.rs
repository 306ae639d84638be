//! Region interchange benchmark (issue: annotations): a 100,000-point QuPath GeoJSON file
//! (point detections with UUID, class and measurements, pretty-printed as QuPath writes them)
//! parsed into regions and written back, in one process. The issue asks for "within seconds".
//!
//! ```sh
//! cargo bench --bench annotations            # 100,000 points
//! cargo bench --bench annotations -- 500000  # another count
//! ```

use std::time::Instant;

use evidentia::annotations::geojson::{self, Limits};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let mut file = String::from("{\n  \"type\": \"FeatureCollection\",\n  \"features\": [\n");
    for i in 0..n {
        let (x, y) = (100.0 + (i % 400) as f64 * 97.25, 100.0 + (i / 400) as f64 * 113.5);
        file.push_str(&format!(
            "    {{\n      \"type\": \"Feature\",\n      \"id\": \"{i:08x}-5b7d-4e0f-9a1b-2c3d4e5f6a7b\",\n      \
             \"geometry\": {{ \"type\": \"Point\", \"coordinates\": [{x}, {y}] }},\n      \"properties\": {{\n        \
             \"objectType\": \"detection\",\n        \"classification\": {{ \"name\": \"Lymphocyte\", \"color\": [255, 0, 0] }},\n        \
             \"measurements\": {{ \"Nucleus: Area\": 31.5, \"Nucleus: Circularity\": 0.91 }}\n      }}\n    }}{}\n",
            if i + 1 < n { "," } else { "" }
        ));
    }
    file.push_str("  ]\n}\n");
    let height = 100.0 + (n / 400 + 1) as f64 * 113.5;
    let limits = Limits {
        max_vertices: n.max(2_000_000),
        max_features: n.max(1_000_000),
        ..Limits::for_slide(40_000.0, height)
    };

    let started = Instant::now();
    let regions = geojson::parse(file.as_bytes(), &limits)?;
    let parsed = started.elapsed();
    anyhow::ensure!(regions.len() == n, "parsed {} regions of {n}", regions.len());

    let started = Instant::now();
    let mut out = Vec::new();
    geojson::write(&regions, &mut out)?;
    let written = started.elapsed();
    anyhow::ensure!(geojson::parse(&out, &limits)? == regions, "the written file does not read back the same");

    let rate = |d: std::time::Duration| n as f64 / d.as_secs_f64();
    println!("{n} points, {:.1} MB of QuPath GeoJSON:", file.len() as f64 / 1e6);
    println!("  import (parse + validate)  {:>8.3} s  {:>10.0} points/s", parsed.as_secs_f64(), rate(parsed));
    println!(
        "  export (write)             {:>8.3} s  {:>10.0} points/s  ({:.1} MB)",
        written.as_secs_f64(),
        rate(written),
        out.len() as f64 / 1e6
    );
    Ok(())
}
