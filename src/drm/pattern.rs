//! Asset id patterns: `kids/cartoon` (exact), `kids/*` (one level), `kids/**` (any depth), `*`.

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(Vec<String>);

impl Pattern {
    /// Parses a pattern; `None` if a segment is empty or mixes `*` with other characters.
    pub fn parse(s: &str) -> Option<Pattern> {
        let parts: Vec<String> = s.split('/').map(str::to_owned).collect();
        let ok =
            parts.iter().all(|p| !p.is_empty() && (p == "*" || p == "**" || crate::storage::catalog::valid_name(p)));
        ok.then_some(Pattern(parts))
    }

    /// Whether `asset` matches.
    pub fn matches(&self, asset: &str) -> bool {
        let parts: Vec<&str> = asset.split('/').collect();
        matches_from(&self.0, &parts)
    }
}

fn matches_from(pat: &[String], parts: &[&str]) -> bool {
    match pat.split_first() {
        None => parts.is_empty(),
        Some((p, rest)) if p == "**" => {
            (0..=parts.len()).any(|i| parts.get(i..).is_some_and(|tail| matches_from(rest, tail)))
        }
        Some((p, rest)) => match parts.split_first() {
            Some((first, tail)) => (p == "*" || p == first) && matches_from(rest, tail),
            None => false,
        },
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let p = |s| Pattern::parse(s).unwrap();
        assert!(p("multi").matches("multi"));
        assert!(!p("multi").matches("multi2"));
        assert!(p("kids/**").matches("kids/cartoon") && p("kids/**").matches("kids/a/b"));
        assert!(!p("kids/**").matches("adults/x"));
        assert!(p("kids/*").matches("kids/a") && !p("kids/*").matches("kids/a/b"));
        assert!(p("**").matches("anything/at/all"));
        assert!(
            Pattern::parse("a//b").is_none() && Pattern::parse("a/../b").is_none() && Pattern::parse("a*").is_none()
        );
    }
}
