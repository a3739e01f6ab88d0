//! Personal data out of texts that other clients' operators will read.
//!
//! A hint is an answer an operator once wrote to some client: "Maria, your courier will call
//! you at +55 11 91234-5678". Shown to another operator for another client, the name, phone
//! number and e-mail of the first client must not travel with it. Every message is masked
//! before it is kept: e-mail addresses become `[email]`, runs of seven digits or more (with
//! the spaces, dashes, dots and brackets phone numbers are written with) become `[phone]`, and
//! the words of the names the event gives for its client become `[name]`.
//!
//! Names only come from what the events say (the client card's `name` and `assigned_name`);
//! a name the client never gave is not known, and a first name like "Rose" is masked only in
//! that client's own conversation, where it is known to be a name.

pub const EMAIL: &str = "[email]";
pub const PHONE: &str = "[phone]";
pub const NAME: &str = "[name]";

/// Fewer digits than this are an amount, a date or an order line, not a phone number.
const PHONE_DIGITS: usize = 7;

/// `text` with e-mails, phone numbers and the words of `names` replaced by placeholders.
pub fn mask(text: &str, names: &[String]) -> String {
    let text = mask_emails(text);
    let text = mask_phones(&text);
    mask_names(&text, names)
}

/// Whitespace-separated chunks that hold an `@` between a local part and a dotted domain.
fn mask_emails(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let before = &rest[..at];
        let start = before.rfind(|c: char| !is_email_char(c)).map_or(0, |i| {
            i + before[i..].chars().next().map_or(1, char::len_utf8)
        });
        let after = &rest[at + 1..];
        let end = after
            .find(|c: char| !is_email_char(c))
            .unwrap_or(after.len());
        // A trailing dot ends the sentence, not the domain.
        let domain = after[..end].trim_end_matches('.');
        if start < at && domain.contains('.') && !domain.starts_with('.') {
            out.push_str(&rest[..start]);
            out.push_str(EMAIL);
            rest = &after[domain.len()..];
        } else {
            out.push_str(&rest[..=at]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn is_email_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '%')
}

/// Runs of digits and phone punctuation that hold at least [`PHONE_DIGITS`] digits.
fn mask_phones(text: &str) -> String {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        let begins = c.is_ascii_digit() || (c == '+' || c == '(') && next_is_digit(&chars, i);
        let after_word = i > 0 && chars[i - 1].1.is_alphanumeric();
        if !begins || after_word {
            i += 1;
            continue;
        }
        // Extend over digits and separators; the run ends at its last digit (or bracket).
        let (mut j, mut digits, mut end) = (i, 0, i);
        while j < chars.len() {
            let c = chars[j].1;
            if c.is_ascii_digit() {
                digits += 1;
                end = j;
            } else if c == ')' {
                end = j;
            } else if !matches!(c, ' ' | '-' | '.' | '(' | '+') {
                break;
            }
            j += 1;
        }
        let before_word = chars.get(end + 1).is_some_and(|(_, c)| c.is_alphanumeric());
        if digits >= PHONE_DIGITS && !before_word {
            out.push_str(&text[copied..start]);
            out.push_str(PHONE);
            copied = chars.get(end + 1).map_or(text.len(), |(at, _)| *at);
        }
        i = end + 1;
    }
    out.push_str(&text[copied..]);
    out
}

fn next_is_digit(chars: &[(usize, char)], i: usize) -> bool {
    chars.get(i + 1).is_some_and(|(_, c)| c.is_ascii_digit())
}

/// Whole words equal (ignoring case) to a word of one of `names`.
fn mask_names(text: &str, names: &[String]) -> String {
    let name_words: Vec<String> = names
        .iter()
        .flat_map(|name| crate::text::words(name).collect::<Vec<_>>())
        .filter(|word| word.chars().count() >= 2 && !word.chars().all(char::is_numeric))
        .collect();
    if name_words.is_empty() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut word_start: Option<usize> = None;
    let flush = |out: &mut String, word: &str| {
        if name_words.contains(&word.to_lowercase()) {
            out.push_str(NAME);
        } else {
            out.push_str(word);
        }
    };
    for (at, c) in text.char_indices() {
        match (c.is_alphanumeric(), word_start) {
            (true, None) => word_start = Some(at),
            (true, Some(_)) => {}
            (false, Some(start)) => {
                flush(&mut out, &text[start..at]);
                word_start = None;
                out.push(c);
            }
            (false, None) => out.push(c),
        }
    }
    if let Some(start) = word_start {
        flush(&mut out, &text[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn emails_are_masked_and_lone_at_signs_are_not() {
        assert_eq!(
            mask("write to maria.silva+shop@example.com.br.", &[]),
            "write to [email]."
        );
        assert_eq!(mask("meet @ noon, @handle", &[]), "meet @ noon, @handle");
    }

    #[test]
    fn phone_numbers_are_masked_and_amounts_are_not() {
        assert_eq!(
            mask("call +55 (11) 91234-5678 today", &[]),
            "call [phone] today"
        );
        assert_eq!(mask("номер 89161234567.", &[]), "номер [phone].");
        assert_eq!(
            mask("order 1234 ships in 3 days, R$ 150.00", &[]),
            "order 1234 ships in 3 days, R$ 150.00"
        );
        assert_eq!(mask("tracking AB1234567890", &[]), "tracking AB1234567890");
    }

    #[test]
    fn the_clients_names_are_masked_as_whole_words_in_any_case() {
        assert_eq!(
            mask(
                "Olá MARIA, a Mariana já respondeu",
                &names(&["Maria Silva"])
            ),
            "Olá [name], a Mariana já respondeu"
        );
        assert_eq!(
            mask("Пётр, ваш заказ готов", &names(&["Пётр"])),
            "[name], ваш заказ готов"
        );
        assert_eq!(mask("Hello Peter", &[]), "Hello Peter");
    }
}
