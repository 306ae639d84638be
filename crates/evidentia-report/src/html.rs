//! Documents and tables as HTML: the tables inside the app's pages, the whole document as one
//! self-contained page (inline style, plots as inline SVG; nothing fetched).

use super::{Block, Cell, Document, Table};

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Text without HTML tags (REDCap labels may hold markup), whitespace collapsed.
pub fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for ch in s.chars() {
        match ch {
            '<' => inside = true,
            '>' => inside = false,
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cell(c: &Cell) -> String {
    match (&c.full, c.undefined) {
        (Some(full), true) => format!(r#"<span class="muted" title="{}">{}</span>"#, esc(full), esc(&c.text)),
        (Some(full), false) => format!(r#"<span title="{}">{}</span>"#, esc(full), esc(&c.text)),
        (None, _) => esc(&c.text),
    }
}

/// One table (`grid compact result` in the app's style sheet).
pub fn table(t: &Table) -> String {
    let class = if t.class.is_empty() { String::new() } else { format!(" {}", t.class) };
    let mut out = format!(r#"<table class="grid compact result{class}">"#);
    if let Some(c) = &t.caption {
        out.push_str(&format!("<caption>{}</caption>", esc(c)));
    }
    if !t.header.is_empty() {
        out.push_str("<thead><tr>");
        for h in &t.header {
            out.push_str(&format!("<th>{}</th>", esc(h)));
        }
        out.push_str("</tr></thead>");
    }
    out.push_str("<tbody>");
    for r in &t.rows {
        out.push_str("<tr>");
        if let Some(h) = &r.head {
            out.push_str(&format!("<th>{}</th>", esc(h)));
        }
        for c in &r.cells {
            out.push_str(&format!("<td>{}</td>", cell(c)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

pub fn tables(ts: &[Table]) -> String {
    ts.iter().map(table).collect()
}

const STYLE: &str = "body{font-family:'DejaVu Sans',Arial,sans-serif;font-size:14px;line-height:1.45;color:#1a1f2b;max-width:60rem;margin:2rem auto;padding:0 1rem}\
h1{font-size:1.6rem;border-bottom:2px solid #1f4e79;padding-bottom:.2rem;margin-top:2.5rem}h2{font-size:1.25rem;margin-top:1.8rem}h3{font-size:1.05rem}\
.title{text-align:center;margin:4rem 0}.title h1{border:0;font-size:2rem}\
table{border-collapse:collapse;margin:.6rem 0 1rem}th,td{border:1px solid #c8cfdb;padding:.2rem .5rem;text-align:left;vertical-align:top}thead th{background:#eef2f8}\
caption{text-align:left;font-weight:bold;padding:.2rem 0}.muted{color:#6b7385}.note{font-size:.85rem;color:#4a5263}\
code,pre{font-family:'DejaVu Sans Mono',monospace;font-size:.85rem;word-break:break-all;white-space:pre-wrap}pre{background:#f4f6fa;padding:.5rem}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:bold}dd{margin:0;word-break:break-all}\
.badge{display:inline-block;padding:.05rem .5rem;border-radius:.6rem;font-weight:bold;background:#e5e8ee}.badge.pass{background:#d4edda;color:#155724}.badge.fail{background:#f8d7da;color:#721c24}\
figure{margin:.5rem 0}figure svg{max-width:100%;height:auto}";

/// The whole document as one page.
pub fn document(d: &Document) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<div class=\"title\"><h1>{}</h1>",
        esc(&d.title),
        esc(&d.title)
    );
    for line in &d.subtitle {
        out.push_str(&format!("<p>{}</p>", esc(line)));
    }
    out.push_str("</div>\n");
    for b in &d.blocks {
        match b {
            Block::Heading(level, s) => {
                let id: String =
                    s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
                out.push_str(&format!("<h{level} id=\"{}\">{}</h{level}>", esc(&id), esc(s)))
            }
            Block::Paragraph(s) => out.push_str(&format!("<p>{}</p>", esc(s))),
            Block::Note(s) => out.push_str(&format!("<p class=\"note\">{}</p>", esc(s))),
            Block::Code(s) => out.push_str(&format!("<pre>{}</pre>", esc(s))),
            Block::Fields(f) => {
                out.push_str("<dl>");
                for (k, v) in f {
                    out.push_str(&format!("<dt>{}</dt><dd>{}</dd>", esc(k), esc(v)));
                }
                out.push_str("</dl>");
            }
            Block::Table(t) => out.push_str(&table(t)),
            Block::Plot(svg) => out.push_str(&format!("<figure>{svg}</figure>")),
            Block::Badge(s) => out.push_str(&format!("<p><span class=\"badge {}\">{}</span></p>", esc(s), esc(s))),
        }
        out.push('\n');
    }
    out.push_str(&format!("<p class=\"note\">{}</p>\n</body></html>\n", esc(&d.footer)));
    out
}
