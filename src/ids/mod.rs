//! Identifiers beneath everything: the IIN and BIN with their check digits and date rules, and
//! the application numbers the registration authority hands out. Nothing here depends on any
//! other module of the crate (`layering.rs` holds it to that), so the CA, the registration
//! authority, the registries and the workstation can all name a person, an organisation or an
//! application without depending on one another.

pub mod number;

use std::fmt;

/// Why an identifier is not a valid IIN or BIN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Not exactly twelve ASCII digits.
    #[error("must be exactly 12 digits")]
    Format,
    /// The twelfth digit does not match the check-digit algorithm, or the algorithm yields no
    /// digit for these eleven.
    #[error("check digit does not match")]
    CheckDigit,
    /// The date encoded in the first digits is not a calendar date.
    #[error("encodes no valid date")]
    Date,
    /// The seventh digit (IIN: century and sex; BIN: entity type) has a value the scheme lacks.
    #[error("digit 5 or 7 has a value the scheme does not define")]
    Kind,
}

/// The check digit of a 12-digit IIN or BIN: weights 1..11 mod 11, and if that gives 10,
/// weights 3..11,1,2 mod 11; 10 again means no number may end this way.
fn check_digit(d: &[u8; 12]) -> Option<u8> {
    let sum = |w: &dyn Fn(usize) -> u32| (0..11).map(|i| u32::from(d[i]) * w(i)).sum::<u32>() % 11;
    let first = sum(&|i| i as u32 + 1);
    let c = if first == 10 {
        sum(&|i| ((i as u32 + 2) % 11) + 1)
    } else {
        first
    };
    (c != 10).then_some(c as u8)
}

fn digits(s: &str) -> Result<[u8; 12], IdError> {
    let b = s.as_bytes();
    if b.len() != 12 || !b.iter().all(u8::is_ascii_digit) {
        return Err(IdError::Format);
    }
    let mut d = [0u8; 12];
    for (o, c) in d.iter_mut().zip(b) {
        *o = c - b'0';
    }
    if check_digit(&d) != Some(d[11]) {
        return Err(IdError::CheckDigit);
    }
    Ok(d)
}

fn two(d: &[u8]) -> u8 {
    d[0] * 10 + d[1]
}

/// Individual identification number: birth date YYMMDD, century and sex, serial, check digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Iin(String);

impl Iin {
    pub fn parse(s: &str) -> Result<Iin, IdError> {
        let d = digits(s)?;
        let century = match d[6] {
            1 | 2 => 1800,
            3 | 4 => 1900,
            5 | 6 => 2000,
            _ => return Err(IdError::Kind),
        };
        let year = century + i32::from(two(&d[0..2]));
        let month = time::Month::try_from(two(&d[2..4])).map_err(|_| IdError::Date)?;
        time::Date::from_calendar_date(year, month, two(&d[4..6])).map_err(|_| IdError::Date)?;
        Ok(Iin(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn birth_date(&self) -> time::Date {
        let d = self.0.as_bytes();
        let n = |i: usize| (d[i] - b'0') * 10 + (d[i + 1] - b'0');
        let century = match d[6] - b'0' {
            1 | 2 => 1800,
            3 | 4 => 1900,
            _ => 2000,
        };
        let month = time::Month::try_from(n(2)).unwrap_or(time::Month::January);
        time::Date::from_calendar_date(century + i32::from(n(0)), month, n(4)).unwrap_or(time::Date::MIN)
    }
}

impl fmt::Display for Iin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Business identification number: registration YYMM, entity type, office kind, serial, check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bin(String);

impl Bin {
    pub fn parse(s: &str) -> Result<Bin, IdError> {
        let d = digits(s)?;
        if !(1..=12).contains(&two(&d[2..4])) {
            return Err(IdError::Date);
        }
        if !matches!(d[4], 4..=6) || !matches!(d[5], 0..=2) {
            return Err(IdError::Kind);
        }
        Ok(Bin(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Bin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends the check digit to eleven digits (panics where none exists).
    fn with_check(eleven: &str) -> String {
        let mut d = [0u8; 12];
        for (i, c) in eleven.bytes().enumerate() {
            d[i] = c - b'0';
        }
        format!("{eleven}{}", check_digit(&d).unwrap())
    }

    #[test]
    fn iin_check_digit_and_date() {
        let iin = with_check("85031530001");
        let parsed = Iin::parse(&iin).unwrap();
        assert_eq!(parsed.birth_date(), time::macros::date!(1985 - 03 - 15));
        // Any other last digit is wrong.
        let last = iin.as_bytes()[11] - b'0';
        let wrong = format!("{}{}", &iin[..11], (last + 1) % 10);
        assert_eq!(Iin::parse(&wrong), Err(IdError::CheckDigit));
        assert_eq!(Iin::parse("85031530001"), Err(IdError::Format));
        assert_eq!(Iin::parse("85031530001a"), Err(IdError::Format));
        assert_eq!(Iin::parse(&with_check("85133130001")), Err(IdError::Date));
        assert_eq!(Iin::parse(&with_check("85031590001")), Err(IdError::Kind));
    }

    #[test]
    fn second_weights_apply_when_first_sum_is_ten() {
        // Search a number whose first sum is 10, and check the second pass decides.
        let mut found = false;
        for serial in 0..10000u32 {
            let eleven = format!("8503153{serial:04}");
            let mut d = [0u8; 12];
            for (i, c) in eleven.bytes().enumerate() {
                d[i] = c - b'0';
            }
            let first: u32 = (0..11).map(|i| u32::from(d[i]) * (i as u32 + 1)).sum::<u32>() % 11;
            if first == 10
                && let Some(c) = check_digit(&d)
            {
                assert_ne!(c, 10);
                assert!(Iin::parse(&format!("{eleven}{c}")).is_ok());
                found = true;
                break;
            }
        }
        assert!(found);
    }

    #[test]
    fn bin_rules() {
        let bin = with_check("15044000012");
        assert!(Bin::parse(&bin).is_ok());
        assert_eq!(Bin::parse(&with_check("15137000012")), Err(IdError::Date));
        assert_eq!(Bin::parse(&with_check("15049000012")), Err(IdError::Kind));
    }
}
