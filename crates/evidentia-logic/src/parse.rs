//! The parser: REDCap's logic text to an [`Expr`], with winnow. Precedence, lowest first:
//! `or`, `and`, comparisons (one per level, as REDCap allows), `+ -`, `* /`, unary minus, `^`
//! (right-associative, so `-2^2` is -4 as in arithmetic).

use winnow::ascii::{digit1, multispace0};
use winnow::combinator::{alt, cut_err, delimited, opt, preceded, repeat, separated};
use winnow::error::{ContextError, ErrMode};
use winnow::prelude::*;
use winnow::stream::Stream;
use winnow::token::{one_of, take_till, take_while};

use crate::{BinOp, Expr, FieldRef, Func, ParseError};

type Error = ContextError<String>;
type PResult<O> = winnow::ModalResult<O, Error>;

/// The longest logic read (REDCap's longest calculations are a few hundred characters).
pub const MAX_CHARS: usize = 4000;
/// The deepest nesting of parentheses, signs and powers: the parser and the evaluator recurse,
/// and text a person sends must not exhaust a thread's stack.
pub const MAX_DEPTH: usize = 32;

pub(crate) fn parse(source: &str) -> Result<Expr, ParseError> {
    if source.trim().is_empty() {
        return Err(ParseError { position: 1, message: "no logic written".into() });
    }
    let chars = source.chars().count();
    if chars > MAX_CHARS {
        return Err(ParseError { position: MAX_CHARS + 1, message: format!("longer than {MAX_CHARS} characters") });
    }
    check_depth(source)?;
    let result = delimited(multispace0, or_expr, multispace0).parse(source);
    result.map_err(|e| {
        let offset = e.offset();
        let rest = &source[offset..];
        let message = match e.inner().context().next() {
            Some(m) => m.clone(),
            None if rest.is_empty() => "the logic ends too early".into(),
            None => format!("unexpected '{}'", rest.chars().take(12).collect::<String>()),
        };
        ParseError { position: source[..offset].chars().count() + 1, message }
    })
}

/// Refuses text nested deeper than [`MAX_DEPTH`] before it is parsed: parentheses (and function
/// calls), runs of signs (`---1`) and chains of powers (`2^2^2`), outside quoted text.
fn check_depth(source: &str) -> Result<(), ParseError> {
    let (mut parens, mut signs, mut powers) = (0usize, 0usize, 0usize);
    let mut quote: Option<char> = None;
    for (i, c) in source.chars().enumerate() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' => parens += 1,
            ')' => parens = parens.saturating_sub(1),
            '-' | '+' => signs += 1,
            '^' => powers += 1,
            c if c.is_whitespace() => {}
            _ => signs = 0,
        }
        if parens > MAX_DEPTH || signs > MAX_DEPTH || powers > MAX_DEPTH {
            return Err(ParseError { position: i + 1, message: format!("nested deeper than {MAX_DEPTH} levels") });
        }
    }
    Ok(())
}

/// An error that stops parsing here, with its message.
fn fail_here<O>(message: String) -> PResult<O> {
    let mut e = Error::new();
    e.push(message);
    Err(ErrMode::Cut(e))
}

fn ws<'a, O>(inner: impl Parser<&'a str, O, ErrMode<Error>>) -> impl Parser<&'a str, O, ErrMode<Error>> {
    preceded(multispace0, inner)
}

/// A keyword (`and`, `or`, `true`) in any case, not followed by a letter, digit or `_`.
fn keyword<'a>(word: &'static str) -> impl Parser<&'a str, (), ErrMode<Error>> {
    move |i: &mut &'a str| {
        let start = i.checkpoint();
        let w: &str = take_while(1.., |c: char| c.is_ascii_alphanumeric() || c == '_').parse_next(i)?;
        if w.eq_ignore_ascii_case(word) {
            Ok(())
        } else {
            i.reset(&start);
            Err(ErrMode::Backtrack(Error::new()))
        }
    }
}

fn binary_chain<'a>(
    i: &mut &'a str,
    operand: fn(&mut &'a str) -> PResult<Expr>,
    op: impl Parser<&'a str, BinOp, ErrMode<Error>>,
) -> PResult<Expr> {
    let first = operand(i)?;
    repeat(0.., (ws(op), cut_err(operand)))
        .fold(move || first.clone(), |acc, (op, rhs)| Expr::Binary(op, Box::new(acc), Box::new(rhs)))
        .parse_next(i)
}

fn or_expr(i: &mut &str) -> PResult<Expr> {
    binary_chain(i, and_expr, alt((keyword("or"), "||".void())).value(BinOp::Or))
}

fn and_expr(i: &mut &str) -> PResult<Expr> {
    binary_chain(i, comparison, alt((keyword("and"), "&&".void())).value(BinOp::And))
}

fn comparison(i: &mut &str) -> PResult<Expr> {
    let lhs = additive(i)?;
    let op = opt(ws(alt((
        "<>".value(BinOp::Ne),
        "!=".value(BinOp::Ne),
        "<=".value(BinOp::Le),
        ">=".value(BinOp::Ge),
        "=".value(BinOp::Eq),
        "<".value(BinOp::Lt),
        ">".value(BinOp::Gt),
    ))))
    .parse_next(i)?;
    match op {
        None => Ok(lhs),
        Some(op) => {
            let rhs = cut_err(additive).parse_next(i)?;
            Ok(Expr::Binary(op, Box::new(lhs), Box::new(rhs)))
        }
    }
}

fn additive(i: &mut &str) -> PResult<Expr> {
    binary_chain(i, multiplicative, alt(('+'.value(BinOp::Add), '-'.value(BinOp::Sub))))
}

fn multiplicative(i: &mut &str) -> PResult<Expr> {
    binary_chain(i, unary, alt(('*'.value(BinOp::Mul), '/'.value(BinOp::Div))))
}

fn unary(i: &mut &str) -> PResult<Expr> {
    let sign = opt(ws(one_of(['-', '+']))).parse_next(i)?;
    match sign {
        Some('-') => Ok(Expr::Neg(Box::new(cut_err(unary).parse_next(i)?))),
        Some(_) => cut_err(unary).parse_next(i),
        None => power(i),
    }
}

fn power(i: &mut &str) -> PResult<Expr> {
    let base = atom(i)?;
    match opt(ws('^')).parse_next(i)? {
        None => Ok(base),
        Some(_) => Ok(Expr::Binary(BinOp::Pow, Box::new(base), Box::new(cut_err(unary).parse_next(i)?))),
    }
}

fn atom(i: &mut &str) -> PResult<Expr> {
    let _ = multispace0.parse_next(i)?;
    match i.chars().next() {
        Some('(') => delimited('(', cut_err(or_expr), cut_err(ws(')'))).parse_next(i).or_else(|e| match e {
            ErrMode::Cut(inner) if inner.context().next().is_none() => fail_here("expected ')'".into()),
            e => Err(e),
        }),
        Some('[') => field(i).map(Expr::Field),
        Some('"') | Some('\'') => string(i).map(Expr::Str),
        Some(c) if c.is_ascii_digit() || c == '.' => number(i),
        Some(c) if c.is_ascii_alphabetic() => word(i),
        Some(_) => fail_here(format!("expected a value, a [field] or a function, not '{}'", preview(i))),
        None => fail_here("the logic ends where a value was expected".into()),
    }
}

fn preview(i: &str) -> String {
    i.chars().take(12).collect()
}

fn number(i: &mut &str) -> PResult<Expr> {
    let whole: PResult<&str> = (digit1.void(), opt(('.', opt(digit1)))).take().parse_next(i);
    let text: &str = match whole {
        Ok(t) => t,
        // `.5`
        Err(_) => match ('.', digit1::<_, ErrMode<Error>>).take().parse_next(i) {
            Ok(t) => t,
            Err(_) => return fail_here("a '.' with no digits is not a number".into()),
        },
    };
    match text.parse::<f64>() {
        Ok(n) => Ok(Expr::Num(n)),
        Err(_) => fail_here(format!("'{text}' is not a number")),
    }
}

fn string(i: &mut &str) -> PResult<String> {
    let start = i.checkpoint();
    let quote = one_of(['"', '\'']).parse_next(i)?;
    let body: &str = take_till(0.., quote).parse_next(i)?;
    if i.is_empty() {
        i.reset(&start);
        return fail_here(format!("the text {quote}{}… has no closing quote ({quote})", preview(body)));
    }
    let _ = one_of(quote).parse_next(i)?;
    Ok(body.to_string())
}

/// `true`, `false`, or a function call.
fn word(i: &mut &str) -> PResult<Expr> {
    let start = i.checkpoint();
    let name: &str = take_while(1.., |c: char| c.is_ascii_alphanumeric() || c == '_').parse_next(i)?;
    if name.eq_ignore_ascii_case("true") {
        return Ok(Expr::Bool(true));
    }
    if name.eq_ignore_ascii_case("false") {
        return Ok(Expr::Bool(false));
    }
    if opt(ws('(')).parse_next(i)?.is_none() {
        i.reset(&start);
        return fail_here(format!("'{name}' is not a value: write a field as [{name}] and text in quotes"));
    }
    let Some(func) = Func::named(name) else {
        i.reset(&start);
        let known: Vec<&str> = Func::ALL.iter().map(|f| f.name()).collect();
        return fail_here(format!("unknown function '{name}' (known: {})", known.join(", ")));
    };
    let args: Vec<Expr> = separated(0.., or_expr, ws(',')).parse_next(i)?;
    if opt(ws(')')).parse_next(i)?.is_none() {
        return fail_here(format!("expected ',' or ')' in {name}(…)"));
    }
    let (min, max) = func.arity();
    if args.len() < min || args.len() > max {
        i.reset(&start);
        let wanted = match (min, max) {
            (a, b) if a == b => format!("{a}"),
            (a, usize::MAX) => format!("at least {a}"),
            (a, b) => format!("{a} to {b}"),
        };
        return fail_here(format!("{name}() takes {wanted} arguments, not {}", args.len()));
    }
    if let (Func::Datediff, Some(Expr::Str(unit))) = (func, args.get(2)) {
        if !crate::eval::DATEDIFF_UNITS.iter().any(|(u, _)| u == unit) {
            i.reset(&start);
            return fail_here(format!(
                "datediff() has no unit '{unit}' (use \"y\", \"M\", \"d\", \"h\", \"m\" or \"s\")"
            ));
        }
    }
    Ok(Expr::Call(func, args))
}

/// `[event][field(code)][instance]`.
fn field(i: &mut &str) -> PResult<FieldRef> {
    let (first, first_code) = bracketed_name(i)?;
    let mut r = FieldRef { event: None, field: first, code: first_code, instance: None };
    if i.starts_with('[') {
        let start = i.checkpoint();
        let digits: Option<&str> = opt(delimited('[', digit1, ']')).parse_next(i)?;
        if let Some(d) = digits {
            r.instance = Some(instance(d, i, &start)?);
            return Ok(r);
        }
        if r.code.is_some() {
            return fail_here(format!(
                "[{}({})] is a checkbox option, not an event",
                r.field,
                r.code.unwrap_or_default()
            ));
        }
        let (field, code) = bracketed_name(i)?;
        r = FieldRef { event: Some(r.field), field, code, instance: None };
        if i.starts_with('[') {
            let start = i.checkpoint();
            let d: &str = delimited('[', digit1, ']')
                .parse_next(i)
                .or_else(|_: ErrMode<Error>| fail_here("expected an instance number, as in [field][2]".into()))?;
            r.instance = Some(instance(d, i, &start)?);
        }
    }
    Ok(r)
}

fn instance<'a>(digits: &str, i: &mut &'a str, start: &<&'a str as Stream>::Checkpoint) -> PResult<u32> {
    match digits.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => {
            i.reset(start);
            fail_here(format!("instance [{digits}] must be a number from 1"))
        }
    }
}

/// `[name]` or `[name(code)]`.
fn bracketed_name(i: &mut &str) -> PResult<(String, Option<String>)> {
    let start = i.checkpoint();
    let _ = '['.parse_next(i)?;
    let inner: &str = take_till(0.., [']', '[']).parse_next(i)?;
    if !i.starts_with(']') {
        i.reset(&start);
        return fail_here("a '[' has no closing ']'".into());
    }
    let _ = ']'.parse_next(i)?;
    let is_name = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let (name, code) = match inner.split_once('(') {
        Some((name, rest)) => match rest.strip_suffix(')') {
            Some(code) if is_name(&code.replace(['-', '.'], "")) => (name, Some(code.to_string())),
            _ => {
                i.reset(&start);
                return fail_here(format!("[{inner}]: a checkbox option is written [field(code)]"));
            }
        },
        None => (inner, None),
    };
    if !is_name(name) {
        i.reset(&start);
        return fail_here(if name.contains('-') {
            format!("[{inner}] is a REDCap smart variable, which Evidentia does not evaluate")
        } else {
            format!("[{inner}] is not a field name (letters, digits and '_')")
        });
    }
    Ok((name.to_string(), code))
}
