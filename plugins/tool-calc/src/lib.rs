//! `tool-calc`: an exact arithmetic calculator tool.
//!
//! Expressions over rational numbers (`i128` numerator/denominator, always
//! reduced): `+ - * /`, `^` with an integer exponent, parentheses, unary
//! minus, and decimal literals taken exactly (`0.1` is 1/10). Results are
//! exact: an integer, or `n/d` followed by its decimal expansion when that
//! expansion terminates. Overflow and division by zero are reported as errors,
//! never rounded away.

use engram_plugin_sdk::tool::{Guest, ToolError, ToolSpec};

/// An exact rational number, always reduced with a positive denominator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    num: i128,
    den: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

const OVERFLOW: &str = "number too large for exact arithmetic (limit ±1.7e38)";

impl Ratio {
    /// `num / den`, reduced.
    pub fn new(num: i128, den: i128) -> Result<Ratio, String> {
        if den == 0 {
            return Err("division by zero".into());
        }
        let g = gcd(num, den).max(1);
        let (mut n, mut d) = (num / g, den / g);
        if d < 0 {
            n = n.checked_neg().ok_or(OVERFLOW)?;
            d = d.checked_neg().ok_or(OVERFLOW)?;
        }
        Ok(Ratio { num: n, den: d })
    }
    fn int(n: i128) -> Ratio {
        Ratio { num: n, den: 1 }
    }
    fn add(self, o: Ratio) -> Result<Ratio, String> {
        let g = gcd(self.den, o.den);
        let l = (self.den / g).checked_mul(o.den).ok_or(OVERFLOW)?;
        let a = self.num.checked_mul(l / self.den).ok_or(OVERFLOW)?;
        let b = o.num.checked_mul(l / o.den).ok_or(OVERFLOW)?;
        Ratio::new(a.checked_add(b).ok_or(OVERFLOW)?, l)
    }
    fn neg(self) -> Result<Ratio, String> {
        Ok(Ratio {
            num: self.num.checked_neg().ok_or(OVERFLOW)?,
            den: self.den,
        })
    }
    fn mul(self, o: Ratio) -> Result<Ratio, String> {
        let g1 = gcd(self.num, o.den).max(1);
        let g2 = gcd(o.num, self.den).max(1);
        let n = (self.num / g1).checked_mul(o.num / g2).ok_or(OVERFLOW)?;
        let d = (self.den / g2).checked_mul(o.den / g1).ok_or(OVERFLOW)?;
        Ratio::new(n, d)
    }
    fn recip(self) -> Result<Ratio, String> {
        Ratio::new(self.den, self.num)
    }
    fn pow(self, e: Ratio) -> Result<Ratio, String> {
        if e.den != 1 {
            return Err("exponent must be an integer for an exact result".into());
        }
        if e.num.unsigned_abs() > 4096 {
            return Err("exponent too large (limit 4096)".into());
        }
        let mut acc = Ratio::int(1);
        for _ in 0..e.num.unsigned_abs() {
            acc = acc.mul(self)?;
        }
        if e.num < 0 {
            acc.recip()
        } else {
            Ok(acc)
        }
    }
    /// The exact text: `n`, or `n/d` plus ` = <decimal>` when it terminates.
    pub fn render(self) -> String {
        if self.den == 1 {
            return self.num.to_string();
        }
        let mut d = self.den;
        while d % 2 == 0 {
            d /= 2;
        }
        while d % 5 == 0 {
            d /= 5;
        }
        if d != 1 {
            return format!("{}/{}", self.num, self.den);
        }
        let neg = self.num < 0;
        let n = self.num.unsigned_abs();
        let den = self.den as u128;
        let mut s = format!("{}{}.", if neg { "-" } else { "" }, n / den);
        let mut r = n % den;
        while r != 0 {
            r *= 10;
            s.push(char::from(b'0' + (r / den) as u8));
            r %= den;
        }
        format!("{}/{} = {s}", self.num, self.den)
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: u32,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }
    fn expr(&mut self) -> Result<Ratio, String> {
        let mut v = self.term()?;
        while let Some(c @ (b'+' | b'-')) = self.peek() {
            self.i += 1;
            let r = self.term()?;
            v = if c == b'+' {
                v.add(r)?
            } else {
                v.add(r.neg()?)?
            };
        }
        Ok(v)
    }
    fn term(&mut self) -> Result<Ratio, String> {
        let mut v = self.unary()?;
        while let Some(c @ (b'*' | b'/')) = self.peek() {
            self.i += 1;
            let r = self.unary()?;
            v = if c == b'/' {
                v.mul(r.recip()?)?
            } else {
                v.mul(r)?
            };
        }
        Ok(v)
    }
    fn unary(&mut self) -> Result<Ratio, String> {
        match self.peek() {
            Some(b'-') => {
                self.i += 1;
                self.unary()?.neg()
            }
            Some(b'+') => {
                self.i += 1;
                self.unary()
            }
            _ => self.power(),
        }
    }
    fn power(&mut self) -> Result<Ratio, String> {
        let base = self.atom()?;
        if self.peek() == Some(b'^') {
            self.i += 1;
            let e = self.unary()?;
            return base.pow(e);
        }
        Ok(base)
    }
    fn atom(&mut self) -> Result<Ratio, String> {
        match self.peek() {
            Some(b'(') => {
                self.depth += 1;
                if self.depth > 64 {
                    return Err("parentheses nested too deeply (limit 64)".into());
                }
                self.i += 1;
                let v = self.expr()?;
                if self.peek() != Some(b')') {
                    return Err(format!("missing `)` at position {}", self.i));
                }
                self.i += 1;
                self.depth -= 1;
                Ok(v)
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => self.number(),
            Some(c) => Err(format!("unexpected `{}` at position {}", c as char, self.i)),
            None => Err("expression ends too early".into()),
        }
    }
    fn number(&mut self) -> Result<Ratio, String> {
        let start = self.i;
        let (mut num, mut den, mut frac) = (0i128, 1i128, false);
        while let Some(&c) = self.s.get(self.i) {
            if c == b'.' && !frac {
                frac = true;
            } else if c.is_ascii_digit() {
                num = num
                    .checked_mul(10)
                    .and_then(|n| n.checked_add((c - b'0') as i128))
                    .ok_or(OVERFLOW)?;
                if frac {
                    den = den.checked_mul(10).ok_or(OVERFLOW)?;
                }
            } else {
                break;
            }
            self.i += 1;
        }
        if self.i == start + 1 && self.s[start] == b'.' {
            return Err(format!("lone `.` at position {start}"));
        }
        Ratio::new(num, den)
    }
}

/// Evaluate an expression exactly.
pub fn evaluate(expr: &str) -> Result<Ratio, String> {
    if expr.len() > 4096 {
        return Err("expression too long (limit 4096 bytes)".into());
    }
    let mut p = Parser {
        s: expr.as_bytes(),
        i: 0,
        depth: 0,
    };
    let v = p.expr()?;
    if p.peek().is_some() {
        return Err(format!(
            "unexpected `{}` at position {}",
            p.s[p.i] as char, p.i
        ));
    }
    Ok(v)
}

const SCHEMA: &str = r#"{"type":"object","properties":{"expression":{"type":"string","description":"Arithmetic expression: numbers, + - * / ^ and parentheses"}},"required":["expression"],"additionalProperties":false}"#;

struct Calc;

impl Guest for Calc {
    fn describe() -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "calc".into(),
            description:
                "Evaluate an arithmetic expression exactly (rational arithmetic, no rounding)."
                    .into(),
            json_schema: SCHEMA.into(),
        }]
    }

    fn invoke(name: String, arguments: String) -> Result<String, ToolError> {
        if name != "calc" {
            return Err(ToolError::UnknownTool(name));
        }
        let args: serde_json::Value = serde_json::from_str(&arguments)
            .map_err(|e| ToolError::InvalidArguments(format!("arguments are not JSON: {e}")))?;
        let expr = args
            .get("expression")
            .and_then(|e| e.as_str())
            .ok_or_else(|| {
                ToolError::InvalidArguments("expected {\"expression\": \"…\"}".into())
            })?;
        evaluate(expr).map(Ratio::render).map_err(ToolError::Failed)
    }
}

engram_plugin_sdk::tool::export_tool!(Calc);
