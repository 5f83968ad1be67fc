//! Error lines: the line of the file where the field an error names is set.

/// Prefixes an error (`field.path: reason`) with the line of the table or key it names.
pub(super) fn with_line(text: &str, error: String) -> String {
    let field = error.split(':').next().unwrap_or("");
    match line_of(text, field) {
        Some(n) => format!("line {n}: {error}"),
        None => error,
    }
}

fn line_of(text: &str, field: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let find_from = |start: usize, pred: &dyn Fn(&str) -> bool| {
        lines.iter().enumerate().skip(start).find(|(_, l)| pred(l.trim())).map(|(i, _)| i)
    };
    // [[assets]] rules are numbered.
    if let Some(rest) = field.strip_prefix("assets[") {
        let idx: usize = rest.split(']').next()?.parse().ok()?;
        let at = lines.iter().enumerate().filter(|(_, l)| l.trim() == "[[assets]]").nth(idx)?.0;
        return Some(at.saturating_add(1));
    }
    let parts: Vec<&str> = field.split('.').collect();
    // Longest table header that prefixes the field, then the key inside it.
    for n in (1..=parts.len()).rev() {
        let table = parts.get(..n)?.join(".");
        if let Some(at) = find_from(0, &|l: &str| l == format!("[{table}]")) {
            let key = parts.get(n).copied();
            let key_at = key.and_then(|k| {
                let end = find_from(at.saturating_add(1), &|l: &str| l.starts_with('[')).unwrap_or(lines.len());
                find_from(at.saturating_add(1), &|l: &str| {
                    l.starts_with(k) && l.get(k.len()..).is_some_and(|r| r.trim_start().starts_with('='))
                })
                .filter(|&i| i < end)
            });
            return Some(key_at.unwrap_or(at).saturating_add(1));
        }
    }
    None
}
