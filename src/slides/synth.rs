//! Synthetic H&E slides (placeholder).
