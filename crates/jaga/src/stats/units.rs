//! Sizes and percentages written exactly as the docker CLI writes them
//! (go-units `BytesSize`, `HumanSizeWithPrecision`, Go's `%g`).

const BINARY_UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
const DECIMAL_UNITS: &[&str] = &["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];

/// go-units `BytesSize`: base 1024, `%.4g`. Used for memory: `324KiB`, `23.54GiB`.
pub fn binary_size(bytes: f64) -> String {
    custom_size(bytes, 1024.0, BINARY_UNITS, 4)
}

/// go-units `HumanSizeWithPrecision(size, 3)`: base 1000, `%.3g`. Used for
/// network and block I/O: `1.2kB`, `648B`.
pub fn decimal_size(bytes: f64) -> String {
    custom_size(bytes, 1000.0, DECIMAL_UNITS, 3)
}

fn custom_size(mut size: f64, base: f64, units: &[&str], precision: usize) -> String {
    let mut unit = 0;
    while size >= base && unit < units.len() - 1 {
        size /= base;
        unit += 1;
    }
    format!("{}{}", go_format_g(size, precision), units[unit])
}

/// Go's `strconv.FormatFloat(value, 'g', precision, 64)` for finite,
/// non-negative values: `precision` significant digits, trailing zeros
/// dropped, exponent form when the exponent is < -4 or ≥ the precision.
pub fn go_format_g(value: f64, precision: usize) -> String {
    let precision = precision.max(1);
    if !value.is_finite() {
        return format!("{value}");
    }
    if value == 0.0 {
        return "0".to_owned();
    }
    let negative = value < 0.0;
    // Round to `precision` significant digits via Rust's exact `{:e}`.
    let scientific = format!("{:.*e}", precision - 1, value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let mut digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    let digit_count = digits.len() as i32;
    let decimal_point = exponent + 1;

    let mut eprec = precision as i32;
    if eprec > digit_count && digit_count >= decimal_point {
        eprec = digit_count;
    }
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if exponent < -4 || exponent >= eprec {
        // %e with (min(precision, digits) - 1) decimals.
        let shown = (precision as i32).min(digit_count).max(1) as usize;
        out.push_str(&digits[..1]);
        if shown > 1 {
            out.push('.');
            out.push_str(&digits[1..shown]);
        }
        out.push('e');
        out.push(if exponent < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exponent.abs()));
        return out;
    }
    let mut shown_precision = precision as i32;
    if shown_precision > decimal_point {
        shown_precision = digit_count;
    }
    let decimals = (shown_precision - decimal_point).max(0) as usize;
    // %f with `decimals` digits after the point, built from the digit string.
    if decimal_point <= 0 {
        out.push_str("0.");
        for _ in 0..(-decimal_point) {
            out.push('0');
        }
        out.push_str(&digits);
        let written = (-decimal_point) as usize + digits.len();
        for _ in written..decimals {
            out.push('0');
        }
    } else {
        let point = decimal_point as usize;
        if digits.len() <= point {
            out.push_str(&digits);
            for _ in digits.len()..point {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..point]);
        }
        if decimals > 0 {
            out.push('.');
            let fraction = digits.get(point..).unwrap_or("");
            out.push_str(fraction);
            for _ in fraction.len()..decimals {
                out.push('0');
            }
        }
    }
    out
}

/// `%.2f%%`, as docker prints CPU and memory percentages.
pub fn percent(value: f64) -> String {
    format!("{value:.2}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_g_matches_go() {
        // Expected values from Go's fmt.Sprintf("%.Ng", v).
        let cases: &[(f64, usize, &str)] = &[
            (0.0, 4, "0"),
            (1.5, 4, "1.5"),
            (15.52734375, 4, "15.53"),
            (23.5397, 4, "23.54"),
            (324.0, 4, "324"),
            (1023.9, 4, "1024"),
            (1000.0, 3, "1e+03"),
            (999.5, 3, "1e+03"),
            (999.0, 3, "999"),
            (100.0, 3, "100"),
            (12.0, 3, "12"),
            (1.2345, 3, "1.23"),
            (0.5, 3, "0.5"),
            (0.0001234, 3, "0.000123"),
            (0.00001234, 3, "1.23e-05"),
            (64.0, 4, "64"),
            (1.0, 4, "1"),
            (10.0, 4, "10"),
        ];
        for (value, precision, expected) in cases {
            assert_eq!(
                go_format_g(*value, *precision),
                *expected,
                "{value} %.{precision}g"
            );
        }
    }

    #[test]
    fn sizes_like_docker() {
        assert_eq!(binary_size(0.0), "0B");
        assert_eq!(binary_size(331_776.0), "324KiB");
        assert_eq!(binary_size(67_108_864.0), "64MiB");
        assert_eq!(binary_size(25_275_109_376.0), "23.54GiB");
        assert_eq!(binary_size(33_554_432.0), "32MiB");
        assert_eq!(binary_size(1023.0), "1023B");
        assert_eq!(decimal_size(0.0), "0B");
        assert_eq!(decimal_size(648.0), "648B");
        assert_eq!(decimal_size(1_234.0), "1.23kB");
        assert_eq!(decimal_size(999_999.0), "1e+03kB");
        assert_eq!(decimal_size(12_300_000.0), "12.3MB");
    }

    #[test]
    fn percent_has_two_decimals() {
        assert_eq!(percent(0.0), "0.00%");
        assert_eq!(percent(50.126), "50.13%");
        assert_eq!(percent(199.999), "200.00%");
    }
}
