//! The condition language of `conditional` nodes, and `{{variable}}` templates.
//!
//! ```text
//! expr    := or
//! or      := and (("or" | "||") and)*
//! and     := not (("and" | "&&") not)*
//! not     := ("not" | "!") not | compare
//! compare := value (op value)?        op: == != < <= > >= contains starts_with ends_with in
//! value   := number | 'text' | "text" | true | false | null | variable | call | list | (expr)
//! list    := "[" (expr ("," expr)*)? "]"
//! call    := in_hours('schedule') | hour([zone]) | minute([zone]) | weekday([zone])
//!          | day_of_week([zone]) | time([zone]) | date([zone]) | is_set(variable)
//!          | len(expr) | lower(expr)
//! ```
//!
//! Keywords are case-insensitive; variables are `[A-Za-z_][A-Za-z0-9_.]*` and read the call's
//! variables (missing ones are `null`). Time functions read the clock passed in, in the flow's
//! zone unless one is given: `hour()` 0–23, `minute()`, `weekday()` `mon`…`sun`, `day_of_week()`
//! 1 (Monday)…7, `time()` `HH:MM`, `date()` `YYYY-MM-DD`. `in_hours('name')` is whether the
//! flow's schedule of that name is open (time zone and holidays included).
//!
//! Comparisons are numeric when one side is a number and the other reads as one (`digits ==
//! 123`); two texts compare as text (`"0123" != "123"`), case-insensitively for `==`, `!=`,
//! `contains`, `starts_with`, `ends_with` and `in`, by code point for `<`, `>` (so `time() >=
//! "09:00"` works). `null` equals only `null` and is neither greater nor less than anything.
//! Truthiness: `null`, `false`, `0`, `""` and `[]` are false.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use crate::schedule::{BusinessHours, DAY_KEYS};

/// Longest condition accepted, in characters.
pub const MAX_CONDITION_LEN: usize = 2000;
/// Deepest nesting accepted (parentheses, lists, `not`), so parsing and evaluating are bounded.
pub const MAX_DEPTH: usize = 32;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    StartsWith,
    EndsWith,
    In,
}

/// A built-in function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `in_hours('schedule')`.
    InHours,
    /// `hour([zone])`.
    Hour,
    /// `minute([zone])`.
    Minute,
    /// `weekday([zone])`: `mon` … `sun`.
    Weekday,
    /// `day_of_week([zone])`: 1 (Monday) … 7.
    DayOfWeek,
    /// `time([zone])`: `HH:MM`.
    Time,
    /// `date([zone])`: `YYYY-MM-DD`.
    Date,
    /// `is_set(variable)`: present and not null.
    IsSet,
    /// `len(x)`: characters of a text, items of a list.
    Len,
    /// `lower(x)`: lower-case text.
    Lower,
}

impl Func {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "in_hours" => Self::InHours,
            "hour" => Self::Hour,
            "minute" => Self::Minute,
            "weekday" => Self::Weekday,
            "day_of_week" => Self::DayOfWeek,
            "time" => Self::Time,
            "date" => Self::Date,
            "is_set" => Self::IsSet,
            "len" => Self::Len,
            "lower" => Self::Lower,
            _ => return None,
        })
    }

    fn is_clock(self) -> bool {
        matches!(self, Self::Hour | Self::Minute | Self::Weekday | Self::DayOfWeek | Self::Time | Self::Date)
    }
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal.
    Literal(Val),
    /// A call variable.
    Var(String),
    /// A list.
    List(Vec<Expr>),
    /// A function call; arguments checked at parse time (`in_hours` takes a literal name, clock
    /// functions an optional literal zone that parses, `is_set` a variable).
    Call(Func, Vec<Expr>),
    /// `not x`.
    Not(Box<Expr>),
    /// `a and b` (short-circuit).
    And(Box<Expr>, Box<Expr>),
    /// `a or b` (short-circuit).
    Or(Box<Expr>, Box<Expr>),
    /// `a op b`.
    Compare(CmpOp, Box<Expr>, Box<Expr>),
}

/// A runtime value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    List(Vec<Val>),
}

impl Val {
    /// From a variable's JSON (objects read as their JSON text).
    pub fn from_json(v: &Value) -> Self {
        match v {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => n.as_f64().map(Self::Num).unwrap_or(Self::Null),
            Value::String(s) => Self::Str(s.clone()),
            Value::Array(items) => Self::List(items.iter().map(Self::from_json).collect()),
            Value::Object(_) => Self::Str(v.to_string()),
        }
    }

    /// Whether it counts as true.
    pub fn truthy(&self) -> bool {
        match self {
            Self::Null => false,
            Self::Bool(b) => *b,
            Self::Num(n) => *n != 0.0,
            Self::Str(s) => !s.is_empty(),
            Self::List(items) => !items.is_empty(),
        }
    }

    fn text(&self) -> String {
        match self {
            Self::Null => String::new(),
            Self::Bool(b) => b.to_string(),
            Self::Num(n) => format_num(*n),
            Self::Str(s) => s.clone(),
            Self::List(items) => items.iter().map(Val::text).collect::<Vec<_>>().join(","),
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Self::Num(n) => Some(*n),
            Self::Str(s) => parse_plain_number(s),
            _ => None,
        }
    }
}

fn format_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// `-12`, `3.5`, `007`: digits with an optional sign and fraction (no `+`, exponent or spaces,
/// so a phone number stays text).
fn parse_plain_number(s: &str) -> Option<f64> {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let ok = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(body.contains('.') && frac.is_empty());
    if ok {
        s.parse().ok()
    } else {
        None
    }
}

/// Why a condition does not parse: where (character offset) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {position}: {message}")]
pub struct ParseError {
    /// Character offset in the condition.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

/// Why a condition could not be evaluated (a schedule that does not exist).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Op(CmpOp),
    And,
    Or,
    Not,
    True,
    False,
    Null,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Num(n) => format_num(*n),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::LBracket => "`[`".into(),
        Tok::RBracket => "`]`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Op(_) => "an operator".into(),
        Tok::And => "`and`".into(),
        Tok::Or => "`or`".into(),
        Tok::Not => "`not`".into(),
        Tok::True | Tok::False => "a boolean".into(),
        Tok::Null => "`null`".into(),
    }
}

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |position: usize, message: String| ParseError { position, message };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let tok = match (c, two.as_str()) {
            (_, "==") => {
                i += 2;
                Tok::Op(CmpOp::Eq)
            }
            (_, "!=") => {
                i += 2;
                Tok::Op(CmpOp::Ne)
            }
            (_, "<=") => {
                i += 2;
                Tok::Op(CmpOp::Le)
            }
            (_, ">=") => {
                i += 2;
                Tok::Op(CmpOp::Ge)
            }
            (_, "&&") => {
                i += 2;
                Tok::And
            }
            (_, "||") => {
                i += 2;
                Tok::Or
            }
            ('<', _) => {
                i += 1;
                Tok::Op(CmpOp::Lt)
            }
            ('>', _) => {
                i += 1;
                Tok::Op(CmpOp::Gt)
            }
            ('!', _) => {
                i += 1;
                Tok::Not
            }
            ('=', _) => return Err(err(i, "use `==` to compare".into())),
            ('(', _) => {
                i += 1;
                Tok::LParen
            }
            (')', _) => {
                i += 1;
                Tok::RParen
            }
            ('[', _) => {
                i += 1;
                Tok::LBracket
            }
            (']', _) => {
                i += 1;
                Tok::RBracket
            }
            (',', _) => {
                i += 1;
                Tok::Comma
            }
            ('\'' | '"', _) => {
                let quote = c;
                i += 1;
                let mut s = String::new();
                loop {
                    match chars.get(i) {
                        None => return Err(err(start, "text not closed".into())),
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(&e) => s.push(e),
                                None => return Err(err(start, "text not closed".into())),
                            }
                            i += 2;
                        }
                        Some(&q) if q == quote => {
                            i += 1;
                            break;
                        }
                        Some(&other) => {
                            s.push(other);
                            i += 1;
                        }
                    }
                }
                Tok::Str(s)
            }
            _ if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) => {
                i += 1;
                while chars.get(i).is_some_and(|d| d.is_ascii_digit() || *d == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                match parse_plain_number(&text) {
                    Some(n) => Tok::Num(n),
                    None => return Err(err(start, format!("`{text}` is not a number"))),
                }
            }
            _ if c.is_ascii_alphabetic() || c == '_' => {
                while chars.get(i).is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_' || *d == '.') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match word.to_ascii_lowercase().as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "true" => Tok::True,
                    "false" => Tok::False,
                    "null" => Tok::Null,
                    "contains" => Tok::Op(CmpOp::Contains),
                    "starts_with" => Tok::Op(CmpOp::StartsWith),
                    "ends_with" => Tok::Op(CmpOp::EndsWith),
                    "in" => Tok::Op(CmpOp::In),
                    _ => Tok::Ident(word),
                }
            }
            _ => return Err(err(i, format!("unexpected `{c}`"))),
        };
        out.push((start, tok));
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn here(&self) -> usize {
        self.toks.get(self.pos).map(|(p, _)| *p).unwrap_or(self.end)
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError { position: self.here(), message: message.into() })
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|(_, t)| t.clone());
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), ParseError> {
        if self.peek() == Some(want) {
            self.pos += 1;
            Ok(())
        } else {
            let found = self.peek().map(describe).unwrap_or_else(|| "the end".into());
            self.err(format!("expected {what}, found {found}"))
        }
    }

    fn nest(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.err(format!("nested deeper than {MAX_DEPTH}"));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            let right = self.and()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            let right = self.not()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        if self.peek() == Some(&Tok::Not) {
            self.pos += 1;
            self.nest()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, ParseError> {
        let left = self.value()?;
        if let Some(Tok::Op(op)) = self.peek() {
            let op = *op;
            self.pos += 1;
            let right = self.value()?;
            if matches!(self.peek(), Some(Tok::Op(_))) {
                return self.err("comparisons do not chain: use `and`");
            }
            return Ok(Expr::Compare(op, Box::new(left), Box::new(right)));
        }
        Ok(left)
    }

    fn value(&mut self) -> Result<Expr, ParseError> {
        let at = self.here();
        match self.next() {
            Some(Tok::Num(n)) => Ok(Expr::Literal(Val::Num(n))),
            Some(Tok::Str(s)) => Ok(Expr::Literal(Val::Str(s))),
            Some(Tok::True) => Ok(Expr::Literal(Val::Bool(true))),
            Some(Tok::False) => Ok(Expr::Literal(Val::Bool(false))),
            Some(Tok::Null) => Ok(Expr::Literal(Val::Null)),
            Some(Tok::LParen) => {
                self.nest()?;
                let inner = self.or()?;
                self.expect(&Tok::RParen, "`)`")?;
                self.depth -= 1;
                Ok(inner)
            }
            Some(Tok::LBracket) => {
                self.nest()?;
                let mut items = Vec::new();
                if self.peek() != Some(&Tok::RBracket) {
                    loop {
                        items.push(self.or()?);
                        if self.peek() == Some(&Tok::Comma) {
                            self.pos += 1;
                        } else {
                            break;
                        }
                    }
                }
                self.expect(&Tok::RBracket, "`]` or `,`")?;
                self.depth -= 1;
                Ok(Expr::List(items))
            }
            Some(Tok::Ident(name)) => {
                if self.peek() != Some(&Tok::LParen) {
                    return Ok(Expr::Var(name));
                }
                let Some(func) = Func::from_name(&name) else {
                    return Err(ParseError { position: at, message: format!("unknown function `{name}`") });
                };
                self.pos += 1;
                self.nest()?;
                let mut args = Vec::new();
                if self.peek() != Some(&Tok::RParen) {
                    loop {
                        args.push(self.or()?);
                        if self.peek() == Some(&Tok::Comma) {
                            self.pos += 1;
                        } else {
                            break;
                        }
                    }
                }
                self.expect(&Tok::RParen, "`)` or `,`")?;
                self.depth -= 1;
                check_call(func, &name, &args).map_err(|message| ParseError { position: at, message })?;
                Ok(Expr::Call(func, args))
            }
            Some(t) => Err(ParseError { position: at, message: format!("unexpected {}", describe(&t)) }),
            None => self.err("expected a value, found the end"),
        }
    }
}

fn check_call(func: Func, name: &str, args: &[Expr]) -> Result<(), String> {
    match func {
        Func::InHours => match args {
            [Expr::Literal(Val::Str(_))] => Ok(()),
            _ => Err(format!("`{name}` takes one schedule name in quotes")),
        },
        f if f.is_clock() => match args {
            [] => Ok(()),
            [Expr::Literal(Val::Str(zone))] if zone.parse::<Tz>().is_ok() => Ok(()),
            [Expr::Literal(Val::Str(zone))] => Err(format!("`{zone}` is not an IANA time zone")),
            _ => Err(format!("`{name}` takes no argument or a time zone in quotes")),
        },
        Func::IsSet => match args {
            [Expr::Var(_)] => Ok(()),
            _ => Err(format!("`{name}` takes one variable name")),
        },
        _ => match args {
            [_] => Ok(()),
            _ => Err(format!("`{name}` takes one argument")),
        },
    }
}

/// Parses a condition.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    if src.chars().count() > MAX_CONDITION_LEN {
        return Err(ParseError {
            position: 0,
            message: format!("longer than {MAX_CONDITION_LEN} characters"),
        });
    }
    let toks = lex(src)?;
    if toks.is_empty() {
        return Err(ParseError { position: 0, message: "empty condition".into() });
    }
    let mut p = Parser { toks, pos: 0, end: src.chars().count(), depth: 0 };
    let expr = p.or()?;
    if let Some(t) = p.peek() {
        let t = describe(t);
        return p.err(format!("unexpected {t} after the condition"));
    }
    Ok(expr)
}

impl Expr {
    /// Variables the expression reads (not those only tested by `is_set`), in order, once each.
    pub fn variables(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_vars(&mut out);
        out
    }

    fn collect_vars<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Var(v) => {
                if !out.contains(&v.as_str()) {
                    out.push(v)
                }
            }
            Expr::Literal(_) | Expr::Call(Func::IsSet, _) => {}
            Expr::List(items) | Expr::Call(_, items) => items.iter().for_each(|e| e.collect_vars(out)),
            Expr::Not(e) => e.collect_vars(out),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Compare(_, a, b) => {
                a.collect_vars(out);
                b.collect_vars(out);
            }
        }
    }

    /// Schedules named by `in_hours`.
    pub fn schedules(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_schedules(&mut out);
        out
    }

    fn collect_schedules<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Call(Func::InHours, args) => {
                if let [Expr::Literal(Val::Str(name))] = args.as_slice() {
                    out.push(name);
                }
            }
            Expr::Literal(_) | Expr::Var(_) => {}
            Expr::List(items) | Expr::Call(_, items) => items.iter().for_each(|e| e.collect_schedules(out)),
            Expr::Not(e) => e.collect_schedules(out),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Compare(_, a, b) => {
                a.collect_schedules(out);
                b.collect_schedules(out);
            }
        }
    }
}

/// What a condition is evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct EvalContext<'a> {
    /// The call's variables.
    pub variables: &'a BTreeMap<String, Value>,
    /// The clock.
    pub now: DateTime<Utc>,
    /// The zone for time functions without one.
    pub zone: Tz,
    /// The flow's schedules.
    pub schedules: &'a BTreeMap<String, BusinessHours>,
}

/// Evaluates to true or false.
pub fn evaluate(expr: &Expr, ctx: &EvalContext<'_>) -> Result<bool, EvalError> {
    eval(expr, ctx).map(|v| v.truthy())
}

/// Evaluates to a value.
pub fn eval(expr: &Expr, ctx: &EvalContext<'_>) -> Result<Val, EvalError> {
    Ok(match expr {
        Expr::Literal(v) => v.clone(),
        Expr::Var(name) => ctx.variables.get(name).map(Val::from_json).unwrap_or(Val::Null),
        Expr::List(items) => Val::List(items.iter().map(|e| eval(e, ctx)).collect::<Result<_, _>>()?),
        Expr::Not(e) => Val::Bool(!eval(e, ctx)?.truthy()),
        Expr::And(a, b) => Val::Bool(eval(a, ctx)?.truthy() && eval(b, ctx)?.truthy()),
        Expr::Or(a, b) => Val::Bool(eval(a, ctx)?.truthy() || eval(b, ctx)?.truthy()),
        Expr::Compare(op, a, b) => Val::Bool(compare(*op, &eval(a, ctx)?, &eval(b, ctx)?)),
        Expr::Call(func, args) => call(*func, args, ctx)?,
    })
}

fn call(func: Func, args: &[Expr], ctx: &EvalContext<'_>) -> Result<Val, EvalError> {
    let literal = |i: usize| match args.get(i) {
        Some(Expr::Literal(Val::Str(s))) => Some(s.as_str()),
        _ => None,
    };
    if func.is_clock() {
        let zone = match literal(0) {
            Some(z) => z.parse::<Tz>().map_err(|_| EvalError(format!("`{z}` is not an IANA time zone")))?,
            None => ctx.zone,
        };
        let local = ctx.now.with_timezone(&zone);
        return Ok(match func {
            Func::Hour => Val::Num(f64::from(local.hour())),
            Func::Minute => Val::Num(f64::from(local.minute())),
            Func::Weekday => Val::Str(DAY_KEYS[local.weekday().num_days_from_monday() as usize].to_owned()),
            Func::DayOfWeek => Val::Num(f64::from(local.weekday().number_from_monday())),
            Func::Time => Val::Str(local.format("%H:%M").to_string()),
            _ => Val::Str(local.format("%Y-%m-%d").to_string()),
        });
    }
    Ok(match func {
        Func::InHours => {
            let name = literal(0).unwrap_or_default();
            let hours =
                ctx.schedules.get(name).ok_or_else(|| EvalError(format!("no schedule named `{name}`")))?;
            Val::Bool(hours.is_open(ctx.now))
        }
        Func::IsSet => match args.first() {
            Some(Expr::Var(name)) => Val::Bool(ctx.variables.get(name).is_some_and(|v| !v.is_null())),
            _ => Val::Bool(false),
        },
        Func::Len => match args.first().map(|a| eval(a, ctx)).transpose()? {
            Some(Val::List(items)) => Val::Num(items.len() as f64),
            Some(Val::Null) | None => Val::Num(0.0),
            Some(v) => Val::Num(v.text().chars().count() as f64),
        },
        _ => match args.first().map(|a| eval(a, ctx)).transpose()? {
            Some(Val::Null) | None => Val::Null,
            Some(v) => Val::Str(v.text().to_lowercase()),
        },
    })
}

fn text_eq(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Null, _) | (_, Val::Null) => false,
        (Val::Num(_), _) | (_, Val::Num(_)) => match (a.number(), b.number()) {
            (Some(x), Some(y)) => x == y,
            _ => a.text().to_lowercase() == b.text().to_lowercase(),
        },
        (Val::List(x), Val::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| text_eq(p, q)),
        _ => a.text().to_lowercase() == b.text().to_lowercase(),
    }
}

/// Applies a comparison operator.
pub fn compare(op: CmpOp, a: &Val, b: &Val) -> bool {
    match op {
        CmpOp::Eq => text_eq(a, b),
        CmpOp::Ne => !text_eq(a, b),
        CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => {
            if matches!(a, Val::Null) || matches!(b, Val::Null) {
                return false;
            }
            let numeric = matches!(a, Val::Num(_)) || matches!(b, Val::Num(_));
            let ord = match (a.number(), b.number()) {
                (Some(x), Some(y)) if numeric => x.partial_cmp(&y),
                _ => Some(a.text().cmp(&b.text())),
            };
            let Some(ord) = ord else { return false };
            match op {
                CmpOp::Lt => ord.is_lt(),
                CmpOp::Le => ord.is_le(),
                CmpOp::Gt => ord.is_gt(),
                _ => ord.is_ge(),
            }
        }
        CmpOp::Contains => match a {
            Val::List(items) => items.iter().any(|i| text_eq(i, b)),
            Val::Null => false,
            _ => a.text().to_lowercase().contains(&b.text().to_lowercase()),
        },
        CmpOp::StartsWith => {
            !matches!(a, Val::Null) && a.text().to_lowercase().starts_with(&b.text().to_lowercase())
        }
        CmpOp::EndsWith => {
            !matches!(a, Val::Null) && a.text().to_lowercase().ends_with(&b.text().to_lowercase())
        }
        CmpOp::In => match b {
            Val::List(items) => items.iter().any(|i| text_eq(a, i)),
            Val::Null => false,
            _ => !matches!(a, Val::Null) && b.text().to_lowercase().contains(&a.text().to_lowercase()),
        },
    }
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// A variable's value as text in a template (`null` and missing: empty).
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `text` with every `{{ name }}` replaced by the variable's text (missing: empty), each
/// passed through `encode` (identity for prompts, percent-encoding for URLs). A `{{` without
/// its `}}` is kept as written.
pub fn interpolate_with(
    text: &str,
    variables: &BTreeMap<String, Value>,
    encode: impl Fn(&str) -> String,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else { break };
        out.push_str(&rest[..open]);
        let name = rest[open + 2..open + 2 + close].trim();
        out.push_str(&encode(&variables.get(name).map(value_text).unwrap_or_default()));
        rest = &rest[open + 2 + close + 2..];
    }
    out.push_str(rest);
    out
}

/// [`interpolate_with`] without encoding.
pub fn interpolate(text: &str, variables: &BTreeMap<String, Value>) -> String {
    interpolate_with(text, variables, str::to_owned)
}

/// The variables a template reads.
pub fn template_variables(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open + 2..].find("}}") else { break };
        let name = rest[open + 2..open + 2 + close].trim();
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
        rest = &rest[open + 2 + close + 2..];
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so a value interpolated
/// into a URL cannot change its host or path.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether a variable name is valid: 1–64 of letters, digits, `_` and `.`, not starting with a
/// digit or `.`, and not a keyword.
pub fn is_variable_name(name: &str) -> bool {
    let keyword = matches!(
        name.to_ascii_lowercase().as_str(),
        "and" | "or" | "not" | "true" | "false" | "null" | "contains" | "starts_with" | "ends_with" | "in"
    );
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !keyword
}
