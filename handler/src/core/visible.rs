//! Characters that make a text read other than it is: bidirectional overrides and isolates
//! (U+202A–U+202E, U+2066–U+2069) that reorder what follows them, zero-width and other format
//! characters that hide inside a word, line and paragraph separators (U+2028, U+2029) and
//! controls (CR, LF, NUL, ESC, …) that start a new line or drive a terminal. Every value that
//! comes from AWS or from tags may hold them: a group named `web\u{202E}gpj.exe` reads as
//! `webexe.jpg`.
//!
//! Such a character is taken out of the subject line, which has no room to explain it, and shown
//! as `<U+202E>` everywhere else, so the reader sees that the value holds one and where.

use std::borrow::Cow;
use std::fmt::Write as _;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Whether `c` is a control (Cc), format (Cf), line separator (Zl) or paragraph separator (Zp)
/// character: the ones a reader cannot see, or that move what they can.
pub fn is_hidden(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// Whether `c` breaks a line or spaces words (tab, LF, VT, FF, CR, NEL, U+2028, U+2029): taken
/// out of a subject, it leaves a space so the words on either side stay apart.
fn breaks(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// `value` with every hidden character written as `<U+XXXX>` (at least four hex digits, upper
/// case), so it is on one line and shows what it holds.
pub fn visible(value: &str) -> Cow<'_, str> {
    if !value.chars().any(is_hidden) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 16);
    for c in value.chars() {
        if is_hidden(c) {
            let _ = write!(out, "<U+{:04X}>", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `value` without its hidden characters, for a subject line: those that break lines become one
/// space, the others are dropped.
pub fn stripped(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if breaks(c) {
            out.push(' ');
        } else if !is_hidden(c) {
            out.push(c);
        }
    }
    out
}

/// Every string in `value` made [`visible`] (object keys too: they come from the same input).
pub fn visible_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if let Cow::Owned(v) = visible(s) {
                *s = v;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(visible_json),
        Value::Object(map) => {
            if map.keys().any(|k| k.chars().any(is_hidden)) {
                let taken = std::mem::take(map);
                for (k, mut v) in taken {
                    visible_json(&mut v);
                    map.insert(visible(&k).into_owned(), v);
                }
            } else {
                map.values_mut().for_each(visible_json);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bidi_zero_width_separators_and_controls_are_hidden() {
        for c in [
            '\u{202A}',
            '\u{202B}',
            '\u{202C}',
            '\u{202D}',
            '\u{202E}',
            '\u{2066}',
            '\u{2067}',
            '\u{2068}',
            '\u{2069}',
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{200E}',
            '\u{200F}',
            '\u{2060}',
            '\u{FEFF}',
            '\u{2028}',
            '\u{2029}',
            '\u{0}',
            '\u{1B}',
            '\r',
            '\n',
            '\t',
            '\u{7F}',
            '\u{85}',
            '\u{AD}',
            '\u{61C}',
            '\u{E0041}',
        ] {
            assert!(is_hidden(c), "U+{:04X}", c as u32);
        }
        for c in ['a', ' ', 'é', '日', '-', '\u{A0}', '😀'] {
            assert!(!is_hidden(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn shown_as_code_points_or_stripped_from_a_subject() {
        let name = "web\u{202E}gpj.exe\u{2028}Subject: x";
        assert_eq!(visible(name), "web<U+202E>gpj.exe<U+2028>Subject: x");
        assert_eq!(stripped(name), "webgpj.exe Subject: x");
        assert_eq!(visible("tag\u{E0041}"), "tag<U+E0041>");
        assert!(matches!(visible("plain"), Cow::Borrowed("plain")));
        assert_eq!(stripped("a\r\nb\u{0}c"), "a  bc");
    }

    #[test]
    fn json_strings_and_keys_are_made_visible() {
        let mut v = serde_json::json!({"a\u{200B}": ["x\u{202E}y", 1, {"k": "\u{0}"}]});
        visible_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a<U+200B>": ["x<U+202E>y", 1, {"k": "<U+0000>"}]})
        );
    }

    proptest! {
        #[test]
        fn nothing_hidden_survives(s in any::<String>()) {
            prop_assert!(!visible(&s).chars().any(is_hidden));
            prop_assert!(!stripped(&s).chars().any(is_hidden));
        }
    }
}
