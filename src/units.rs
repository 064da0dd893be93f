//! dd-style byte sizes for `-s` and `-b`: `512`, `4K`, `4KiB`, `1M`, `1GiB`, `1kB`.
//!
//! As in dd, a bare letter is binary: `K` = `KiB` = 1024 bytes, `M` = `MiB` = 1024², `G` = `GiB`
//! = 1024³. A letter followed by `B` is decimal: `kB` = 1000, `MB` = 1000², `GB` = 1000³.
//! The letter may be upper or lower case.

/// The largest sector or buffer size accepted. A buffer this big is already far past the
/// point where reading gets faster; anything larger is almost certainly a typo.
pub const MAX_SIZE: u64 = 1 << 30;

/// Parses a size such as `4K` into bytes. Zero and sizes above [`MAX_SIZE`] are refused.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    if digits.is_empty() {
        return Err(format!("'{text}' is not a number of bytes"));
    }
    let multiplier = suffix_multiplier(suffix).ok_or_else(|| {
        format!("'{suffix}' is not a size suffix (use K, M, G, KiB, MiB, GiB, kB, MB or GB)")
    })?;
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is too large"))?;
    let bytes = number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("'{text}' is too large"))?;
    if bytes == 0 {
        return Err("must be greater than zero".to_string());
    }
    if bytes > MAX_SIZE {
        return Err(format!("'{text}' is larger than the limit of 1GiB"));
    }
    Ok(bytes)
}

fn suffix_multiplier(suffix: &str) -> Option<u64> {
    if suffix.is_empty() {
        return Some(1);
    }
    let mut chars = suffix.chars();
    let letter = chars.next()?.to_ascii_uppercase();
    let exponent = match letter {
        'K' => 1,
        'M' => 2,
        'G' => 3,
        _ => return None,
    };
    let base: u64 = match chars.as_str() {
        "" | "iB" => 1024,
        "B" => 1000,
        _ => return None,
    };
    Some(base.pow(exponent))
}

/// Formats a byte count for people: `4.0 MiB`, `512 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_follow_dd() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("4kB"), Ok(4000));
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
    }

    #[test]
    fn refuses_nonsense() {
        for text in [
            "",
            "0",
            "0K",
            "K",
            "-1",
            "4X",
            "4Kb",
            "4 K",
            "2G",
            "99999999999999999999",
        ] {
            assert!(parse_size(text).is_err(), "{text} was accepted");
        }
    }

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(4096), "4.0 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
