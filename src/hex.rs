//! Lowercase hex of bytes, as reports carry exact results (`bytes_hex`,
//! a reduction's partial nodes) and as parameters cross `exec`.

/// `bytes` as lowercase hex, two digits per byte.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// The bytes `text` encodes (either case); `None` for an odd length or a
/// character that is not a hex digit.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let t = text.as_bytes();
    if !t.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    t.chunks_exact(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let text = super::encode(&all);
        assert_eq!(&text[..6], "000102");
        assert_eq!(&text[text.len() - 2..], "ff");
        assert_eq!(super::decode(&text), Some(all));
        assert_eq!(super::decode("0A"), Some(vec![10]));
        assert_eq!(super::decode("abc"), None);
        assert_eq!(super::decode("zz"), None);
        assert_eq!(super::decode("+1"), None);
    }
}
