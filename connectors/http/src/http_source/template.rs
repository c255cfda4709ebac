//! Template variables: `${entityName}` (one value of `entity.names`) and `${offset}` (the
//! last offset written for that entity, or `http.initial.offset`), as Confluent's HTTP
//! source writes them.

/// The variable replaced by each entity name.
pub const ENTITY_VAR: &str = "entityName";
/// The variable replaced by the entity's last offset.
pub const OFFSET_VAR: &str = "offset";

/// The names of the `${...}` variables in `text`, in order.
pub fn variables(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                names.push(after[..end].to_string());
                rest = &after[end + 1..];
            }
            None => {
                names.push(after.to_string());
                break;
            }
        }
    }
    names
}

/// Checks that `text` uses only known variables.
///
/// # Errors
/// Text completing "option 'x' ...".
pub fn check_variables(text: &str, allowed: &[&str]) -> Result<(), String> {
    for name in variables(text) {
        if !allowed.contains(&name.as_str()) {
            let known = allowed
                .iter()
                .map(|a| format!("${{{a}}}"))
                .collect::<Vec<_>>()
                .join(" and ");
            return Err(format!(
                "uses the unknown variable '${{{name}}}'; the variables here are {known}"
            ));
        }
    }
    Ok(())
}

/// Whether `text` uses `${name}`.
pub fn uses(text: &str, name: &str) -> bool {
    text.contains(&format!("${{{name}}}"))
}

/// `text` with `${entityName}` and `${offset}` replaced; `encode` percent-encodes the values
/// (for URLs).
pub fn render(text: &str, entity: Option<&str>, offset: &str, encode: bool) -> String {
    let value = |v: &str| {
        if encode {
            percent_encode(v)
        } else {
            v.to_string()
        }
    };
    let mut out = text.replace(&format!("${{{OFFSET_VAR}}}"), &value(offset));
    if let Some(entity) = entity {
        out = out.replace(&format!("${{{ENTITY_VAR}}}"), &value(entity));
    }
    out
}

/// Percent-encodes every byte outside RFC 3986's unreserved set.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_render_and_encode() {
        let url = "https://api.example/v1/${entityName}/events?since=${offset}";
        assert_eq!(variables(url), ["entityName", "offset"]);
        assert_eq!(
            render(url, Some("BRK B"), "2024-01-19T10:00:00Z", true),
            "https://api.example/v1/BRK%20B/events?since=2024-01-19T10%3A00%3A00Z"
        );
        assert_eq!(
            render("${entityName}-quotes", Some("IBM"), "", false),
            "IBM-quotes"
        );
    }

    #[test]
    fn unknown_variables_are_named() {
        let err = check_variables("http://h/${symbol}", &[ENTITY_VAR, OFFSET_VAR]).unwrap_err();
        assert_eq!(
            err,
            "uses the unknown variable '${symbol}'; the variables here are ${entityName} and ${offset}"
        );
        assert!(check_variables("http://h/${entityName}", &[ENTITY_VAR]).is_ok());
        assert!(uses("a ${offset} b", OFFSET_VAR));
        assert!(!uses("a $offset b", OFFSET_VAR));
    }
}
