//! Salesforce record ids: a 3-character key prefix per object, then a 12-character
//! record part (15, case-sensitive), then 3 checksum characters that make the id safe
//! case-insensitively (18). The API returns 18-character ids and accepts both.
//!
//! Checksum: split the 15 characters in three chunks of five; in each, character i
//! (left to right) adds 2^i when it is an upper-case letter; the sum indexes
//! `ABCDEFGHIJKLMNOPQRSTUVWXYZ012345`.

const SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The 3-character checksum of a 15-character id.
pub fn checksum(id15: &str) -> Option<String> {
    let bytes = id15.as_bytes();
    if bytes.len() != 15 || !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    let suffix = bytes
        .chunks(5)
        .map(|chunk| {
            let n = chunk
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            char::from(SUFFIX_ALPHABET[n])
        })
        .collect();
    Some(suffix)
}

/// The 18-character form of a 15- or 18-character id; `None` when it is neither.
pub fn to18(id: &str) -> Option<String> {
    match id.len() {
        15 => checksum(id).map(|s| format!("{id}{s}")),
        18 => {
            let (base, suffix) = id.split_at(15);
            let expected = checksum(base)?;
            // The suffix is case-insensitive by design.
            expected
                .eq_ignore_ascii_case(suffix)
                .then(|| format!("{base}{expected}"))
        }
        _ => None,
    }
}

/// The 18-character id of record number `n` of an object with key prefix `prefix`.
pub fn make(prefix: &str, n: u64) -> String {
    // Salesforce's record part is base-62; the first characters hold the instance, the
    // rest a sequence. Ours: "8M" + 10 base-62 digits of n.
    let mut digits = [b'0'; 10];
    let mut rest = n;
    for d in digits.iter_mut().rev() {
        *d = BASE62[(rest % 62) as usize];
        rest /= 62;
    }
    let id15 = format!("{prefix}8M{}", String::from_utf8_lossy(&digits));
    to18(&id15).unwrap_or(id15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_the_published_examples() {
        assert_eq!(
            to18("00558000001N0Ke").as_deref(),
            Some("00558000001N0KeAAK")
        );
        assert_eq!(
            to18("001D000000IRFma").as_deref(),
            Some("001D000000IRFmaIAH")
        );
        // Case-insensitive suffix, normalized.
        assert_eq!(
            to18("001D000000IRFmaiah").as_deref(),
            Some("001D000000IRFmaIAH")
        );
        assert_eq!(to18("001D000000IRFmaXXX"), None);
        assert_eq!(to18("short"), None);
    }

    #[test]
    fn made_ids_carry_the_prefix_and_a_valid_checksum() {
        let id = make("003", 123_456);
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("0038M"));
        assert_eq!(to18(&id[..15]).as_deref(), Some(id.as_str()));
        assert_ne!(make("003", 1), make("003", 2));
    }
}
