//! Application numbers: unique, not guessable in sequence, with a check character that catches
//! a mistyped or swapped character when a number is read out at a service centre.
//!
//! `NNNN-NNNN-NNNC`: eleven characters from Crockford's base 32 (no I, L, O, U: nothing to
//! misread), 55 random bits, and a check character (ISO 7064 MOD 37-2 over the base-32 values,
//! written in the 37-symbol alphabet so that every single error and adjacent swap is caught).

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CHECK_ALPHABET: &[u8; 37] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ*~$=U";

fn value(c: u8) -> Option<u32> {
    let c = c.to_ascii_uppercase();
    // Crockford: I and L read as 1, O as 0.
    let c = match c {
        b'I' | b'L' => b'1',
        b'O' => b'0',
        c => c,
    };
    ALPHABET.iter().position(|a| *a == c).map(|p| p as u32)
}

/// ISO 7064 MOD 37-2: the check value for the given digits (each 0..36).
fn check(values: &[u32]) -> u32 {
    let mut p = 0u32;
    for v in values {
        p = ((p + v) * 2) % 37;
    }
    (38 - p) % 37
}

/// A fresh application number; an error when the operating system gives no randomness (the
/// caller's fault to report, not a panic in a request).
pub fn new_number() -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut bytes)?;
    let mut n = u64::from_be_bytes(bytes);
    let mut values = [0u32; 11];
    for v in values.iter_mut() {
        *v = (n % 32) as u32;
        n /= 32;
    }
    let c = check(&values);
    let chars: String = values.iter().map(|v| ALPHABET[*v as usize] as char).collect();
    Ok(format!(
        "{}-{}-{}{}",
        &chars[0..4],
        &chars[4..8],
        &chars[8..11],
        CHECK_ALPHABET[c as usize] as char
    ))
}

/// The canonical form of a number typed by a person (any case, dashes and spaces anywhere,
/// I/L/O for 1/1/0), or `None` when it is not a number or its check character is wrong.
pub fn parse(input: &str) -> Option<String> {
    let compact: Vec<u8> = input
        .bytes()
        .filter(|b| *b != b'-' && !b.is_ascii_whitespace())
        .collect();
    if compact.len() != 12 {
        return None;
    }
    let values: Vec<u32> = compact[..11].iter().map(|c| value(*c)).collect::<Option<_>>()?;
    let c = CHECK_ALPHABET
        .iter()
        .position(|a| *a == compact[11].to_ascii_uppercase())? as u32;
    if check(&values) != c {
        return None;
    }
    let chars: String = values.iter().map(|v| ALPHABET[*v as usize] as char).collect();
    Some(format!(
        "{}-{}-{}{}",
        &chars[0..4],
        &chars[4..8],
        &chars[8..11],
        CHECK_ALPHABET[c as usize] as char
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_differ() {
        let a = new_number().unwrap();
        assert_eq!(a.len(), 14);
        assert_eq!(parse(&a).as_deref(), Some(a.as_str()));
        assert_eq!(parse(&a.to_lowercase().replace('-', " ")).as_deref(), Some(a.as_str()));
        let many: std::collections::HashSet<String> = (0..1000).map(|_| new_number().unwrap()).collect();
        assert_eq!(many.len(), 1000);
    }

    #[test]
    fn every_single_substitution_and_adjacent_swap_is_caught() {
        for _ in 0..50 {
            let n = new_number().unwrap();
            let compact: Vec<u8> = n.bytes().filter(|b| *b != b'-').collect();
            for i in 0..compact.len() {
                let alphabet: &[u8] = if i == 11 { CHECK_ALPHABET } else { ALPHABET };
                for &c in alphabet {
                    if c == compact[i] {
                        continue;
                    }
                    let mut m = compact.clone();
                    m[i] = c;
                    assert_eq!(
                        parse(std::str::from_utf8(&m).unwrap()),
                        None,
                        "{n}: position {i} to {}",
                        c as char
                    );
                }
                if i + 1 < 11 && compact[i] != compact[i + 1] {
                    let mut m = compact.clone();
                    m.swap(i, i + 1);
                    assert_eq!(parse(std::str::from_utf8(&m).unwrap()), None, "{n}: swap at {i}");
                }
            }
        }
    }
}
