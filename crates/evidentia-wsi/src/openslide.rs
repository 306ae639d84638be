//! The scanner vendors' own formats (Hamamatsu NDPI, Philips TIFF, Leica SCN, Roche/Ventana
//! BIF, 3DHISTECH MIRAX, DICOM) read through OpenSlide 4, loaded at run time like ONNX Runtime:
//! `EVIDENTIA_OPENSLIDE_LIB`, else the `openslide-bin` Python wheel's library, else a system
//! `libopenslide.so.1`. Without it these formats are refused with a message that says how to
//! enable them; Aperio SVS and generic TIFF never need it (our own reader, [`super::reader`]).
//!
//! The C API is OpenSlide's `openslide.h` (v4.0.1): every function but `openslide_close` may be
//! called from several threads on one handle.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::OnceLock;

use super::reader::{Level, RgbImage, SlideError, SlideInfo, SlideReader, MAX_IMAGE_PIXELS};

/// A format we hand to OpenSlide: our name for it, what people call it, OpenSlide's vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorFormat {
    /// Stored in `SlideInfo::format`, e.g. "hamamatsu-ndpi".
    pub format: &'static str,
    /// For people, e.g. "Hamamatsu NDPI".
    pub name: &'static str,
    /// `openslide.vendor`, e.g. "hamamatsu".
    pub vendor: &'static str,
}

pub const NDPI: VendorFormat = VendorFormat { format: "hamamatsu-ndpi", name: "Hamamatsu NDPI", vendor: "hamamatsu" };
pub const PHILIPS: VendorFormat = VendorFormat { format: "philips-tiff", name: "Philips TIFF", vendor: "philips" };
pub const LEICA: VendorFormat = VendorFormat { format: "leica-scn", name: "Leica SCN", vendor: "leica" };
pub const VENTANA: VendorFormat = VendorFormat { format: "ventana-bif", name: "Ventana BIF", vendor: "ventana" };
pub const MIRAX: VendorFormat = VendorFormat { format: "mirax", name: "3DHISTECH MIRAX", vendor: "mirax" };
pub const DICOM: VendorFormat = VendorFormat { format: "dicom", name: "DICOM", vendor: "dicom" };
pub const VENDOR_FORMATS: [VendorFormat; 6] = [NDPI, PHILIPS, LEICA, VENTANA, MIRAX, DICOM];

/// The backend name a reader reports for slides read by our own code.
pub const OWN_BACKEND: &str = "evidentia";

type OpenFn = unsafe extern "C" fn(*const c_char) -> *mut c_void;
type HandleFn = unsafe extern "C" fn(*mut c_void);
type ErrorFn = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type CountFn = unsafe extern "C" fn(*mut c_void) -> i32;
type LevelDimsFn = unsafe extern "C" fn(*mut c_void, i32, *mut i64, *mut i64);
type DownsampleFn = unsafe extern "C" fn(*mut c_void, i32) -> f64;
type ReadRegionFn = unsafe extern "C" fn(*mut c_void, *mut u32, i64, i64, i32, i64, i64);
type NamesFn = unsafe extern "C" fn(*mut c_void) -> *const *const c_char;
type ValueFn = unsafe extern "C" fn(*mut c_void, *const c_char) -> *const c_char;
type AssocDimsFn = unsafe extern "C" fn(*mut c_void, *const c_char, *mut i64, *mut i64);
type AssocReadFn = unsafe extern "C" fn(*mut c_void, *const c_char, *mut u32);
type VersionFn = unsafe extern "C" fn() -> *const c_char;

/// The loaded library and the functions we call (plain pointers, valid while `_lib` lives,
/// which is for the whole process: it sits in a `static`).
pub struct Library {
    _lib: libloading::Library,
    pub path: PathBuf,
    pub version: String,
    open: OpenFn,
    close: HandleFn,
    get_error: ErrorFn,
    level_count: CountFn,
    level_dimensions: LevelDimsFn,
    level_downsample: DownsampleFn,
    read_region: ReadRegionFn,
    property_names: NamesFn,
    property_value: ValueFn,
    associated_names: NamesFn,
    associated_dimensions: AssocDimsFn,
    read_associated: AssocReadFn,
}

static LIBRARY: OnceLock<Result<Library, String>> = OnceLock::new();

/// OpenSlide, loaded once per process; or why it could not be.
pub fn library() -> Result<&'static Library, &'static str> {
    LIBRARY
        .get_or_init(|| {
            let path = find_library()
                .ok_or_else(|| "no OpenSlide library was found (EVIDENTIA_OPENSLIDE_LIB is not set, the openslide-bin wheel is not installed, and there is no libopenslide.so.1)".to_string())?;
            load(&path)
        })
        .as_ref()
        .map_err(String::as_str)
}

/// The backend that reads `format` here: "evidentia" for our own formats, "openslide 4.0.1"
/// for the vendors', or "none" when OpenSlide is missing.
pub fn backend_for(format: &str) -> String {
    if !VENDOR_FORMATS.iter().any(|v| v.format == format) {
        return OWN_BACKEND.to_string();
    }
    library().map_or_else(|_| "none".to_string(), |l| format!("openslide {}", l.version))
}

/// Where OpenSlide is: `EVIDENTIA_OPENSLIDE_LIB`, else the `openslide-bin` wheel in a Python
/// environment (the active venv, the user's, the system's), else the system library by name.
pub fn find_library() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("EVIDENTIA_OPENSLIDE_LIB").map(PathBuf::from) {
        return Some(p);
    }
    if let Some(p) = crate::native::python_package_file("openslide_bin", "libopenslide.so") {
        return Some(p);
    }
    ["/usr/local/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"]
        .iter()
        .map(|d| Path::new(d).join("libopenslide.so.1"))
        .find(|p| p.is_file())
}

fn load(path: &Path) -> Result<Library, String> {
    let fail = |e: String| format!("OpenSlide at {} could not be loaded: {e}", path.display());
    // SAFETY: loading a shared library runs its initialisers; this is the OpenSlide library the
    // operator pointed us to (or the one pip installed), which is what we want to run.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| fail(e.to_string()))?;
    macro_rules! sym {
        ($name:literal, $ty:ty) => {
            // SAFETY: the symbol has this C signature in OpenSlide 4 (openslide.h, v4.0.1); the
            // pointer is used only while `lib`, moved into the returned Library, stays loaded.
            *unsafe { lib.get::<$ty>(concat!($name, "\0").as_bytes()) }.map_err(|e| fail(e.to_string()))?
        };
    }
    let version_fn: VersionFn = sym!("openslide_get_version", VersionFn);
    // SAFETY: returns a static NUL-terminated string.
    let version = unsafe { c_text(version_fn()) }.unwrap_or_default();
    let major: u32 = version.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
    if major < 4 {
        return Err(fail(format!("it is OpenSlide {version}; Evidentia needs OpenSlide 4.0 or later")));
    }
    Ok(Library {
        path: path.to_path_buf(),
        version,
        open: sym!("openslide_open", OpenFn),
        close: sym!("openslide_close", HandleFn),
        get_error: sym!("openslide_get_error", ErrorFn),
        level_count: sym!("openslide_get_level_count", CountFn),
        level_dimensions: sym!("openslide_get_level_dimensions", LevelDimsFn),
        level_downsample: sym!("openslide_get_level_downsample", DownsampleFn),
        read_region: sym!("openslide_read_region", ReadRegionFn),
        property_names: sym!("openslide_get_property_names", NamesFn),
        property_value: sym!("openslide_get_property_value", ValueFn),
        associated_names: sym!("openslide_get_associated_image_names", NamesFn),
        associated_dimensions: sym!("openslide_get_associated_image_dimensions", AssocDimsFn),
        read_associated: sym!("openslide_read_associated_image", AssocReadFn),
        _lib: lib,
    })
}

/// # Safety
/// `p` is null or points to a NUL-terminated string that outlives the call.
unsafe fn c_text(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// # Safety
/// `p` is null or a NULL-terminated array of NUL-terminated strings that outlive the call.
unsafe fn c_list(p: *const *const c_char) -> Vec<String> {
    let mut out = Vec::new();
    if p.is_null() {
        return out;
    }
    let mut i = 0;
    // SAFETY: by the contract above, every element up to the terminating NULL is readable.
    while let Some(s) = unsafe { c_text(*p.add(i)) } {
        out.push(s);
        i += 1;
    }
    out
}

/// A slide open in OpenSlide.
pub struct OpenSlideReader {
    lib: &'static Library,
    handle: NonNull<c_void>,
    info: SlideInfo,
}

// SAFETY: OpenSlide handles may be used from several threads at once for everything but close
// (openslide.h: "thread-safe ... except openslide_close"); close runs only in Drop, with `&mut`.
unsafe impl Send for OpenSlideReader {}
// SAFETY: as above.
unsafe impl Sync for OpenSlideReader {}

impl Drop for OpenSlideReader {
    fn drop(&mut self) {
        // SAFETY: the handle came from openslide_open and is closed exactly once.
        unsafe { (self.lib.close)(self.handle.as_ptr()) }
    }
}

/// Opens `path`, which our own sniffing says is `format`, with OpenSlide.
pub fn open(path: &Path, format: VendorFormat) -> Result<OpenSlideReader, SlideError> {
    let lib = library().map_err(|why| {
        SlideError::Unsupported(format!(
            "{} slides are read through OpenSlide 4, which is not available here: {why}. \
             Install it with `pip install openslide-bin` (or the system's OpenSlide 4), \
             or set EVIDENTIA_OPENSLIDE_LIB to the path of libopenslide.so.1",
            format.name
        ))
    })?;
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| SlideError::Unsupported("the file name contains a NUL byte".into()))?;
    // SAFETY: a NUL-terminated path; returns NULL or a handle we own.
    let raw = unsafe { (lib.open)(c_path.as_ptr()) };
    let Some(handle) = NonNull::new(raw) else {
        return Err(SlideError::Unsupported(format!("OpenSlide does not recognise this file as {}", format.name)));
    };
    let mut reader = OpenSlideReader { lib, handle, info: empty_info(format, lib) };
    reader.check()?;
    reader.info = reader.read_info(format)?;
    Ok(reader)
}

fn empty_info(format: VendorFormat, lib: &Library) -> SlideInfo {
    SlideInfo {
        format: format.format.to_string(),
        backend: format!("openslide {}", lib.version),
        width: 0,
        height: 0,
        levels: vec![],
        mpp_x: None,
        mpp_y: None,
        objective_power: None,
        associated: vec![],
        properties: BTreeMap::new(),
    }
}

impl OpenSlideReader {
    fn ptr(&self) -> *mut c_void {
        self.handle.as_ptr()
    }

    /// OpenSlide's error state: once set, every later call fails too.
    fn check(&self) -> Result<(), SlideError> {
        // SAFETY: a live handle; the message is owned by it.
        match unsafe { c_text((self.lib.get_error)(self.ptr())) } {
            None => Ok(()),
            Some(msg) => Err(SlideError::Corrupt(format!("OpenSlide: {msg}"))),
        }
    }

    fn read_info(&self, format: VendorFormat) -> Result<SlideInfo, SlideError> {
        let mut info = empty_info(format, self.lib);
        // SAFETY: a live handle; names and values are owned by it and copied out here.
        let properties: BTreeMap<String, String> = unsafe { c_list((self.lib.property_names)(self.ptr())) }
            .into_iter()
            .filter_map(|name| {
                let c = CString::new(name.as_str()).ok()?;
                // SAFETY: as above.
                let value = unsafe { c_text((self.lib.property_value)(self.ptr(), c.as_ptr())) }?;
                Some((name, value))
            })
            .collect();
        // SAFETY: a live handle.
        let count = unsafe { (self.lib.level_count)(self.ptr()) };
        self.check()?;
        for level in 0..count.max(0) {
            let (mut w, mut h) = (-1i64, -1i64);
            // SAFETY: a live handle, a level below the count, two out-pointers.
            let downsample = unsafe {
                (self.lib.level_dimensions)(self.ptr(), level, &mut w, &mut h);
                (self.lib.level_downsample)(self.ptr(), level)
            };
            if w <= 0 || h <= 0 || downsample < 1.0 {
                return Err(SlideError::Corrupt(format!("OpenSlide reports level {level} as {w} x {h}")));
            }
            info.levels.push(Level { width: w as u64, height: h as u64, downsample });
        }
        self.check()?;
        let Some(first) = info.levels.first() else {
            return Err(SlideError::Corrupt("OpenSlide finds no image level in the file".into()));
        };
        (info.width, info.height) = (first.width, first.height);
        let number = |key: &str| properties.get(key).and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| *v > 0.0);
        info.mpp_x = number("openslide.mpp-x");
        info.mpp_y = number("openslide.mpp-y");
        info.objective_power = number("openslide.objective-power");
        // SAFETY: a live handle.
        info.associated = unsafe { c_list((self.lib.associated_names)(self.ptr())) };
        info.properties = properties;
        Ok(info)
    }

    /// Premultiplied ARGB (OpenSlide's `uint32_t` pixels) over white, as RGB.
    fn over_white(argb: &[u32], width: u32, height: u32) -> RgbImage {
        let mut data = Vec::with_capacity(argb.len() * 3);
        for &p in argb {
            let a = (p >> 24) as u8;
            let white = 255 - a;
            // Premultiplied: each channel is at most alpha, so adding the white that shows
            // through stays within 255 (saturating, for a pixel that breaks that rule).
            data.extend([(p >> 16) as u8, (p >> 8) as u8, p as u8].map(|c| c.saturating_add(white)));
        }
        RgbImage { width, height, data }
    }
}

fn pixel_buffer(w: u64, h: u64) -> Result<Vec<u32>, SlideError> {
    if w.saturating_mul(h) > MAX_IMAGE_PIXELS {
        return Err(SlideError::TooLarge(format!("{w} x {h} pixels is larger than one read may be")));
    }
    Ok(vec![0u32; (w * h) as usize])
}

impl SlideReader for OpenSlideReader {
    fn info(&self) -> &SlideInfo {
        &self.info
    }

    fn read_region(&self, level: usize, x: i64, y: i64, w: u32, h: u32) -> Result<RgbImage, SlideError> {
        if level >= self.info.levels.len() {
            return Err(SlideError::OutOfBounds(format!("level {level} does not exist")));
        }
        let mut buf = pixel_buffer(u64::from(w), u64::from(h))?;
        // SAFETY: a live handle; `buf` holds w*h pixels, as OpenSlide writes.
        unsafe { (self.lib.read_region)(self.ptr(), buf.as_mut_ptr(), x, y, level as i32, i64::from(w), i64::from(h)) };
        self.check()?;
        Ok(Self::over_white(&buf, w, h))
    }

    fn associated_image(&self, name: &str) -> Result<RgbImage, SlideError> {
        if !self.info.associated.iter().any(|a| a == name) {
            return Err(SlideError::NotFound(format!("the slide has no associated image '{name}'")));
        }
        let c = CString::new(name).map_err(|_| SlideError::NotFound(name.to_string()))?;
        let (mut w, mut h) = (-1i64, -1i64);
        // SAFETY: a live handle, a name it listed, two out-pointers.
        unsafe { (self.lib.associated_dimensions)(self.ptr(), c.as_ptr(), &mut w, &mut h) };
        self.check()?;
        let (Ok(w32), Ok(h32)) = (u32::try_from(w), u32::try_from(h)) else {
            return Err(SlideError::Corrupt(format!("OpenSlide reports the {name} image as {w} x {h}")));
        };
        let mut buf = pixel_buffer(u64::from(w32), u64::from(h32))?;
        // SAFETY: `buf` holds w*h pixels, the size OpenSlide just reported for this image.
        unsafe { (self.lib.read_associated)(self.ptr(), c.as_ptr(), buf.as_mut_ptr()) };
        self.check()?;
        Ok(Self::over_white(&buf, w32, h32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::tests::{fixture, matches_reference};
    use serde_json::Value as Json;

    /// The vendor fixtures (tools/make_vendor_fixtures.py) and their OpenSlide formats.
    pub(crate) const VENDOR_FIXTURES: [(&str, VendorFormat); 5] = [
        ("vendors/sample.ndpi", NDPI),
        ("vendors/philips.tiff", PHILIPS),
        ("vendors/leica.scn", LEICA),
        ("vendors/ventana.bif", VENTANA),
        ("vendors/mirax.mrxs", MIRAX),
    ];

    fn reference() -> Json {
        serde_json::from_str(&std::fs::read_to_string(fixture("vendors/reference.json")).unwrap()).unwrap()
    }

    /// The test command installs OpenSlide (the openslide-bin wheel) and points
    /// EVIDENTIA_OPENSLIDE_LIB at it; a test that quietly passed without it would prove nothing.
    fn require_library() -> &'static Library {
        library().unwrap_or_else(|why| panic!("these tests need OpenSlide 4 (run them with tools/test): {why}"))
    }

    #[test]
    fn vendor_fixtures_read_as_openslide_python_does() {
        let lib = require_library();
        let reference = reference();
        for (path, format) in VENDOR_FIXTURES {
            let name = path.trim_start_matches("vendors/");
            // Through OpenSlide itself, also for the formats our own code reads.
            let slide = open(&fixture(path), format).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(slide.info().format, format.format, "{name}");
            assert_eq!(slide.info().backend, format!("openslide {}", lib.version));
            // The same library through another binding: only our ARGB-over-white conversion
            // and coordinates can differ, and they must not.
            let worst = matches_reference(name, &slide, &reference[name], 0);
            assert_eq!(worst, 0, "{name}");
            for a in &slide.info().associated {
                let img = slide.associated_image(a).unwrap();
                let size = &reference[name]["associated_sizes"][a];
                assert_eq!(
                    (u64::from(img.width), u64::from(img.height)),
                    (size[0].as_u64().unwrap(), size[1].as_u64().unwrap())
                );
            }
            // Everything OpenSlide shows of the planted PHI is in the properties we hold (and
            // so must be dropped by de-identification).
            for key in reference[name]["phi_properties"].as_array().unwrap() {
                assert!(slide.info().properties.contains_key(key.as_str().unwrap()), "{name}: {key}");
            }
        }
    }

    #[test]
    fn outside_a_vendor_slide_is_white() {
        require_library();
        // The scanned area starts at (128, 96) of the collection OpenSlide shows.
        let slide = open(&fixture("vendors/leica.scn"), LEICA).unwrap();
        let img = slide.read_region(0, 118, 86, 20, 20).unwrap();
        assert_eq!(img.get(0, 0), [255, 255, 255]);
        assert_ne!(img.get(15, 15), [255, 255, 255]);
        assert!(slide.read_region(9, 0, 0, 1, 1).is_err());
        assert!(matches!(slide.associated_image("label"), Err(SlideError::NotFound(_))));
    }

    #[test]
    fn own_formats_never_go_to_openslide() {
        let slide = crate::reader::open(&fixture("aperio.svs")).unwrap();
        assert_eq!(slide.info().backend, OWN_BACKEND);
        assert_eq!(backend_for("aperio-svs"), OWN_BACKEND);
    }

    #[test]
    fn damaged_vendor_files_fail_cleanly() {
        require_library();
        let dir = tempfile::tempdir().unwrap();
        for (path, _) in VENDOR_FIXTURES.iter().filter(|(p, _)| !p.ends_with(".mrxs")) {
            let bytes = std::fs::read(fixture(path)).unwrap();
            let name = path.trim_start_matches("vendors/");
            for cut in [0, 8, 16, 200, bytes.len() / 3, bytes.len() - 100] {
                let p = dir.path().join(name);
                std::fs::write(&p, &bytes[..cut]).unwrap();
                if let Ok(slide) = crate::reader::open(&p) {
                    // OpenSlide opens some truncated files and fails on the tiles that are gone.
                    let info = slide.info().clone();
                    let l = info.levels.len() - 1;
                    let _ = slide.read_region(0, 0, 0, 256, 256);
                    let _ = slide.read_region(l, 0, 0, info.levels[l].width as u32, info.levels[l].height as u32);
                }
            }
        }
        // A MIRAX slide whose folder is gone or broken.
        let mrxs = dir.path().join("gone.mrxs");
        std::fs::write(&mrxs, b"").unwrap();
        assert!(crate::reader::open(&mrxs).is_err());
        std::fs::create_dir(dir.path().join("gone")).unwrap();
        std::fs::write(dir.path().join("gone/Slidedat.ini"), b"[GENERAL]\nSLIDE_ID=x\n").unwrap();
        assert!(crate::reader::open(&mrxs).is_err());
    }

    #[test]
    fn vendor_slides_are_converted_without_their_phi() {
        require_library();
        let reference = reference();
        let planted: Vec<String> =
            reference["planted_phi"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        let dir = tempfile::tempdir().unwrap();
        for (path, format) in VENDOR_FIXTURES {
            let name = path.trim_start_matches("vendors/");
            let dest = dir.path().join(format!("{name}.tiff"));
            let (outcome, info) =
                crate::deid::deidentify(&fixture(path), &dest).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            let r = &reference[name];
            let conversion = outcome.conversion.as_ref().unwrap();
            assert_eq!(conversion.from, format.name);
            // Philips TIFF and Ventana BIF have their tiles copied; the others are re-encoded.
            let copied = [PHILIPS, VENTANA].contains(&format);
            assert_eq!(conversion.psnr_db.is_none(), copied, "{name}: {conversion:?}");
            assert!(copied || conversion.psnr_db.unwrap() > 35.0, "{name}: {conversion:?}");
            eprintln!("{name}: {}", conversion.summary());
            let mut removed = outcome.removed_images.clone();
            removed.sort();
            assert_eq!(Json::from(removed), r["associated"], "{name}");
            let native = crate::reader::open(&fixture(path)).unwrap().info().backend == OWN_BACKEND;
            for key in r["phi_properties"].as_array().unwrap() {
                // Our own reader names the tags OpenSlide derives openslide.barcode from.
                let key = key.as_str().unwrap();
                assert!(
                    outcome.removed_metadata.iter().any(|k| k == key) || (native && key.starts_with("openslide.")),
                    "{name}: {key} not listed"
                );
            }
            // The copy: our own TIFF, same levels and resolution, nothing else. (OpenSlide shows
            // an NDPI with three more levels, scaled from its smallest JPEG; we read the three
            // the file holds.)
            assert_eq!((info.format.as_str(), info.backend.as_str()), ("generic-tiff", OWN_BACKEND));
            let levels = if format == NDPI { 3 } else { r["levels"].as_array().unwrap().len() };
            assert_eq!(info.levels.len(), levels, "{name}");
            assert!((info.mpp_x.unwrap() - 0.25).abs() < 1e-6 && info.associated.is_empty());
            assert_eq!(info.objective_power, r["objective_power"].as_f64());
            let bytes = std::fs::read(&dest).unwrap();
            for phi in &planted {
                assert!(!bytes.windows(phi.len()).any(|w| w == phi.as_bytes()), "{name}: {phi} in the copy");
            }
        }
    }
}
