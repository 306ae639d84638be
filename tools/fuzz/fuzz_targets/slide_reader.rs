//! Any bytes given to the slide reader: it must answer with an error or a slide, never panic,
//! and never allocate beyond what the file's size justifies. Reads every level's corner and
//! centre and every associated image of what opens.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("evidentia-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("input.bin");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(slide) = evidentia::slides::reader::open(&path) else { return };
    let info = slide.info().clone();
    for (l, level) in info.levels.iter().enumerate() {
        let ds = level.downsample;
        let _ = slide.read_region(l, 0, 0, 64, 64);
        let cx = (level.width as f64 / 2.0 * ds) as i64;
        let cy = (level.height as f64 / 2.0 * ds) as i64;
        let _ = slide.read_region(l, cx, cy, 300, 300);
        let _ = slide.read_region(l, -10, -10, 20, 20);
    }
    for name in &info.associated {
        let _ = slide.associated_image(name);
    }
    if let Some(tiff) = slide.tiff() {
        for (d, dir) in tiff.directories().iter().enumerate() {
            for c in 0..dir.chunk_offsets.len().min(4) {
                let _ = tiff.raw_chunk(d, c);
            }
        }
    }
});
