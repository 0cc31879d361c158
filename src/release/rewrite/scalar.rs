//! YAML plain-scalar typing, for deciding when a written tag needs quotes.
//! (Image references themselves are split and validated by
//! [`crate::image`].)

/// Whether a plain (unquoted) YAML scalar with this text would be read as
/// something other than a string: a number, bool or null. Tags such as
/// `1.10` or `2` must then be quoted, or the value changes type. Errs on
/// the side of quoting (YAML 1.1 words and `_` digit separators included).
pub(crate) fn plain_scalar_is_not_string(text: &str) -> bool {
    const WORDS: &[&str] = &[
        "", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", ".inf", "-.inf",
        "+.inf", ".nan",
    ];
    if WORDS.contains(&text.to_ascii_lowercase().as_str()) {
        return true;
    }
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0o")) {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit() || c == '_');
    }
    // Decimal ints and floats: digits, at most one '.', an optional exponent.
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(e) => (&body[..e], Some(&body[e + 1..])),
        None => (body, None),
    };
    let mantissa_ok = mantissa.chars().any(|c| c.is_ascii_digit())
        && mantissa.matches('.').count() <= 1
        && mantissa
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '_');
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_plain_scalars_that_are_not_strings() {
        for text in [
            "1", "1.10", "2e5", "-3", "0x1F", "true", "No", "null", "1_000", ".5",
        ] {
            assert!(plain_scalar_is_not_string(text), "{text}");
        }
        for text in [
            "0.0.17",
            "v1.2",
            "1.2.3-rc.1",
            "latest",
            "1e",
            "abc",
            "1.2-alpine",
        ] {
            assert!(!plain_scalar_is_not_string(text), "{text}");
        }
    }
}
