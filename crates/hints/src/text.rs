//! Words as the index compares them: a message becomes a list of terms.
//!
//! Clients write "Where is my order??", "onde está meu pedido" or "где мой заказ" with typos,
//! capitals and emoji. Two questions are alike when they share meaningful words, in whatever
//! form: so a term is a lower-cased word, not a stop word ("is", "my", "o", "и"), cut to its
//! stem by the Snowball stemmer of its language ("orders" and "ordered" are both "order";
//! "заказа" and "заказы" are both "заказ"), with Portuguese accents folded first, since
//! clients often type "nao" for "não". Numbers are dropped: order numbers and amounts differ
//! from one client to the next and say nothing about the kind of question.
//!
//! The language is guessed per message: Cyrillic letters mean Russian; otherwise Portuguese
//! when the message has Portuguese letters (ã, ç, ...) or more Portuguese than English stop
//! words, and English otherwise. A Cyrillic word in a Latin message is still stemmed as Russian.

use std::sync::LazyLock;

use rust_stemmers::{Algorithm, Stemmer};

/// The languages whose words are stemmed; any other Latin-script text is read as English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    English,
    Portuguese,
    Russian,
}

static ENGLISH: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));
static PORTUGUESE: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::Portuguese));
static RUSSIAN: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::Russian));

const ENGLISH_STOP_WORDS: &[&str] = &[
    "a", "about", "after", "am", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by",
    "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "he", "her", "hi",
    "hello", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "me", "my", "of",
    "on", "or", "our", "please", "she", "so", "than", "that", "the", "their", "them", "then",
    "there", "these", "they", "this", "to", "us", "was", "we", "were", "what", "when", "where",
    "which", "who", "why", "will", "with", "would", "you", "your", "yet", "still",
];

const PORTUGUESE_STOP_WORDS: &[&str] = &[
    "a", "ao", "aos", "as", "até", "com", "como", "da", "das", "de", "do", "dos", "e", "é", "ela",
    "ele", "em", "entre", "era", "essa", "esse", "esta", "está", "estou", "eu", "foi", "isso",
    "isto", "já", "lhe", "mais", "mas", "me", "meu", "minha", "muito", "na", "nas", "no", "nos",
    "o", "obrigado", "obrigada", "olá", "ola", "onde", "os", "ou", "para", "pela", "pelo", "por",
    "qual", "quando", "que", "se", "seu", "sua", "são", "também", "te", "tem", "um", "uma", "você",
    "voce", "oi", "bom", "dia", "boa", "tarde", "noite", "ainda",
];

const RUSSIAN_STOP_WORDS: &[&str] = &[
    "а",
    "без",
    "бы",
    "в",
    "вам",
    "вас",
    "вот",
    "все",
    "вы",
    "где",
    "да",
    "для",
    "до",
    "его",
    "ее",
    "если",
    "есть",
    "еще",
    "же",
    "за",
    "здравствуйте",
    "и",
    "из",
    "или",
    "им",
    "к",
    "как",
    "когда",
    "ли",
    "мне",
    "мой",
    "моя",
    "мы",
    "на",
    "над",
    "не",
    "нет",
    "но",
    "о",
    "об",
    "он",
    "она",
    "они",
    "от",
    "по",
    "подскажите",
    "пожалуйста",
    "при",
    "привет",
    "с",
    "спасибо",
    "так",
    "там",
    "то",
    "у",
    "уже",
    "что",
    "это",
    "я",
    "ещё",
    "мои",
    "моего",
    "моей",
    "мою",
];

/// The language of `text`, by script first and stop words second.
pub fn language(text: &str) -> Language {
    let (mut cyrillic, mut latin, mut portuguese_letters) = (0usize, 0usize, false);
    for c in text.chars() {
        if ('\u{0400}'..='\u{04FF}').contains(&c) {
            cyrillic += 1;
        } else if c.is_alphabetic() {
            latin += 1;
            portuguese_letters |= matches!(
                c,
                'ã' | 'õ' | 'ç' | 'á' | 'é' | 'í' | 'ó' | 'ú' | 'â' | 'ê' | 'ô' | 'à'
            );
        }
    }
    if cyrillic > latin {
        return Language::Russian;
    }
    if portuguese_letters {
        return Language::Portuguese;
    }
    let (mut english, mut portuguese) = (0usize, 0usize);
    for word in words(text) {
        english += usize::from(ENGLISH_STOP_WORDS.contains(&word.as_str()));
        portuguese += usize::from(PORTUGUESE_STOP_WORDS.contains(&word.as_str()));
    }
    if portuguese > english {
        Language::Portuguese
    } else {
        Language::English
    }
}

/// The lower-cased words of `text`: runs of letters and digits.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

/// The terms of `text` in its own language: stems of its meaningful words, in order, with
/// repeats kept (the index counts them).
pub fn terms(text: &str) -> Vec<String> {
    let language = language(text);
    words(text)
        .filter_map(|word| term(&word, language))
        .collect()
}

/// The term of one lower-cased word, or None for a stop word, a number or a single letter.
fn term(word: &str, language: Language) -> Option<String> {
    if word.chars().all(|c| c.is_numeric()) || word.chars().count() < 2 {
        return None;
    }
    let cyrillic = word.chars().any(|c| ('\u{0400}'..='\u{04FF}').contains(&c));
    let language = if cyrillic {
        Language::Russian
    } else if language == Language::Russian {
        Language::English
    } else {
        language
    };
    match language {
        Language::English if ENGLISH_STOP_WORDS.contains(&word) => None,
        Language::English => Some(ENGLISH.stem(word).into_owned()),
        Language::Portuguese if PORTUGUESE_STOP_WORDS.contains(&word) => None,
        Language::Portuguese => Some(PORTUGUESE.stem(&fold_accents(word)).into_owned()),
        Language::Russian => {
            let word = word.replace('ё', "е");
            if RUSSIAN_STOP_WORDS.contains(&word.as_str()) {
                return None;
            }
            Some(RUSSIAN.stem(&word).into_owned())
        }
    }
}

/// "não" and "nao" are one word to a client in a hurry: accents are folded before stemming, so
/// both spellings get the same stem.
fn fold_accents(stem: &str) -> String {
    stem.chars()
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ã' => 'a',
            'é' | 'ê' => 'e',
            'í' => 'i',
            'ó' | 'ô' | 'õ' => 'o',
            'ú' | 'ü' => 'u',
            'ç' => 'c',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_is_guessed_by_script_letters_and_stop_words() {
        assert_eq!(language("Где мой заказ?"), Language::Russian);
        assert_eq!(language("Não recebi o pedido"), Language::Portuguese);
        assert_eq!(language("onde esta o meu pedido"), Language::Portuguese);
        assert_eq!(language("Where is my order?"), Language::English);
        assert_eq!(language("👍"), Language::English);
    }

    #[test]
    fn forms_of_a_word_share_a_term_and_stop_words_and_numbers_drop() {
        assert_eq!(terms("Where is my ORDER #12345?"), ["order"]);
        assert_eq!(terms("my orders were delayed"), ["order", "delay"]);
        assert_eq!(terms("Где мой заказ?"), terms("где заказы"));
        assert_eq!(
            terms("Não recebi meu pedido"),
            terms("nao recebi os pedidos")
        );
        assert!(terms("is it? 42 !!! 🙂").is_empty());
    }

    #[test]
    fn a_cyrillic_word_in_a_latin_message_is_stemmed_as_russian() {
        assert_eq!(terms("order заказы"), ["order", "заказ"]);
    }
}
