//! A byte-level recogniser of JSON-object prefixes, used to constrain a forced tool call's
//! arguments: every byte the model produces is checked against it, and when the token budget
//! runs out mid-object, [`JsonPrefix::completion`] closes it so the result always parses.

/// Deepest nesting of objects and arrays accepted.
pub const MAX_DEPTH: usize = 16;
/// Longest run of whitespace accepted between tokens (stops endless blank output).
pub const MAX_WHITESPACE_RUN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Object,
    Array,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    Backslash,
    /// Hex digits of a `\u` escape still to come.
    Unicode(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Number {
    Minus,
    Zero,
    Int,
    FracStart,
    Frac,
    ExpStart,
    ExpSign,
    Exp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing yet: only `{` may start the document.
    Start,
    /// A value is expected (after `:` or `,` in an array).
    Value,
    /// Just after `[`: a value or `]`.
    ArrayFirst,
    /// Just after `{`: a key or `}`.
    ObjectFirst,
    /// After `,` in an object: a key.
    Key,
    /// Inside a string; `key` tells whether it is an object key.
    Str { key: bool, escape: Escape },
    /// After a key: `:`.
    Colon,
    /// After a value: `,` or the container's closer.
    AfterValue,
    /// Inside a number.
    Num(Number),
    /// Inside `true`/`false`/`null`: the bytes still to come.
    Literal(&'static [u8]),
    /// The top-level object is closed.
    Done,
}

/// The recogniser's state after the bytes fed so far.
#[derive(Debug, Clone)]
pub struct JsonPrefix {
    stack: Vec<Container>,
    state: State,
    whitespace: usize,
    /// Bytes fed so far (kept to trim a dangling `,` on completion).
    text: Vec<u8>,
}

impl Default for JsonPrefix {
    fn default() -> Self {
        JsonPrefix::new()
    }
}

impl JsonPrefix {
    /// A recogniser expecting a JSON object.
    pub fn new() -> JsonPrefix {
        JsonPrefix {
            stack: Vec::new(),
            state: State::Start,
            whitespace: 0,
            text: Vec::new(),
        }
    }

    /// Whether the top-level object is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The bytes accepted so far.
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// Feed bytes; false (and the state unchanged) when any would break the JSON.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        let mut next = self.clone();
        for &b in bytes {
            if !next.step(b) {
                return false;
            }
            next.text.push(b);
        }
        *self = next;
        true
    }

    fn open(&mut self, container: Container) -> bool {
        if self.stack.len() >= MAX_DEPTH {
            return false;
        }
        self.stack.push(container);
        self.state = match container {
            Container::Object => State::ObjectFirst,
            Container::Array => State::ArrayFirst,
        };
        true
    }

    fn close(&mut self, container: Container) -> bool {
        if self.stack.last() != Some(&container) {
            return false;
        }
        self.stack.pop();
        self.state = if self.stack.is_empty() {
            State::Done
        } else {
            State::AfterValue
        };
        true
    }

    fn value_start(&mut self, b: u8) -> bool {
        match b {
            b'{' => self.open(Container::Object),
            b'[' => self.open(Container::Array),
            b'"' => {
                self.state = State::Str {
                    key: false,
                    escape: Escape::None,
                };
                true
            }
            b'-' => {
                self.state = State::Num(Number::Minus);
                true
            }
            b'0' => {
                self.state = State::Num(Number::Zero);
                true
            }
            b'1'..=b'9' => {
                self.state = State::Num(Number::Int);
                true
            }
            b't' => {
                self.state = State::Literal(b"rue");
                true
            }
            b'f' => {
                self.state = State::Literal(b"alse");
                true
            }
            b'n' => {
                self.state = State::Literal(b"ull");
                true
            }
            _ => false,
        }
    }

    fn step(&mut self, b: u8) -> bool {
        let ws = matches!(b, b' ' | b'\n' | b'\t' | b'\r');
        let between_tokens = matches!(
            self.state,
            State::Value
                | State::ArrayFirst
                | State::ObjectFirst
                | State::Key
                | State::Colon
                | State::AfterValue
        );
        if ws && between_tokens {
            self.whitespace += 1;
            return self.whitespace <= MAX_WHITESPACE_RUN;
        }
        self.whitespace = 0;
        match self.state {
            State::Start => b == b'{' && self.open(Container::Object),
            State::Done => false,
            State::Value => self.value_start(b),
            State::ArrayFirst => b == b']' && self.close(Container::Array) || self.value_start(b),
            State::ObjectFirst | State::Key => {
                if b == b'}' && self.state == State::ObjectFirst {
                    return self.close(Container::Object);
                }
                if b == b'"' {
                    self.state = State::Str {
                        key: true,
                        escape: Escape::None,
                    };
                    return true;
                }
                false
            }
            State::Colon => {
                if b == b':' {
                    self.state = State::Value;
                    return true;
                }
                false
            }
            State::AfterValue => match (b, self.stack.last()) {
                (b',', Some(Container::Object)) => {
                    self.state = State::Key;
                    true
                }
                (b',', Some(Container::Array)) => {
                    self.state = State::Value;
                    true
                }
                (b'}', _) => self.close(Container::Object),
                (b']', _) => self.close(Container::Array),
                _ => false,
            },
            State::Str { key, escape } => self.string_byte(key, escape, b),
            State::Num(n) => self.number_byte(n, b),
            State::Literal(rest) => {
                if rest.first() != Some(&b) {
                    return false;
                }
                self.state = if rest.len() == 1 {
                    State::AfterValue
                } else {
                    State::Literal(&rest[1..])
                };
                true
            }
        }
    }

    fn string_byte(&mut self, key: bool, escape: Escape, b: u8) -> bool {
        let next = match escape {
            Escape::None => match b {
                b'"' => {
                    self.state = if key { State::Colon } else { State::AfterValue };
                    return true;
                }
                b'\\' => Escape::Backslash,
                0..=0x1f => return false,
                _ => Escape::None,
            },
            Escape::Backslash => match b {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Escape::None,
                b'u' => Escape::Unicode(4),
                _ => return false,
            },
            Escape::Unicode(left) => {
                if !b.is_ascii_hexdigit() {
                    return false;
                }
                if left == 1 {
                    Escape::None
                } else {
                    Escape::Unicode(left - 1)
                }
            }
        };
        self.state = State::Str { key, escape: next };
        true
    }

    fn number_byte(&mut self, n: Number, b: u8) -> bool {
        use Number::*;
        let next = match (n, b) {
            (Minus, b'0') => Zero,
            (Minus, b'1'..=b'9') => Int,
            (Int, b'0'..=b'9') => Int,
            (Zero | Int, b'.') => FracStart,
            (FracStart | Frac, b'0'..=b'9') => Frac,
            (Zero | Int | Frac, b'e' | b'E') => ExpStart,
            (ExpStart, b'+' | b'-') => ExpSign,
            (ExpStart | ExpSign | Exp, b'0'..=b'9') => Exp,
            (Zero | Int | Frac | Exp, _) => {
                // The number ended; the byte belongs to what follows it.
                self.state = State::AfterValue;
                return self.step(b);
            }
            _ => return false,
        };
        self.state = State::Num(next);
        true
    }

    /// Bytes that close the document from here, after dropping a dangling `,` (returned
    /// as how many trailing bytes of [`JsonPrefix::text`] to drop, then what to append).
    pub fn completion(&self) -> (usize, String) {
        let mut drop = 0;
        let mut tail = String::new();
        let mut stack = self.stack.clone();
        match self.state {
            State::Start => return (0, "{}".into()),
            State::Done => return (0, String::new()),
            State::Key | State::Value if self.trailing_comma().is_some() => {
                drop = self.trailing_comma().unwrap_or(0);
            }
            State::Value => tail.push_str("null"),
            State::ArrayFirst | State::ObjectFirst | State::AfterValue | State::Key => {}
            State::Colon => tail.push_str(":null"),
            State::Str { key, escape } => {
                match escape {
                    Escape::None => {}
                    Escape::Backslash => tail.push('\\'),
                    Escape::Unicode(left) => tail.push_str(&"0".repeat(left as usize)),
                }
                tail.push('"');
                if key {
                    tail.push_str(":null");
                }
            }
            State::Num(n) => match n {
                Number::Minus | Number::FracStart | Number::ExpStart | Number::ExpSign => {
                    tail.push('0')
                }
                _ => {}
            },
            State::Literal(rest) => tail.push_str(std::str::from_utf8(rest).unwrap_or("")),
        }
        while let Some(container) = stack.pop() {
            tail.push(match container {
                Container::Object => '}',
                Container::Array => ']',
            });
        }
        (drop, tail)
    }

    /// When the text ends in `,` plus whitespace: how many bytes that is.
    fn trailing_comma(&self) -> Option<usize> {
        let trimmed = self
            .text
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        (self.text.len() > trimmed && self.text[self.text.len() - trimmed - 1] == b',')
            .then_some(trimmed + 1)
    }

    /// The accepted text closed into a complete JSON object.
    pub fn completed_text(&self) -> String {
        let (drop, tail) = self.completion();
        let mut bytes = self.text[..self.text.len() - drop].to_vec();
        bytes.extend_from_slice(tail.as_bytes());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCS: &[&str] = &[
        r#"{}"#,
        r#"{"location": "Paris", "unit": "celsius"}"#,
        r#"{"a":[1,-2.5e+3,0,true,false,null,{"b":"c\"\\\u00e9\n"}],"n":-0.25E2}"#,
        "{\n  \"list\": [ [], {} , [1 ,2] ],\n  \"s\": \"caf\u{e9} \u{1f600}\"\n}",
        r#"{"x": 10, "y": {"z": [ "p", "q" ] } }"#,
    ];

    #[test]
    fn every_prefix_of_valid_objects_is_accepted_and_completes_to_valid_json() {
        for doc in DOCS {
            let bytes = doc.as_bytes();
            for cut in 0..=bytes.len() {
                let mut p = JsonPrefix::new();
                assert!(p.feed(&bytes[..cut]), "{doc} refused at {cut}");
                let completed = p.completed_text();
                let parsed: serde_json::Value = serde_json::from_str(&completed)
                    .unwrap_or_else(|e| panic!("{doc}[..{cut}] → {completed}: {e}"));
                assert!(parsed.is_object(), "{completed}");
            }
            let mut p = JsonPrefix::new();
            assert!(p.feed(bytes));
            assert!(p.is_done(), "{doc}");
            assert_eq!(p.completed_text(), *doc);
        }
    }

    #[test]
    fn invalid_bytes_are_refused_without_changing_state() {
        for (prefix, bad) in [
            ("", "["),
            ("", " "),
            ("{", "1"),
            ("{\"a\"", "1"),
            ("{\"a\":", "}"),
            ("{\"a\":1", "]"),
            ("{\"a\":01", ""),
            ("{\"a\":tru", "x"),
            ("{\"a\":\"\\", "q"),
            ("{\"a\":1,", "}"),
            ("{}", "{"),
            ("{\"a\":\"", "\n"),
        ] {
            let mut p = JsonPrefix::new();
            let ok = p.feed(prefix.as_bytes());
            if bad.is_empty() {
                assert!(!ok, "{prefix} should be refused");
                continue;
            }
            assert!(ok, "{prefix}");
            let before = p.text().to_vec();
            assert!(!p.feed(bad.as_bytes()), "{prefix} + {bad} accepted");
            assert_eq!(p.text(), &before[..]);
        }
    }

    #[test]
    fn depth_and_whitespace_are_bounded() {
        let mut p = JsonPrefix::new();
        assert!(p.feed(b"{\"a\":"));
        for _ in 0..MAX_DEPTH - 1 {
            assert!(p.feed(b"["));
        }
        assert!(!p.feed(b"["), "nesting past MAX_DEPTH");
        let mut p = JsonPrefix::new();
        assert!(p.feed(b"{"));
        assert!(p.feed(" ".repeat(MAX_WHITESPACE_RUN).as_bytes()));
        assert!(!p.feed(b" "));
    }
}
