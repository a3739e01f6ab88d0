//! The (question -> answer) pairs of one tenant, searchable by how alike questions are.
//!
//! Each pair is a *question document* (the terms of a client's question) pointing at an
//! *answer* (an operator's reply, masked). The same answer given to many questions is one
//! answer with many documents: a hint is an answer, and its score is that of its best-matching
//! question, raised a little by how many questions it answered, so a well-proven reply beats a
//! one-off one of equal match. The same question answered the same way twice is one document
//! seen twice.
//!
//! Matching is BM25 (k1 = 1.2, b = 0.75), the standard of text search: a term shared with the
//! asked question counts by how rare it is among all questions (its IDF) and, with diminishing
//! returns, how often it occurs, normalised by the document's length. A hand-written inverted
//! index does this in well under a millisecond for 100,000 pairs (`make bench-hints`), with no
//! search engine to deploy or keep in sync.
//!
//! Learning: when an operator chooses a hint, the question it was chosen for becomes a document
//! of that answer (or the existing one is marked), and a chosen document counts double per
//! choice. The answer then wins for questions like that one, and only for those.
//!
//! A choice can name an answer the index does not know yet: a hint the language model wrote
//! is known only to the replica that suggested it, and becomes an answer of the log when the
//! operator sends it, an outbox event stored after the choice. Such a choice waits, and is
//! learned when its answer arrives, so every replica and every replay of the log learns it
//! alike.
//!
//! Relevance (0-100) compares an answer's score with the score the asked question would get
//! against itself: 100 means every meaningful word of the question was matched.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

/// Choices of answers not known yet, kept per tenant until their answer arrives; the oldest
/// are forgotten first. An operator sends a chosen hint within minutes, so this is generous.
pub const WAITING_CHOICES: usize = 10_000;

/// BM25's term-frequency saturation.
const K1: f32 = 1.2;
/// BM25's length normalisation.
const B: f32 = 0.75;
/// How much each further question an answer answered adds to it (logarithmically).
const SUPPORT_BONUS: f32 = 0.1;
/// How much each operator choice multiplies the chosen document's score.
const CHOICE_BOOST: f32 = 1.0;

/// The stable id of an answer: a checksum of its normalised text, the same after every
/// rebuild of the index, because Chat2Desk sends it back as `hint_id` when an operator chooses.
pub type AnswerId = i64;

/// One operator answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub text: String,
    /// Question documents that lead to it.
    pub questions: u32,
    /// Times an operator chose it as a hint.
    pub chosen: u32,
}

#[derive(Debug, Clone)]
struct Document {
    answer: AnswerId,
    len: u32,
    seen: u32,
    chosen: u32,
}

/// A term of the asked question, with how much it counts (the context counts less).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryTerm {
    pub term: String,
    pub weight: f32,
}

/// An answer found for a question.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub answer: AnswerId,
    pub score: f32,
    /// 0 to 100.
    pub relevance: u32,
}

/// The index of one tenant.
#[derive(Debug, Default)]
pub struct Index {
    term_ids: FxHashMap<String, u32>,
    /// Per term: (document, occurrences in it).
    postings: Vec<Vec<(u32, u16)>>,
    documents: Vec<Document>,
    /// (question fingerprint, answer) -> document, so a pair seen again is not a new document.
    by_pair: FxHashMap<(u64, AnswerId), u32>,
    answers: FxHashMap<AnswerId, Answer>,
    /// Normalised answer text -> id, to find an answer again and to resolve checksum clashes.
    answer_ids: FxHashMap<String, AnswerId>,
    total_len: u64,
    /// Choices of answers not known yet: the question terms of each, by answer.
    waiting: FxHashMap<AnswerId, Vec<Vec<String>>>,
    /// The answers of the waiting choices, one entry per choice, oldest first.
    waiting_order: VecDeque<AnswerId>,
    /// Operator choices learned.
    choices: u64,
}

/// What became of an operator's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The answer is known: it now ranks higher for questions like the one it was chosen for.
    Learned,
    /// The answer is not known yet: the choice is learned when it arrives.
    Waiting,
}

impl Index {
    /// The id `text` has, or gets, as an answer.
    pub fn answer_id(&mut self, text: &str) -> AnswerId {
        let key = normalised(text);
        if let Some(id) = self.answer_ids.get(&key) {
            return *id;
        }
        const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
        // Positive and below 2^31, so any client reads it as an int; clashes probe onwards.
        let mut id = i64::from(CRC.checksum(key.as_bytes()) & 0x7fff_ffff).max(1);
        while self.answers.contains_key(&id) {
            id = id % 0x7fff_ffff + 1;
        }
        self.answer_ids.insert(key, id);
        self.answers.insert(
            id,
            Answer {
                text: text.to_owned(),
                questions: 0,
                chosen: 0,
            },
        );
        if let Some(choices) = self.waiting.remove(&id) {
            self.waiting_order.retain(|waiting| *waiting != id);
            for terms in choices {
                self.learn(&terms, id);
            }
        }
        id
    }

    /// Adds the pair (a question with `terms` -> `answer`), or counts it once more.
    /// Returns false when the question has no meaningful word (nothing to match it by).
    pub fn add_pair(&mut self, terms: &[String], answer: &str) -> bool {
        if terms.is_empty() || answer.trim().is_empty() {
            return false;
        }
        let answer = self.answer_id(answer);
        self.document(terms, answer, false);
        true
    }

    /// An operator chose `answer` for a question with `terms`.
    pub fn choose(&mut self, terms: &[String], answer: AnswerId) -> Choice {
        if self.answers.contains_key(&answer) {
            self.learn(terms, answer);
            return Choice::Learned;
        }
        self.waiting.entry(answer).or_default().push(terms.to_vec());
        self.waiting_order.push_back(answer);
        while self.waiting_order.len() > WAITING_CHOICES {
            let Some(oldest) = self.waiting_order.pop_front() else {
                break;
            };
            if let Some(choices) = self.waiting.get_mut(&oldest) {
                choices.remove(0);
                if choices.is_empty() {
                    self.waiting.remove(&oldest);
                }
            }
        }
        Choice::Waiting
    }

    /// Counts a choice of the known `answer`, and marks the question's document chosen.
    fn learn(&mut self, terms: &[String], answer: AnswerId) {
        if let Some(known) = self.answers.get_mut(&answer) {
            known.chosen += 1;
        }
        if !terms.is_empty() {
            self.document(terms, answer, true);
        }
        self.choices += 1;
    }

    /// Adds the question document (`terms` -> `answer`), or counts it once more.
    fn document(&mut self, terms: &[String], answer: AnswerId, chosen: bool) {
        let key = (fingerprint(terms), answer);
        if let Some(&doc) = self.by_pair.get(&key) {
            let document = &mut self.documents[doc as usize];
            document.seen += u32::from(!chosen);
            document.chosen += u32::from(chosen);
            return;
        }
        let doc = self.documents.len() as u32;
        let mut counts: FxHashMap<&str, u16> = FxHashMap::default();
        for term in terms {
            *counts.entry(term).or_default() += 1;
        }
        for (term, count) in counts {
            let id = match self.term_ids.get(term) {
                Some(id) => *id,
                None => {
                    let id = self.postings.len() as u32;
                    self.term_ids.insert(term.to_owned(), id);
                    self.postings.push(Vec::new());
                    id
                }
            };
            self.postings[id as usize].push((doc, count));
        }
        self.documents.push(Document {
            answer,
            len: terms.len() as u32,
            seen: u32::from(!chosen),
            chosen: u32::from(chosen),
        });
        self.total_len += terms.len() as u64;
        self.by_pair.insert(key, doc);
        if let Some(known) = self.answers.get_mut(&answer) {
            known.questions += 1;
        }
    }

    /// The answer with this id.
    pub fn answer(&self, id: AnswerId) -> Option<&Answer> {
        self.answers.get(&id)
    }

    /// Question documents (distinct pairs).
    pub fn pairs(&self) -> usize {
        self.documents.len()
    }

    /// Distinct answers.
    pub fn answers(&self) -> usize {
        self.answers.len()
    }

    /// Operator choices learned from.
    pub fn choices(&self) -> u64 {
        self.choices
    }

    /// Choices waiting for their answer.
    pub fn waiting_choices(&self) -> usize {
        self.waiting_order.len()
    }

    /// Up to `limit` answers for a question, best first. `ideal` terms (the asked message
    /// itself) set what 100% relevance is.
    pub fn search(&self, query: &[QueryTerm], ideal: &[String], limit: usize) -> Vec<Found> {
        if self.documents.is_empty() || limit == 0 {
            return Vec::new();
        }
        let n = self.documents.len() as f32;
        let average = (self.total_len as f32 / n).max(1.0);
        let idf = |df: usize| (1.0 + (n - df as f32 + 0.5) / (df as f32 + 0.5)).ln();

        let mut scores: FxHashMap<u32, f32> = FxHashMap::default();
        for QueryTerm { term, weight } in query {
            let Some(&id) = self.term_ids.get(term) else {
                continue;
            };
            let postings = &self.postings[id as usize];
            let idf = idf(postings.len()) * weight;
            for &(doc, count) in postings {
                let len = self.documents[doc as usize].len as f32;
                let tf = f32::from(count);
                let part = idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / average));
                *scores.entry(doc).or_default() += part;
            }
        }

        // An answer scores as its best question, with a bonus for how many it answered.
        let mut best: FxHashMap<AnswerId, f32> = FxHashMap::default();
        for (doc, score) in scores {
            let document = &self.documents[doc as usize];
            let proven = 1.0 + 0.05 * (document.seen as f32).ln_1p();
            let chosen = 1.0 + CHOICE_BOOST * document.chosen as f32;
            let score = score * proven * chosen;
            let entry = best.entry(document.answer).or_default();
            *entry = entry.max(score);
        }
        let mut found: Vec<(AnswerId, f32)> = best
            .into_iter()
            .map(|(answer, score)| {
                let questions = self.answers.get(&answer).map_or(1, |a| a.questions);
                let support = 1.0 + SUPPORT_BONUS * (questions as f32).ln();
                (answer, score * support)
            })
            .collect();
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        found.truncate(limit);

        let ideal_score = self.ideal_score(ideal, average, idf);
        found
            .into_iter()
            .map(|(answer, score)| Found {
                answer,
                score,
                relevance: relevance(score, ideal_score),
            })
            .collect()
    }

    /// What the asked question would score against a document that is the question itself.
    fn ideal_score(&self, ideal: &[String], average: f32, idf: impl Fn(usize) -> f32) -> f32 {
        let len = ideal.len() as f32;
        let mut counts: FxHashMap<&str, u16> = FxHashMap::default();
        for term in ideal {
            *counts.entry(term).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(term, count)| {
                // A word no past question holds is as rare as can be.
                let df = self
                    .term_ids
                    .get(term)
                    .map_or(0, |id| self.postings[*id as usize].len());
                let tf = f32::from(count);
                idf(df) * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / average))
            })
            .sum()
    }
}

fn relevance(score: f32, ideal: f32) -> u32 {
    if ideal <= 0.0 {
        return 0;
    }
    (100.0 * score / ideal).round().clamp(1.0, 100.0) as u32
}

/// Letters and digits only, lower-cased: "Thanks!" and "thanks." are one answer.
fn normalised(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// A question's terms as a set, hashed: the same question in other words order is the same.
fn fingerprint(terms: &[String]) -> u64 {
    let mut sorted: Vec<&String> = terms.iter().collect();
    sorted.sort();
    sorted.dedup();
    const CRC: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_XZ);
    let mut digest = CRC.digest();
    for term in sorted {
        digest.update(term.as_bytes());
        digest.update(&[0]);
    }
    digest.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::terms;

    fn ask(index: &Index, question: &str) -> Vec<(String, u32)> {
        let ideal = terms(question);
        let query: Vec<QueryTerm> = ideal
            .iter()
            .map(|term| QueryTerm {
                term: term.clone(),
                weight: 1.0,
            })
            .collect();
        index
            .search(&query, &ideal, 5)
            .into_iter()
            .map(|found| {
                (
                    index.answer(found.answer).unwrap().text.clone(),
                    found.relevance,
                )
            })
            .collect()
    }

    fn history() -> Index {
        let mut index = Index::default();
        for (question, answer) in [
            (
                "Where is my order? It has not arrived",
                "Orders ship within 3 days; track yours at example.com/track.",
            ),
            (
                "my order did not arrive yet",
                "Orders ship within 3 days; track yours at example.com/track.",
            ),
            (
                "How do I return a product?",
                "Returns are free within 30 days: reply RETURN and we send a label.",
            ),
            ("Can I pay by card?", "We accept Visa, Mastercard and Pix."),
            ("Где мой заказ?", "Заказ доставят в течение 3 дней."),
        ] {
            assert!(index.add_pair(&terms(question), answer));
        }
        index
    }

    #[test]
    fn the_answer_to_the_most_similar_past_question_comes_first() {
        let index = history();
        let hints = ask(&index, "hi, my order still hasn't arrived, where is it?");
        assert_eq!(
            hints[0].0,
            "Orders ship within 3 days; track yours at example.com/track."
        );
        assert!(hints[0].1 >= 50, "relevance {}", hints[0].1);
        assert_eq!(
            ask(&index, "заказ где?")[0].0,
            "Заказ доставят в течение 3 дней."
        );
        assert!(ask(&index, "the weather is nice").is_empty());
    }

    #[test]
    fn the_same_answer_is_one_hint_with_a_stable_id() {
        let mut index = history();
        assert_eq!(index.answers(), 4);
        // The two delivery questions have the same words ("order", "not", "arrive"): one pair.
        assert_eq!(index.pairs(), 4);
        let id = index.answer_id("orders ship within 3 days; track yours at example.com/track!");
        assert_eq!(
            index.answers(),
            4,
            "punctuation and case do not make a new answer"
        );
        assert_eq!(
            id,
            history().answer_id("Orders ship within 3 days; track yours at example.com/track.")
        );
    }

    #[test]
    fn a_choice_raises_the_answer_for_questions_like_the_one_it_was_chosen_for() {
        let mut index = history();
        let question = "can I return my order by card refund?";
        let before = ask(&index, question);
        let card = "We accept Visa, Mastercard and Pix.";
        assert_ne!(before[0].0, card);
        let id = index.answer_id(card);
        assert_eq!(index.choose(&terms(question), id), Choice::Learned);
        assert_eq!(ask(&index, question)[0].0, card);
        assert_eq!(index.answer(id).unwrap().chosen, 1);
        assert_eq!(
            index.choose(&terms(question), 12345),
            Choice::Waiting,
            "an unknown hint teaches nothing yet"
        );
        assert_eq!((index.choices(), index.waiting_choices()), (1, 1));
    }

    #[test]
    fn a_choice_of_an_answer_not_known_yet_is_learned_when_the_answer_arrives() {
        let question = "is my parcel still at the depot?";
        let written = "Your parcel leaves the depot today.";
        // The replica that suggested the written hint knows it before the operator chooses it.
        let mut suggested_here = history();
        let id = suggested_here.answer_id(written);
        assert_eq!(suggested_here.choose(&terms(question), id), Choice::Learned);
        // Another replica, or a replay of the log, sees the choice before the answer: the
        // operator sends the hint after choosing it.
        let mut elsewhere = history();
        assert_eq!(elsewhere.choose(&terms(question), id), Choice::Waiting);
        assert_eq!((elsewhere.choices(), elsewhere.waiting_choices()), (0, 1));

        for index in [&mut suggested_here, &mut elsewhere] {
            assert!(index.add_pair(&terms("where is my parcel now"), written));
        }
        assert_eq!(elsewhere.answer_id(written), id);
        for index in [&suggested_here, &elsewhere] {
            assert_eq!((index.choices(), index.waiting_choices()), (1, 0));
            assert_eq!(index.answer(id).unwrap().chosen, 1);
            assert_eq!((index.pairs(), index.answers()), (6, 5));
            assert_eq!(ask(index, "my parcel is still at the depot?")[0].0, written);
        }
    }

    #[test]
    fn the_oldest_waiting_choices_are_forgotten_first() {
        let mut index = history();
        let question = terms("where is my parcel");
        let answers: Vec<String> = (0..=WAITING_CHOICES)
            .map(|n| format!("Parcel {n} leaves today."))
            .collect();
        let ids: Vec<AnswerId> = answers
            .iter()
            .map(|text| Index::default().answer_id(text))
            .collect();
        for id in &ids {
            assert_eq!(index.choose(&question, *id), Choice::Waiting);
        }
        assert_eq!(index.waiting_choices(), WAITING_CHOICES);
        index.answer_id(&answers[0]);
        assert_eq!(index.choices(), 0, "the oldest choice was forgotten");
        index.answer_id(&answers[WAITING_CHOICES]);
        assert_eq!(index.choices(), 1);
        assert_eq!(index.waiting_choices(), WAITING_CHOICES - 1);
    }
}
