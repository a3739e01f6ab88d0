//! The synchronous answer to `ai_hints_requested`.
//!
//! Chat2Desk reads hints from the webhook's answer itself (fixtures/chat2desk/
//! ai_hints_requested.response.json). Until the hints service answers them, the gateway
//! answers an empty list: Chat2Desk then shows no hints, and the request is still stored.

use serde::Serialize;

/// The body Chat2Desk expects in answer to a hints request.
#[derive(Debug, Serialize, PartialEq)]
pub struct HintsAnswer {
    pub message_id: Option<i64>,
    pub hints: Vec<Hint>,
}

/// One suggested answer, as Chat2Desk shows it to the operator.
#[derive(Debug, Serialize, PartialEq)]
pub struct Hint {
    pub id: i64,
    pub text: String,
    pub url: String,
    /// 0 to 100.
    pub relevance: u32,
    pub link: String,
}

impl HintsAnswer {
    /// No hints for `message_id`.
    pub fn empty(message_id: Option<i64>) -> Self {
        HintsAnswer {
            message_id,
            hints: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_in_chat2desks_shape() {
        let answer = HintsAnswer {
            message_id: Some(8205),
            hints: vec![Hint {
                id: 1,
                text: "answer 1".into(),
                url: String::new(),
                relevance: 90,
                link: String::new(),
            }],
        };
        let documented: serde_json::Value = serde_json::from_str(include_str!(
            "../../../fixtures/chat2desk/ai_hints_requested.response.json"
        ))
        .unwrap();
        let mut expected = documented.clone();
        expected["hints"].as_array_mut().unwrap().truncate(1);
        assert_eq!(serde_json::to_value(&answer).unwrap(), expected);
        assert_eq!(
            serde_json::to_value(HintsAnswer::empty(Some(8205))).unwrap(),
            serde_json::json!({"message_id": 8205, "hints": []})
        );
    }
}
