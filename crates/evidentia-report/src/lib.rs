//! Documents that are shown both as HTML and as PDF: a flat list of blocks (headings, paragraphs,
//! key–value lists, tables, plots). The statistical result tables of the analysis pages and the
//! dossier's report are built once in this form and rendered by [`html`] and [`pdf`];
//! [`results`] lays out the statistics engine's results as such tables. No database, no web:
//! the same document always gives the same bytes.

pub mod html;
pub mod pdf;
pub mod results;

/// A table cell: its text, and the full value when the text rounds it (a tooltip in HTML).
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub text: String,
    pub full: Option<String>,
    /// An undefined value ("—"), shown muted.
    pub undefined: bool,
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell { text: s.into(), full: None, undefined: false }
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::text(s)
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::text(s)
    }
}

/// A row: an optional row heading, then the cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub head: Option<String>,
    pub cells: Vec<Cell>,
}

/// A table. `header` is empty for a list of name–value rows; when rows have a heading, the
/// header's first entry is the heading column's title.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    pub caption: Option<String>,
    pub header: Vec<String>,
    pub rows: Vec<Row>,
    /// Extra CSS class (e.g. `table1`).
    pub class: &'static str,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| h.to_string()).collect(), ..Table::default() }
    }

    pub fn caption(mut self, caption: impl Into<String>) -> Table {
        self.caption = Some(caption.into());
        self
    }

    /// Adds a row of plain cells.
    pub fn push<I: IntoIterator<Item = S>, S: Into<Cell>>(&mut self, cells: I) {
        self.rows.push(Row { head: None, cells: cells.into_iter().map(Into::into).collect() });
    }

    /// Adds a row with a heading.
    pub fn push_headed<I: IntoIterator<Item = S>, S: Into<Cell>>(&mut self, head: impl Into<String>, cells: I) {
        self.rows.push(Row { head: Some(head.into()), cells: cells.into_iter().map(Into::into).collect() });
    }

    /// How many columns the table has (heading column included).
    pub fn width(&self) -> usize {
        self.rows
            .iter()
            .map(|r| r.cells.len() + usize::from(r.head.is_some()))
            .chain(std::iter::once(self.header.len()))
            .max()
            .unwrap_or(0)
    }
}

/// One block of a document.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A heading of level 1 (a chapter: starts a new page in the PDF) to 3.
    Heading(u8, String),
    Paragraph(String),
    /// Small print: notes, hashes.
    Note(String),
    /// Monospaced text (commands, hashes), wrapped anywhere.
    Code(String),
    /// Name–value pairs.
    Fields(Vec<(String, String)>),
    Table(Table),
    /// A plot as SVG (drawn as vector graphics in the PDF).
    Plot(String),
    /// A status badge: pass, fail, undetermined, exploratory.
    Badge(String),
}

/// A titled document: the title page's lines, then the blocks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Document {
    pub title: String,
    pub subtitle: Vec<String>,
    /// Printed at the foot of every PDF page.
    pub footer: String,
    /// The software that made it (the PDF's Creator).
    pub creator: String,
    /// When the content was fixed, UTC (the PDF's creation date, which PDF/A requires): a date
    /// of the data, not of the rendering, so the same document gives the same bytes.
    pub date: Option<(u16, u8, u8, u8, u8, u8)>,
    pub blocks: Vec<Block>,
}

impl Document {
    pub fn h1(&mut self, s: impl Into<String>) {
        self.blocks.push(Block::Heading(1, s.into()));
    }
    pub fn h2(&mut self, s: impl Into<String>) {
        self.blocks.push(Block::Heading(2, s.into()));
    }
    pub fn h3(&mut self, s: impl Into<String>) {
        self.blocks.push(Block::Heading(3, s.into()));
    }
    pub fn p(&mut self, s: impl Into<String>) {
        self.blocks.push(Block::Paragraph(s.into()));
    }
    pub fn note(&mut self, s: impl Into<String>) {
        self.blocks.push(Block::Note(s.into()));
    }
    pub fn code(&mut self, s: impl Into<String>) {
        self.blocks.push(Block::Code(s.into()));
    }
    pub fn fields(&mut self, f: Vec<(String, String)>) {
        self.blocks.push(Block::Fields(f));
    }
    pub fn table(&mut self, t: Table) {
        self.blocks.push(Block::Table(t));
    }
}
