//! Human-readable renderings for `lagic check` and test failures.
//!
//! These are for people, not for machines: the spec JSON (see
//! [`crate::Spec::to_json`]) is the only interchange format. Windows render
//! as `[a, b)` or `[a, inf)`; classes by name when they are one of the named
//! classes, else as ranges (`['a'-'z' 0x0d]`).

use crate::program::{Formula, Machine, Program};
use crate::spec::{ByteClass, Pred, Window};
use std::fmt::{self, Display, Formatter};

impl Display for Window {
    fn fmt(&self, f: &mut Formatter) -> fmt::Result {
        match self.end {
            Some(end) => write!(f, "[{}, {})", self.start, end),
            None => write!(f, "[{}, inf)", self.start),
        }
    }
}

fn write_byte(f: &mut Formatter, b: u8) -> fmt::Result {
    if (0x21..=0x7e).contains(&b) && b != b'\'' && b != b'\\' {
        write!(f, "'{}'", char::from(b))
    } else {
        write!(f, "0x{b:02x}")
    }
}

impl Display for ByteClass {
    fn fmt(&self, f: &mut Formatter) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        if self.is_full() {
            return f.write_str("any");
        }
        if *self == ByteClass::text() {
            return f.write_str("text");
        }
        if *self == ByteClass::printable() {
            return f.write_str("printable");
        }
        f.write_str("[")?;
        for (i, &(lo, hi)) in self.ranges().iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write_byte(f, lo)?;
            if hi != lo {
                f.write_str("-")?;
                write_byte(f, hi)?;
            }
        }
        f.write_str("]")
    }
}

fn write_pattern(f: &mut Formatter, pattern: &[ByteClass]) -> fmt::Result {
    f.write_str("<")?;
    for (i, class) in pattern.iter().enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        write!(f, "{class}")?;
    }
    f.write_str(">")
}

fn write_list<T: Display>(f: &mut Formatter, op: &str, items: &[T]) -> fmt::Result {
    write!(f, "{op}(")?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    f.write_str(")")
}

impl Display for Pred {
    fn fmt(&self, f: &mut Formatter) -> fmt::Result {
        match self {
            Pred::True => f.write_str("true"),
            Pred::False => f.write_str("false"),
            Pred::Not(p) => write!(f, "not {p}"),
            Pred::And(ps) => write_list(f, "and", ps),
            Pred::Or(ps) => write_list(f, "or", ps),
            Pred::Len { cmp, value } => write!(f, "len {} {value}", cmp.symbol()),
            Pred::Byte { index, class } => write!(f, "byte {index} {class}"),
            Pred::All { window, class } => write!(f, "all {window} {class}"),
            Pred::Any { window, class } => write!(f, "any {window} {class}"),
            Pred::Prefix { pattern } => {
                f.write_str("prefix ")?;
                write_pattern(f, pattern)
            }
            Pred::Contains { window, pattern } => {
                write!(f, "contains {window} ")?;
                write_pattern(f, pattern)
            }
            Pred::DepthLe {
                window,
                max,
                open,
                close,
                strings,
            } => {
                write!(f, "depth_le {window} {max} open {open} close {close}")?;
                if *strings {
                    f.write_str(" strings")?;
                }
                Ok(())
            }
        }
    }
}

impl Display for Formula {
    fn fmt(&self, f: &mut Formatter) -> fmt::Result {
        match self {
            Formula::Const(b) => write!(f, "{b}"),
            Formula::Not(inner) => write!(f, "not {inner}"),
            Formula::And(fs) => write_list(f, "and", fs),
            Formula::Or(fs) => write_list(f, "or", fs),
            Formula::Len { cmp, value } => write!(f, "len {} {value}", cmp.symbol()),
            Formula::Byte { index, class } => write!(f, "byte {index} {class}"),
            Formula::Scan(id) => write!(f, "scan{id}"),
        }
    }
}

impl Display for Machine {
    fn fmt(&self, f: &mut Formatter) -> fmt::Result {
        match self {
            Machine::Dfa(_) => write!(f, "dfa, {} states", self.state_count()),
            Machine::Depth(c) => {
                write!(
                    f,
                    "depth counter <= {} open {} close {}",
                    c.max, c.open, c.close
                )?;
                if c.strings {
                    f.write_str(" strings")?;
                }
                write!(f, ", {} states", self.state_count())
            }
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl Program {
    /// A short multi-line summary: scans (window, machine), passes, formula.
    pub fn summary(&self) -> String {
        self.to_string()
    }
}

/// The summary printed by `lagic check`, one item per line.
impl Display for Program {
    fn fmt(&self, f: &mut Formatter) -> fmt::Result {
        writeln!(
            f,
            "program {}: {}, {}, formula of {}",
            self.name,
            plural(self.scans.len(), "scan", "scans"),
            plural(self.passes.len(), "pass", "passes"),
            plural(self.formula.atom_count(), "atom", "atoms"),
        )?;
        for (i, scan) in self.scans.iter().enumerate() {
            writeln!(f, "  scan{i}: {} {}", scan.window, scan.machine)?;
        }
        for (i, pass) in self.passes.iter().enumerate() {
            let ids: Vec<String> = pass.scans.iter().map(|s| format!("scan{s}")).collect();
            writeln!(f, "  pass{i}: {} runs {}", pass.window, ids.join(" "))?;
        }
        writeln!(f, "  formula: {}", self.formula)
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::{ByteClass, Window};

    #[test]
    fn windows_and_classes() {
        assert_eq!(Window::ALL.to_string(), "[0, inf)");
        assert_eq!(
            Window {
                start: 2,
                end: Some(9)
            }
            .to_string(),
            "[2, 9)"
        );
        assert_eq!(ByteClass::text().to_string(), "text");
        assert_eq!(ByteClass::printable().to_string(), "printable");
        assert_eq!(ByteClass::full().to_string(), "any");
        assert_eq!(ByteClass::empty().to_string(), "none");
        assert_eq!(
            ByteClass::from_ranges([(b'a', b'z'), (0, 0), (b'\'', b'\'')]).to_string(),
            "[0x00 0x27 'a'-'z']"
        );
    }
}
