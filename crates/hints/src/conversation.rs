//! Conversations as the hints service follows them: who said what, and which client messages
//! still wait for an operator's answer.
//!
//! A pair is made when an operator answers: the client messages since the last answer (at
//! most [`PENDING`], the question often comes in pieces: "hi", "my order", "where is it?") are
//! the question, the operator's first message after them is the answer. Later operator
//! messages before the client writes again continue that answer and make no pair of their own.
//! A message that opens a new request (`is_new_request`) starts a new question.
//!
//! A conversation is the client's thread: keyed by the client id when the event has one (the
//! hints request names the client), by the dialog otherwise.

use std::collections::VecDeque;

/// Client messages kept as one question.
pub const PENDING: usize = 3;
/// Messages kept as context for the next question.
pub const RECENT: usize = 6;

/// Which conversation an event belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversationKey {
    Client(i64),
    Dialog(i64),
}

impl ConversationKey {
    /// The client's thread when the client is known, the dialog's otherwise.
    pub fn of(client: Option<i64>, dialog: Option<i64>) -> Option<ConversationKey> {
        client
            .map(ConversationKey::Client)
            .or(dialog.map(ConversationKey::Dialog))
    }
}

/// One message, masked, as context.
#[derive(Debug, Clone, PartialEq)]
pub struct Said {
    pub message_id: Option<i64>,
    pub by_client: bool,
    pub text: String,
}

/// One client's thread.
#[derive(Debug, Default)]
pub struct Conversation {
    /// The last messages of both sides, oldest first.
    pub recent: VecDeque<Said>,
    /// Client messages since the last operator answer.
    pending: VecDeque<String>,
    /// Words that name the client, for masking.
    pub names: Vec<String>,
}

impl Conversation {
    /// A client wrote `text`.
    pub fn client_said(&mut self, message_id: Option<i64>, text: String, new_request: bool) {
        if new_request {
            self.pending.clear();
        }
        if self.pending.len() == PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(text.clone());
        self.remember(Said {
            message_id,
            by_client: true,
            text,
        });
    }

    /// An operator wrote `text`; returns the question it answers, if it is an answer.
    pub fn operator_said(&mut self, message_id: Option<i64>, text: String) -> Option<String> {
        let question = (!self.pending.is_empty())
            .then(|| self.pending.drain(..).collect::<Vec<_>>().join("\n"));
        self.remember(Said {
            message_id,
            by_client: false,
            text,
        });
        question
    }

    /// The latest client message, for a hints request whose message is not known.
    pub fn last_client_message(&self) -> Option<&Said> {
        self.recent.iter().rev().find(|said| said.by_client)
    }

    /// The messages before `message_id` (all of them when it is not among them), oldest first.
    pub fn context_before(&self, message_id: Option<i64>) -> impl Iterator<Item = &Said> {
        let end = message_id
            .and_then(|id| {
                self.recent
                    .iter()
                    .position(|said| said.message_id == Some(id))
            })
            .unwrap_or(self.recent.len());
        self.recent.range(..end)
    }

    /// Adds the words of a client's name, so they are masked from now on.
    pub fn learn_names<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        for name in names {
            if !name.trim().is_empty() && !self.names.iter().any(|known| known == name) {
                self.names.push(name.to_owned());
            }
        }
    }

    fn remember(&mut self, said: Said) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(said);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_messages_before_an_answer_are_its_question() {
        let mut conversation = Conversation::default();
        conversation.client_said(Some(1), "hi".into(), true);
        conversation.client_said(Some(2), "where is my order?".into(), false);
        assert_eq!(
            conversation.operator_said(Some(3), "It ships today.".into()),
            Some("hi\nwhere is my order?".into())
        );
        assert_eq!(
            conversation.operator_said(Some(4), "Anything else?".into()),
            None,
            "a second operator message continues the answer"
        );
        conversation.client_said(Some(5), "old question".into(), false);
        conversation.client_said(Some(6), "new request".into(), true);
        assert_eq!(
            conversation.operator_said(Some(7), "answer".into()),
            Some("new request".into())
        );
    }

    #[test]
    fn context_is_what_was_said_before_the_asked_message() {
        let mut conversation = Conversation::default();
        for id in 1..=8 {
            conversation.client_said(Some(id), format!("m{id}"), false);
        }
        let context: Vec<_> = conversation
            .context_before(Some(7))
            .map(|s| s.text.as_str())
            .collect();
        assert_eq!(context, ["m3", "m4", "m5", "m6"]);
        assert_eq!(conversation.last_client_message().unwrap().text, "m8");
        assert_eq!(conversation.context_before(Some(99)).count(), RECENT);
    }
}
