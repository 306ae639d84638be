//! One way to page through long lists: a page number and size in, rows plus totals out.

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PageRequest {
    /// 1-based.
    pub page: i64,
    pub per_page: i64,
}

impl PageRequest {
    pub const DEFAULT_PER_PAGE: i64 = 50;
    /// The most a user may ask for on one page.
    pub const MAX_PER_PAGE: i64 = 500;

    /// Clamps user-supplied values into a sane range.
    pub fn new(page: Option<i64>, per_page: Option<i64>) -> Self {
        PageRequest {
            page: page.unwrap_or(1).max(1),
            per_page: per_page.unwrap_or(Self::DEFAULT_PER_PAGE).clamp(1, Self::MAX_PER_PAGE),
        }
    }
    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.per_page
    }
    /// Everything, for CSV exports.
    pub fn all() -> Self {
        PageRequest { page: 1, per_page: i64::MAX / 2 }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

impl<T> Page<T> {
    pub fn pages(&self) -> i64 {
        ((self.total + self.per_page - 1) / self.per_page).max(1)
    }
    pub fn has_prev(&self) -> bool {
        self.page > 1
    }
    pub fn has_next(&self) -> bool {
        self.page < self.pages()
    }
    /// "51–100 of 230", for the pager.
    pub fn range_label(&self) -> String {
        if self.total == 0 {
            return "0 of 0".to_string();
        }
        let first = (self.page - 1) * self.per_page + 1;
        let last = (first + self.items.len() as i64 - 1).max(first);
        format!("{first}–{last} of {}", self.total)
    }
}
