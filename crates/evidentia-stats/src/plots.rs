//! Plots of the results as standalone SVG: Kaplan–Meier curves with numbers at risk, the ROC
//! curve, the Bland–Altman plot and confusion-matrix heatmaps. Plain SVG 1.1 with the text in a
//! generic sans-serif font, so the same file works in the page, in a report and on its own.

use std::fmt::Write;

use super::analysis::Outcome;
use super::survival::KmGroup;

const COLOURS: [&str; 6] = ["#1f6feb", "#d1242f", "#1a7f37", "#8250df", "#bc4c00", "#57606a"];
const W: f64 = 640.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// About five round tick values covering [lo, hi].
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    // A range too narrow for its magnitude (all values equal) gets its two ends only.
    if span.is_nan() || span <= (lo.abs().max(hi.abs()) * 1e-9).max(1e-12) {
        return vec![lo, hi];
    }
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| span / s <= 6.0).unwrap_or(10.0 * mag);
    let start = (lo / step).ceil() * step;
    (0..12).map(|i| start + i as f64 * step).take_while(|t| *t <= hi + step * 1e-9).collect()
}

fn label(v: f64) -> String {
    if v.abs() >= 1e4 || (v != 0.0 && v.abs() < 1e-3) {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A plot frame: the area (x0, y0)–(x1, y1) in pixels for data ranges x and y.
struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    xr: (f64, f64),
    yr: (f64, f64),
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        self.x0 + (v - self.xr.0) / (self.xr.1 - self.xr.0).max(1e-12) * (self.x1 - self.x0)
    }
    fn y(&self, v: f64) -> f64 {
        self.y1 - (v - self.yr.0) / (self.yr.1 - self.yr.0).max(1e-12) * (self.y1 - self.y0)
    }
    /// Axes with ticks, grid lines and titles.
    fn axes(&self, out: &mut String, xt: &[f64], yt: &[f64], xtitle: &str, ytitle: &str) {
        for t in yt {
            let y = self.y(*t);
            let _ = write!(
                out,
                r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#d0d7de" stroke-width="1"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11">{}</text>"##,
                self.x0,
                self.x1,
                self.x0 - 6.0,
                y + 4.0,
                label(*t)
            );
        }
        for t in xt {
            let x = self.x(*t);
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#57606a"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"##,
                self.y1,
                self.y1 + 4.0,
                self.y1 + 16.0,
                label(*t)
            );
        }
        let _ = write!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#57606a"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12">{}</text><text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle" font-size="12">{}</text>"##,
            self.x0,
            self.y0,
            self.x1 - self.x0,
            self.y1 - self.y0,
            (self.x0 + self.x1) / 2.0,
            self.y1 + 34.0,
            esc(xtitle),
            self.x0 - 42.0,
            (self.y0 + self.y1) / 2.0,
            esc(ytitle)
        );
    }
}

fn svg(height: f64, title: &str, body: &str) -> String {
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" fill="#1f2328"><title>{}</title><rect width="100%" height="100%" fill="#ffffff"/><text x="{}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{}</text>{body}</svg>"##,
        esc(title),
        W / 2.0,
        esc(title)
    )
}

/// Kaplan–Meier curves (step functions, censorings as ticks) with the numbers at risk below.
pub fn kaplan_meier(groups: &[KmGroup], time_label: &str) -> String {
    let t_max = groups.iter().flat_map(|g| g.steps.iter().map(|s| s.time)).fold(0.0f64, f64::max).max(1e-9);
    let n = groups.len() as f64;
    let height = 360.0 + 22.0 * n + 30.0;
    let f = Frame { x0: 110.0, x1: W - 20.0, y0: 40.0, y1: 300.0, xr: (0.0, t_max), yr: (0.0, 1.0) };
    let xt = ticks(0.0, t_max);
    let mut body = String::new();
    f.axes(&mut body, &xt, &ticks(0.0, 1.0), time_label, "Survival probability");
    for (i, g) in groups.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let mut d = format!("M{:.1},{:.1}", f.x(0.0), f.y(1.0));
        let mut s_prev = 1.0;
        let mut marks = String::new();
        for st in &g.steps {
            let _ = write!(d, " H{:.1}", f.x(st.time));
            if st.survival != s_prev {
                let _ = write!(d, " V{:.1}", f.y(st.survival));
                s_prev = st.survival;
            }
            if st.censored > 0 {
                let (x, y) = (f.x(st.time), f.y(st.survival));
                let _ = write!(marks, "M{x:.1},{:.1} V{:.1} ", y - 4.0, y + 4.0);
            }
        }
        let _ = write!(
            body,
            r##"<path d="{d}" fill="none" stroke="{c}" stroke-width="2"/><path d="{marks}" stroke="{c}" stroke-width="1.5"/>"##
        );
        let ly = 48.0 + 16.0 * i as f64;
        let _ = write!(
            body,
            r##"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{c}" stroke-width="2"/><text x="{:.1}" y="{:.1}" font-size="11">{} (n={}, events {})</text>"##,
            W - 200.0,
            W - 180.0,
            W - 175.0,
            ly + 4.0,
            esc(&g.name),
            g.n,
            g.events
        );
    }
    let ry = 350.0;
    let _ = write!(body, r##"<text x="10" y="{ry:.1}" font-size="12" font-weight="bold">Number at risk</text>"##);
    for (i, g) in groups.iter().enumerate() {
        let y = ry + 20.0 + 22.0 * i as f64;
        let c = COLOURS[i % COLOURS.len()];
        let name: String = g.name.chars().take(14).collect();
        let _ = write!(body, r##"<text x="10" y="{y:.1}" font-size="11" fill="{c}">{}</text>"##, esc(&name));
        for t in &xt {
            let _ = write!(
                body,
                r##"<text x="{:.1}" y="{y:.1}" font-size="11" text-anchor="middle">{}</text>"##,
                f.x(*t),
                g.at_risk_at(*t)
            );
        }
    }
    svg(height, "Kaplan–Meier estimate", &body)
}

/// The ROC curve with the chance diagonal, the AUC and Youden's point.
pub fn roc(curve: &[(f64, f64)], auc: f64, youden: (f64, f64, f64)) -> String {
    let f = Frame { x0: 90.0, x1: 450.0, y0: 40.0, y1: 400.0, xr: (0.0, 1.0), yr: (0.0, 1.0) };
    let t = ticks(0.0, 1.0);
    let mut body = String::new();
    f.axes(&mut body, &t, &t, "1 − specificity", "Sensitivity");
    let _ = write!(
        body,
        r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#8c959f" stroke-dasharray="4 4"/>"##,
        f.x(0.0),
        f.y(0.0),
        f.x(1.0),
        f.y(1.0)
    );
    let mut d = String::new();
    for (i, (x, y)) in curve.iter().enumerate() {
        let _ = write!(d, "{}{:.1},{:.1} ", if i == 0 { "M" } else { "L" }, f.x(*x), f.y(*y));
    }
    let (thr, sens, spec) = youden;
    let _ = write!(
        body,
        r##"<path d="{d}" fill="none" stroke="{}" stroke-width="2"/><circle cx="{:.1}" cy="{:.1}" r="4" fill="{}"/><text x="470" y="70" font-size="12">AUC {:.3}</text><text x="470" y="90" font-size="12">Youden cut-off ≥ {}</text><text x="470" y="110" font-size="12">sens {:.3}, spec {:.3}</text>"##,
        COLOURS[0],
        f.x(1.0 - spec),
        f.y(sens),
        COLOURS[1],
        auc,
        esc(&label(thr)),
        sens,
        spec
    );
    svg(440.0, "ROC curve", &body)
}

/// Bland–Altman: differences against means, with the bias and the limits of agreement.
pub fn bland_altman(points: &[(f64, f64)], bias: f64, loa: Option<(f64, f64)>, names: (&str, &str)) -> String {
    let (mut xl, mut xh, mut yl, mut yh) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for (x, y) in points {
        (xl, xh, yl, yh) = (xl.min(*x), xh.max(*x), yl.min(*y), yh.max(*y));
    }
    if let Some((lo, hi)) = loa {
        (yl, yh) = (yl.min(lo), yh.max(hi));
    }
    let pad = |a: f64, b: f64| ((b - a).abs() * 0.05).max(a.abs().max(b.abs()) * 1e-3).max(1e-6);
    let (px, py) = (pad(xl, xh), pad(yl, yh));
    let f = Frame { x0: 90.0, x1: W - 130.0, y0: 40.0, y1: 360.0, xr: (xl - px, xh + px), yr: (yl - py, yh + py) };
    let mut body = String::new();
    f.axes(
        &mut body,
        &ticks(f.xr.0, f.xr.1),
        &ticks(f.yr.0, f.yr.1),
        &format!("Mean of {} and {}", names.0, names.1),
        &format!("{} − {}", names.0, names.1),
    );
    // Thin out very large clouds: every point up to 5,000, then a regular subsample.
    let stride = (points.len() / 5000).max(1);
    for (x, y) in points.iter().step_by(stride) {
        let _ = write!(
            body,
            r##"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}" fill-opacity="0.6"/>"##,
            f.x(*x),
            f.y(*y),
            COLOURS[0]
        );
    }
    let mut hline = |v: f64, text: String, dash: &str| {
        let y = f.y(v);
        let _ = write!(
            body,
            r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{}" stroke-width="1.5"{dash}/><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"##,
            f.x0,
            f.x1,
            COLOURS[1],
            f.x1 + 6.0,
            y + 4.0,
            esc(&text)
        );
    };
    hline(bias, format!("bias {}", label(bias)), "");
    if let Some((lo, hi)) = loa {
        hline(lo, format!("−1.96 SD {}", label(lo)), r#" stroke-dasharray="5 4""#);
        hline(hi, format!("+1.96 SD {}", label(hi)), r#" stroke-dasharray="5 4""#);
    }
    svg(400.0, "Bland–Altman plot", &body)
}

/// A confusion matrix as a heatmap: rows `row_title`, columns `col_title`, darker = more.
pub fn confusion(categories: &[String], counts: &[Vec<u64>], row_title: &str, col_title: &str) -> String {
    let k = categories.len().max(1) as f64;
    let cell = (360.0 / k).clamp(28.0, 90.0);
    let (x0, y0) = (150.0, 80.0);
    let max = counts.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let mut body = String::new();
    for (i, row) in counts.iter().enumerate() {
        for (j, &c) in row.iter().enumerate() {
            let shade = c as f64 / max;
            let (x, y) = (x0 + j as f64 * cell, y0 + i as f64 * cell);
            let fill = format!(
                "rgb({},{},{})",
                (255.0 - 224.0 * shade) as u8,
                (255.0 - 144.0 * shade) as u8,
                (255.0 - 20.0 * shade) as u8
            );
            let ink = if shade > 0.55 { "#ffffff" } else { "#1f2328" };
            let _ = write!(
                body,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{cell:.1}" height="{cell:.1}" fill="{fill}" stroke="#ffffff"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12" fill="{ink}">{c}</text>"##,
                x + cell / 2.0,
                y + cell / 2.0 + 4.0
            );
        }
    }
    for (i, c) in categories.iter().enumerate() {
        let name: String = c.chars().take(16).collect();
        let _ = write!(
            body,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11">{}</text><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="11">{}</text>"##,
            x0 - 6.0,
            y0 + (i as f64 + 0.5) * cell + 4.0,
            esc(&name),
            x0 + (i as f64 + 0.5) * cell,
            y0 - 8.0,
            esc(&name)
        );
    }
    let size = cell * k;
    let _ = write!(
        body,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12" font-weight="bold">{}</text><text transform="translate(20,{:.1}) rotate(-90)" text-anchor="middle" font-size="12" font-weight="bold">{}</text>"##,
        x0 + size / 2.0,
        y0 - 28.0,
        esc(col_title),
        y0 + size / 2.0,
        esc(row_title)
    );
    svg(y0 + size + 30.0, "Confusion matrix", &body)
}

/// DejaVu Sans (regular and bold; Debian fonts-dejavu-core 2.37, licence in static/fonts/LICENSE),
/// built in so that PNGs render the same on any machine, with no system fonts.
pub static DEJAVU_SANS: &[u8] = include_bytes!("../../../static/fonts/DejaVuSans.ttf");
pub static DEJAVU_SANS_BOLD: &[u8] = include_bytes!("../../../static/fonts/DejaVuSans-Bold.ttf");

/// The fonts of every plot: DejaVu Sans, regular and bold (see [`DEJAVU_SANS`]).
pub fn fonts() -> std::sync::Arc<resvg::usvg::fontdb::Database> {
    static FONTS: std::sync::OnceLock<std::sync::Arc<resvg::usvg::fontdb::Database>> = std::sync::OnceLock::new();
    FONTS
        .get_or_init(|| {
            let mut db = resvg::usvg::fontdb::Database::new();
            db.load_font_data(DEJAVU_SANS.to_vec());
            db.load_font_data(DEJAVU_SANS_BOLD.to_vec());
            db.set_sans_serif_family("DejaVu Sans");
            std::sync::Arc::new(db)
        })
        .clone()
}

/// Renders a plot's SVG as a PNG at `scale` × its size (2 for print-quality figures), with resvg.
pub fn png(svg: &str, scale: f32) -> anyhow::Result<Vec<u8>> {
    use resvg::{tiny_skia, usvg};
    let opt = usvg::Options { fontdb: fonts(), font_family: "DejaVu Sans".into(), ..usvg::Options::default() };
    let tree = usvg::Tree::from_str(svg, &opt)?;
    let size = tree.size().to_int_size().scale_by(scale).ok_or_else(|| anyhow::anyhow!("the plot has no size"))?;
    let mut pixmap =
        tiny_skia::Pixmap::new(size.width(), size.height()).ok_or_else(|| anyhow::anyhow!("the plot is too large"))?;
    resvg::render(&tree, tiny_skia::Transform::from_scale(scale, scale), &mut pixmap.as_mut());
    Ok(pixmap.encode_png()?)
}

/// The plot of an outcome, for the analyses that have one.
pub fn plot(outcome: &Outcome) -> Option<String> {
    match outcome {
        // The axis names the time column, whose name carries its unit (pfs_months).
        Outcome::Survival(s) => Some(kaplan_meier(&s.groups, &format!("Time: {}", s.time_column))),
        Outcome::Roc(r) => Some(roc(&r.curve, r.auc, (r.youden_threshold, r.youden_sensitivity, r.youden_specificity))),
        Outcome::BlandAltman(b) => {
            b.mean_diff.map(|bias| bland_altman(&b.points, bias, b.loa_low.zip(b.loa_high), (&b.names.0, &b.names.1)))
        }
        Outcome::Kappa(k) => Some(confusion(&k.matrix.categories, &k.matrix.counts, &k.names.0, &k.names.1)),
        Outcome::Diagnostic(d) => Some(confusion(
            &["positive".to_string(), "negative".to_string()],
            &[vec![d.tp, d.fp], vec![d.fn_, d.tn]],
            "Test",
            "Reference",
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(0.0, 1.0), vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        assert_eq!(ticks(0.0, 60.0), vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]);
    }

    #[test]
    fn plots_render_as_png_with_their_text() {
        let svg = confusion(&["inflamed".into(), "desert".into()], &[vec![3, 1], vec![0, 4]], "AI", "Reader");
        let bytes = png(&svg, 1.0).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.width, 640);
        // The title is drawn: dark pixels in the title band (text needs the built-in font).
        let stride = info.line_size;
        let dark =
            (8..28).flat_map(|y| (0..640).map(move |x| (y, x))).filter(|(y, x)| buf[y * stride + x * 4] < 100).count();
        assert!(dark > 50, "{dark} dark pixels in the title band");
    }

    #[test]
    fn plots_are_svg_with_escaped_text() {
        let s = confusion(&["<a>".into(), "b".into()], &[vec![3, 1], vec![0, 4]], "A", "B");
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(s.contains("&lt;a&gt;") && !s.contains("<a>"));
    }
}
