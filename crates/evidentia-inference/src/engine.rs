//! The inference engine: ort's API over one of two backends, chosen once per process.
//! ONNX Runtime (the production path) is loaded at run time from `EVIDENTIA_ORT_LIB`,
//! `ORT_DYLIB_PATH` or an installed `onnxruntime` Python wheel; without it, tract (pure Rust,
//! ~10× slower) runs the same models so that a machine with only the Rust toolchain works.
//! `EVIDENTIA_INFERENCE_BACKEND=onnxruntime|tract` forces one.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ndarray::ArrayD;
use ort::session::Session;
use ort::value::Tensor;

/// Which library answers ort's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum BackendKind {
    #[serde(rename = "onnxruntime")]
    OnnxRuntime,
    #[serde(rename = "tract")]
    Tract,
}

impl BackendKind {
    /// Every backend, in order of preference.
    pub const ALL: [BackendKind; 2] = [BackendKind::OnnxRuntime, BackendKind::Tract];

    pub fn as_str(&self) -> &'static str {
        match self {
            BackendKind::OnnxRuntime => "onnxruntime",
            BackendKind::Tract => "tract",
        }
    }
}

/// The backend this process uses, and where it came from (the library path, or why not).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Backend {
    pub kind: BackendKind,
    /// For operators (logs, the CLI): the version and the library's path, or why not.
    pub detail: String,
    /// For pages: the version, or why not, without server paths.
    pub summary: String,
}

impl Backend {
    /// What to tell users when inference falls back to tract.
    pub fn warning(&self) -> Option<String> {
        (self.kind == BackendKind::Tract).then(|| {
            format!(
                "inference runs on tract, about 10× slower than ONNX Runtime ({}). To use ONNX Runtime: \
                 `pip install onnxruntime`, or set EVIDENTIA_ORT_LIB to a libonnxruntime.so",
                self.detail
            )
        })
    }
}

static BACKEND: OnceLock<Result<Backend, String>> = OnceLock::new();

/// The process's backend, initialised on first use (ort accepts one API per process).
pub fn backend() -> Result<&'static Backend, String> {
    BACKEND.get_or_init(init_backend).as_ref().map_err(Clone::clone)
}

fn init_backend() -> Result<Backend, String> {
    let wanted = std::env::var("EVIDENTIA_INFERENCE_BACKEND").unwrap_or_default();
    let backend = match wanted.as_str() {
        "tract" => tract("EVIDENTIA_INFERENCE_BACKEND=tract".into()),
        "onnxruntime" => {
            let lib = find_onnxruntime()
                .ok_or("EVIDENTIA_INFERENCE_BACKEND=onnxruntime but no ONNX Runtime library found")?;
            load_onnxruntime(&lib)?
        }
        "" | "auto" => match find_onnxruntime() {
            Some(lib) => match load_onnxruntime(&lib) {
                Ok(b) => b,
                Err(e) => tract(format!("ONNX Runtime at {} did not load: {e}", lib.display())),
            },
            None => tract("no ONNX Runtime library found".into()),
        },
        other => return Err(format!("EVIDENTIA_INFERENCE_BACKEND={other:?}: use onnxruntime, tract or auto")),
    };
    if let Some(w) = backend.warning() {
        tracing::warn!("{w}");
    } else {
        tracing::info!(backend = backend.kind.as_str(), detail = %backend.detail, "inference backend");
    }
    Ok(backend)
}

fn tract(why: String) -> Backend {
    ort::set_api(ort_tract::api());
    Backend {
        kind: BackendKind::Tract,
        detail: why,
        summary: "tract, the pure-Rust engine (ONNX Runtime is not in use on this server)".into(),
    }
}

/// `EVIDENTIA_ORT_LIB`, `ORT_DYLIB_PATH`, or `onnxruntime/capi/libonnxruntime.so*` in a Python
/// site-packages folder (the active virtualenv's, the user's, the system's).
pub fn find_onnxruntime() -> Option<PathBuf> {
    for var in ["EVIDENTIA_ORT_LIB", "ORT_DYLIB_PATH"] {
        if let Some(p) = std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_file()) {
            return Some(p);
        }
    }
    evidentia_wsi::native::python_package_file("onnxruntime/capi", "libonnxruntime.so")
}

/// Loads ONNX Runtime and hands its API table to ort (the recipe the ort maintainers give for
/// `alternative-backend`: `OrtGetApiBase()->GetApi(ORT_API_VERSION)`, then `ort::set_api`).
fn load_onnxruntime(path: &Path) -> Result<Backend, String> {
    // SAFETY: loading a shared library runs its initialisers; this is the ONNX Runtime library
    // the operator pointed us to (or the one pip installed), which is what we want to run.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    type GetApiBase = unsafe extern "C" fn() -> *const ort_sys::OrtApiBase;
    // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime release (onnxruntime_c_api.h).
    let get_base: libloading::Symbol<GetApiBase> = unsafe { lib.get(b"OrtGetApiBase\0") }.map_err(|e| e.to_string())?;
    // SAFETY: the base and the API table are static in the library, which we keep loaded for the
    // life of the process (forgotten below); GetApi returns null for an unsupported version.
    let api = unsafe {
        let base = get_base();
        if base.is_null() {
            return Err("OrtGetApiBase returned null".into());
        }
        let get_api = (*base).GetApi;
        let api = get_api(ort_sys::ORT_API_VERSION);
        if api.is_null() {
            return Err(format!("this ONNX Runtime does not serve API version {}", ort_sys::ORT_API_VERSION));
        }
        std::ptr::read(api)
    };
    let version = unsafe {
        let base = get_base();
        std::ffi::CStr::from_ptr(((*base).GetVersionString)()).to_string_lossy().into_owned()
    };
    std::mem::forget(lib);
    ort::set_api(api);
    Ok(Backend {
        kind: BackendKind::OnnxRuntime,
        detail: format!("ONNX Runtime {version} from {}", path.display()),
        summary: format!("ONNX Runtime {version}"),
    })
}

/// A tensor's name and shape as the model declares it (-1 for a dynamic dimension).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<i64>,
    pub float32: bool,
}

/// One loaded model: its session and declared inputs and outputs.
pub struct Model {
    session: Session,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    /// The execution provider the session runs on: `cuda` or `cpu`.
    pub provider: Provider,
}

/// An ONNX Runtime execution provider Evidentia can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Cuda,
    Cpu,
}

impl Provider {
    pub fn as_str(&self) -> &'static str {
        match self {
            Provider::Cuda => "cuda",
            Provider::Cpu => "cpu",
        }
    }
}

/// The providers to try, in order: `EVIDENTIA_ORT_PROVIDERS` (comma-separated `cuda`, `cpu`;
/// default `cpu`). CPU is always the last resort, listed or not. An unknown name is an error
/// that names the setting.
pub fn providers() -> Result<Vec<Provider>, String> {
    parse_providers(&std::env::var("EVIDENTIA_ORT_PROVIDERS").unwrap_or_default())
}

fn parse_providers(text: &str) -> Result<Vec<Provider>, String> {
    let mut out = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        out.push(match name.to_ascii_lowercase().as_str() {
            "cuda" => Provider::Cuda,
            "cpu" => Provider::Cpu,
            other => {
                return Err(format!("EVIDENTIA_ORT_PROVIDERS: unknown execution provider {other:?} (use cuda, cpu)"))
            }
        });
    }
    if !out.contains(&Provider::Cpu) {
        out.push(Provider::Cpu);
    }
    Ok(out)
}

/// Registers the first of `wanted` that works on `builder` (ONNX Runtime only: tract runs on the
/// CPU); one that does not (a CPU-only runtime, no GPU, missing CUDA libraries) is logged and the
/// next is tried. Returns the builder and the provider in use.
fn with_provider(
    mut builder: ort::session::builder::SessionBuilder,
    wanted: &[Provider],
) -> Result<(ort::session::builder::SessionBuilder, Provider), String> {
    use ort::ep::ExecutionProvider;
    for p in wanted {
        match p {
            Provider::Cpu => return Ok((builder, Provider::Cpu)),
            Provider::Cuda => {
                let why = match ort::ep::CUDA::is_available() {
                    Ok(true) => {
                        match builder.with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()]) {
                            Ok(b) => return Ok((b, Provider::Cuda)),
                            Err(e) => {
                                let why = e.to_string();
                                builder = e.recover();
                                why
                            }
                        }
                    }
                    Ok(false) => "this ONNX Runtime was built without it (install onnxruntime-gpu)".to_string(),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(provider = "cuda", reason = %why, "the CUDA execution provider is not usable: falling back");
            }
        }
    }
    Ok((builder, Provider::Cpu))
}

fn info(outlets: &[ort::value::Outlet]) -> Vec<TensorInfo> {
    outlets
        .iter()
        .map(|o| TensorInfo {
            name: o.name().to_string(),
            shape: o.dtype().tensor_shape().map(|s| s.iter().copied().collect()).unwrap_or_default(),
            float32: matches!(
                o.dtype(),
                ort::value::ValueType::Tensor { ty: ort::value::TensorElementType::Float32, .. }
            ),
        })
        .collect()
}

static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

impl Model {
    /// Loads an ONNX file on this process's backend with `threads` intra-op threads.
    /// Files whose weights live in other files are refused first ([`crate::onnx_file`]).
    pub fn load(path: &Path, threads: usize) -> Result<Model, String> {
        let fail = |e: String| format!("not a model this backend can run: {e}");
        // Read once: the bytes checked are the bytes loaded.
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        crate::onnx_file::refuse_external_data(&bytes).map_err(fail)?;
        let kind = backend()?.kind;
        let env = ENVIRONMENT
            .get_or_init(|| ort::init().with_name("evidentia").build().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)?;
        let builder = Session::builder(env).map_err(|e| fail(e.to_string()))?;
        let mut builder = builder.with_intra_threads(threads.max(1)).map_err(|e| fail(e.to_string()))?;
        let mut provider = Provider::Cpu;
        if kind == BackendKind::OnnxRuntime {
            (builder, provider) = with_provider(builder, &providers()?)?;
            // ONNX Runtime's threads spin between runs by default, taking the core from whatever
            // else runs on it (the pipeline's tile decoding): profiled, a third of the samples of
            // an end-to-end run on two cores sat in that spin-wait. Off, they sleep.
            builder = builder.with_intra_op_spinning(false).map_err(|e| fail(e.to_string()))?;
            builder = builder.with_inter_op_spinning(false).map_err(|e| fail(e.to_string()))?;
        }
        let session = builder.commit_from_memory(&bytes).map_err(|e| fail(e.to_string()))?;
        let inputs = info(session.inputs());
        let outputs = info(session.outputs());
        Ok(Model { session, inputs, outputs, provider })
    }

    /// Runs one input tensor through the model; returns every output by name.
    pub fn run(&mut self, input: &str, data: ArrayD<f32>) -> Result<Vec<(String, ArrayD<f32>)>, String> {
        let tensor = Tensor::from_array(data).map_err(|e| e.to_string())?;
        let names: Vec<String> = self.outputs.iter().map(|o| o.name.clone()).collect();
        let outputs = self.session.run(ort::inputs![input => tensor]).map_err(|e| format!("inference failed: {e}"))?;
        names
            .into_iter()
            .map(|name| {
                let view =
                    outputs[name.as_str()].try_extract_array::<f32>().map_err(|e| format!("output {name}: {e}"))?;
                Ok((name, view.to_owned()))
            })
            .collect()
    }
}

/// The check batch `model check` runs: two synthetic tiles (white background, eosin pink,
/// haematoxylin purple regions with small dark blobs and a little noise), normalised with the
/// card, NCHW. Its formula is written out in `tests/fixtures/models/tiny-fcn.reference.json`,
/// which holds what Python's onnxruntime gives for it, so any backend can be compared.
pub fn check_batch(card: &crate::card::ModelCard) -> ArrayD<f32> {
    const BASE: [[u32; 3]; 3] = [[240, 240, 240], [235, 150, 205], [110, 70, 160]];
    const DOT: [u32; 3] = [60, 30, 110];
    let n = card.tile_size;
    let tiles: Vec<evidentia_wsi::reader::RgbImage> = (0..2u32)
        .map(|b| {
            let mut data = Vec::with_capacity((n * n * 3) as usize);
            for y in 0..n {
                for x in 0..n {
                    for c in 0..3u32 {
                        let mut base = BASE[((x / 64 + 4 * (y / 64) + b) % 3) as usize][c as usize];
                        let (dx, dy) = ((x % 16) as i64 - 8, (y % 16) as i64 - 8);
                        if dx * dx + dy * dy <= 9 && (x / 16 + y / 16 + b) % 2 == 0 {
                            base = DOT[c as usize];
                        }
                        data.push((base + (x * 5 + y * 3 + c * 31 + b * 7) % 16) as u8);
                    }
                }
            }
            evidentia_wsi::reader::RgbImage { width: n, height: n, data }
        })
        .collect();
    crate::pipeline::to_batch(card, &tiles)
}

/// A summary of an output tensor that two backends (or Python) can be compared on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutputSummary {
    pub shape: Vec<usize>,
    pub sum: f64,
    pub sum_abs: f64,
    pub min: f32,
    pub max: f32,
    /// `[flat index, value]` at `round(i × (len − 1) / 31)` for i in 0..32.
    pub samples: Vec<(usize, f32)>,
}

pub fn summarise(a: &ArrayD<f32>) -> OutputSummary {
    let flat: Vec<f32> = a.iter().copied().collect();
    let len = flat.len().max(1);
    OutputSummary {
        shape: a.shape().to_vec(),
        sum: flat.iter().map(|v| f64::from(*v)).sum(),
        sum_abs: flat.iter().map(|v| f64::from(v.abs())).sum(),
        min: flat.iter().copied().fold(f32::INFINITY, f32::min),
        max: flat.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        samples: (0..32)
            .map(|i| {
                let at = ((i as f64) * (len - 1) as f64 / 31.0).round() as usize;
                (at, flat.get(at).copied().unwrap_or(0.0))
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn providers_are_tried_in_order_and_the_cpu_is_always_last() {
        use super::{parse_providers, Provider};
        assert_eq!(parse_providers("").unwrap(), [Provider::Cpu]);
        assert_eq!(parse_providers("cuda,cpu").unwrap(), [Provider::Cuda, Provider::Cpu]);
        assert_eq!(parse_providers(" CUDA ").unwrap(), [Provider::Cuda, Provider::Cpu]);
        let e = parse_providers("cuda,gpu").unwrap_err();
        assert!(e.contains("EVIDENTIA_ORT_PROVIDERS") && e.contains("\"gpu\""), "{e}");
    }
}
