//! Byte sizes as people type them: `400MiB`, `1.5 GiB`, `64MB`, `4096`.
//!
//! Binary units (KiB, MiB, GiB, TiB) are powers of 1024, decimal units (KB,
//! MB, GB, TB) powers of 1000, as `dd` and `fio` read them. Units are matched
//! without regard to case; a fraction is accepted only when the result is a
//! whole number of bytes.

use crate::error::{Error, Result};

/// The units `parse_size` knows and their factors.
const UNITS: [(&str, u64); 9] = [
    ("b", 1),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
];

/// Parses a byte size: a number, optional blanks, and an optional unit (B,
/// KiB, MiB, GiB, TiB, KB, MB, GB, TB; any case). `400MiB` is 419430400.
pub fn parse_size(text: &str) -> Result<u64> {
    let refuse = |why: &str| Error::refused(format!("size {text:?}: {why}"));
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let (number, unit) = (t[..split].replace('_', ""), t[split..].trim());
    if number.is_empty() || !number.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(refuse(
            "expected a number and a unit such as 400MiB, 4GiB or 64MB",
        ));
    }
    let factor = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(u, _)| u.eq_ignore_ascii_case(unit))
            .map(|&(_, f)| f)
            .ok_or_else(|| refuse("units are B, KiB, MiB, GiB, TiB, KB, MB, GB and TB"))?
    };
    match number.split_once('.') {
        None => {
            let n: u64 = number.parse().map_err(|_| refuse("not a number"))?;
            n.checked_mul(factor)
                .ok_or_else(|| refuse("does not fit in 64 bits"))
        }
        Some((whole, frac)) => {
            if frac.contains('.') || frac.is_empty() {
                return Err(refuse("not a number"));
            }
            // Exact decimal arithmetic: whole*factor + frac*factor/10^digits.
            let digits = u32::try_from(frac.len()).map_err(|_| refuse("too many digits"))?;
            let scale = 10u128
                .checked_pow(digits)
                .ok_or_else(|| refuse("too many digits"))?;
            let whole: u128 = if whole.is_empty() {
                0
            } else {
                whole.parse().map_err(|_| refuse("not a number"))?
            };
            let frac: u128 = frac.parse().map_err(|_| refuse("not a number"))?;
            let scaled = frac * u128::from(factor);
            if !scaled.is_multiple_of(scale) {
                return Err(refuse("is not a whole number of bytes"));
            }
            let total = whole
                .checked_mul(u128::from(factor))
                .and_then(|w| w.checked_add(scaled / scale))
                .ok_or_else(|| refuse("does not fit in 64 bits"))?;
            u64::try_from(total).map_err(|_| refuse("does not fit in 64 bits"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_people_type() {
        for (text, want) in [
            ("4096", 4096),
            ("0", 0),
            ("12B", 12),
            ("4KiB", 4096),
            ("400MiB", 400 << 20),
            ("400 MiB", 400 << 20),
            ("2GiB", 2 << 30),
            ("1TiB", 1 << 40),
            ("4KB", 4000),
            ("64MB", 64_000_000),
            ("3GB", 3_000_000_000),
            ("64mib", 64 << 20),
            ("1.5GiB", 3 << 29),
            ("0.5KiB", 512),
            ("1_000MB", 1_000_000_000),
            (" 8 MiB ", 8 << 20),
        ] {
            assert_eq!(parse_size(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn sizes_refused() {
        for text in [
            "",
            "MiB",
            "-1MiB",
            "4 XB",
            "4Mi",
            "1.2.3MiB",
            "1.MiB",
            "0.3B",
            "1.0000001KiB",
            "20000000TiB",
            "99999999999999999999",
            "abc",
        ] {
            let e = parse_size(text).unwrap_err();
            assert!(e.message().contains("size"), "{text}: {e}");
        }
    }
}
