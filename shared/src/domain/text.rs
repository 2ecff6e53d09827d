//! Text that every client shows to people: member and item names.

/// Characters a name may never hold: control characters (C0, C1, DEL: terminal escapes, NUL,
/// newlines), the bidirectional controls that reorder what is shown around them (an item called
/// `"\u{202E}...`" reads backwards on every screen), zero-width characters, and `<` `>`, so that
/// a name is never markup in a screen that forgets to escape it.
pub fn is_forbidden_in_names(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '<' | '>'
                // Bidirectional marks, embeddings, overrides and isolates; Arabic letter mark.
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{061C}'
                // Zero-width space, joiners, word joiner, byte-order mark.
                | '\u{200B}'..='\u{200D}'
                | '\u{2060}'
                | '\u{FEFF}'
        )
}

/// True when `name` holds none of [`is_forbidden_in_names`].
pub fn is_plain_name(name: &str) -> bool {
    !name.chars().any(is_forbidden_in_names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_plain_text_in_any_script() {
        for fine in [
            "Kim Minji",
            "김민지",
            "Café Latte (L)",
            "아이스 아메리카노 & 쿠키",
            "O'Brien",
        ] {
            assert!(is_plain_name(fine), "{fine}");
        }
        for hostile in [
            "<script>alert(1)</script>",
            "Latte<img src=x>",
            "Kim\u{0}Minji",
            "\u{1b}[31mred",
            "Latte\nFree",
            "\u{202E}ettal",
            "Latte\u{2066}x\u{2069}",
            "Lat\u{200B}te",
            "\u{FEFF}Latte",
            "Latte\u{7f}",
            "Latte\u{85}",
        ] {
            assert!(!is_plain_name(hostile), "{hostile:?}");
        }
    }
}
