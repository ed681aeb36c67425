//! Field comparison: is the CI's value (always a string from ServiceNow) the value the VM
//! says it should be? Numbers compare as numbers, addresses as addresses, choices without case.
//!
//! Text is compared in Unicode normal form C ([`nfc`]) in every mode: `Müller` typed on a Mac
//! (NFD, `u` + combining diaeresis) and `Müller` in the CMDB (NFC, one `ü`) are one name, and
//! a job that thought otherwise would rewrite the CI on every run. Identity keys
//! (`identity::key`) and lookups (`References`) use the same [`nfc`], so a name that is the
//! same here is also the same key there.

use core::net::IpAddr;
use std::borrow::Cow;

use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

use super::mapping::Compare;

/// `text` in Unicode normal form C (canonical composition); borrowed when it already is, as
/// nearly all text (all ASCII) is. Only compared or keyed text goes through it: values are
/// written as the source gave them.
pub fn nfc(text: &str) -> Cow<'_, str> {
    if text.is_ascii() || is_nfc_quick(text.chars()) == IsNormalized::Yes {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.nfc().collect())
    }
}

/// `str::trim`, without its scan of Unicode white space for the usual value, which starts
/// and ends with a visible ASCII character (then there is nothing to trim): the planner trims
/// every value it compares or keys, several times per record.
#[inline]
pub fn trim(text: &str) -> &str {
    let visible = |b: &u8| (b'!'..=b'~').contains(b);
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) if visible(first) && visible(last) => text,
        (None, _) => text,
        _ => text.trim(),
    }
}

/// Whether `current` (the CI's) and `desired` (the mapping's) are the same value.
pub fn same(compare: Compare, current: &str, desired: &str) -> bool {
    // The same text is the same value in every mode (most fields of most CIs are).
    if current == desired {
        return true;
    }
    let (current, desired) = (nfc(trim(current)), nfc(trim(desired)));
    let (current, desired) = (current.as_ref(), desired.as_ref());
    match compare {
        Compare::Exact => current == desired,
        Compare::IgnoreCase => ignore_case_eq(current, desired),
        Compare::Number => match (number(current), number(desired)) {
            (Some(a), Some(b)) => a == b,
            _ => current == desired,
        },
        Compare::Ip => match (current.parse::<IpAddr>(), desired.parse::<IpAddr>()) {
            (Ok(a), Ok(b)) => a == b,
            _ => current.eq_ignore_ascii_case(desired),
        },
        Compare::Auto => {
            if current == desired {
                return true;
            }
            if let (Some(a), Some(b)) = (number(current), number(desired)) {
                return a == b;
            }
            if let (Ok(a), Ok(b)) = (current.parse::<IpAddr>(), desired.parse::<IpAddr>()) {
                return a == b;
            }
            false
        }
    }
}

/// Case-insensitive equality; allocation-free for ASCII, which nearly every value is.
fn ignore_case_eq(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
    }
}

/// A decimal number as ServiceNow may render it ("4096", "4,096", "4096.0"); not hex, not
/// `inf`/`nan`, which `f64::from_str` would otherwise accept.
fn number(text: &str) -> Option<f64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty()
        || !digits
            .bytes()
            .all(|c| c.is_ascii_digit() || c == b'.' || c == b',')
    {
        return None;
    }
    if text.contains(',') {
        text.replace(',', "").parse().ok()
    } else {
        text.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every compare mode.
    const MODES: [Compare; 5] = [
        Compare::Auto,
        Compare::Exact,
        Compare::IgnoreCase,
        Compare::Number,
        Compare::Ip,
    ];

    #[test]
    fn auto_compares_numbers_as_numbers() {
        assert!(same(Compare::Auto, "4096", "4096"));
        assert!(same(Compare::Auto, "4096.0", "4096"));
        assert!(same(Compare::Auto, "4,096", "4096"));
        assert!(same(Compare::Auto, " 8 ", "8"));
        assert!(!same(Compare::Auto, "4096", "2048"));
        assert!(!same(Compare::Auto, "", "0"));
    }

    #[test]
    fn auto_compares_addresses_as_addresses() {
        assert!(same(Compare::Auto, "fe80::0:1", "fe80::1"));
        assert!(same(Compare::Auto, "FE80::1", "fe80::1"));
        assert!(!same(Compare::Auto, "10.0.0.1", "10.0.0.2"));
    }

    #[test]
    fn auto_is_otherwise_exact() {
        assert!(!same(Compare::Auto, "On", "on"));
        assert!(!same(Compare::Auto, "inf", "infinity"));
        assert!(same(Compare::Auto, "web01 ", "web01"));
    }

    #[test]
    fn ignore_case_for_choices() {
        assert!(same(Compare::IgnoreCase, "Production", "production"));
        assert!(same(Compare::IgnoreCase, "Ünïcode", "üNÏCODE"));
        assert!(!same(Compare::IgnoreCase, "Production", "Test"));
    }

    #[test]
    fn number_compare_falls_back_to_text() {
        assert!(same(Compare::Number, "1e3", "1e3"));
        assert!(same(Compare::Number, "10", "10.00"));
        assert!(!same(Compare::Number, "abc", "10"));
    }

    #[test]
    fn ip_compare() {
        assert!(same(Compare::Ip, "2001:db8::1", "2001:DB8:0::1"));
        assert!(!same(Compare::Ip, "10.0.0.1", ""));
    }

    #[test]
    fn nfd_and_nfc_are_the_same_text_in_every_mode() {
        let (nfd, nfc_) = ("Mu\u{308}ller", "M\u{fc}ller");
        for compare in MODES {
            assert!(same(compare, nfc_, nfd), "{compare:?}");
            assert!(same(compare, nfd, nfc_), "{compare:?}");
        }
        assert!(same(Compare::IgnoreCase, "MU\u{308}LLER", "m\u{fc}ller"));
        // Canonical equivalence only: a compatibility form (the `ﬁ` ligature) is other text.
        assert!(!same(Compare::Exact, "\u{fb01}le", "file"));
        assert!(!same(Compare::Exact, "Muller", nfc_));
    }

    #[test]
    fn nfc_borrows_what_is_already_composed() {
        assert!(matches!(nfc("web01"), Cow::Borrowed(_)));
        assert!(matches!(nfc("M\u{fc}ller"), Cow::Borrowed(_)));
        assert_eq!(nfc("Mu\u{308}ller"), "M\u{fc}ller");
    }

    #[test]
    fn trim_is_str_trim() {
        for text in [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\ta\n",
            "\u{b}a\u{b}",
            "\u{a0}a\u{3000}",
            "\u{1}a\u{7f}",
            "é",
            " é ",
            "a b",
            "~!",
        ] {
            assert_eq!(trim(text), text.trim(), "{text:?}");
        }
    }

    #[test]
    fn the_same_text_is_the_same_value_in_every_mode() {
        for text in [
            "",
            " ",
            "4,096",
            "1e3",
            "fe80::1",
            "On",
            "Mu\u{308}ller",
            "abc",
        ] {
            for compare in MODES {
                assert!(same(compare, text, text), "{compare:?} {text:?}");
                let spaced = format!(" {text} ");
                assert!(same(compare, &spaced, text), "{compare:?} {spaced:?}");
            }
        }
    }

    #[test]
    fn exact_is_exact_after_trim() {
        assert!(same(Compare::Exact, " a ", "a"));
        assert!(!same(Compare::Exact, "A", "a"));
    }
}
