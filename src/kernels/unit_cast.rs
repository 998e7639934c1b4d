//! `convert` between datetime64 units, between timedelta64 units and
//! between fixed-size strings (`S`, `U`), as NumPy 2's `astype` does them.
//!
//! - **Which casts NumPy allows** ([`can_cast`]) follows NumPy's
//!   `time_to_time_resolve_descriptors` and `string_to_string`: the same
//!   unit is `no`/`equiv`; a finer unit that the coarser divides is `safe`
//!   (`M8[s]` → `M8[ms]`, `M8[s]` → `M8[10ms]`), any other change of unit
//!   `same_kind`, except that a timedelta between the calendar units
//!   (`Y`, `M`) and the others and any specific unit to the generic one are
//!   `unsafe` only; a string at least as long is `safe`, a shorter one
//!   `same_kind`, and `U` → `S` is `unsafe`.
//! - **Values** are NumPy's: linear units scale by NumPy's reduced
//!   conversion factor `num/denom` (the count multiplied in 64 bits,
//!   wrapping as NumPy's loop does, then divided rounding toward minus
//!   infinity); a datetime between calendar units and day-based ones goes
//!   through the proleptic Gregorian calendar (the first day of a year or
//!   month; a day's year or month); NaT stays NaT. The generic unit's
//!   counts are copied as they are, except that a generic datetime other
//!   than NaT fails the run to years or months, as NumPy's `astype`
//!   raises. Strings are truncated or
//!   NUL-padded; `S` ↔ `U` decodes and encodes ASCII, and a byte or code
//!   point past 127 fails the run as NumPy's `UnicodeDecodeError` /
//!   `UnicodeEncodeError` does.
//!
//! Not done (refused before any work, with a pointer to `mmrun exec`):
//! timedelta between calendar and day-based units (NumPy uses an average
//! year), casts to the generic unit (NumPy's `astype` fails on them), and
//! casts between these dtypes and any other kind.

use crate::kernels::convert::Casting;
use crate::layout::dtype::TimeUnit;
use crate::layout::DType;

/// NumPy's NaT.
const NAT: i64 = i64::MIN;

/// The index of `Y` and `M` in [`crate::layout::dtype::TIME_UNITS`].
const Y: u8 = 1;
const M: u8 = 2;
const W: u8 = 3;
const D: u8 = 4;

/// Attoseconds per base unit, `W` and below.
fn attoseconds(base: u8) -> Option<u128> {
    const DAY: u128 = 86_400 * 1_000_000_000_000_000_000;
    Some(match base {
        W => 7 * DAY,
        D => DAY,
        5 => 3_600 * 1_000_000_000_000_000_000,
        6 => 60 * 1_000_000_000_000_000_000,
        7 => 1_000_000_000_000_000_000,
        8 => 1_000_000_000_000_000,
        9 => 1_000_000_000_000,
        10 => 1_000_000_000,
        11 => 1_000_000,
        12 => 1_000,
        13 => 1,
        _ => return None,
    })
}

fn calendar(u: TimeUnit) -> bool {
    u.base == Y || u.base == M
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// NumPy's `datetime_metadata_divides(from, to, strict)`: whether a unit
/// of `from` is a whole number of units of `to`.
fn divides(from: TimeUnit, to: TimeUnit, strict: bool) -> bool {
    if from.base == 0 {
        return true;
    }
    if to.base == 0 {
        return false;
    }
    let (mut n1, mut n2) = (u128::from(from.count), u128::from(to.count));
    if from.base != to.base {
        if calendar(from) || calendar(to) {
            match (from.base, to.base) {
                (Y, M) => n1 *= 12,
                (M, Y) => n2 *= 12,
                _ => return !strict,
            }
        } else {
            let (a, b) = (
                attoseconds(from.base).unwrap_or(1),
                attoseconds(to.base).unwrap_or(1),
            );
            // NumPy's factor between the two bases, in 64 bits.
            let factor = a.max(b) / a.min(b);
            if factor > u128::from(u64::MAX) {
                return false;
            }
            if a > b {
                n1 *= factor;
            } else {
                n2 *= factor;
            }
        }
    }
    // NumPy's "crude, incomplete check for overflow".
    if n1 >> 56 != 0 || n2 >> 56 != 0 {
        return false;
    }
    n1 % n2 == 0
}

/// The loosest rule under which NumPy allows `from` → `to` for two units
/// of datetime (`timedelta` false) or timedelta, as `np.can_cast` answers.
fn time_rule(from: TimeUnit, to: TimeUnit, timedelta: bool) -> Casting {
    if from == to {
        Casting::No
    } else if from.base == 0 {
        Casting::Safe
    } else if to.base == 0 || (timedelta && calendar(from) != calendar(to)) {
        Casting::Unsafe
    } else if from.base <= to.base && divides(from, to, timedelta) {
        Casting::Safe
    } else {
        Casting::SameKind
    }
}

/// The loosest rule for a string of `from` → `to`.
fn str_rule(from: DType, to: DType) -> Option<Casting> {
    let chars = |d: DType| match d {
        DType::Bytes(n) | DType::Str(n) => Some(n),
        _ => None,
    };
    let (a, b) = (chars(from)?, chars(to)?);
    Some(match (from, to) {
        (DType::Str(_), DType::Bytes(_)) => Casting::Unsafe,
        _ if from == to => Casting::No,
        _ if b >= a => Casting::Safe,
        _ => Casting::SameKind,
    })
}

/// The loosest casting rule NumPy allows the pair under, for the pairs
/// this module converts; `None` for any other pair.
fn rule(from: DType, to: DType) -> Option<Casting> {
    match (from, to) {
        (DType::DateTime64(a), DType::DateTime64(b)) => Some(time_rule(a, b, false)),
        (DType::TimeDelta64(a), DType::TimeDelta64(b)) => Some(time_rule(a, b, true)),
        _ => str_rule(from, to),
    }
}

/// How strict each rule is, loosest last.
fn rank(c: Casting) -> usize {
    Casting::ALL.iter().position(|&x| x == c).unwrap_or(0)
}

/// `np.can_cast(from, to, casting)` (`to` native) for a pair this module
/// converts; `None` for another pair. `swapped` says the input is not in
/// native byte order, which `no` refuses.
pub(crate) fn can_cast(from: DType, swapped: bool, to: DType, casting: Casting) -> Option<bool> {
    let r = rule(from, to)?;
    let r = if r == Casting::No && swapped {
        Casting::Equiv
    } else {
        r
    };
    Some(rank(casting) >= rank(r))
}

/// Whether this module converts `from` to `to`; `Err` says why not for a
/// pair of its dtypes it does not convert.
pub(crate) fn supports(from: DType, to: DType) -> Option<Result<(), String>> {
    let exec = "a program of yours can write it through mmrun exec FILE -- PROGRAM";
    match (from, to) {
        (DType::DateTime64(a), DType::DateTime64(b))
        | (DType::TimeDelta64(a), DType::TimeDelta64(b)) => {
            if a != b && b.base == 0 {
                return Some(Err(format!(
                    "cannot convert {from} ({}) to {to} ({}): NumPy's astype cannot cast a unit to the generic one either; give a unit, as --dtype {}",
                    from.descr(),
                    to.descr(),
                    from.descr()
                )));
            }
            let timedelta = matches!(from, DType::TimeDelta64(_));
            let crosses = a.base != 0 && calendar(a) != calendar(b);
            if timedelta && crosses {
                return Some(Err(format!(
                    "mmrun does not convert {from} ({}) to {to} ({}): between years or months and days NumPy converts timedeltas with an average year (unsafe casting only); {exec}",
                    from.descr(),
                    to.descr()
                )));
            }
            if !crosses && factor(a, b).is_none() {
                return Some(Err(format!(
                    "cannot convert {from} ({}) to {to} ({}): the conversion factor overflows 64 bits, as NumPy says (\"Integer overflow getting a common metadata divisor\"); convert through a unit in between",
                    from.descr(),
                    to.descr()
                )));
            }
            Some(Ok(()))
        }
        _ => str_rule(from, to).map(|_| Ok(())),
    }
}

/// NumPy's reduced conversion factor `num / denom` between two linear
/// units (or `Y` and `M`), or generic to any; `None` if it overflows.
fn factor(a: TimeUnit, b: TimeUnit) -> Option<(i64, i64)> {
    if a.base == 0 || a == b {
        return Some((1, 1));
    }
    let (fa, fb) = match (a.base, b.base) {
        (Y, M) => (12, 1),
        (M, Y) => (1, 12),
        (Y, Y) | (M, M) => (1, 1),
        _ if calendar(a) || calendar(b) => return None,
        _ => {
            let (x, y) = (attoseconds(a.base)?, attoseconds(b.base)?);
            let f = x.max(y) / x.min(y);
            if f > u128::from(u64::MAX) {
                return None;
            }
            if x > y {
                (f, 1)
            } else {
                (1, f)
            }
        }
    };
    let (num, denom) = (fa * u128::from(a.count), fb * u128::from(b.count));
    let g = gcd(num, denom);
    let (num, denom) = (num / g, denom / g);
    Some((i64::try_from(num).ok()?, i64::try_from(denom).ok()?))
}

/// NumPy's `_strided_to_strided_datetime_cast` for one value.
fn scale(dt: i64, num: i64, denom: i64) -> i64 {
    if dt == NAT {
        NAT
    } else if dt < 0 {
        dt.wrapping_mul(num).wrapping_sub(denom - 1) / denom
    } else {
        dt.wrapping_mul(num) / denom
    }
}

/// Days since 1970-01-01 of the first day of `month` (1-12) of `year`
/// (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i128, month: i128) -> i128 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The year and month (1-12) of a day since 1970-01-01.
fn civil_from_days(z: i128) -> (i128, i128) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m)
}

/// A datetime between a calendar unit and a day-based one, through the
/// calendar as NumPy's general datetime cast goes.
fn through_calendar(dt: i64, a: TimeUnit, b: TimeUnit) -> i64 {
    if dt == NAT {
        return NAT;
    }
    let v = i128::from(dt) * i128::from(a.count);
    let floor = |x: i128, d: i128| x.div_euclid(d);
    let out = if calendar(a) {
        // To the first day of the year or month, then to b's unit.
        let days = if a.base == Y {
            days_from_civil(1970 + v, 1)
        } else {
            days_from_civil(1970 + floor(v, 12), v.rem_euclid(12) + 1)
        };
        let units = if b.base == W {
            floor(days, 7)
        } else {
            let per_day = attoseconds(D).unwrap_or(1) / attoseconds(b.base).unwrap_or(1);
            days * per_day as i128
        };
        floor(units, i128::from(b.count))
    } else {
        // To the day, then its year or month.
        let days = if a.base == W {
            v * 7
        } else {
            let per_day = attoseconds(D).unwrap_or(1) / attoseconds(a.base).unwrap_or(1);
            floor(v, per_day as i128)
        };
        let (y, m) = civil_from_days(days);
        let units = if b.base == Y {
            y - 1970
        } else {
            (y - 1970) * 12 + m - 1
        };
        floor(units, i128::from(b.count))
    };
    out as i64
}

/// One element of a string dtype, as code points.
fn chars(d: DType, s: &[u8]) -> Vec<u32> {
    match d {
        DType::Str(_) => s
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        _ => s.iter().map(|&b| u32::from(b)).collect(),
    }
}

/// Casts the block `input` (aligned native elements of `from`) into `out`
/// (elements of `to`) for a pair [`supports`] takes.
pub(crate) fn cast_block(
    from: DType,
    to: DType,
    input: &[u8],
    out: &mut [u8],
) -> Result<(), String> {
    match (from, to) {
        (DType::DateTime64(a), DType::DateTime64(b))
        | (DType::TimeDelta64(a), DType::TimeDelta64(b)) => {
            let s: &[i64] = bytemuck::try_cast_slice(input).map_err(|e| e.to_string())?;
            let d: &mut [i64] = bytemuck::try_cast_slice_mut(out).map_err(|e| e.to_string())?;
            if a.base == 0 && calendar(b) && matches!(from, DType::DateTime64(_)) {
                // NumPy's calendar conversion takes nothing generic but NaT.
                if let Some(k) = s.iter().position(|&v| v != NAT) {
                    return Err(format!(
                        "element {k} of the block is {} with the generic unit: NumPy's astype refuses it (\"Cannot convert a NumPy datetime value other than NaT with generic units\"); only NaT converts from {from}",
                        s[k]
                    ));
                }
            }
            match factor(a, b) {
                Some((num, denom)) => {
                    for (d, &s) in d.iter_mut().zip(s) {
                        *d = scale(s, num, denom);
                    }
                }
                None => {
                    for (d, &s) in d.iter_mut().zip(s) {
                        *d = through_calendar(s, a, b);
                    }
                }
            }
            Ok(())
        }
        _ => cast_strings(from, to, input, out),
    }
}

fn cast_strings(from: DType, to: DType, input: &[u8], out: &mut [u8]) -> Result<(), String> {
    let (fi, ti) = (from.itemsize() as usize, to.itemsize() as usize);
    if fi == 0 || ti == 0 {
        out.fill(0);
        return Ok(());
    }
    let unicode_in = matches!(from, DType::Str(_));
    let unicode_out = matches!(to, DType::Str(_));
    for (k, (src, dst)) in input
        .chunks_exact(fi)
        .zip(out.chunks_exact_mut(ti))
        .enumerate()
    {
        if unicode_in == unicode_out {
            let n = fi.min(ti);
            dst[..n].copy_from_slice(&src[..n]);
            dst[n..].fill(0);
            continue;
        }
        let cps = chars(from, src);
        // NumPy decodes or encodes the whole value (trailing NULs
        // stripped) as ASCII before it truncates.
        let len = cps.iter().rposition(|&c| c != 0).map_or(0, |p| p + 1);
        if let Some(&c) = cps[..len].iter().find(|&&c| c > 127) {
            return Err(if unicode_in {
                format!(
                    "element {k} of the block holds the code point U+{c:04X}, which ASCII cannot encode: NumPy's astype raises UnicodeEncodeError ('ascii' codec can't encode character); only ASCII text converts from U to S"
                )
            } else {
                format!(
                    "element {k} of the block holds the byte 0x{c:02x}, which is not ASCII: NumPy's astype raises UnicodeDecodeError ('ascii' codec can't decode byte 0x{c:02x}); only ASCII bytes convert from S to U"
                )
            });
        }
        dst.fill(0);
        let n_out = match to {
            DType::Str(n) | DType::Bytes(n) => n as usize,
            _ => 0,
        };
        for (j, &c) in cps.iter().take(len.min(n_out)).enumerate() {
            if unicode_out {
                dst[4 * j..4 * j + 4].copy_from_slice(&c.to_le_bytes());
            } else {
                dst[j] = c as u8;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(t: &str) -> TimeUnit {
        TimeUnit::parse(t).unwrap()
    }

    #[test]
    fn units_scale_as_numpy_rounding_toward_minus_infinity() {
        assert_eq!(factor(unit("s"), unit("ms")), Some((1000, 1)));
        assert_eq!(factor(unit("10ms"), unit("3ms")), Some((10, 3)));
        assert_eq!(scale(-1500, 1, 1000), -2);
        assert_eq!(scale(-1, 1, 1000), -1);
        assert_eq!(scale(999, 1, 1000), 0);
        assert_eq!(scale(NAT, 1000, 1), NAT);
        assert_eq!(scale(-7, 10, 3), -24);
        assert_eq!(factor(unit("W"), unit("as")), None);
    }

    #[test]
    fn calendar_units_go_through_the_gregorian_calendar() {
        assert_eq!(through_calendar(15, unit("M"), unit("D")), 455);
        assert_eq!(through_calendar(-15, unit("M"), unit("D")), -457);
        assert_eq!(through_calendar(-15, unit("D"), unit("M")), -1);
        assert_eq!(through_calendar(-15, unit("D"), unit("Y")), -1);
        assert_eq!(through_calendar(30 * 366, unit("D"), unit("Y")), 30);
        assert_eq!(through_calendar(NAT, unit("Y"), unit("ns")), NAT);
        for d in [-800_000, -1, 0, 59, 11_016, 800_000] {
            let (y, m) = civil_from_days(d);
            assert!(days_from_civil(y, m) <= d && d < days_from_civil(y, m) + 31);
        }
    }

    #[test]
    fn rules_are_numpys() {
        let dt = |t: &str| DType::DateTime64(unit(t));
        let td = |t: &str| DType::TimeDelta64(unit(t));
        assert_eq!(rule(dt("s"), dt("ms")), Some(Casting::Safe));
        assert_eq!(rule(dt("ms"), dt("s")), Some(Casting::SameKind));
        assert_eq!(rule(dt("s"), dt("7ms")), Some(Casting::SameKind));
        assert_eq!(rule(td("Y"), td("D")), Some(Casting::Unsafe));
        assert_eq!(rule(dt("Y"), dt("D")), Some(Casting::Safe));
        assert_eq!(rule(DType::Str(5), DType::Bytes(9)), Some(Casting::Unsafe));
        assert_eq!(
            rule(DType::Bytes(5), DType::Str(4)),
            Some(Casting::SameKind)
        );
        assert_eq!(
            can_cast(DType::Str(5), true, DType::Str(5), Casting::No),
            Some(false)
        );
    }
}
