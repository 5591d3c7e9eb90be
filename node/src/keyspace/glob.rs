//! Redis's glob patterns (`KEYS`, `SCAN MATCH`, `CONFIG GET`): `*`, `?`, `[...]` with
//! ranges and `^` negation, and `\` escapes, over raw bytes.

/// Whether `text` matches `pattern`, with Redis's `stringmatchlen` semantics.
///
/// The pattern is split into one-byte tokens and stars, then matched with the classic
/// two-pointer walk that backtracks only to the last star: linear-times-pattern work even
/// for hostile patterns such as `*a*a*a*...b`.
pub fn matches(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let tokens = tokenize(pattern);
    let (mut ti, mut pi) = (0usize, 0usize);
    let mut last_star: Option<(usize, usize)> = None;
    while ti < text.len() {
        match tokens.get(pi) {
            Some(Token::Star) => {
                last_star = Some((pi, ti));
                pi += 1;
            }
            Some(token) if token.accepts(text[ti], nocase) => {
                pi += 1;
                ti += 1;
            }
            _ => match last_star {
                Some((star_pi, star_ti)) => {
                    pi = star_pi + 1;
                    ti = star_ti + 1;
                    last_star = Some((star_pi, star_ti + 1));
                }
                None => return false,
            },
        }
    }
    tokens[pi.min(tokens.len())..]
        .iter()
        .all(|t| matches!(t, Token::Star))
}

enum Token {
    Star,
    Any,
    Byte(u8),
    Class { negate: bool, items: Vec<(u8, u8)> },
}

impl Token {
    fn accepts(&self, c: u8, nocase: bool) -> bool {
        let fold = |b: u8| if nocase { b.to_ascii_lowercase() } else { b };
        match self {
            Token::Star | Token::Any => true,
            Token::Byte(b) => fold(*b) == fold(c),
            Token::Class { negate, items } => {
                let hit = items.iter().any(|&(lo, hi)| {
                    let (lo, hi) = (fold(lo.min(hi)), fold(lo.max(hi)));
                    (lo..=hi).contains(&fold(c))
                });
                hit != *negate
            }
        }
    }
}

fn tokenize(mut p: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::new();
    while let Some(&c) = p.first() {
        p = &p[1..];
        let token = match c {
            b'*' => {
                if matches!(tokens.last(), Some(Token::Star)) {
                    continue;
                }
                Token::Star
            }
            b'?' => Token::Any,
            b'\\' if !p.is_empty() => {
                let escaped = p[0];
                p = &p[1..];
                Token::Byte(escaped)
            }
            b'[' => {
                let negate = p.first() == Some(&b'^');
                if negate {
                    p = &p[1..];
                }
                let mut items = Vec::new();
                loop {
                    match p {
                        [] => break,
                        [b']', rest @ ..] => {
                            p = rest;
                            break;
                        }
                        [b'\\', esc, rest @ ..] => {
                            items.push((*esc, *esc));
                            p = rest;
                        }
                        [lo, b'-', hi, rest @ ..] if *hi != b']' => {
                            items.push((*lo, *hi));
                            p = rest;
                        }
                        [one, rest @ ..] => {
                            items.push((*one, *one));
                            p = rest;
                        }
                    }
                }
                Token::Class { negate, items }
            }
            other => Token::Byte(other),
        };
        tokens.push(token);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn redis_glob_cases() {
        assert!(matches(b"*", b"anything", false));
        assert!(matches(b"h?llo", b"hello", false));
        assert!(matches(b"h*llo", b"heeeello", false));
        assert!(matches(b"h[ae]llo", b"hallo", false));
        assert!(!matches(b"h[^e]llo", b"hello", false));
        assert!(matches(b"h[a-b]llo", b"hbllo", false));
        assert!(matches(b"cache:*", b"cache:metadata:1", false));
        assert!(!matches(b"cache:*", b"celery", false));
        assert!(matches(b"a\\*b", b"a*b", false));
        assert!(!matches(b"a\\*b", b"axb", false));
        assert!(matches(b"MaxMemory*", b"maxmemory-policy", true));
        assert!(!matches(b"abc", b"abcd", false));
        assert!(matches(&[b'*'; 5000], b"x", false));
        assert!(!matches(b"*a*a*a*a*a*a*a*a*a*b", &[b'a'; 40], false));
    }
}
