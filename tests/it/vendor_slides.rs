//! Slides from every scanner: Hamamatsu NDPI, Philips TIFF, Leica SCN, Ventana BIF and MIRAX
//! (tools/make_vendor_fixtures.py, with planted PHI) read through OpenSlide 4, inspected, read
//! as regions equal to OpenSlide's (through openslide-python, recorded in reference.json),
//! ingested from the command line and the web form as converted, de-identified copies, and
//! not a byte of the planted PHI anywhere.

use std::path::{Path, PathBuf};

use crate::helpers::*;
use evidentia::slides::reader;

/// (fixture, format, what the manifest calls it: the site's own file name, which names the patient)
const VENDORS: [(&str, &str, &str); 5] = [
    ("sample.ndpi", "hamamatsu-ndpi", "DOE_JANE_S24-012345.ndpi"),
    ("philips.tiff", "philips-tiff", "DOE_JANE_S24-012345_philips.tiff"),
    ("leica.scn", "leica-scn", "DOE_JANE_S24-012345.scn"),
    ("ventana.bif", "ventana-bif", "DOE_JANE_S24-012345.bif"),
    ("mirax.mrxs", "mirax", "DOE_JANE_S24-012345.mrxs"),
];

fn vendor_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/slides/vendors").join(name)
}

fn reference() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(vendor_fixture("reference.json")).unwrap()).unwrap()
}

/// Every planted string, and the file names the site gave.
fn planted() -> Vec<String> {
    let mut out: Vec<String> =
        reference()["planted_phi"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    out.push("DOE_JANE".into());
    out
}

fn assert_no_phi(what: &str, bytes: &[u8]) {
    for phi in planted() {
        assert!(!bytes.windows(phi.len()).any(|w| w == phi.as_bytes()), "{phi} found in {what}");
    }
}

/// Copies a fixture to `dir` under `name` (a MIRAX slide with its folder, renamed alike).
fn place(fixture: &str, dir: &Path, name: &str) -> PathBuf {
    let dest = dir.join(name);
    std::fs::copy(vendor_fixture(fixture), &dest).unwrap();
    if reader::is_mirax(&dest) {
        let (from, to) = (vendor_fixture(fixture).with_extension(""), dest.with_extension(""));
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    dest
}

fn subjects_of_snubh(n: usize) -> Vec<(String, String)> {
    let subjects = evidentia::demo::truth::subjects(evidentia::demo::DEMO_SUBJECTS, evidentia::demo::truth::SEED);
    subjects
        .iter()
        .filter(|s| s.site == "SNUBH")
        .take(n)
        .enumerate()
        .map(|(i, s)| (s.hospital_id.clone(), format!("SNUBH-{:04}", i + 1)))
        .collect()
}

#[tokio::test]
async fn every_vendor_format_is_inspected_read_and_ingested_without_its_phi() {
    let app = spawn_app();
    let reference = reference();
    let mut output = Vec::new();
    for (fixture, format, _) in VENDORS {
        let path = vendor_fixture(fixture);
        let out = app.cli(&["slides", "inspect", "--json", path.to_str().unwrap()], None);
        assert!(out.status.success(), "{fixture}: {}", String::from_utf8_lossy(&out.stderr));
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let r = &reference[fixture];
        assert_eq!(info["format"], format);
        assert!(info["backend"].as_str().unwrap().starts_with("openslide 4."), "{info}");
        assert_eq!(info["levels"].as_array().unwrap().len(), r["levels"].as_array().unwrap().len(), "{fixture}");
        assert_eq!(info["mpp_x"], r["mpp_x"]);
        assert_eq!(info["objective_power"], r["objective_power"]);
        assert_eq!(info["associated"].as_array().unwrap().len(), r["associated"].as_array().unwrap().len());
        output.extend(out.stdout);
        output.extend(out.stderr);
        // The whole of level 0 as PNG, against openslide-python's samples (within 2).
        let (w, h) = (r["levels"][0]["width"].as_u64().unwrap(), r["levels"][0]["height"].as_u64().unwrap());
        let png = app.scratch.join(format!("{fixture}.png"));
        let out = app.cli(
            &[
                "slides",
                "region",
                path.to_str().unwrap(),
                "--x",
                "0",
                "--y",
                "0",
                "--width",
                &w.to_string(),
                "--height",
                &h.to_string(),
                "--out",
                png.to_str().unwrap(),
            ],
            None,
        );
        assert!(out.status.success(), "{fixture}: {}", String::from_utf8_lossy(&out.stderr));
        output.extend(out.stdout);
        let mut decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()))
            .read_info()
            .unwrap();
        let mut pixels = vec![0; decoder.output_buffer_size().unwrap()];
        decoder.next_frame(&mut pixels).unwrap();
        for s in r["levels"][0]["samples"].as_array().unwrap() {
            let (x, y) = (s[0].as_u64().unwrap(), s[1].as_u64().unwrap());
            let i = ((y * w + x) * 3) as usize;
            for c in 0..3 {
                let d = (i64::from(pixels[i + c]) - s[2][c].as_i64().unwrap()).abs();
                assert!(d <= 2, "{fixture} at ({x}, {y}): {:?} vs {}", &pixels[i..i + 3], s[2]);
            }
        }
    }

    // Truncated and damaged files: refused with exit 2 and one line, never a panic.
    let bad = app.scratch.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    for (fixture, _, _) in VENDORS.iter().filter(|(f, _, _)| !f.ends_with(".mrxs")) {
        let bytes = std::fs::read(vendor_fixture(fixture)).unwrap();
        let mut damaged = bytes.clone();
        damaged[8..64].fill(0xEE);
        for (n, content) in [("cut", &bytes[..bytes.len() / 50]), ("damaged", &damaged[..])] {
            let p = bad.join(format!("{n}-{fixture}"));
            std::fs::write(&p, content).unwrap();
            let out = app.cli(&["slides", "inspect", p.to_str().unwrap()], None);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{n} {fixture}: {err}");
            assert_eq!(err.trim().lines().count(), 1, "{n} {fixture}: {err}");
        }
    }
    let orphan = bad.join("orphan.mrxs");
    std::fs::write(&orphan, b"").unwrap();
    let out = app.cli(&["slides", "inspect", orphan.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));

    // Without OpenSlide these formats are refused, saying how to enable them.
    let out = app
        .command()
        .args(["slides", "inspect", vendor_fixture("sample.ndpi").to_str().unwrap()])
        .env("EVIDENTIA_OPENSLIDE_LIB", "/nonexistent/libopenslide.so.1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Hamamatsu NDPI") && err.contains("pip install openslide-bin"), "{err}");
    assert!(err.contains("EVIDENTIA_OPENSLIDE_LIB"), "{err}");

    // Ingest from a folder on the server: every format, converted, nothing of the PHI kept.
    let dir = app.scratch.join("scans");
    std::fs::create_dir_all(&dir).unwrap();
    let subjects = subjects_of_snubh(1);
    let (subject, case) = &subjects[0];
    let mut manifest = String::from("file,subject_id,stain,site\n");
    for (fixture, _, name) in VENDORS {
        place(fixture, &dir, name);
        manifest.push_str(&format!("{name},{subject},H&E,SNUBH\n"));
    }
    let m = dir.join("manifest.csv");
    std::fs::write(&m, manifest).unwrap();
    let out = app.cli(&["--as", "manager", "slides", "ingest", "--study", "LUNG-IO-01", "--manifest", m.to_str().unwrap()], None);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("5 ingested"), "{stdout}");
    for (_, _, _) in VENDORS {
        assert!(stdout.contains("re-encoded from"), "{stdout}");
    }
    for from in ["Hamamatsu NDPI", "Philips TIFF", "Leica SCN", "Ventana BIF", "3DHISTECH MIRAX"] {
        assert!(stdout.contains(&format!("re-encoded from {from}, JPEG quality 90")), "{from}: {stdout}");
    }
    output.extend(out.stdout);
    output.extend(out.stderr);
    // The same files again: recognised (a MIRAX slide by its folder's content), not stored twice.
    let out = app.cli(&["--as", "manager", "slides", "ingest", "--study", "LUNG-IO-01", "--manifest", m.to_str().unwrap()], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 ingested, 5 already there"), "{}", String::from_utf8_lossy(&out.stdout));
    output.extend(out.stdout);
    output.extend(out.stderr);

    let study = evidentia::studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap().id;
    for n in 1..=5 {
        let label = format!("{case}-S{n:02}");
        let slide = evidentia::slides::get(&mut app.conn(), study, &label).unwrap();
        assert_eq!(slide.format.as_str(), "generic-tiff");
        let copy = evidentia::slides::open_stored(&app.config.storage, &slide.sha256, slide.format).unwrap();
        assert!(copy.info().associated.is_empty());
        assert_eq!(copy.info().mpp_x.map(|m| (m * 1e6).round() / 1e6), Some(0.25));
        let info = slide.info();
        let conversion = &info["deidentification"]["conversion"];
        assert_eq!(conversion["jpeg_quality"], 90);
        assert!(conversion["psnr_db"].as_f64().unwrap() > 35.0, "{conversion}");
    }
    let events = audit_events(&app, "ingest");
    let converted: Vec<_> = events.iter().filter(|e| e.new_value.as_deref().unwrap_or("").contains("\"conversion\"")).collect();
    assert_eq!(converted.len(), 5);
    let ndpi = converted.iter().find(|e| e.new_value.as_deref().unwrap().contains("Hamamatsu NDPI")).unwrap();
    let new = ndpi.new_value.as_deref().unwrap();
    assert!(new.contains("hamamatsu.Reference") && new.contains("macro") && new.contains("psnr_db"), "{new}");
    // Not a byte of it: the data dir (database, slides), object storage, the commands' output.
    for (f, bytes) in app.every_file() {
        assert_no_phi(&f, &bytes);
    }
    assert_no_phi("the command output", &output);
    // The slides are viewed like any other.
    let c = app.login("manager").await;
    let label = format!("{case}-S01");
    let (s, page) = c.get_text(&format!("/studies/LUNG-IO-01/slides/{label}")).await;
    assert_eq!(s, 200);
    assert!(page.contains("pixels re-encoded from Hamamatsu NDPI, JPEG quality 90"), "{page}");
    assert_no_phi("the slide page", page.as_bytes());
    let r = c.get(&format!("/studies/LUNG-IO-01/slides/{label}/dzi/slide_files/10/1_1.jpeg")).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_web_form_ingests_an_ndpi_slide_and_refuses_a_lone_mrxs_file() {
    let app = spawn_app();
    let c = app.login("manager").await;
    let subjects = subjects_of_snubh(1);
    let (subject, case) = &subjects[0];
    let name = "DOE_JANE_S24-012345.ndpi";
    let upload = |manifest: String, file: &'static str, name: &'static str| {
        let form = reqwest::multipart::Form::new()
            .part("manifest", reqwest::multipart::Part::bytes(manifest.into_bytes()).file_name("manifest.csv"))
            .part(
                "slides",
                reqwest::multipart::Part::bytes(std::fs::read(vendor_fixture(file)).unwrap()).file_name(name),
            );
        c.http.post(c.url(&format!("/studies/LUNG-IO-01/slides/ingest?csrf_token={}", c.csrf))).multipart(form).send()
    };
    let mrxs = "DOE_JANE_S24-012345.mrxs";
    let r = upload(format!("file,subject_id,stain,site\n{mrxs},{subject},H&E,SNUBH\n"), "mirax.mrxs", mrxs).await.unwrap();
    let page = r.text().await.unwrap();
    assert!(page.contains("manifest row 1, column file: a MIRAX slide is a .mrxs file and the folder beside it"), "{page}");
    let r = upload(format!("file,subject_id,stain,site\n{name},{subject},H&E,SNUBH\n"), "sample.ndpi", name).await.unwrap();
    assert_eq!(r.status(), 303);
    let id: i32 = location(&r).rsplit('/').next().unwrap().parse().unwrap();
    let mut page = String::new();
    for _ in 0..600 {
        page = c.get_text(&format!("/studies/LUNG-IO-01/slides/ingests/{id}")).await.1;
        if page.contains("re-encoded from Hamamatsu NDPI") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(page.contains("re-encoded from Hamamatsu NDPI") && page.contains(&format!("{case}-S01")), "{page}");
    assert!(page.contains("hamamatsu.Reference") && page.contains("macro"), "{page}");
    for (f, bytes) in app.every_file() {
        assert_no_phi(&f, &bytes);
    }
}
