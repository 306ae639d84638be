//! Slides from every scanner: Hamamatsu NDPI, Philips TIFF, Leica SCN, Ventana BIF and MIRAX
//! (tools/make_vendor_fixtures.py, with planted PHI) read by our own code (NDPI, Philips, BIF)
//! or through OpenSlide 4 (SCN, MIRAX), inspected, read as regions equal to OpenSlide's
//! (through openslide-python, recorded in reference.json), ingested from the command line and
//! the web form as de-identified copies (tiles copied, or re-encoded), and not a byte of the
//! planted PHI anywhere.

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
        // Ours for NDPI, Philips and BIF (OpenSlide adds three levels to an NDPI, scaled from
        // its smallest JPEG: we show the three it holds); OpenSlide's for SCN and MIRAX.
        let (backend, levels) = match format {
            "hamamatsu-ndpi" => ("evidentia", 3),
            "philips-tiff" | "ventana-bif" => ("evidentia", r["levels"].as_array().unwrap().len()),
            _ => ("openslide 4.", r["levels"].as_array().unwrap().len()),
        };
        assert!(info["backend"].as_str().unwrap().starts_with(backend), "{info}");
        assert_eq!(info["levels"].as_array().unwrap().len(), levels, "{fixture}");
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
        let mut decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap())).read_info().unwrap();
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
        .args(["slides", "inspect", vendor_fixture("leica.scn").to_str().unwrap()])
        .env("EVIDENTIA_OPENSLIDE_LIB", "/nonexistent/libopenslide.so.1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("Leica SCN") && err.contains("pip install openslide-bin"), "{err}");
    // ... and NDPI, Philips and BIF are read by our own code all the same.
    for fixture in ["sample.ndpi", "philips.tiff", "ventana.bif"] {
        let out = app
            .command()
            .args(["slides", "inspect", vendor_fixture(fixture).to_str().unwrap()])
            .env("EVIDENTIA_OPENSLIDE_LIB", "/nonexistent/libopenslide.so.1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{fixture}: {}", String::from_utf8_lossy(&out.stderr));
    }
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
    // A DICOM series as a PACS gives it: a folder of instances; the row names any one of them.
    let series = dir.join("DOE_JANE_S24-012345_pacs");
    std::fs::create_dir_all(&series).unwrap();
    for e in std::fs::read_dir(vendor_fixture("dicom")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), series.join(e.file_name())).unwrap();
    }
    manifest.push_str(&format!("level-1.dcm,{subject},H&E,SNUBH\n"));
    let m = dir.join("manifest.csv");
    std::fs::write(&m, manifest).unwrap();
    let out = app.cli(
        &["--as", "manager", "slides", "ingest", "--study", "LUNG-IO-01", "--manifest", m.to_str().unwrap()],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("6 ingested"), "{stdout}");
    assert!(stdout.contains("frames copied byte for byte from DICOM"), "{stdout}");
    for from in ["Hamamatsu NDPI", "Leica SCN", "3DHISTECH MIRAX"] {
        assert!(stdout.contains(&format!("re-encoded from {from}, JPEG quality 90")), "{from}: {stdout}");
    }
    for from in ["Philips TIFF", "Ventana BIF"] {
        assert!(stdout.contains(&format!("tiles copied byte for byte from {from}")), "{from}: {stdout}");
    }
    output.extend(out.stdout);
    output.extend(out.stderr);
    // The same files again: recognised (a MIRAX slide by its folder's content), not stored twice.
    let out = app.cli(
        &["--as", "manager", "slides", "ingest", "--study", "LUNG-IO-01", "--manifest", m.to_str().unwrap()],
        None,
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 ingested, 6 already there"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    output.extend(out.stdout);
    output.extend(out.stderr);

    let study = evidentia::studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap().id;
    for n in 1..=6 {
        let label = format!("{case}-S{n:02}");
        let slide = evidentia::slides::get(&mut app.conn(), study, &label).unwrap();
        assert_eq!(slide.format.as_str(), "generic-tiff");
        let copy = evidentia::slides::open_stored(&app.config.storage, &slide.sha256, slide.format).unwrap();
        assert!(copy.info().associated.is_empty());
        assert_eq!(copy.info().mpp_x.map(|m| (m * 1e6).round() / 1e6), Some(0.25));
        let info = slide.info();
        let conversion = &info["deidentification"]["conversion"];
        if [2, 4, 6].contains(&n) {
            // Philips, Ventana, DICOM: copied.
            assert!(conversion["jpeg_quality"].is_null() && conversion["psnr_db"].is_null(), "{conversion}");
        } else {
            assert_eq!(conversion["jpeg_quality"], 90);
            assert!(conversion["psnr_db"].as_f64().unwrap() > 35.0, "{conversion}");
        }
    }
    let events = audit_events(&app, "ingest");
    let converted: Vec<_> =
        events.iter().filter(|e| e.new_value.as_deref().unwrap_or("").contains("\"conversion\"")).collect();
    assert_eq!(converted.len(), 6);
    let dicom = converted.iter().find(|e| e.new_value.as_deref().unwrap().contains("\"from\":\"DICOM\"")).unwrap();
    let new = dicom.new_value.as_deref().unwrap();
    assert!(
        new.contains("dicom.PatientName") && new.contains("dicom.AccessionNumber") && new.contains("label"),
        "{new}"
    );
    // PS3.15's Basic Profile with the Retain Device Identity Option, recorded with what it kept.
    let event: serde_json::Value = serde_json::from_str(new).unwrap();
    let profile = &event["dicom_profile"];
    assert_eq!(profile["profile"], "Basic Application Level Confidentiality Profile");
    assert_eq!(profile["options"], serde_json::json!(["Retain Device Identity Option"]));
    assert_eq!(profile["retained"]["DeviceSerialNumber"], "UFS-DEVICE-4711");
    assert_eq!(profile["retained"]["Manufacturer"], "Philips");
    assert!(!new.contains("dicom.DeviceSerialNumber"), "kept, so not listed as removed: {new}");
    assert!(stdout.contains("with the Retain Device Identity Option"), "{stdout}");
    let ndpi = converted.iter().find(|e| e.new_value.as_deref().unwrap().contains("Hamamatsu NDPI")).unwrap();
    let new = ndpi.new_value.as_deref().unwrap();
    assert!(new.contains("hamamatsu.Reference") && new.contains("macro") && new.contains("psnr_db"), "{new}");
    // Export two of them as DICOM: the NDPI slide (converted at ingest) and the DICOM one.
    let exported = app.scratch.join("pacs");
    let args = |format: &str, slides: &[String]| {
        let mut a: Vec<String> = ["slides", "export", "--study", "LUNG-IO-01", "--format", format, "--out"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(exported.display().to_string());
        for s in slides {
            a.extend(["--slide".to_string(), s.clone()]);
        }
        a
    };
    let run = |a: Vec<String>, who: &str| {
        let mut all = vec!["--as".to_string(), who.to_string()];
        all.extend(a);
        app.cli(&all.iter().map(String::as_str).collect::<Vec<_>>(), None)
    };
    let chosen = [format!("{case}-S01"), format!("{case}-S06")];
    let out = run(args("dicom", &chosen), "annotator1");
    assert_eq!(out.status.code(), Some(2), "annotators see no slides");
    let out = run(args("tiff", &chosen), "manager");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the only export format is dicom"));
    let out = run(args("dicom", &["NOPE-S01".to_string()]), "manager");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--slide NOPE-S01"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(args("dicom", &chosen), "manager");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("2 slides exported as DICOM"), "{stdout}");
    output.extend(out.stdout);
    output.extend(out.stderr);
    let python = std::env::var("EVIDENTIA_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/check_dicom_export.py");
    let mut study_uids = Vec::new();
    for label in &chosen {
        let png = app.scratch.join(format!("{label}-openslide.png"));
        let check = std::process::Command::new(&python)
            .arg(&script)
            .arg(exported.join(label))
            .arg(&png)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "{python}: {e} (set EVIDENTIA_TEST_PYTHON to a Python with pydicom and openslide; tools/test does)"
                )
            });
        assert!(
            check.status.success(),
            "{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
        let slide = evidentia::slides::get(&mut app.conn(), study, label).unwrap();
        let copy = evidentia::slides::open_stored(&app.config.storage, &slide.sha256, slide.format).unwrap();
        let levels = report["levels"].as_array().unwrap();
        assert_eq!(levels.len(), copy.info().levels.len(), "{report}");
        for (l, level) in levels.iter().enumerate() {
            assert_eq!(level["sop_class"], "1.2.840.10008.5.1.4.1.1.77.1.6");
            assert_eq!(level["transfer_syntax"], "1.2.840.10008.1.2.4.50");
            assert_eq!(
                (level["patient_id"].as_str(), level["identity_removed"].as_str()),
                (Some(case.as_str()), Some("YES"))
            );
            // PS3.15: the Basic Profile; for the slide that came as DICOM, with the Retain
            // Device Identity Option, its scanner named as it was.
            if slide.info()["deidentification"]["dicom_profile"].is_null() {
                assert_eq!(level["deid_codes"], serde_json::json!(["113100"]));
                assert_eq!(
                    (level["manufacturer"].as_str(), level["device_serial"].as_str()),
                    (Some("Evidentia"), Some(""))
                );
            } else {
                assert_eq!(level["deid_codes"], serde_json::json!(["113100", "113109"]));
                assert_eq!(
                    (level["manufacturer"].as_str(), level["device_serial"].as_str()),
                    (Some("Philips"), Some("UFS-DEVICE-4711"))
                );
            }
            study_uids.push(level["study_uid"].as_str().unwrap().to_string());
            // The frames are the stored copy's tiles, byte for byte.
            let tiff = copy.tiff().unwrap();
            let dir = tiff.directories().iter().position(|d| d.role == reader::DirectoryRole::Level(l)).unwrap();
            for (i, sha) in level["frames"].as_array().unwrap().iter().enumerate() {
                let tile = tiff.raw_chunk(dir, i).unwrap();
                assert_eq!(
                    sha.as_str().unwrap(),
                    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&tile)),
                    "{label} level {l} frame {i}"
                );
            }
        }
        // OpenSlide sees the same pyramid and pixels (two JPEG decoders: within a few levels).
        let os = &report["openslide"];
        assert_eq!(os["vendor"], "dicom");
        assert_eq!(os["levels"].as_array().unwrap().len(), copy.info().levels.len());
        assert!((os["mpp_x"].as_f64().unwrap() - 0.25).abs() < 1e-6, "{os}");
        let mut decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap())).read_info().unwrap();
        let mut theirs = vec![0; decoder.output_buffer_size().unwrap()];
        decoder.next_frame(&mut theirs).unwrap();
        let ours = copy.read_region(0, 0, 0, copy.info().width as u32, copy.info().height as u32).unwrap();
        let worst = ours.data.iter().zip(&theirs).map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs()).max().unwrap();
        assert!(worst <= 6, "{label}: OpenSlide's pixels differ by up to {worst}");
    }
    // Each exported slide is audited (system chain, like the dossier), by who exported it.
    let exports = audit_events(&app, "export_slides");
    assert_eq!(exports.len(), 2, "{exports:?}");
    assert!(exports
        .iter()
        .all(|e| e.actor == "manager" && e.new_value.as_deref().unwrap_or("").contains("\"format\":\"dicom\"")));
    // One study, one Study Instance UID; a slide, its own series.
    study_uids.dedup();
    assert_eq!(study_uids.len(), 1);
    // Exported again: the same bytes (UIDs mapped from the study's key, not drawn).
    let first = std::fs::read(exported.join(&chosen[1]).join("level-0.dcm")).unwrap();
    assert!(run(args("dicom", &chosen[1..]), "manager").status.success());
    assert_eq!(std::fs::read(exported.join(&chosen[1]).join("level-0.dcm")).unwrap(), first);
    // Not a byte of it: the data dir (database, slides), object storage, the commands' output,
    // the export (nor the original DICOM UIDs).
    for (f, bytes) in app.every_file() {
        assert_no_phi(&f, &bytes);
    }
    assert_no_phi("the command output", &output);
    let uids: Vec<String> =
        reference["dicom_uids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    for f in files_under(&exported) {
        let bytes = std::fs::read(&f).unwrap();
        assert_no_phi(&f.display().to_string(), &bytes);
        for uid in &uids {
            assert!(!bytes.windows(uid.len()).any(|w| w == uid.as_bytes()), "the original UID {uid} in {f:?}");
        }
    }
    // The slides are viewed like any other.
    let c = app.login("manager").await;
    let label = format!("{case}-S01");
    let (s, page) = c.get_text(&format!("/studies/LUNG-IO-01/slides/{label}")).await;
    assert_eq!(s, 200);
    assert!(page.contains("pixels re-encoded from Hamamatsu NDPI, JPEG quality 90"), "{page}");
    assert_no_phi("the slide page", page.as_bytes());
    let r = c.get(&format!("/studies/LUNG-IO-01/slides/{label}/dzi/slide_files/10/1_1.jpeg")).await;
    assert_eq!(r.status(), 200);
    // The slide page's DICOM download: the same series as the command writes.
    assert!(page.contains(&format!("/slides/{label}/dicom.zip")), "{page}");
    let r = c.get(&format!("/studies/LUNG-IO-01/slides/{}/dicom.zip", chosen[1])).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/zip");
    let bytes = r.bytes().await.unwrap().to_vec();
    assert_no_phi("the DICOM download", &bytes);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(zip.len(), 3);
    let mut level0 = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name(&format!("{}/level-0.dcm", chosen[1])).unwrap(), &mut level0).unwrap();
    assert_eq!(level0, first, "the download is the command's export");
    let leftovers: Vec<_> = files_under(&app.data_dir.join("tmp"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("dicom-export"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(audit_events(&app, "export_slides").len(), 4, "the download is audited too");
    let r = c.get("/studies/LUNG-IO-01/slides/NOPE-S01/dicom.zip").await;
    assert_eq!(r.status(), 404);
    let annotator = app.login("annotator1").await;
    let r = annotator.get(&format!("/studies/LUNG-IO-01/slides/{}/dicom.zip", chosen[1])).await;
    assert_eq!(r.status(), 404, "annotators see no slides outside their reads");
}

#[tokio::test]
async fn the_web_form_ingests_vendor_slides_as_files_and_folders() {
    let app = spawn_app();
    let c = app.login("manager").await;
    let subjects = subjects_of_snubh(1);
    let (subject, case) = &subjects[0];
    // The ingest form, posted.
    let post = |form: reqwest::multipart::Form| async {
        let url = c.url(&format!("/studies/LUNG-IO-01/slides/ingest?csrf_token={}", c.csrf));
        c.http.post(url).multipart(form).send().await.unwrap()
    };
    let upload = |files: &[(&str, &str)]| {
        let mut manifest = String::from("file,subject_id,stain,site\n");
        let mut form = reqwest::multipart::Form::new();
        for (fixture, name) in files {
            manifest.push_str(&format!("{name},{subject},H&E,SNUBH\n"));
            let bytes = std::fs::read(vendor_fixture(fixture)).unwrap();
            form = form.part("slides", reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()));
        }
        post(form.part("manifest", reqwest::multipart::Part::bytes(manifest.into_bytes()).file_name("manifest.csv")))
    };
    let r = upload(&[("mirax.mrxs", "DOE_JANE_S24-012345.mrxs")]).await;
    let page = r.text().await.unwrap();
    assert!(
        page.contains("manifest row 1, column file: a MIRAX slide is a .mrxs file and the folder of the same name"),
        "{page}"
    );
    // A name that climbs out of its folder is refused; nothing is queued.
    let form = reqwest::multipart::Form::new()
        .part("slides", reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("scans/../../etc/x.ndpi"))
        .part(
            "manifest",
            reqwest::multipart::Part::bytes(
                format!("file,subject_id,stain,site\nx.ndpi,{subject},H&E,SNUBH\n").into_bytes(),
            )
            .file_name("manifest.csv"),
        );
    let page = post(form).await.text().await.unwrap();
    assert!(page.contains("a file&#39;s name or folder cannot be used"), "{page}");
    // Every single-file format at once, under the names sites give them; a DICOM instance
    // uploaded alone is a slide of its one level.
    let r = upload(&[
        ("sample.ndpi", "DOE_JANE_S24-012345.ndpi"),
        ("philips.tiff", "DOE_JANE_philips.tiff"),
        ("leica.scn", "DOE_JANE.scn"),
        ("ventana.bif", "DOE_JANE.bif"),
        ("dicom/level-1.dcm", "DOE_JANE.dcm"),
    ])
    .await;
    assert_eq!(r.status(), 303);
    let id: i32 = location(&r).rsplit('/').next().unwrap().parse().unwrap();
    let mut page = String::new();
    for _ in 0..600 {
        page = c.get_text(&format!("/studies/LUNG-IO-01/slides/ingests/{id}")).await.1;
        if page.contains(&format!("{case}-S05")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for from in ["Hamamatsu NDPI", "Leica SCN"] {
        assert!(page.contains(&format!("re-encoded from {from}")), "{from}: {page}");
    }
    for from in ["Philips TIFF", "Ventana BIF"] {
        assert!(page.contains(&format!("tiles copied byte for byte from {from}")), "{from}: {page}");
    }
    assert!(page.contains("frames copied byte for byte from DICOM") && page.contains(&format!("{case}-S05")), "{page}");
    assert!(page.contains("hamamatsu.Reference") && page.contains("dicom.PatientName"), "{page}");
    assert_no_phi("the ingest page", page.as_bytes());

    // Folders, as a browser sends them (each file named by its path in the folder chosen): a
    // MIRAX slide and the folder beside it, and a DICOM series whose row names one instance.
    let mut form = reqwest::multipart::Form::new();
    let mut add = |path: &Path, sent: String| {
        let bytes = std::fs::read(path).unwrap();
        form = std::mem::take(&mut form).part("slides", reqwest::multipart::Part::bytes(bytes).file_name(sent));
    };
    add(&vendor_fixture("mirax.mrxs"), "scans/DOE_JANE_S24-012345.mrxs".into());
    for e in std::fs::read_dir(vendor_fixture("mirax")).unwrap() {
        let p = e.unwrap().path();
        add(&p, format!("scans/DOE_JANE_S24-012345/{}", p.file_name().unwrap().to_string_lossy()));
    }
    for e in std::fs::read_dir(vendor_fixture("dicom-sparse")).unwrap() {
        let p = e.unwrap().path();
        add(&p, format!("DOE_JANE_pacs/{}", p.file_name().unwrap().to_string_lossy()));
    }
    let manifest = format!(
        "file,subject_id,stain,site\nDOE_JANE_S24-012345.mrxs,{subject},H&E,SNUBH\nlevel-1.dcm,{subject},H&E,SNUBH\n"
    );
    let form = form.part("manifest", reqwest::multipart::Part::bytes(manifest.into_bytes()).file_name("manifest.csv"));
    let r = post(form).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let id: i32 = location(&r).rsplit('/').next().unwrap().parse().unwrap();
    for _ in 0..600 {
        page = c.get_text(&format!("/studies/LUNG-IO-01/slides/ingests/{id}")).await.1;
        if page.contains(&format!("{case}-S07")) || page.contains("job-failed") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(page.contains("re-encoded from 3DHISTECH MIRAX") && page.contains(&format!("{case}-S06")), "{page}");
    assert!(page.contains("frames copied byte for byte from DICOM") && page.contains(&format!("{case}-S07")), "{page}");
    // The series arrived whole: every level of it, not the one instance the row names.
    let study = evidentia::studies::get_by_code(&mut app.conn(), "LUNG-IO-01").unwrap().id;
    let slide = evidentia::slides::get(&mut app.conn(), study, &format!("{case}-S07")).unwrap();
    let copy = evidentia::slides::open_stored(&app.config.storage, &slide.sha256, slide.format).unwrap();
    assert_eq!(copy.info().levels.len(), 3);
    assert_eq!(copy.info().width, 1024);
    assert_no_phi("the ingest page", page.as_bytes());
    for (f, bytes) in app.every_file() {
        assert_no_phi(&f, &bytes);
    }
}
