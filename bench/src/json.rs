//! One-line JSON objects for machine-readable results (no escaping needed beyond the basics).

use std::fmt::Write as _;

/// Builds a flat JSON object, one field at a time, and prints it as a single line.
#[derive(Debug, Default)]
pub struct Line {
    body: String,
}

impl Line {
    pub fn new() -> Self {
        Self::default()
    }

    fn key(&mut self, k: &str) {
        if !self.body.is_empty() {
            self.body.push(',');
        }
        let _ = write!(self.body, "\"{k}\":");
    }

    /// Adds a string field.
    pub fn str(mut self, k: &str, v: &str) -> Self {
        self.key(k);
        self.body.push('"');
        for c in v.chars() {
            match c {
                '"' => self.body.push_str("\\\""),
                '\\' => self.body.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.body, "\\u{:04x}", c as u32);
                }
                c => self.body.push(c),
            }
        }
        self.body.push('"');
        self
    }

    /// Adds an integer field.
    pub fn int(mut self, k: &str, v: u64) -> Self {
        self.key(k);
        let _ = write!(self.body, "{v}");
        self
    }

    /// Adds a float field (non-finite values become `null`).
    pub fn num(mut self, k: &str, v: f64) -> Self {
        self.key(k);
        if v.is_finite() {
            let _ = write!(self.body, "{v:.6}");
        } else {
            self.body.push_str("null");
        }
        self
    }

    /// Adds an optional float field (`None` becomes `null`).
    pub fn opt(self, k: &str, v: Option<f64>) -> Self {
        match v {
            Some(v) => self.num(k, v),
            None => {
                let mut s = self;
                s.key(k);
                s.body.push_str("null");
                s
            }
        }
    }

    /// Adds a boolean field.
    pub fn bool(mut self, k: &str, v: bool) -> Self {
        self.key(k);
        self.body.push_str(if v { "true" } else { "false" });
        self
    }

    /// The finished object.
    pub fn finish(&self) -> String {
        format!("{{{}}}", self.body)
    }

    /// Prints the object on one line of stdout.
    pub fn print(&self) {
        println!("{}", self.finish());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_flat_object() {
        let s = Line::new()
            .str("mode", "up\"load")
            .int("bytes", 5)
            .num("gbps", 1.5)
            .opt("cpu", None)
            .bool("ok", true)
            .finish();
        assert_eq!(
            s,
            r#"{"mode":"up\"load","bytes":5,"gbps":1.500000,"cpu":null,"ok":true}"#
        );
    }
}
