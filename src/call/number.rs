//! Phone numbers from SIP URIs to E.164 (DESIGN section 3).

/// The user part of a `sip:`/`sips:`/`tel:` URI (`;params` dropped), or the
/// whole text when it is not such a URI.
pub fn uri_user(uri: &str) -> &str {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("tel:"))
        .or_else(|| uri.strip_prefix("SIP:"))
        .unwrap_or(uri);
    let user = rest.split('@').next().unwrap_or(rest);
    user.split(';').next().unwrap_or(user)
}

/// Digits (and a leading `+`) with visual separators removed; `None` if
/// anything else is in the way (e.g. `anonymous`).
fn digits(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    for (i, c) in raw.trim().chars().enumerate() {
        match c {
            '+' if i == 0 => out.push('+'),
            '0'..='9' => out.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return None,
        }
    }
    (out.trim_start_matches('+').len() >= 2).then_some(out)
}

/// E.164 forms a dialled string may stand for, most likely first: as is
/// (`+...`), international prefix `00`, national with the trunk's country
/// code (with and without a national trunk prefix `0`), or digits that
/// already start with the country code.
pub fn candidates(raw: &str, country_code: Option<&str>) -> Vec<String> {
    let Some(d) = digits(raw) else {
        return Vec::new();
    };
    if d.starts_with('+') {
        return vec![d];
    }
    let mut out = Vec::with_capacity(4);
    if let Some(rest) = d.strip_prefix("00") {
        out.push(format!("+{rest}"));
    }
    if let Some(cc) = country_code {
        out.push(format!("+{cc}{}", d.strip_prefix('0').unwrap_or(&d)));
        if d.starts_with(cc) {
            out.push(format!("+{d}"));
        }
    } else {
        out.push(format!("+{d}"));
    }
    out.dedup();
    out
}

/// The caller number for the workflow: E.164 where it can be made one,
/// else the raw user part (e.g. `anonymous`).
pub fn caller(raw_uri: &str, country_code: Option<&str>) -> String {
    let user = uri_user(raw_uri);
    candidates(user, country_code)
        .into_iter()
        .next()
        .unwrap_or_else(|| user.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialled_forms() {
        assert_eq!(candidates("+1 (415) 555-0100", None), ["+14155550100"]);
        assert_eq!(candidates("4155550100", Some("1")), ["+14155550100"]);
        assert_eq!(
            candidates("14155550100", Some("1")),
            ["+114155550100", "+14155550100"]
        );
        assert_eq!(candidates("02071838750", Some("44")), ["+442071838750"]);
        assert_eq!(
            candidates("00442071838750", Some("1")),
            ["+442071838750", "+10442071838750"]
        );
        assert!(candidates("anonymous", Some("1")).is_empty());
        assert_eq!(
            uri_user("sip:+15550100001@127.0.0.1:5060;user=phone"),
            "+15550100001"
        );
        assert_eq!(caller("sip:anonymous@anonymous.invalid", None), "anonymous");
        assert_eq!(caller("tel:+14155550100", None), "+14155550100");
    }
}
