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
    /// The highest page number taken as asked: the offset of any page up to it fits in an i64.
    pub const MAX_PAGE: i64 = 1_000_000_000;

    /// Clamps user-supplied values into a sane range.
    pub fn new(page: Option<i64>, per_page: Option<i64>) -> Self {
        PageRequest {
            page: page.unwrap_or(1).clamp(1, Self::MAX_PAGE),
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
        let first = (self.page - 1).saturating_mul(self.per_page).saturating_add(1);
        if self.items.is_empty() || first > self.total {
            // A page past the end (a hand-typed `page=`).
            return format!("0 of {}", self.total);
        }
        let last = (first + self.items.len() as i64 - 1).max(first);
        format!("{first}–{last} of {}", self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_past_the_end_or_out_of_range_reads_sensibly() {
        let req = PageRequest::new(Some(i64::MAX), None);
        assert_eq!(req.page, PageRequest::MAX_PAGE);
        assert!(req.offset() > 0, "no overflow");
        let past: Page<()> = Page { items: vec![], total: 201, page: req.page, per_page: req.per_page };
        assert_eq!(past.range_label(), "0 of 201");
        let last: Page<u8> = Page { items: vec![0], total: 201, page: 5, per_page: 50 };
        assert_eq!(last.range_label(), "201–201 of 201");
        assert_eq!(PageRequest::new(Some(-3), Some(0)).offset(), 0);
    }
}
