//! c2d-hints: AI hints for Chat2Desk operators, from the company's own history.
//!
//! When an operator asks for hints on a client's message, Chat2Desk calls its AI provider
//! (hook type ai_hints_requested) and shows the answer's ranked list. This service is that
//! provider, built from the event log itself: the answers operators already gave to questions
//! like this one, best first, with other clients' personal data masked, and learning from the
//! hint the operator chooses. The gateway asks it synchronously (`HintsService.Suggest`) and
//! answers Chat2Desk within a deadline.
//!
//! - [`text`]: words to terms (language-aware stemming for Portuguese, Russian and English).
//! - [`mask`]: phone numbers, e-mails and names out of every kept text.
//! - [`conversation`]: which client messages an operator's answer answers.
//! - [`index`]: the pairs, ranked by BM25, raised by choices.
//! - [`knowledge`], [`projection`]: one tenant's, and all tenants', state from the events.
//! - [`provider`]: the optional OpenAI-compatible reranker with a hard deadline.
//! - [`service`], [`error`]: the gRPC surface; [`runner`]: the running service; [`cfg`]: its
//!   configuration; [`metrics`]: what it counts, for Prometheus.

pub mod cfg;
pub mod conversation;
pub mod error;
pub mod index;
pub mod knowledge;
pub mod mask;
pub mod metrics;
pub mod projection;
pub mod provider;
pub mod runner;
pub mod service;
pub mod text;

pub use cfg::Config;
pub use runner::{Hints, HintsError};
