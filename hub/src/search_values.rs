//! A search parameter's values (FHIR search): several separated by commas match any of them,
//! and `\,` is a comma within a value (`\\` a backslash).

/// The values of one parameter, in order.
pub fn any_of(value: &str) -> Vec<String> {
    let (mut out, mut current) = (Vec::new(), String::new());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            ',' => out.push(std::mem::take(&mut current)),
            '\\' => match chars.next() {
                Some(e @ (',' | '\\')) => current.push(e),
                // Another escape (`\|`, `\$`) is the value's own: it stays as written.
                Some(e) => current.extend(['\\', e]),
                None => current.push('\\'),
            },
            c => current.push(c),
        }
    }
    out.push(current);
    out
}

/// A SQL parameter of a search condition: text, a number (or none), or a list of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlValue {
    Text(String),
    Number(Option<i64>),
    Texts(Vec<String>),
}

impl SqlValue {
    pub fn as_sql(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        match self {
            SqlValue::Text(v) => v,
            SqlValue::Number(v) => v,
            SqlValue::Texts(v) => v,
        }
    }
}

/// The SQL condition that `column` holds one of the parameter's values, with its parameter
/// `$n` (one value is compared as one, so an index on the column serves it as before).
pub fn equals_any(column: &str, value: &str, n: usize) -> (String, SqlValue) {
    let mut values = any_of(value);
    if values.len() == 1 {
        (format!("{column} = ${n}::text"), SqlValue::Text(values.remove(0)))
    } else {
        (format!("{column} = ANY(${n}::text[])"), SqlValue::Texts(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_is_compared_as_one() {
        assert_eq!(equals_any("o.site", "a", 7), ("o.site = $7::text".into(), SqlValue::Text("a".into())));
        let several = equals_any("o.site", "a,b", 7);
        assert_eq!(several, ("o.site = ANY($7::text[])".into(), SqlValue::Texts(vec!["a".into(), "b".into()])));
    }

    #[test]
    fn commas_separate_values_and_an_escaped_one_stays() {
        assert_eq!(any_of("site-1"), ["site-1"]);
        assert_eq!(any_of("site-1,site-2"), ["site-1", "site-2"]);
        assert_eq!(any_of(r"a\,b,c"), ["a,b", "c"]);
        assert_eq!(any_of(r"a\\,b"), [r"a\", "b"]);
        assert_eq!(any_of(r"x\|y"), [r"x\|y"]);
        assert_eq!(any_of("a,"), ["a", ""]);
        assert_eq!(any_of(r"end\"), [r"end\"]);
        assert_eq!(any_of(""), [""]);
    }
}
