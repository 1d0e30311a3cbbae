//! The words of an iptables-save rule: how they are split and quoted, and
//! where a rule sends a packet. Below both the rule parser (`iptables`)
//! and the match reader (`ipt_match`).

/// A word of a rule, and whether it was quoted (then it is never an
/// option, even if it starts with `-`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub quoted: bool,
}

/// Where a rule sends a matching packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    None,
    Jump(String),
    Goto(String),
}

/// Splits a rule as iptables-save quotes it: double quotes around words
/// with spaces, backslash escapes inside. `None` on an unterminated quote.
pub fn tokenize(line: &str) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut token = Token {
            text: String::new(),
            quoted: false,
        };
        let mut in_quotes = false;
        while let Some(c) = chars.next() {
            match c {
                '"' => {
                    in_quotes = !in_quotes;
                    token.quoted = true;
                }
                '\\' if in_quotes => token.text.push(chars.next()?),
                c if c.is_whitespace() && !in_quotes => break,
                c => token.text.push(c),
            }
        }
        if in_quotes {
            return None;
        }
        out.push(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_quotes() {
        let t = tokenize(r#"-A INPUT -m comment --comment "a \"b\" c" -j DROP"#).unwrap();
        assert_eq!(t[5].text, r#"a "b" c"#);
        assert!(t[5].quoted);
        assert!(tokenize(r#"-A INPUT --comment "open"#).is_none());
    }
}
