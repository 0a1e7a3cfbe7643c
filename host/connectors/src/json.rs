//! Writing CSV fields as JSON without building a tree.

/// True when `text` is a JSON number (RFC 8259 §6): `-? int frac? exp?`.
pub(crate) fn is_json_number(text: &str) -> bool {
    let b = text.as_bytes();
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

/// Appends `text` as a JSON string literal.
pub(crate) fn write_json_string(out: &mut Vec<u8>, text: &str) {
    // serde_json escapes exactly as JSON requires; writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Appends a CSV row as a JSON object: fields that are JSON numbers stay
/// numbers, everything else becomes a string.
pub(crate) fn write_csv_row(out: &mut Vec<u8>, headers: &[String], row: &csv::StringRecord) {
    out.push(b'{');
    for (i, (name, value)) in headers.iter().zip(row.iter()).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_string(out, name);
        out.push(b':');
        if is_json_number(value) {
            out.extend_from_slice(value.as_bytes());
        } else {
            write_json_string(out, value);
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
            assert!(is_json_number(ok), "{ok}");
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
            assert!(!is_json_number(bad), "{bad}");
        }
    }

    #[test]
    fn csv_rows_become_json_objects() {
        let headers = vec![
            "timestamp".to_string(),
            "value".to_string(),
            "note".to_string(),
        ];
        let row = csv::StringRecord::from(vec!["2014-07-01 00:00:00", "10844", "say \"hi\""]);
        let mut out = Vec::new();
        write_csv_row(&mut out, &headers, &row);
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"timestamp": "2014-07-01 00:00:00", "value": 10844, "note": "say \"hi\""})
        );
    }
}
