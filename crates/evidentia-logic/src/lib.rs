//! REDCap's logic language, one parser and one evaluator for everything that uses it: branching
//! logic (show a field only if …), calculated fields and data quality rules. The syntax is the one
//! REDCap's "Branching Logic" and "Calculated Fields" help describes: `[field]`, `[event][field]`,
//! checkbox options `[field(code)]`, quoted strings and numbers, `= <> != < <= > >=`, `and` / `or`,
//! `+ - * / ^` and parentheses, and the functions in [`Func`] (`if`, `datediff`, `sum`, …).
//!
//! An engine crate (no database, no I/O): the application parses a dictionary's logic with
//! [`Logic::parse`], checks what it names with [`Logic::references`], and evaluates it over a
//! subject's values through the [`Data`] trait.

mod eval;
mod parse;
#[cfg(test)]
mod tests;

pub use eval::{Data, Value};

/// A parsed piece of logic and the text it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Logic {
    source: String,
    expr: Expr,
}

/// Where the text could not be read: a character position (from 1) and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub position: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at character {}: {}", self.position, self.message)
    }
}

impl std::error::Error for ParseError {}

/// A field as logic names it: `[event][field(code)][instance]`, all but the field optional.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldRef {
    /// A unique event name (`baseline_arm_1`); `None` is the event being evaluated.
    pub event: Option<String>,
    pub field: String,
    /// A checkbox option's code: `[race(2)]` is "1" when option 2 is ticked, else "0".
    pub code: Option<String>,
    /// A repeating instrument's or event's instance (`[visit_date][2]`); `None` is the current one.
    pub instance: Option<u32>,
}

impl std::fmt::Display for FieldRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(e) = &self.event {
            write!(f, "[{e}]")?;
        }
        write!(f, "[{}", self.field)?;
        if let Some(c) = &self.code {
            write!(f, "({c})")?;
        }
        write!(f, "]")?;
        if let Some(i) = self.instance {
            write!(f, "[{i}]")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

/// Declares [`Func`] with each function's name and how many arguments it takes.
macro_rules! funcs {
    ($(#[$m:meta])* $($v:ident = $name:literal ($min:expr, $max:expr)),+ $(,)?) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Func { $($v),+ }
        impl Func {
            pub const ALL: &'static [Func] = &[$(Func::$v),+];
            pub fn name(self) -> &'static str {
                match self { $(Func::$v => $name),+ }
            }
            /// The fewest and most arguments it takes.
            pub fn arity(self) -> (usize, usize) {
                match self { $(Func::$v => ($min, $max)),+ }
            }
            /// By name, as REDCap reads them (any case).
            pub fn named(name: &str) -> Option<Func> {
                let lower = name.to_ascii_lowercase();
                match lower.as_str() { $($name => Some(Func::$v),)+ _ => None }
            }
        }
    };
}

funcs! {
    /// The functions logic may call (REDCap's "special functions" that work on one subject).
    If = "if" (3, 3),
    Datediff = "datediff" (3, 5),
    Sum = "sum" (1, usize::MAX),
    Mean = "mean" (1, usize::MAX),
    Median = "median" (1, usize::MAX),
    Min = "min" (1, usize::MAX),
    Max = "max" (1, usize::MAX),
    Stdev = "stdev" (1, usize::MAX),
    Round = "round" (1, 2),
    Roundup = "roundup" (1, 2),
    Rounddown = "rounddown" (1, 2),
    Abs = "abs" (1, 1),
    Sqrt = "sqrt" (1, 1),
    Exp = "exp" (1, 1),
    Log = "log" (1, 2),
    Isnumber = "isnumber" (1, 1),
    Isinteger = "isinteger" (1, 1),
    Contains = "contains" (2, 2),
    NotContain = "not_contain" (2, 2),
    StartsWith = "starts_with" (2, 2),
    EndsWith = "ends_with" (2, 2),
    Length = "length" (1, 1),
    Year = "year" (1, 1),
    Month = "month" (1, 1),
    Day = "day" (1, 1),
}

/// The syntax tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(f64),
    Str(String),
    Bool(bool),
    Field(FieldRef),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
}

impl Logic {
    /// Reads logic as REDCap writes it. Blank text is an error: the caller decides what no logic means.
    pub fn parse(source: &str) -> Result<Logic, ParseError> {
        let expr = parse::parse(source)?;
        Ok(Logic { source: source.to_string(), expr })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Every field the logic names, in order of appearance, each once.
    pub fn references(&self) -> Vec<&FieldRef> {
        fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a FieldRef>) {
            match e {
                Expr::Field(r) => {
                    if !out.contains(&r) {
                        out.push(r)
                    }
                }
                Expr::Neg(x) => walk(x, out),
                Expr::Binary(_, a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Expr::Call(_, args) => args.iter().for_each(|a| walk(a, out)),
                Expr::Num(_) | Expr::Str(_) | Expr::Bool(_) => {}
            }
        }
        let mut out = Vec::new();
        walk(&self.expr, &mut out);
        out
    }

    /// The value of the logic for one subject (a calculated field's result).
    pub fn value(&self, data: &dyn Data) -> Value {
        eval::eval(&self.expr, data)
    }

    /// Whether the logic holds (branching logic shows the field; a rule flags the subject).
    /// Blank, zero, false and the empty string do not hold.
    pub fn holds(&self, data: &dyn Data) -> bool {
        self.value(data).truthy()
    }
}
