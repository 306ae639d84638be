//! Shared by the benchmarks: the big synthetic slides they run on, drawn once and kept.

use std::path::{Path, PathBuf};
use std::time::Instant;

use evidentia::slides::synth::{self, Phenotype, SynthParams};

/// `dir/name` (a mixed-phenotype synthetic slide of w × h px at 0.5 µm/px), drawn if missing
/// (through a partial file, so an interrupted run draws it again).
pub fn synthetic_slide(dir: &Path, name: &str, w: u32, h: u32, seed: u64) -> anyhow::Result<PathBuf> {
    let slide = dir.join(name);
    if !slide.exists() {
        let t = Instant::now();
        let partial = dir.join(format!("partial-{name}"));
        synth::write_slide(&partial, &SynthParams::new(w, h, 0.5, Phenotype::Mixed, seed), &mut |d, n| {
            if d % 500 == 0 || d == n {
                eprint!("\rgenerating the {w}x{h} slide: {d}/{n} tiles");
            }
        })?;
        std::fs::rename(&partial, &slide)?;
        eprintln!("\ngenerated in {:.1} s", t.elapsed().as_secs_f64());
    }
    Ok(slide)
}
