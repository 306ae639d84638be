//! The evaluator: an [`Expr`] over one subject's values. REDCap's rules where they matter:
//! arithmetic with a blank value is blank (a calculated field shows nothing), `sum()`, `mean()`
//! and the other aggregates skip blanks, a blank is equal only to `''`, and an ordering
//! comparison (`<`, `>=`, …) with a blank side does not hold — so `[death_date] < [enrol_date]`
//! flags only subjects who have both dates. Values that both read as numbers compare as numbers,
//! others as text (ISO dates therefore compare by date).

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime};

use crate::{BinOp, Expr, FieldRef, Func};

/// What logic computes with.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Blank,
    Num(f64),
    Text(String),
    Bool(bool),
}

/// One subject's values, as the evaluator asks for them.
pub trait Data {
    /// The stored value of a field: the text as stored (an ISO date, a choice's code, a number),
    /// a checkbox option's "1" or "0", or [`Value::Blank`].
    fn value(&self, field: &FieldRef) -> Value;
    /// The moment `'today'` and `'now'` mean in `datediff()`.
    fn now(&self) -> NaiveDateTime;
}

impl Value {
    /// A number, if the value is one (text is read as a number if it is written as one).
    pub fn as_num(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Text(t) => t.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
            Value::Blank => None,
        }
    }

    pub fn is_blank(&self) -> bool {
        match self {
            Value::Blank => true,
            Value::Text(t) => t.is_empty(),
            _ => false,
        }
    }

    /// The value as REDCap would store it: numbers without a trailing `.0`, booleans as 1 and 0.
    pub fn to_text(&self) -> String {
        match self {
            Value::Blank => String::new(),
            Value::Num(n) => format_number(*n),
            Value::Text(t) => t.clone(),
            Value::Bool(b) => if *b { "1" } else { "0" }.into(),
        }
    }

    pub fn truthy(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Num(n) => *n != 0.0 && !n.is_nan(),
            Value::Text(t) => match self.as_num() {
                Some(n) => n != 0.0,
                None => !t.is_empty(),
            },
            Value::Blank => false,
        }
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn num(n: f64) -> Value {
    if n.is_finite() {
        Value::Num(n)
    } else {
        Value::Blank
    }
}

pub(crate) fn eval(e: &Expr, data: &dyn Data) -> Value {
    match e {
        Expr::Num(n) => Value::Num(*n),
        Expr::Str(s) if s.is_empty() => Value::Blank,
        Expr::Str(s) => Value::Text(s.clone()),
        Expr::Bool(b) => Value::Bool(*b),
        Expr::Field(r) => match data.value(r) {
            Value::Text(t) if t.is_empty() => Value::Blank,
            v => v,
        },
        Expr::Neg(x) => eval(x, data).as_num().map(|n| num(-n)).unwrap_or(Value::Blank),
        Expr::Binary(BinOp::And, a, b) => Value::Bool(eval(a, data).truthy() && eval(b, data).truthy()),
        Expr::Binary(BinOp::Or, a, b) => Value::Bool(eval(a, data).truthy() || eval(b, data).truthy()),
        Expr::Binary(op, a, b) => binary(*op, eval(a, data), eval(b, data)),
        Expr::Call(f, args) => call(*f, args, data),
    }
}

fn binary(op: BinOp, a: Value, b: Value) -> Value {
    use std::cmp::Ordering;
    let arithmetic = |f: fn(f64, f64) -> f64| match (a.as_num(), b.as_num()) {
        (Some(x), Some(y)) => num(f(x, y)),
        _ => Value::Blank,
    };
    let order = || -> Option<Ordering> {
        match (a.as_num(), b.as_num()) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => Some(a.to_text().cmp(&b.to_text())),
        }
    };
    let ordered = |test: fn(Ordering) -> bool| Value::Bool(!a.is_blank() && !b.is_blank() && order().is_some_and(test));
    let equal = || match (a.as_num(), b.as_num()) {
        (Some(x), Some(y)) => x == y,
        _ => a.to_text() == b.to_text(),
    };
    match op {
        BinOp::Add => arithmetic(|x, y| x + y),
        BinOp::Sub => arithmetic(|x, y| x - y),
        BinOp::Mul => arithmetic(|x, y| x * y),
        BinOp::Div => arithmetic(|x, y| x / y),
        BinOp::Pow => arithmetic(f64::powf),
        BinOp::Eq => Value::Bool(equal()),
        BinOp::Ne => Value::Bool(!equal()),
        BinOp::Lt => ordered(|o| o == Ordering::Less),
        BinOp::Le => ordered(|o| o != Ordering::Greater),
        BinOp::Gt => ordered(|o| o == Ordering::Greater),
        BinOp::Ge => ordered(|o| o != Ordering::Less),
        BinOp::And => Value::Bool(a.truthy() && b.truthy()),
        BinOp::Or => Value::Bool(a.truthy() || b.truthy()),
    }
}

fn call(f: Func, args: &[Expr], data: &dyn Data) -> Value {
    // `if` evaluates only the branch it takes.
    if f == Func::If {
        let branch = if eval(&args[0], data).truthy() { &args[1] } else { &args[2] };
        return eval(branch, data);
    }
    let values: Vec<Value> = args.iter().map(|a| eval(a, data)).collect();
    let numbers = || values.iter().filter_map(Value::as_num).collect::<Vec<f64>>();
    let one = || values[0].as_num();
    let text = |i: usize| values[i].to_text().to_lowercase();
    let decimals = || values.get(1).and_then(Value::as_num).unwrap_or(0.0);
    let rounded = |how: fn(f64) -> f64| match one() {
        Some(x) => {
            let scale = 10f64.powf(decimals().trunc());
            num(how(x * scale) / scale)
        }
        None => Value::Blank,
    };
    let date_part = |part: fn(&NaiveDateTime) -> u32| match parse_moment(&values[0], "ymd", data) {
        Some(d) => Value::Num(part(&d) as f64),
        None => Value::Blank,
    };
    match f {
        Func::If => Value::Blank,
        Func::Datediff => datediff(&values, data),
        // REDCap's sum() of nothing but blanks is 0; the other aggregates have no value then.
        Func::Sum => num(numbers().iter().sum()),
        Func::Mean => mean(&numbers()).map(num).unwrap_or(Value::Blank),
        Func::Median => median(numbers()).map(num).unwrap_or(Value::Blank),
        Func::Min => numbers().into_iter().reduce(f64::min).map(num).unwrap_or(Value::Blank),
        Func::Max => numbers().into_iter().reduce(f64::max).map(num).unwrap_or(Value::Blank),
        Func::Stdev => stdev(&numbers()).map(num).unwrap_or(Value::Blank),
        Func::Round => rounded(f64::round),
        Func::Roundup => rounded(f64::ceil),
        Func::Rounddown => rounded(f64::floor),
        Func::Abs => one().map(|x| num(x.abs())).unwrap_or(Value::Blank),
        Func::Sqrt => one().filter(|x| *x >= 0.0).map(|x| num(x.sqrt())).unwrap_or(Value::Blank),
        Func::Exp => one().map(|x| num(x.exp())).unwrap_or(Value::Blank),
        Func::Log => match (one(), values.get(1).map(Value::as_num)) {
            (Some(x), None) if x > 0.0 => num(x.ln()),
            (Some(x), Some(Some(base))) if x > 0.0 && base > 0.0 => num(x.log(base)),
            _ => Value::Blank,
        },
        Func::Isnumber => Value::Bool(one().is_some()),
        Func::Isinteger => Value::Bool(values[0].to_text().trim().parse::<i64>().is_ok()),
        // REDCap's text functions ignore case.
        Func::Contains => Value::Bool(text(0).contains(&text(1))),
        Func::NotContain => Value::Bool(!text(0).contains(&text(1))),
        Func::StartsWith => Value::Bool(text(0).starts_with(&text(1))),
        Func::EndsWith => Value::Bool(text(0).ends_with(&text(1))),
        Func::Length => Value::Num(values[0].to_text().chars().count() as f64),
        Func::Year => date_part(|d| d.year().max(0) as u32),
        Func::Month => date_part(|d| d.month()),
        Func::Day => date_part(|d| d.day()),
    }
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    Some(if xs.len() % 2 == 1 { xs[m] } else { (xs[m - 1] + xs[m]) / 2.0 })
}

/// The sample standard deviation (n − 1 in the denominator), as REDCap's `stdev()`.
fn stdev(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let m = mean(xs)?;
    Some((xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt())
}

/// The units `datediff()` knows and their length in seconds. REDCap's help: a year is 365.2425
/// days and a month 30.44 days.
pub(crate) const DATEDIFF_UNITS: [(&str, f64); 6] =
    [("y", 365.2425 * 86400.0), ("M", 30.44 * 86400.0), ("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0)];

/// `datediff(date1, date2, units [, format] [, signed])`: date2 − date1 in the units, its
/// absolute value unless `signed` is true (REDCap's default is unsigned). `format` ("ymd",
/// "mdy", "dmy") says how dates written in the logic itself are ordered; stored dates are ISO.
fn datediff(values: &[Value], data: &dyn Data) -> Value {
    let (format, signed) = match values.get(3) {
        Some(Value::Bool(b)) => ("ymd".to_string(), *b),
        Some(v) => (v.to_text(), values.get(4).is_some_and(Value::truthy)),
        None => ("ymd".to_string(), false),
    };
    let unit = values[2].to_text();
    let Some((_, seconds)) = DATEDIFF_UNITS.iter().find(|(u, _)| *u == unit) else {
        return Value::Blank;
    };
    match (parse_moment(&values[0], &format, data), parse_moment(&values[1], &format, data)) {
        (Some(a), Some(b)) => {
            let diff = (b - a).num_seconds() as f64 / seconds;
            num(if signed { diff } else { diff.abs() })
        }
        _ => Value::Blank,
    }
}

/// A date or date-time: `today`, `now`, ISO (`2024-03-01`, `2024-03-01 14:30[:00]`), or the
/// logic's own format with `-` or `/` (`03/01/2024` for "mdy").
fn parse_moment(v: &Value, format: &str, data: &dyn Data) -> Option<NaiveDateTime> {
    let text = v.to_text();
    let text = text.trim();
    match text.to_ascii_lowercase().as_str() {
        "today" => return Some(data.now().date().and_time(NaiveTime::MIN)),
        "now" => return Some(data.now()),
        _ => {}
    }
    let (date, time) = match text.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let parts: Vec<&str> = date.split(['-', '/']).collect();
    let [a, b, c] = parts.as_slice() else { return None };
    let (y, m, d) = if a.len() == 4 {
        (a, b, c)
    } else {
        match format {
            "mdy" => (c, a, b),
            "dmy" => (c, b, a),
            _ => return None,
        }
    };
    let date = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?;
    let time = match time {
        None => NaiveTime::MIN,
        Some(t) => NaiveTime::parse_from_str(t, "%H:%M:%S").or_else(|_| NaiveTime::parse_from_str(t, "%H:%M")).ok()?,
    };
    Some(date.and_time(time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_redcap_stores_them() {
        assert_eq!(Value::Num(2.0).to_text(), "2");
        assert_eq!(Value::Num(2.5).to_text(), "2.5");
        assert_eq!(Value::Num(-0.25).to_text(), "-0.25");
    }

    #[test]
    fn median_and_stdev() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        // 2, 4, 4, 4, 5, 5, 7, 9: sample SD = sqrt(32 / 7)
        let sd = stdev(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap_or(f64::NAN);
        assert!((sd - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(stdev(&[1.0]), None);
    }
}
