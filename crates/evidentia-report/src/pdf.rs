//! Documents as PDF, written in Rust by krilla (the PDF writer of Typst): A4 pages, DejaVu Sans
//! embedded (subset), text selectable, plots drawn as vector graphics from their SVG by
//! krilla-svg, a bookmark per chapter, page numbers in the footer. No browser or other program.
//!
//! Layout is a first pass that places every line, rule and plot on its page (`layout`, tested on
//! its own), then a second pass that draws them.

use std::sync::{Arc, OnceLock};

use krilla::color::rgb;
use krilla::destination::XyzDestination;
use krilla::geom::{PathBuilder, Point, Rect, Size, Transform};
use krilla::metadata::Metadata;
use krilla::num::NormalizedF32;
use krilla::outline::{Outline, OutlineNode};
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, TextDirection};
use krilla_svg::{SurfaceExt, SvgSettings};

use super::{Block, Cell, Document, Table};

const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const MARGIN_X: f32 = 56.0;
const MARGIN_TOP: f32 = 56.0;
const MARGIN_BOTTOM: f32 = 64.0;
const WIDTH: f32 = PAGE_W - 2.0 * MARGIN_X;
const BOTTOM: f32 = PAGE_H - MARGIN_BOTTOM;
const CELL_PAD: f32 = 3.0;

use evidentia_stats::plots::{DEJAVU_SANS as REGULAR, DEJAVU_SANS_BOLD as BOLD};

/// Hangul (and CJK punctuation), which DejaVu Sans lacks: Noto Sans CJK KR, cut down by
/// `tools/make_cjk_font.py` (SIL Open Font License; `static/fonts/README.md`). Text falls back to
/// it character by character, so a Korean site name prints instead of empty boxes.
static CJK: &[u8] = include_bytes!("../../../static/fonts/NotoSansKR-Hangul.otf");

/// Text widths from the fonts' horizontal advances.
struct Metrics {
    regular: ttf_parser::Face<'static>,
    bold: ttf_parser::Face<'static>,
    cjk: ttf_parser::Face<'static>,
}

/// The built-in fonts' metrics; `None` if they do not parse (`render` then refuses).
fn metrics() -> Option<&'static Metrics> {
    static M: OnceLock<Option<Metrics>> = OnceLock::new();
    M.get_or_init(|| {
        Some(Metrics {
            regular: ttf_parser::Face::parse(REGULAR, 0).ok()?,
            bold: ttf_parser::Face::parse(BOLD, 0).ok()?,
            cjk: ttf_parser::Face::parse(CJK, 0).ok()?,
        })
    })
    .as_ref()
}

/// Whether `c` is drawn with the CJK fallback: DejaVu has no glyph for it and the fallback has.
fn falls_back(m: &Metrics, c: char) -> bool {
    m.regular.glyph_index(c).is_none() && m.cjk.glyph_index(c).is_some()
}

/// Runs of `s` by font: (fallback?, text), in order.
fn font_runs(s: &str) -> Vec<(bool, String)> {
    let mut runs: Vec<(bool, String)> = Vec::new();
    for c in s.chars() {
        let cjk = metrics().is_some_and(|m| falls_back(m, c));
        match runs.last_mut() {
            Some((f, t)) if *f == cjk => t.push(c),
            _ => runs.push((cjk, c.to_string())),
        }
    }
    runs
}

fn text_width(s: &str, size: f32, bold: bool) -> f32 {
    // Without metrics (never with the built-in fonts), a generous average advance.
    let Some(m) = metrics() else { return s.chars().count() as f32 * size * 0.65 };
    let face = if bold { &m.bold } else { &m.regular };
    s.chars()
        .map(|c| {
            let f = if falls_back(m, c) { &m.cjk } else { face };
            let advance = f.glyph_index(c).and_then(|g| f.glyph_hor_advance(g)).unwrap_or(f.units_per_em() / 2);
            f32::from(advance) * size / f32::from(f.units_per_em())
        })
        .sum()
}

/// Splits text into lines no wider than `width`: at spaces, and inside a word that is wider than
/// a line (hashes, commands); `anywhere` breaks at any character.
fn wrap(text: &str, size: f32, bold: bool, width: f32, anywhere: bool) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        let words: Vec<&str> = if anywhere { vec![paragraph] } else { paragraph.split(' ').collect() };
        for word in words {
            let candidate = if line.is_empty() { word.to_string() } else { format!("{line} {word}") };
            if text_width(&candidate, size, bold) <= width {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            // The word alone: break it where it overflows.
            for ch in word.chars() {
                line.push(ch);
                if text_width(&line, size, bold) > width && line.chars().count() > 1 {
                    line.pop();
                    lines.push(std::mem::replace(&mut line, ch.to_string()));
                }
            }
        }
        lines.push(line);
    }
    lines
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Colour(u8, u8, u8);

const INK: Colour = Colour(26, 31, 43);
const MUTED: Colour = Colour(95, 103, 120);
const ACCENT: Colour = Colour(31, 78, 121);
const RULE: Colour = Colour(200, 207, 219);
const HEAD_FILL: Colour = Colour(238, 242, 248);
const CODE_FILL: Colour = Colour(244, 246, 250);

/// One thing drawn on a page, at page coordinates (points, origin top left, y down).
#[derive(Debug, Clone, PartialEq)]
enum Op {
    /// Text with its baseline at `y`.
    Text {
        x: f32,
        y: f32,
        size: f32,
        bold: bool,
        colour: Colour,
        text: String,
    },
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        fill: Option<Colour>,
        stroke: Option<Colour>,
    },
    Line {
        x1: f32,
        y1: f32,
        x2: f32,
        y2: f32,
        colour: Colour,
        width: f32,
    },
    /// Plot number `index` of the document, `w` × `h` at (`x`, `y`).
    Svg {
        index: usize,
        x: f32,
        y: f32,
        w: f32,
        h: f32,
    },
}

/// Pages of operations, and the chapters (title, page, y) for the bookmarks.
#[derive(Debug, Default)]
struct Laid {
    pages: Vec<Vec<Op>>,
    chapters: Vec<(String, usize, f32)>,
}

struct Layout<'a> {
    laid: Laid,
    y: f32,
    plots: &'a [(f32, f32)],
    plot_index: usize,
}

impl Layout<'_> {
    fn ops(&mut self) -> &mut Vec<Op> {
        if self.laid.pages.is_empty() {
            self.laid.pages.push(Vec::new());
        }
        let last = self.laid.pages.len() - 1;
        &mut self.laid.pages[last]
    }

    fn new_page(&mut self) {
        self.laid.pages.push(Vec::new());
        self.y = MARGIN_TOP;
    }

    /// Makes room for `h` points, starting a new page when they do not fit.
    fn room(&mut self, h: f32) {
        if self.y + h > BOTTOM && self.y > MARGIN_TOP {
            self.new_page();
        }
    }

    fn lines(&mut self, lines: &[String], x: f32, size: f32, bold: bool, colour: Colour, leading: f32) {
        for l in lines {
            self.room(leading);
            let y = self.y + size;
            self.ops().push(Op::Text { x, y, size, bold, colour, text: l.clone() });
            self.y += leading;
        }
    }

    fn text(&mut self, s: &str, size: f32, bold: bool, colour: Colour, after: f32) {
        let lines = wrap(s, size, bold, WIDTH, false);
        self.lines(&lines, MARGIN_X, size, bold, colour, size * 1.4);
        self.y += after;
    }

    fn block(&mut self, b: &Block) {
        match b {
            Block::Heading(1, s) => {
                self.new_page();
                self.laid.chapters.push((s.clone(), self.laid.pages.len() - 1, self.y));
                self.text(s, 17.0, true, ACCENT, 2.0);
                let y = self.y;
                self.ops().push(Op::Line {
                    x1: MARGIN_X,
                    y1: y,
                    x2: MARGIN_X + WIDTH,
                    y2: y,
                    colour: ACCENT,
                    width: 1.2,
                });
                self.y += 10.0;
            }
            Block::Heading(level, s) => {
                let size = if *level == 2 { 13.0 } else { 11.0 };
                // Keep a heading with what follows it.
                self.room(size * 1.4 + 60.0);
                self.y += 6.0;
                self.text(s, size, true, INK, 3.0);
            }
            Block::Paragraph(s) => self.text(s, 9.5, false, INK, 5.0),
            Block::Note(s) => self.text(s, 8.0, false, MUTED, 5.0),
            Block::Code(s) => {
                let lines = wrap(s, 7.5, false, WIDTH - 8.0, true);
                let leading = 10.0;
                for chunk in lines.chunks(1) {
                    self.room(leading);
                    let y = self.y;
                    self.ops().push(Op::Rect {
                        x: MARGIN_X,
                        y,
                        w: WIDTH,
                        h: leading,
                        fill: Some(CODE_FILL),
                        stroke: None,
                    });
                    self.lines(chunk, MARGIN_X + 4.0, 7.5, false, INK, leading);
                }
                self.y += 6.0;
            }
            Block::Fields(fields) => {
                let key_w =
                    fields.iter().map(|(k, _)| text_width(k, 9.0, true)).fold(0.0, f32::max).min(WIDTH * 0.35) + 10.0;
                for (k, v) in fields {
                    let keys = wrap(k, 9.0, true, key_w - 10.0, false);
                    let values = wrap(v, 9.0, false, WIDTH - key_w, false);
                    // Line by line, key beside value: a long value continues on the next page.
                    self.room((keys.len().max(values.len()) as f32 * 12.6).min(60.0));
                    for i in 0..keys.len().max(values.len()) {
                        self.room(12.6);
                        let y = self.y + 9.0;
                        if let Some(k) = keys.get(i) {
                            self.ops().push(Op::Text {
                                x: MARGIN_X,
                                y,
                                size: 9.0,
                                bold: true,
                                colour: INK,
                                text: k.clone(),
                            });
                        }
                        if let Some(v) = values.get(i) {
                            let x = MARGIN_X + key_w;
                            self.ops().push(Op::Text { x, y, size: 9.0, bold: false, colour: INK, text: v.clone() });
                        }
                        self.y += 12.6;
                    }
                    self.y += 1.5;
                }
                self.y += 5.0;
            }
            Block::Table(t) => self.table(t),
            Block::Plot(_) => {
                let (w0, h0) = self.plots.get(self.plot_index).copied().unwrap_or((400.0, 300.0));
                let scale = (WIDTH * 0.8 / w0).min(1.25).min((BOTTOM - MARGIN_TOP) / h0);
                let (w, h) = (w0 * scale, h0 * scale);
                self.room(h + 8.0);
                let (index, y) = (self.plot_index, self.y);
                self.ops().push(Op::Svg { index, x: MARGIN_X, y, w, h });
                self.plot_index += 1;
                self.y += h + 10.0;
            }
            Block::Badge(s) => {
                let colour = match s.as_str() {
                    "pass" => (Colour(212, 237, 218), Colour(21, 87, 36)),
                    "fail" => (Colour(248, 215, 218), Colour(114, 28, 36)),
                    _ => (Colour(229, 232, 238), INK),
                };
                let w = text_width(s, 9.0, true) + 14.0;
                self.room(16.0);
                let y = self.y;
                self.ops().push(Op::Rect { x: MARGIN_X, y, w, h: 14.0, fill: Some(colour.0), stroke: None });
                self.ops().push(Op::Text {
                    x: MARGIN_X + 7.0,
                    y: y + 10.5,
                    size: 9.0,
                    bold: true,
                    colour: colour.1,
                    text: s.clone(),
                });
                self.y += 20.0;
            }
        }
    }

    /// A table: columns as wide as their widest cell when that fits, else shared out; cells wrap;
    /// rows never split; the header repeats on every page the table continues on.
    fn table(&mut self, t: &Table) {
        const SIZE: f32 = 8.0;
        const LEADING: f32 = 10.5;
        let n = t.width();
        if n == 0 {
            return;
        }
        let mut rows: Vec<(Vec<Cell>, bool)> = Vec::new();
        let header_row =
            (!t.header.is_empty()).then(|| t.header.iter().map(|h| Cell::text(h.clone())).collect::<Vec<_>>());
        for r in &t.rows {
            let mut cells: Vec<Cell> = r.head.iter().map(|h| Cell::text(h.clone())).collect();
            cells.extend(r.cells.iter().cloned());
            cells.resize(n, Cell::text(""));
            rows.push((cells, r.head.is_some()));
        }
        // Header cells and row headings are bold.
        let natural: Vec<f32> = (0..n)
            .map(|i| {
                let header = header_row.iter().filter_map(|cells| cells.get(i)).map(|c| (c, true));
                let body = rows.iter().filter_map(|(cells, headed)| cells.get(i).map(|c| (c, *headed && i == 0)));
                header
                    .chain(body)
                    .map(|(c, bold)| text_width(&c.text, SIZE, bold) + 2.0 * CELL_PAD + 1.0)
                    .fold(4.0 * CELL_PAD, f32::max)
            })
            .collect();
        let widths = share(&natural, WIDTH);
        let wrap_row = |cells: &[Cell], bold_first: bool, bold_all: bool| -> Vec<Vec<String>> {
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    wrap(&c.text, SIZE, bold_all || (bold_first && i == 0), widths[i] - 2.0 * CELL_PAD, false)
                })
                .collect()
        };
        if let Some(c) = &t.caption {
            self.room(40.0);
            self.text(c, 8.5, true, INK, 1.0);
        }
        let header_lines = header_row.as_ref().map(|h| wrap_row(h, false, true));
        let draw_row = |this: &mut Layout,
                        lines: &[Vec<String>],
                        fill: Option<Colour>,
                        bold_first: bool,
                        bold_all: bool| {
            let h = lines.iter().map(Vec::len).max().unwrap_or(1) as f32 * LEADING + 2.0 * CELL_PAD;
            let top = this.y;
            let mut x = MARGIN_X;
            for (i, cell_lines) in lines.iter().enumerate() {
                this.ops().push(Op::Rect { x, y: top, w: widths[i], h, fill, stroke: Some(RULE) });
                let bold = bold_all || (bold_first && i == 0);
                for (k, l) in cell_lines.iter().enumerate() {
                    let y = top + CELL_PAD + SIZE + k as f32 * LEADING;
                    this.ops().push(Op::Text { x: x + CELL_PAD, y, size: SIZE, bold, colour: INK, text: l.clone() });
                }
                x += widths[i];
            }
            this.y = top + h;
        };
        let height =
            |lines: &[Vec<String>]| lines.iter().map(Vec::len).max().unwrap_or(1) as f32 * LEADING + 2.0 * CELL_PAD;
        let header_h = header_lines.as_deref().map(height).unwrap_or(0.0);
        let first_h = rows.first().map(|(c, b)| height(&wrap_row(c, *b, false))).unwrap_or(0.0);
        self.room(header_h + first_h);
        if let Some(h) = &header_lines {
            draw_row(self, h, Some(HEAD_FILL), false, true);
        }
        // The most lines a row can have on a page of its own (under the header).
        let max_lines = (((BOTTOM - MARGIN_TOP - header_h - 2.0 * CELL_PAD) / LEADING).floor() as usize).max(1);
        for (cells, headed) in &rows {
            let lines = wrap_row(cells, *headed, false);
            // A row taller than a page goes on in parts, each on a page of its own.
            let parts = lines.iter().map(Vec::len).max().unwrap_or(1).div_ceil(max_lines);
            for part in 0..parts {
                let slice: Vec<Vec<String>> = lines
                    .iter()
                    .map(|cell| cell.iter().skip(part * max_lines).take(max_lines).cloned().collect())
                    .collect();
                if self.y + height(&slice) > BOTTOM {
                    self.new_page();
                    if let Some(hl) = &header_lines {
                        draw_row(self, hl, Some(HEAD_FILL), false, true);
                    }
                }
                draw_row(self, &slice, None, *headed, false);
            }
        }
        self.y += 10.0;
    }
}

/// Column widths: every column its natural width when they all fit; otherwise narrow columns
/// keep theirs and the wide ones share what is left equally.
fn share(natural: &[f32], total: f32) -> Vec<f32> {
    if natural.iter().sum::<f32>() <= total {
        return natural.to_vec();
    }
    let mut widths = natural.to_vec();
    let mut open: Vec<usize> = (0..natural.len()).collect();
    loop {
        let fixed: f32 = (0..natural.len()).filter(|i| !open.contains(i)).map(|i| widths[i]).sum();
        let fair = (total - fixed) / open.len().max(1) as f32;
        let (narrow, wide): (Vec<usize>, Vec<usize>) = open.iter().partition(|i| natural[**i] <= fair);
        if narrow.is_empty() || wide.is_empty() {
            for i in &open {
                widths[*i] = if wide.is_empty() { natural[*i] } else { fair };
            }
            return widths;
        }
        open = wide;
    }
}

fn layout(d: &Document, plots: &[(f32, f32)]) -> Laid {
    let mut l = Layout { laid: Laid::default(), y: MARGIN_TOP, plots, plot_index: 0 };
    // The title page.
    l.new_page();
    l.y = PAGE_H * 0.28;
    for line in wrap(&d.title, 24.0, true, WIDTH, false) {
        let x = MARGIN_X + (WIDTH - text_width(&line, 24.0, true)) / 2.0;
        let y = l.y + 24.0;
        l.ops().push(Op::Text { x, y, size: 24.0, bold: true, colour: ACCENT, text: line });
        l.y += 32.0;
    }
    l.y += 18.0;
    for s in &d.subtitle {
        for line in wrap(s, 10.5, false, WIDTH, false) {
            let x = MARGIN_X + (WIDTH - text_width(&line, 10.5, false)).max(0.0) / 2.0;
            let y = l.y + 10.5;
            l.ops().push(Op::Text { x, y, size: 10.5, bold: false, colour: INK, text: line });
            l.y += 15.0;
        }
        l.y += 4.0;
    }
    for b in &d.blocks {
        l.block(b);
    }
    l.laid
}

fn fill(c: Colour) -> Fill {
    Fill { paint: rgb::Color::new(c.0, c.1, c.2).into(), opacity: NormalizedF32::ONE, rule: Default::default() }
}

fn svg_tree(svg: &str) -> anyhow::Result<resvg::usvg::Tree> {
    let opt = resvg::usvg::Options {
        fontdb: evidentia_stats::plots::fonts(),
        font_family: "DejaVu Sans".into(),
        ..resvg::usvg::Options::default()
    };
    Ok(resvg::usvg::Tree::from_str(svg, &opt)?)
}

/// The document as PDF bytes. The same document gives the same bytes (no dates, no random ids).
pub fn render(d: &Document) -> anyhow::Result<Vec<u8>> {
    metrics().ok_or_else(|| anyhow::anyhow!("the built-in DejaVu Sans fonts do not parse"))?;
    // A plot that does not parse is left out (a gap), not the whole report.
    let trees: Vec<Option<resvg::usvg::Tree>> = d
        .blocks
        .iter()
        .filter_map(|b| if let Block::Plot(svg) = b { Some(svg_tree(svg).ok()) } else { None })
        .collect();
    let sizes: Vec<(f32, f32)> =
        trees.iter().map(|t| t.as_ref().map(|t| (t.size().width(), t.size().height())).unwrap_or((1.0, 1.0))).collect();
    let laid = layout(d, &sizes);
    let regular = Font::new(Arc::new(REGULAR.to_vec()).into(), 0).ok_or_else(|| anyhow::anyhow!("DejaVu Sans"))?;
    let bold = Font::new(Arc::new(BOLD.to_vec()).into(), 0).ok_or_else(|| anyhow::anyhow!("DejaVu Sans Bold"))?;
    let cjk = Font::new(Arc::new(CJK.to_vec()).into(), 0).ok_or_else(|| anyhow::anyhow!("Noto Sans CJK KR"))?;

    // PDF/A-2b, so the report can be archived as a regulatory record (ISO 19005-2, level B:
    // every font embedded, device-independent colour, XMP metadata); krilla refuses to write a
    // document that breaks the standard's machine-checkable rules.
    let configuration = krilla::configure::ConfigurationBuilder::new()
        .with_archival_validator(krilla::configure::Archival::A2_B)
        .finish()
        .map_err(|e| anyhow::anyhow!("PDF/A-2b configuration: {e:?}"))?;
    let mut doc = krilla::Document::new_with(krilla::SerializeSettings { configuration, ..Default::default() });
    // PDF/A wants a creation date: the document's own (e.g. the lock's), or the epoch.
    let (y, mo, day, h, mi, sec) = d.date.unwrap_or((1970, 1, 1, 0, 0, 0));
    let date = krilla::metadata::DateTime::new(y).month(mo).day(day).hour(h).minute(mi).second(sec).utc_offset_hour(0);
    doc.set_metadata(
        Metadata::new().title(d.title.clone()).creator(d.creator.clone()).language("en".into()).creation_date(date),
    );
    let total = laid.pages.len();
    for (n, ops) in laid.pages.iter().enumerate() {
        let settings = PageSettings::from_wh(PAGE_W, PAGE_H).ok_or_else(|| anyhow::anyhow!("page size"))?;
        let mut page = doc.start_page_with(settings);
        let mut s = page.surface();
        for op in ops {
            match op {
                Op::Text { x, y, size, bold: b, colour, text } => {
                    s.set_fill(Some(fill(*colour)));
                    s.set_stroke(None);
                    let mut at = *x;
                    for (fallback, run) in font_runs(text) {
                        let font = match (fallback, *b) {
                            (true, _) => cjk.clone(),
                            (false, true) => bold.clone(),
                            (false, false) => regular.clone(),
                        };
                        s.draw_text(Point::from_xy(at, *y), font, *size, &run, false, TextDirection::Auto);
                        at += text_width(&run, *size, *b);
                    }
                }
                Op::Rect { x, y, w, h, fill: f, stroke } => {
                    let Some(rect) = Rect::from_xywh(*x, *y, *w, *h) else { continue };
                    let mut pb = PathBuilder::new();
                    pb.push_rect(rect);
                    let Some(path) = pb.finish() else { continue };
                    s.set_fill(f.map(fill));
                    s.set_stroke(stroke.map(|c| Stroke {
                        paint: rgb::Color::new(c.0, c.1, c.2).into(),
                        width: 0.5,
                        ..Stroke::default()
                    }));
                    s.draw_path(&path);
                }
                Op::Line { x1, y1, x2, y2, colour, width } => {
                    let mut pb = PathBuilder::new();
                    pb.move_to(*x1, *y1);
                    pb.line_to(*x2, *y2);
                    let Some(path) = pb.finish() else { continue };
                    s.set_fill(None);
                    s.set_stroke(Some(Stroke {
                        paint: rgb::Color::new(colour.0, colour.1, colour.2).into(),
                        width: *width,
                        ..Stroke::default()
                    }));
                    s.draw_path(&path);
                }
                Op::Svg { index, x, y, w, h } => {
                    let (Some(Some(tree)), Some(size)) = (trees.get(*index), Size::from_wh(*w, *h)) else { continue };
                    s.push_transform(&Transform::from_translate(*x, *y));
                    s.draw_svg(tree, size, SvgSettings::default());
                    s.pop();
                }
            }
        }
        // The footer.
        s.set_stroke(None);
        s.set_fill(Some(fill(MUTED)));
        let number = format!("Page {} of {total}", n + 1);
        let foot_y = PAGE_H - MARGIN_BOTTOM / 2.0;
        let footer = wrap(&d.footer, 7.0, false, WIDTH - 70.0, false).into_iter().next().unwrap_or_default();
        s.draw_text(Point::from_xy(MARGIN_X, foot_y), regular.clone(), 7.0, &footer, false, TextDirection::Auto);
        let nx = MARGIN_X + WIDTH - text_width(&number, 7.0, false);
        s.draw_text(Point::from_xy(nx, foot_y), regular.clone(), 7.0, &number, false, TextDirection::Auto);
        s.finish();
        page.finish();
    }
    let mut outline = Outline::new();
    for (title, page, y) in &laid.chapters {
        outline.push_child(OutlineNode::new(title.clone(), XyzDestination::new(*page, Point::from_xy(0.0, *y))));
    }
    doc.set_outline(outline);
    doc.finish().map_err(|e| anyhow::anyhow!("the PDF could not be written: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_fonts_parse() {
        assert!(metrics().is_some());
    }

    #[test]
    fn wraps_at_spaces_and_inside_long_words() {
        let lines = wrap("alpha beta gamma", 10.0, false, text_width("alpha beta", 10.0, false) + 0.1, false);
        assert_eq!(lines, vec!["alpha beta", "gamma"]);
        let hash = "0123456789abcdef".repeat(8);
        let lines = wrap(&hash, 8.0, false, 100.0, false);
        assert!(lines.len() > 1);
        assert_eq!(lines.concat(), hash);
        assert!(lines.iter().all(|l| text_width(l, 8.0, false) <= 100.0));
    }

    #[test]
    fn narrow_columns_keep_their_width_and_wide_ones_share() {
        assert_eq!(share(&[10.0, 20.0], 100.0), vec![10.0, 20.0]);
        let w = share(&[20.0, 300.0, 500.0], 420.0);
        assert_eq!(w[0], 20.0);
        assert!((w[1] - 200.0).abs() < 1e-3 && (w[2] - 200.0).abs() < 1e-3);
    }

    #[test]
    fn chapters_start_pages_and_long_tables_continue_with_their_header() {
        let mut d = Document { title: "T".into(), ..Document::default() };
        d.h1("One");
        let mut t = Table::new(&["a", "b"]);
        for i in 0..200 {
            t.push([format!("row {i}"), "x".into()]);
        }
        d.table(t);
        d.h1("Two");
        let laid = layout(&d, &[]);
        assert!(laid.pages.len() >= 5, "title, several table pages, chapter two: {}", laid.pages.len());
        assert_eq!(laid.chapters.iter().map(|c| c.1).collect::<Vec<_>>(), vec![1, laid.pages.len() - 1]);
        // Every continuation page starts with the header row.
        for page in &laid.pages[2..laid.pages.len() - 1] {
            let first_text =
                page.iter().find_map(|o| if let Op::Text { text, .. } = o { Some(text.clone()) } else { None });
            assert_eq!(first_text.as_deref(), Some("a"));
        }
        // Nothing is drawn below the bottom margin.
        for op in laid.pages.iter().flatten() {
            if let Op::Text { y, .. } = op {
                assert!(*y <= BOTTOM + 1.0);
            }
        }
    }

    #[test]
    fn rows_and_fields_taller_than_a_page_continue_on_the_next() {
        let mut d = Document { title: "T".into(), ..Document::default() };
        let long = "word ".repeat(4000);
        let mut t = Table::new(&["a", "b"]);
        t.push(["short".to_string(), long.clone()]);
        d.table(t);
        d.fields(vec![("key".into(), long)]);
        let laid = layout(&d, &[]);
        assert!(laid.pages.len() >= 4, "{}", laid.pages.len());
        for op in laid.pages.iter().flatten() {
            match op {
                Op::Text { y, .. } => assert!(*y <= BOTTOM + 1.0 && *y >= MARGIN_TOP),
                Op::Rect { y, h, .. } => assert!(*y + *h <= BOTTOM + 1.0, "a cell runs off the page"),
                _ => {}
            }
        }
    }

    #[test]
    fn renders_the_same_bytes_twice_with_a_vector_plot() {
        let mut d = Document { title: "Report".into(), footer: "foot".into(), ..Document::default() };
        d.h1("Plot");
        d.blocks.push(Block::Plot(evidentia_stats::plots::roc(
            &[(0.0, 0.0), (0.2, 0.8), (1.0, 1.0)],
            0.8,
            (0.5, 0.8, 0.8),
        )));
        let a = render(&d).unwrap();
        assert!(a.starts_with(b"%PDF-"));
        assert_eq!(a, render(&d).unwrap());
        // The plot is paths (vector), not an image.
        assert!(!String::from_utf8_lossy(&a).contains("/Subtype /Image"));
    }
}
