//! Writing CSV fields as JSON without building a tree.

/// True when `text` is a JSON number (RFC 8259 §6): `-? int frac? exp?`.
pub(crate) fn is_json_number(text: &[u8]) -> bool {
    let b = text;
    let mut i = 0;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            while matches!(b.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while matches!(b.get(i), Some(b'0'..=b'9')) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        while matches!(b.get(i), Some(b'0'..=b'9')) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

/// Appends `text` as a JSON string literal, escaped as serde_json escapes
/// (RFC 8259 §7: `"`, `\\` and control characters).
pub(crate) fn write_json_string(out: &mut Vec<u8>, text: &str) {
    write_json_bytes(out, text.as_bytes());
}

/// [`write_json_string`] of UTF-8 bytes (callers check that they are).
fn write_json_bytes(out: &mut Vec<u8>, text: &[u8]) {
    // Without a short cut, so that the compiler vectorizes the scan.
    let escape = text.iter().fold(false, |any, &b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !escape {
        // Nothing to escape: the bytes as they are (the common case).
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text);
        out.push(b'"');
        return;
    }
    // serde_json escapes exactly as JSON requires; writing to a Vec cannot
    // fail, and the caller checked that the bytes are UTF-8.
    let text = String::from_utf8_lossy(text);
    let _ = serde_json::to_writer(&mut *out, text.as_ref());
}

/// Appends a CSV row as a JSON object: fields that are JSON numbers stay
/// numbers, everything else becomes a string. `json_keys` holds each
/// column's name already written as a JSON key with its colon (`"name":`).
/// The row's bytes must be UTF-8 (checked once per row by the caller).
pub(crate) fn write_csv_row(out: &mut Vec<u8>, json_keys: &[Vec<u8>], row: &csv::ByteRecord) {
    out.push(b'{');
    for (i, (key, value)) in json_keys.iter().zip(row.iter()).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key);
        if is_json_number(value) {
            out.extend_from_slice(value);
        } else {
            write_json_bytes(out, value);
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_numbers_follow_the_grammar() {
        for ok in ["0", "-0", "10844", "0.5", "-12.25e-3", "1E5", "3.0e+10"] {
            assert!(is_json_number(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "-",
            "01",
            "+1",
            ".5",
            "1.",
            "1e",
            "NaN",
            "inf",
            "1,5",
            " 1",
            "0x10",
            "2014-07-01",
        ] {
            assert!(!is_json_number(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn csv_rows_become_json_objects() {
        let keys: Vec<Vec<u8>> = ["timestamp", "value", "note"]
            .iter()
            .map(|name| {
                let mut key = Vec::new();
                write_json_string(&mut key, name);
                key.push(b':');
                key
            })
            .collect();
        let row = csv::ByteRecord::from(vec!["2014-07-01 00:00:00", "10844", "say \"hi\""]);
        let mut out = Vec::new();
        write_csv_row(&mut out, &keys, &row);
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"timestamp": "2014-07-01 00:00:00", "value": 10844, "note": "say \"hi\""})
        );
    }

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_escapes_them() {
        for text in [
            "plain",
            "",
            "say \"hi\"",
            "back\\slash",
            "tab\tnew\nline\u{1}",
            "delete\u{7f}",
            "ünïcödé ✓",
            "</script>",
        ] {
            let mut ours = Vec::new();
            write_json_string(&mut ours, text);
            assert_eq!(ours, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
    }
}
