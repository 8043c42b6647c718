//! The matchers behind [`super::redact`]. Each takes the text's bytes and a start index and
//! returns the end of a match, or `None`. They only ever inspect ASCII bytes.

use std::net::Ipv6Addr;

/// The first matcher that recognises something starting at `i`, in priority order.
pub(super) fn match_at(b: &[u8], i: usize) -> Option<(usize, &'static str)> {
    if i > 0 && is_word(b[i - 1]) {
        return None;
    }
    email(b, i)
        .map(|e| (e, "[email]"))
        .or_else(|| secret(b, i).map(|e| (e, "[secret]")))
        .or_else(|| iban(b, i).map(|e| (e, "[iban]")))
        .or_else(|| card(b, i).map(|e| (e, "[card]")))
        .or_else(|| ip(b, i).map(|e| (e, "[ip]")))
        .or_else(|| phone(b, i).map(|e| (e, "[phone]")))
}

/// Letters, digits and any non-ASCII byte (part of a letter in another script).
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c >= 0x80
}

fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// End of the run of bytes satisfying `f` from `i`, looking at most `max` bytes.
fn run(b: &[u8], i: usize, max: usize, f: impl Fn(u8) -> bool) -> usize {
    let mut j = i;
    while j < b.len() && j - i < max && f(b[j]) {
        j += 1;
    }
    j
}

fn is_local(c: u8) -> bool {
    is_word(c) || b"._%+-".contains(&c)
}

fn email(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && is_local(b[i - 1]) || !is_local(at(b, i)) || at(b, i) == b'.' {
        return None;
    }
    let at_sign = run(b, i, 64, is_local);
    if at(b, at_sign) != b'@' {
        return None;
    }
    let start = at_sign + 1;
    let mut end = run(b, start, 253, |c| {
        c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
    });
    while end > start && matches!(b[end - 1], b'.' | b'-') {
        end -= 1;
    }
    let labels: Vec<&[u8]> = b[start..end].split(|&c| c == b'.').collect();
    let tld = labels.last()?;
    let ok = labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty())
        && tld.len() >= 2
        && tld.iter().all(u8::is_ascii_alphabetic);
    ok.then_some(end)
}

fn is_token(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// Prefixes of well-known API keys and tokens (ours included: `cvk_`).
const SECRET_PREFIXES: [&str; 20] = [
    "sk-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "rk_test_",
    "pk_live_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "hf_",
    "cvk_",
    "AKIA",
    "AIza",
];

fn secret(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && is_token(b[i - 1]) {
        return None;
    }
    let end = run(b, i, 512, is_token);
    let token = &b[i..end];
    let prefixed = SECRET_PREFIXES
        .iter()
        .any(|p| token.starts_with(p.as_bytes()) && token.len() >= p.len() + 16);
    (prefixed || looks_random(token)).then_some(end)
}

/// A long token that is hex, or mixes cases and digits with high entropy: a key, not a word.
fn looks_random(token: &[u8]) -> bool {
    if token.len() < 32 {
        return false;
    }
    let has = |f: fn(&u8) -> bool| token.iter().any(f);
    if token.iter().all(u8::is_ascii_hexdigit) {
        return has(u8::is_ascii_digit) && has(u8::is_ascii_alphabetic);
    }
    has(u8::is_ascii_digit)
        && has(u8::is_ascii_lowercase)
        && has(u8::is_ascii_uppercase)
        && entropy_bits(token) >= 3.5
}

fn entropy_bits(token: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &c in token {
        counts[usize::from(c)] += 1;
    }
    let n = token.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Groups of bytes satisfying `unit`, joined by single bytes from `seps`: the end index and
/// unit count after each complete group, shortest first.
fn groups(
    b: &[u8],
    i: usize,
    max_units: usize,
    unit: fn(u8) -> bool,
    seps: &[u8],
) -> Vec<(usize, usize)> {
    let mut ends = Vec::new();
    let (mut j, mut units) = (i, 0);
    loop {
        let end = run(b, j, max_units + 1 - units.min(max_units), unit);
        if end == j {
            break;
        }
        units += end - j;
        if units > max_units {
            break;
        }
        ends.push((end, units));
        if !(seps.contains(&at(b, end)) && unit(at(b, end + 1))) {
            break;
        }
        j = end + 1;
    }
    ends
}

fn ends_word(b: &[u8], end: usize) -> bool {
    !is_word(at(b, end))
}

fn card(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && matches!(b[i - 1], b'-' | b'.' | b'_') {
        return None;
    }
    let candidates = groups(b, i, 19, |c| c.is_ascii_digit(), b" -");
    candidates.iter().rev().find_map(|&(end, digits)| {
        ((13..=19).contains(&digits) && ends_word(b, end) && luhn(&b[i..end])).then_some(end)
    })
}

fn luhn(raw: &[u8]) -> bool {
    let digits = raw
        .iter()
        .filter(|c| c.is_ascii_digit())
        .map(|c| u32::from(c - b'0'));
    let sum: u32 = digits
        .rev()
        .enumerate()
        .map(|(k, d)| match (k % 2 == 1, d * 2) {
            (true, doubled) if doubled > 9 => doubled - 9,
            (true, doubled) => doubled,
            (false, _) => d,
        })
        .sum();
    sum.is_multiple_of(10)
}

fn iban(b: &[u8], i: usize) -> Option<usize> {
    let shape = at(b, i).is_ascii_alphabetic()
        && at(b, i + 1).is_ascii_alphabetic()
        && at(b, i + 2).is_ascii_digit()
        && at(b, i + 3).is_ascii_digit();
    if !shape {
        return None;
    }
    let candidates = groups(b, i, 34, |c| c.is_ascii_alphanumeric(), b" ");
    candidates.iter().rev().find_map(|&(end, len)| {
        (len >= 15 && ends_word(b, end) && mod97(&b[i..end])).then_some(end)
    })
}

/// ISO 13616: the first four characters moved to the end, letters as 10..35, mod 97 == 1.
fn mod97(raw: &[u8]) -> bool {
    let chars: Vec<u8> = raw
        .iter()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(u8::to_ascii_uppercase)
        .collect();
    let (head, tail) = chars.split_at(4);
    let mut rem = 0u32;
    for &c in tail.iter().chain(head) {
        rem = match c {
            b'0'..=b'9' => (rem * 10 + u32::from(c - b'0')) % 97,
            _ => (rem * 100 + u32::from(c - b'A') + 10) % 97,
        };
    }
    rem == 1
}

fn ip(b: &[u8], i: usize) -> Option<usize> {
    ipv4(b, i).or_else(|| ipv6(b, i))
}

fn ipv4(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && b[i - 1] == b'.' {
        return None;
    }
    let mut j = i;
    for part in 0..4 {
        let end = run(b, j, 3, |c| c.is_ascii_digit());
        let octet: u32 = std::str::from_utf8(&b[j..end]).ok()?.parse().ok()?;
        if end == j || octet > 255 {
            return None;
        }
        j = end;
        if part < 3 {
            if at(b, j) != b'.' {
                return None;
            }
            j += 1;
        }
    }
    let continues =
        at(b, j).is_ascii_digit() || (at(b, j) == b'.' && at(b, j + 1).is_ascii_digit());
    (!continues && ends_word(b, j)).then_some(j)
}

fn ipv6(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && b[i - 1] == b':' {
        return None;
    }
    let mut end = run(b, i, 45, |c| {
        c.is_ascii_hexdigit() || c == b':' || c == b'.'
    });
    while end > i && b[end - 1] == b'.' {
        end -= 1;
    }
    let text = std::str::from_utf8(&b[i..end]).ok()?;
    let colons = text.bytes().filter(|&c| c == b':').count();
    let hex = text.bytes().filter(u8::is_ascii_hexdigit).count();
    (colons >= 2 && hex >= 4 && ends_word(b, end) && text.parse::<Ipv6Addr>().is_ok())
        .then_some(end)
}

/// International (`+` or `00`), parenthesised area code, trunk-prefixed (`0…`) or North
/// American `ddd-ddd-dddd` numbers; a bare run of digits is not taken for a phone number.
fn phone(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && matches!(b[i - 1], b'-' | b'.' | b'_' | b'#' | b'/' | b'+') {
        return None;
    }
    let digit = |c: u8| c.is_ascii_digit();
    let (start, min, seps): (usize, usize, &[u8]) = match (at(b, i), at(b, i + 1)) {
        (b'+', d) if digit(d) => return international(b, i + 1),
        (b'0', b'0') => (i, 10, b" -."),
        (b'(', d) if digit(d) => return parenthesised(b, i),
        (b'0', d) if digit(d) => (i, 9, b" -"),
        (d, _) if digit(d) => return north_american(b, i),
        _ => return None,
    };
    let candidates = groups(b, start, 15, digit, seps);
    candidates
        .iter()
        .rev()
        .find_map(|&(end, digits)| (digits >= min && ends_word(b, end)).then_some(end))
}

/// After a `+`: digits with spaces, dashes, dots or parentheses between them, 8 to 15 digits.
fn international(b: &[u8], start: usize) -> Option<usize> {
    let (mut end, mut digits, mut seps_in_row) = (start, 0, 0);
    let mut j = start;
    while j < b.len() && j - start < 32 {
        match b[j] {
            c if c.is_ascii_digit() => {
                digits += 1;
                seps_in_row = 0;
                end = j + 1;
            }
            b' ' | b'-' | b'.' | b'(' | b')' if seps_in_row < 2 => seps_in_row += 1,
            _ => break,
        }
        j += 1;
    }
    ((8..=15).contains(&digits) && ends_word(b, end)).then_some(end)
}

fn parenthesised(b: &[u8], i: usize) -> Option<usize> {
    let close = run(b, i + 1, 5, |c| c.is_ascii_digit());
    if at(b, close) != b')' || close - (i + 1) < 2 {
        return None;
    }
    let mut j = close + 1;
    if at(b, j) == b' ' {
        j += 1;
    }
    let area = close - (i + 1);
    let candidates = groups(b, j, 15 - area, |c| c.is_ascii_digit(), b" -");
    candidates
        .iter()
        .rev()
        .find_map(|&(end, digits)| (area + digits >= 9 && ends_word(b, end)).then_some(end))
}

fn north_american(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    for (k, len) in [3usize, 3, 4].into_iter().enumerate() {
        let end = run(b, j, len + 1, |c| c.is_ascii_digit());
        if end - j != len {
            return None;
        }
        j = end;
        if k < 2 {
            if !matches!(at(b, j), b'-' | b'.' | b' ') {
                return None;
            }
            j += 1;
        }
    }
    ends_word(b, j).then_some(j)
}
