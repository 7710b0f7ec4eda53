//! Which characters a text from a domestic system may carry into a message we build and into
//! the store: XML 1.0 characters only (a control character would make the queued message
//! unparsable when it is signed, and PostgreSQL refuses NUL in text).
//!
//! Owns: that one rule. Must never: trim, escape or otherwise change the text.

/// The first character that may not appear in `text`. `single_line` texts (identifiers,
/// codes) refuse every control character; free texts allow tab, line feed and carriage return.
pub fn forbidden_char(text: &str, single_line: bool) -> Option<char> {
    text.chars().find(|&c| {
        let allowed_whitespace = !single_line && matches!(c, '\t' | '\n' | '\r');
        (c.is_control() && !allowed_whitespace) || c == '\u{FFFE}' || c == '\u{FFFF}'
    })
}

/// A message naming the character, for an error reply (`U+000B`).
pub fn describe(c: char) -> String {
    format!("contains the character U+{:04X}, which is not allowed", u32::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_and_free_text_keeps_its_line_breaks() {
        assert_eq!(forbidden_char("see annex 2", true), None);
        assert_eq!(forbidden_char("line one\nline two\tand\r", false), None);
        assert_eq!(forbidden_char("line one\nline two", true), Some('\n'));
        for c in ['\u{0}', '\u{B}', '\u{C}', '\u{1F}', '\u{7F}', '\u{85}', '\u{FFFE}', '\u{FFFF}'] {
            assert_eq!(forbidden_char(&format!("a{c}b"), false), Some(c), "{c:?}");
        }
        assert_eq!(forbidden_char("Ünïcödé 한국어", true), None);
        assert_eq!(describe('\u{B}'), "contains the character U+000B, which is not allowed");
    }
}
