//! What the service knows of one tenant, built from its events, and the hints it gives.
//!
//! Inbox and outbox events feed the conversations (and through them the index of pairs);
//! every client message is remembered by id, because Chat2Desk's hints request names the
//! message, not its text. The operator's choice (the second form of ai_hints_requested) is
//! learned here too. Everything is masked on the way in (see [`crate::mask`]): no text this
//! service keeps carries another client's phone, e-mail or name.

use std::collections::VecDeque;

use c2d_proto::events::v1::{HintChosen, Message};
use c2d_proto::events::{Event, Payload};
use rustc_hash::FxHashMap;

use crate::conversation::{Conversation, ConversationKey};
use crate::index::{AnswerId, Choice, Index, QueryTerm};
use crate::mask::mask;
use crate::text::terms;

/// Client messages remembered per tenant; the oldest are forgotten first. A hints request
/// comes seconds after its message, so this is generous.
pub const REMEMBERED_MESSAGES: usize = 500_000;
/// Earlier messages of the conversation taken as context of a question.
pub const CONTEXT_MESSAGES: usize = 4;
/// How much a word of the context counts against a word of the question itself.
pub const CONTEXT_WEIGHT: f32 = 0.3;

/// What hints are asked for: a message by id, and/or its conversation, and/or a text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Asked {
    pub message_id: Option<i64>,
    pub dialog_id: Option<i64>,
    pub client_id: Option<i64>,
    pub text: Option<String>,
}

/// The question hints are for, masked, with the conversation before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub text: String,
    pub context: Vec<String>,
}

/// One hint, best first in a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub id: AnswerId,
    pub text: String,
    pub relevance: u32,
}

#[derive(Debug)]
struct Remembered {
    conversation: ConversationKey,
    text: String,
}

/// One tenant's conversations, messages, pairs and choices.
#[derive(Debug, Default)]
pub struct Knowledge {
    conversations: FxHashMap<ConversationKey, Conversation>,
    messages: FxHashMap<i64, Remembered>,
    message_order: VecDeque<i64>,
    index: Index,
}

impl Knowledge {
    /// Learns from one event of this tenant; other hook types are ignored.
    pub fn apply(&mut self, event: &Event) {
        match &event.payload {
            Some(Payload::Inbox(message)) => self.client_message(message),
            Some(Payload::Outbox(message)) => self.operator_message(message),
            Some(Payload::AiHintChosen(HintChosen {
                message_id,
                hint_id: Some(hint),
                ..
            })) => {
                self.learn_choice(*message_id, *hint);
            }
            _ => {}
        }
    }

    fn client_message(&mut self, message: &Message) {
        if !matches!(message.r#type.as_deref(), None | Some("from_client")) {
            return;
        }
        let Some((key, conversation, text)) = heard(&mut self.conversations, message) else {
            return;
        };
        conversation.client_said(
            message.message_id,
            text.clone(),
            message.is_new_request == Some(true),
        );
        if let Some(id) = message.message_id {
            self.remember(id, key, text);
        }
    }

    /// An operator's message answers the client's pending question; messages with no operator
    /// (auto-replies, bots) are not answers anyone should be offered.
    fn operator_message(&mut self, message: &Message) {
        if !matches!(message.r#type.as_deref(), None | Some("to_client"))
            || message.operator_id.is_none()
        {
            return;
        }
        let Some((_, conversation, text)) = heard(&mut self.conversations, message) else {
            return;
        };
        if let Some(question) = conversation.operator_said(message.message_id, text.clone()) {
            self.index.add_pair(&terms(&question), &text);
        }
    }

    fn remember(&mut self, id: i64, conversation: ConversationKey, text: String) {
        if self
            .messages
            .insert(id, Remembered { conversation, text })
            .is_none()
        {
            self.message_order.push_back(id);
        }
        while self.message_order.len() > REMEMBERED_MESSAGES {
            if let Some(oldest) = self.message_order.pop_front() {
                self.messages.remove(&oldest);
            }
        }
    }

    /// The operator chose hint `hint` for message `message_id`: that answer now ranks higher
    /// for questions like that message, or will once the answer is known (see [`Choice`]).
    pub fn learn_choice(&mut self, message_id: Option<i64>, hint: AnswerId) -> Choice {
        let question = message_id
            .and_then(|id| self.messages.get(&id))
            .map(|m| terms(&m.text))
            .unwrap_or_default();
        self.index.choose(&question, hint)
    }

    /// Whether the inbox event of this message has been seen.
    pub fn knows_message(&self, message_id: i64) -> bool {
        self.messages.contains_key(&message_id)
    }

    /// The question `asked` is about: its own text, the remembered message, or the
    /// conversation's latest client message; None when none of them is known.
    pub fn question(&self, asked: &Asked) -> Option<Question> {
        let remembered = asked.message_id.and_then(|id| self.messages.get(&id));
        let key = remembered
            .map(|m| m.conversation)
            .or_else(|| ConversationKey::of(asked.client_id, asked.dialog_id));
        let conversation = key.and_then(|key| self.conversations.get(&key));
        let text = match (&asked.text, remembered) {
            (Some(text), _) if !text.trim().is_empty() => {
                let names = conversation.map(|c| c.names.as_slice()).unwrap_or_default();
                mask(text, names)
            }
            (_, Some(remembered)) => remembered.text.clone(),
            _ => conversation?.last_client_message()?.text.clone(),
        };
        let mut context: Vec<String> = conversation
            .map(|c| {
                c.context_before(asked.message_id)
                    .map(|said| said.text.clone())
                    .collect()
            })
            .unwrap_or_default();
        context.retain(|said| *said != text);
        let skip = context.len().saturating_sub(CONTEXT_MESSAGES);
        context.drain(..skip);
        Some(Question { text, context })
    }

    /// Up to `limit` hints for `question`, best first.
    pub fn suggest(&self, question: &Question, limit: usize) -> Vec<Suggestion> {
        let ideal = terms(&question.text);
        let mut query: Vec<QueryTerm> = ideal
            .iter()
            .map(|term| QueryTerm {
                term: term.clone(),
                weight: 1.0,
            })
            .collect();
        for said in &question.context {
            query.extend(terms(said).into_iter().map(|term| QueryTerm {
                term,
                weight: CONTEXT_WEIGHT,
            }));
        }
        self.index
            .search(&query, &ideal, limit)
            .into_iter()
            .filter_map(|found| {
                let answer = self.index.answer(found.answer)?;
                Some(Suggestion {
                    id: found.answer,
                    text: answer.text.clone(),
                    relevance: found.relevance,
                })
            })
            .collect()
    }

    /// Registers a hint written by the external provider, so the operator's choice of it can
    /// be learned; returns its id.
    pub fn register_answer(&mut self, text: &str) -> AnswerId {
        self.index.answer_id(text)
    }

    /// The index, for statistics and benchmarks.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Adds a pair directly (benchmarks, and tools that import history from elsewhere).
    pub fn add_pair(&mut self, question: &str, answer: &str) -> bool {
        self.index.add_pair(&terms(question), answer)
    }

    pub fn conversations(&self) -> usize {
        self.conversations.len()
    }

    pub fn messages(&self) -> usize {
        self.messages.len()
    }

    pub fn choices(&self) -> u64 {
        self.index.choices()
    }
}

/// The conversation a message with text belongs to (its client's names learned), and the text
/// masked with them; None for a message with no text or no conversation.
fn heard<'a>(
    conversations: &'a mut FxHashMap<ConversationKey, Conversation>,
    message: &Message,
) -> Option<(ConversationKey, &'a mut Conversation, String)> {
    let text = message.text.as_deref().filter(|t| !t.trim().is_empty())?;
    let key = key_of(message)?;
    let conversation = conversations.entry(key).or_default();
    conversation.learn_names(names_of(message));
    let text = mask(text, &conversation.names);
    Some((key, conversation, text))
}

fn key_of(message: &Message) -> Option<ConversationKey> {
    let client = message
        .client_id
        .or(message.client.as_ref().and_then(|c| c.id));
    ConversationKey::of(client, message.dialog_id)
}

fn names_of(message: &Message) -> impl Iterator<Item = &str> {
    message
        .client
        .iter()
        .flat_map(|c| [c.name.as_deref(), c.assigned_name.as_deref()])
        .flatten()
}

#[cfg(test)]
mod tests {
    use c2d_proto::events::v1::MessageClient;

    use super::*;

    fn message(id: i64, client: i64, operator: Option<i64>, text: &str) -> Message {
        Message {
            message_id: Some(id),
            text: Some(text.to_owned()),
            client_id: Some(client),
            operator_id: operator,
            client: Some(MessageClient {
                id: Some(client),
                name: Some("Maria Souza".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn event(payload: Payload) -> Event {
        Event {
            payload: Some(payload),
            ..Default::default()
        }
    }

    #[test]
    fn a_conversation_becomes_a_masked_hint_for_a_similar_question() {
        let mut knowledge = Knowledge::default();
        knowledge.apply(&event(Payload::Inbox(message(
            1,
            7,
            None,
            "Olá, onde está o meu pedido?",
        ))));
        knowledge.apply(&event(Payload::Outbox(message(
            2,
            7,
            Some(41),
            "Maria, seu pedido chega amanhã. Dúvidas: +55 11 91234-5678 ou loja@example.com",
        ))));
        knowledge.apply(&event(Payload::Inbox(message(
            3,
            8,
            None,
            "meu pedido não chegou, onde está?",
        ))));
        assert_eq!(knowledge.index().pairs(), 1);

        let question = knowledge
            .question(&Asked {
                message_id: Some(3),
                ..Default::default()
            })
            .unwrap();
        let hints = knowledge.suggest(&question, 5);
        assert_eq!(
            hints[0].text,
            "[name], seu pedido chega amanhã. Dúvidas: [phone] ou [email]"
        );
        assert_eq!(
            knowledge.learn_choice(Some(3), hints[0].id),
            Choice::Learned
        );
        assert_eq!(knowledge.choices(), 1);
    }

    #[test]
    fn auto_replies_make_no_pairs() {
        let mut knowledge = Knowledge::default();
        knowledge.apply(&event(Payload::Inbox(message(
            1,
            7,
            None,
            "where is my order",
        ))));
        knowledge.apply(&event(Payload::Outbox(message(
            2,
            7,
            None,
            "We got your message!",
        ))));
        assert_eq!(knowledge.index().pairs(), 0);
    }

    #[test]
    fn an_unknown_message_falls_back_to_the_conversations_last_client_message() {
        let mut knowledge = Knowledge::default();
        knowledge.apply(&event(Payload::Inbox(message(1, 7, None, "first"))));
        knowledge.apply(&event(Payload::Inbox(message(2, 7, None, "second"))));
        let asked = Asked {
            message_id: Some(99),
            client_id: Some(7),
            ..Default::default()
        };
        let question = knowledge.question(&asked).unwrap();
        assert_eq!(question.text, "second");
        assert_eq!(question.context, ["first"]);
        assert_eq!(knowledge.question(&Asked::default()), None);
    }
}
