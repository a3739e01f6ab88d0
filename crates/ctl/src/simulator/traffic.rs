//! Realistic Chat2Desk traffic, the same for the same seed: clients writing in Portuguese,
//! Russian or English over several messengers, operators answering after a human delay,
//! hints asked for and chosen, tags put on and taken off, transfers, closings, messengers
//! refusing deliveries, and now and then a WhatsApp number asking for a new QR code.
//!
//! The generator is a discrete-event simulation on its own clock (milliseconds since the
//! start): conversations are state machines whose next step is due after a delay, kept in
//! one queue, and new conversations arrive at random intervals. It does no I/O and knows no
//! real time: the runner paces it ([`crate::simulator`]) and stamps `event_time` when it sends.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use serde_json::{Value as Json, json};

/// A deterministic random source (SplitMix64): no dependency, the same run for the same seed.
#[derive(Debug, Clone)]
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Random {
        Random(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// An exponential delay with this mean, in ms.
    pub fn exponential(&mut self, mean_ms: f64) -> u64 {
        (-mean_ms * (1.0 - self.unit()).ln()) as u64
    }
}

/// One webhook body, due at `at` on the simulation clock, without its `event_time` yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub tenant: String,
    pub hook_type: &'static str,
    pub body: Json,
}

/// The mean of events a conversation makes, to turn an event rate into arrivals.
pub const EVENTS_PER_CONVERSATION: f64 = 9.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// A new conversation arrives (and schedules the next arrival).
    Arrival,
    /// The operator answers the client's last message.
    Answer,
    /// The client writes again.
    ClientWrites,
    /// The request (and maybe the dialog) is closed.
    Close,
    /// A messenger reports that the last answer was not delivered.
    DeliveryFailed,
}

#[derive(Debug, Clone)]
struct Conversation {
    tenant: usize,
    client: usize,
    request_id: i64,
    dialog_id: i64,
    channel: usize,
    operator: i64,
    last_client_message: i64,
    last_answer: i64,
    hints_asked: bool,
    exchanges_left: u32,
    /// The tag this conversation put on the client, if any.
    tagged: Option<(i64, &'static str)>,
    request_tagged: bool,
}

#[derive(Debug, Clone)]
struct Client {
    id: i64,
    name: &'static str,
    language: Language,
    phone: String,
    /// Tags ever put on the client: a tag is put on once, so that no two deliveries are alike.
    tagged: Vec<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Language {
    Portuguese,
    Russian,
    English,
}

#[derive(Debug, Clone)]
struct Tenant {
    name: String,
    /// (channel id, transport)
    channels: Vec<(i64, &'static str)>,
    operators: Vec<i64>,
    clients: Vec<Client>,
    next_id: i64,
}

/// The traffic of every tenant.
pub struct Traffic {
    random: Random,
    tenants: Vec<Tenant>,
    conversations: BTreeMap<u64, Conversation>,
    /// (due at, order of scheduling, conversation or 0 for an arrival, stage)
    queue: BinaryHeap<Reverse<(u64, u64, u64, Stage)>>,
    scheduled: u64,
    /// The mean time between new conversations, simulation ms.
    arrival_mean_ms: f64,
}

const TRANSPORTS: [&str; 4] = ["whatsapp", "telegram", "viber", "widget"];
const TAGS: [(i64, &str); 4] = [(1, "VIP"), (2, "Lead"), (3, "Complaint"), (4, "Returning")];

impl Traffic {
    /// Traffic for `tenants`, new conversations arriving every `arrival_mean_ms` on average.
    pub fn new(seed: u64, tenants: &[String], arrival_mean_ms: f64) -> Traffic {
        let tenants = tenants
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let base = (index as i64 + 1) * 1_000_000;
                Tenant {
                    name: name.clone(),
                    channels: TRANSPORTS
                        .iter()
                        .enumerate()
                        .map(|(k, transport)| (base / 1_000 + k as i64 + 1, *transport))
                        .collect(),
                    operators: (1..=4).map(|k| base / 100 + k).collect(),
                    clients: Vec::new(),
                    next_id: base,
                }
            })
            .collect();
        let mut traffic = Traffic {
            random: Random::new(seed),
            tenants,
            conversations: BTreeMap::new(),
            queue: BinaryHeap::new(),
            scheduled: 0,
            arrival_mean_ms: arrival_mean_ms.max(1.0),
        };
        traffic.schedule(0, 0, Stage::Arrival);
        traffic
    }

    /// When the next events are due, on the simulation clock.
    pub fn next_at(&self) -> u64 {
        self.queue.peek().map_or(u64::MAX, |Reverse((at, ..))| *at)
    }

    /// Takes the next step of the simulation: the events it makes (often one, sometimes a few
    /// at the same moment, none when a conversation has nothing to say).
    pub fn step(&mut self) -> Vec<Generated> {
        let Some(Reverse((at, _, id, stage))) = self.queue.pop() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match stage {
            Stage::Arrival => {
                let gap = self.random.exponential(self.arrival_mean_ms);
                self.schedule(at + gap.max(1), 0, Stage::Arrival);
                self.arrive(at, &mut out);
            }
            _ => {
                if let Some(mut conversation) = self.conversations.remove(&id) {
                    let next = self.advance(&mut conversation, stage, &mut out);
                    if let Some((delay, stage)) = next {
                        self.conversations.insert(id, conversation);
                        self.schedule(at + delay, id, stage);
                    }
                }
            }
        }
        // Now and then a WhatsApp number loses its session and Chat2Desk sends a QR code.
        if self.random.chance(0.004) {
            let tenant = self.random.below(self.tenants.len());
            let id = self.id(tenant);
            let t = &self.tenants[tenant];
            out.push(event(
                t,
                "new_qr_code",
                json!({"qrcode_data": format!("1@{id:x}{:x}", self.random.next_u64()),
                       "qrcode_image": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
                       "phone": format!("55119{:07}", tenant * 1_000 + 1),
                       "device_owner": "service"}),
            ));
        }
        out
    }

    fn schedule(&mut self, at: u64, conversation: u64, stage: Stage) {
        self.scheduled += 1;
        self.queue
            .push(Reverse((at, self.scheduled, conversation, stage)));
    }

    fn id(&mut self, tenant: usize) -> i64 {
        self.tenants[tenant].next_id += 1;
        self.tenants[tenant].next_id
    }

    fn arrive(&mut self, at: u64, out: &mut Vec<Generated>) {
        let tenant = self.random.below(self.tenants.len());
        let new_client = self.tenants[tenant].clients.is_empty() || self.random.chance(0.35);
        let client = if new_client {
            let id = self.id(tenant);
            let language = *self.random.pick(&[
                Language::Portuguese,
                Language::Portuguese,
                Language::Russian,
                Language::English,
            ]);
            let name = *self.random.pick(names(language));
            let client = Client {
                id,
                name,
                language,
                phone: format!("{}{:08}", phone_prefix(language), id % 100_000_000),
                tagged: Vec::new(),
            };
            self.tenants[tenant].clients.push(client);
            self.tenants[tenant].clients.len() - 1
        } else {
            self.random.below(self.tenants[tenant].clients.len())
        };
        let channel = self.random.below(self.tenants[tenant].channels.len());
        let operator = *self.random.pick(&self.tenants[tenant].operators.clone());
        let request_id = self.id(tenant);
        let dialog_id = self.tenants[tenant].clients[client].id * 10 + channel as i64;
        let mut conversation = Conversation {
            tenant,
            client,
            request_id,
            dialog_id,
            channel,
            operator,
            last_client_message: 0,
            last_answer: 0,
            hints_asked: false,
            exchanges_left: self.random.below(3) as u32,
            tagged: None,
            request_tagged: false,
        };
        if new_client {
            let t = &self.tenants[tenant];
            let c = &t.clients[client];
            let (channel_id, transport) = t.channels[channel];
            out.push(event(
                t,
                "new_client",
                json!({"id": c.id, "phone": c.phone, "name": c.name, "avatar": null, "assigned_name": null,
                       "comment": null, "client_phone": c.phone, "channels": [{"id": channel_id, "transports": [transport]}],
                       "region_id": null, "country_id": null, "custom_fields": null}),
            ));
        }
        self.client_message(&mut conversation, true, new_client, out);
        let id = self.scheduled + 1;
        self.conversations.insert(id, conversation);
        let delay = self.answer_delay();
        self.schedule(at + delay, id, Stage::Answer);
    }

    /// Operators answer in 20 s to a few minutes.
    fn answer_delay(&mut self) -> u64 {
        20_000 + self.random.exponential(70_000.0)
    }

    fn client_message(
        &mut self,
        c: &mut Conversation,
        new_request: bool,
        new_client: bool,
        out: &mut Vec<Generated>,
    ) {
        let message_id = self.id(c.tenant);
        c.last_client_message = message_id;
        let t = &self.tenants[c.tenant];
        let client = &t.clients[c.client];
        let (channel_id, transport) = t.channels[c.channel];
        let text = *self.random.pick(questions(client.language));
        out.push(event(
            t,
            "inbox",
            json!({"message_id": message_id, "type": "from_client", "text": text, "transport": transport,
                   "client_id": client.id, "operator_id": null, "dialog_id": c.dialog_id, "channel_id": channel_id,
                   "photo": null, "coordinates": null, "audio": null, "pdf": null,
                   "client": {"id": client.id, "phone": client.phone, "client_phone": client.phone, "name": client.name,
                              "assigned_name": null, "external_id": null},
                   "request_id": c.request_id, "attachments": [], "is_new_request": if new_request { json!(1) } else { json!("") },
                   "is_new_client": if new_client { json!(1) } else { json!(null) }, "extra_data": []}),
        ));
        // Operators in prompter mode ask the AI provider for hints on some messages.
        if self.random.chance(0.12) {
            c.hints_asked = true;
            out.push(event(
                t,
                "ai_hints_requested",
                json!({"client_id": client.id, "operator_id": c.operator, "dialog_id": c.dialog_id,
                       "request_id": c.request_id, "channel_id": channel_id, "message_id": message_id}),
            ));
        }
    }

    fn advance(
        &mut self,
        c: &mut Conversation,
        stage: Stage,
        out: &mut Vec<Generated>,
    ) -> Option<(u64, Stage)> {
        match stage {
            Stage::Answer => {
                // Sometimes the dialog goes to another operator before the answer.
                if self.random.chance(0.1) {
                    let previous = c.operator;
                    let others: Vec<i64> = self.tenants[c.tenant]
                        .operators
                        .iter()
                        .copied()
                        .filter(|o| *o != previous)
                        .collect();
                    c.operator = *self.random.pick(&others);
                    let updated = 1_700_000_000 + self.id(c.tenant);
                    let t = &self.tenants[c.tenant];
                    let (channel_id, transport) = t.channels[c.channel];
                    let client_id = t.clients[c.client].id;
                    out.push(event(
                        t,
                        "dialog_transferred",
                        json!({"dialog_id": c.dialog_id, "request_id": c.request_id, "created": 1_700_000_000, "updated": updated,
                               "channel_id": channel_id, "client_id": client_id, "operator_id": c.operator,
                               "current_operator_id": c.operator, "transport": transport, "last_operator_id": previous,
                               "scenario_id": null}),
                    ));
                }
                let message_id = self.id(c.tenant);
                c.last_answer = message_id;
                let t = &self.tenants[c.tenant];
                let client = &t.clients[c.client];
                let (channel_id, transport) = t.channels[c.channel];
                let text = *self.random.pick(answers(client.language));
                out.push(event(
                    t,
                    "outbox",
                    json!({"message_id": message_id, "type": "to_client", "text": text, "transport": transport,
                           "client_id": client.id, "operator_id": c.operator, "dialog_id": c.dialog_id, "channel_id": channel_id,
                           "photo": null, "coordinates": null, "audio": null, "pdf": null,
                           "client": {"id": client.id, "phone": client.phone, "client_phone": client.phone, "name": client.name,
                                      "assigned_name": null, "external_id": null},
                           "request_id": c.request_id, "attachments": [], "is_new_request": "", "is_new_client": null, "extra_data": []}),
                ));
                if c.hints_asked {
                    c.hints_asked = false;
                    if self.random.chance(0.6) {
                        out.push(event(
                            t,
                            "ai_hints_requested",
                            json!({"client_id": client.id, "message_id": c.last_client_message, "hint_id": 1 + self.random.below(3)}),
                        ));
                    }
                }
                self.tags_after_answer(c, out);
                if self.random.chance(0.07) {
                    return Some((2_000, Stage::DeliveryFailed));
                }
                Some(self.after_answer(c))
            }
            Stage::DeliveryFailed => {
                let t = &self.tenants[c.tenant];
                let (channel_id, _) = t.channels[c.channel];
                let error = *self.random.pick(&[
                    "timeout error",
                    "recipient is not a valid WhatsApp user",
                    "message undeliverable",
                ]);
                out.push(event(
                    t,
                    "outbox_status",
                    json!({"id": c.last_answer, "external_id": c.operator, "dialog_id": c.dialog_id,
                           "client_id": t.clients[c.client].id, "channel_id": channel_id,
                           "created": "2024-05-01T10:00:00Z", "gateway_status": "failed", "error": error}),
                ));
                Some(self.after_answer(c))
            }
            Stage::ClientWrites => {
                self.client_message(c, false, false, out);
                Some((self.answer_delay(), Stage::Answer))
            }
            Stage::Close => {
                let t = &self.tenants[c.tenant];
                let (channel_id, transport) = t.channels[c.channel];
                let client_id = t.clients[c.client].id;
                let closing = json!({"dialog_id": c.dialog_id, "request_id": c.request_id, "created": 1_700_000_000,
                                     "updated": 1_700_000_000, "client_id": client_id, "channel_id": channel_id,
                                     "operator_id": c.operator, "transport": transport});
                out.push(event(t, "close_request", closing.clone()));
                if self.random.chance(0.6) {
                    out.push(event(t, "close_dialog", closing));
                }
                if let Some((tag, name)) = c.tagged
                    && self.random.chance(0.2)
                {
                    out.push(event(
                        t,
                        "delete_tag_from_client",
                        json!({"id": tag, "name": name, "description": null, "group_id": 10, "group_name": "Segment",
                               "client_id": client_id, "all_client_channels": channel_id}),
                    ));
                }
                if self.random.chance(0.08) {
                    let c2 = &t.clients[c.client];
                    out.push(event(
                        t,
                        "client_updated",
                        json!({"id": c2.id, "phone": c2.phone, "name": c2.name, "avatar": null, "assigned_name": null,
                               "comment": format!("request {} closed", c.request_id), "client_phone": c2.phone,
                               "channels": [{"id": channel_id, "transports": [transport]}],
                               "region_id": null, "country_id": null, "custom_fields": {"segment": "retail"}}),
                    ));
                }
                None
            }
            Stage::Arrival => None,
        }
    }

    fn after_answer(&mut self, c: &mut Conversation) -> (u64, Stage) {
        if c.exchanges_left > 0 {
            c.exchanges_left -= 1;
            (
                30_000 + self.random.exponential(60_000.0),
                Stage::ClientWrites,
            )
        } else {
            (60_000 + self.random.exponential(120_000.0), Stage::Close)
        }
    }

    fn tags_after_answer(&mut self, c: &mut Conversation, out: &mut Vec<Generated>) {
        let fresh: Vec<(i64, &'static str)> = TAGS
            .iter()
            .copied()
            .filter(|(tag, _)| {
                !self.tenants[c.tenant].clients[c.client]
                    .tagged
                    .contains(tag)
            })
            .collect();
        if c.tagged.is_none() && !fresh.is_empty() && self.random.chance(0.2) {
            let (tag, name) = *self.random.pick(&fresh);
            c.tagged = Some((tag, name));
            self.tenants[c.tenant].clients[c.client].tagged.push(tag);
            let t = &self.tenants[c.tenant];
            let client_id = t.clients[c.client].id;
            let (channel_id, _) = t.channels[c.channel];
            out.push(event(
                t,
                "add_tag_to_client",
                json!({"id": tag, "name": name, "description": null, "group_id": 10, "group_name": "Segment",
                       "client_id": client_id, "all_client_channels": channel_id}),
            ));
        } else if !c.request_tagged && self.random.chance(0.1) {
            c.request_tagged = true;
            let t = &self.tenants[c.tenant];
            let client_id = t.clients[c.client].id;
            out.push(event(
                t,
                "add_tag_to_request",
                json!({"id": 20, "name": "Billing", "description": null, "group_id": 11, "group_name": "Topic",
                       "client_id": client_id, "request_id": c.request_id}),
            ));
        }
    }
}

fn event(tenant: &Tenant, hook_type: &'static str, mut body: Json) -> Generated {
    body["hook_type"] = json!(hook_type);
    Generated {
        tenant: tenant.name.clone(),
        hook_type,
        body,
    }
}

fn names(language: Language) -> &'static [&'static str] {
    match language {
        Language::Portuguese => &[
            "Ana Souza",
            "João Silva",
            "Maria Oliveira",
            "Pedro Santos",
            "Luíza Costa",
        ],
        Language::Russian => &[
            "Иван Петров",
            "Ольга Смирнова",
            "Дмитрий Козлов",
            "Анна Кузнецова",
        ],
        Language::English => &["John Smith", "Emily Clark", "Michael Brown", "Sarah Wilson"],
    }
}

fn phone_prefix(language: Language) -> &'static str {
    match language {
        Language::Portuguese => "5511",
        Language::Russian => "7916",
        Language::English => "4477",
    }
}

fn questions(language: Language) -> &'static [&'static str] {
    match language {
        Language::Portuguese => &[
            "Olá, meu pedido ainda não chegou. Podem verificar?",
            "Qual é o prazo de entrega para São Paulo?",
            "Quero trocar o tamanho da camiseta, como faço?",
            "O pagamento por Pix foi aprovado?",
            "Vocês têm loja física no Rio?",
        ],
        Language::Russian => &[
            "Здравствуйте, где мой заказ?",
            "Можно изменить адрес доставки?",
            "Как вернуть товар?",
            "Оплата не прошла, что делать?",
        ],
        Language::English => &[
            "Hi, where is my order?",
            "Can I change the delivery address?",
            "How do I return an item? 📦",
            "My card payment failed, what should I do?",
        ],
    }
}

fn answers(language: Language) -> &'static [&'static str] {
    match language {
        Language::Portuguese => &[
            "Olá! Vou verificar o status do seu pedido agora mesmo.",
            "A entrega para São Paulo leva de 2 a 3 dias úteis.",
            "Claro, a troca é gratuita em até 30 dias. Envio o link.",
            "Seu pagamento foi aprovado, obrigado!",
        ],
        Language::Russian => &[
            "Здравствуйте! Сейчас проверю статус заказа.",
            "Да, адрес можно изменить до отправки.",
            "Возврат бесплатный в течение 14 дней, отправлю инструкцию.",
        ],
        Language::English => &[
            "Hello! Let me check your order status right away.",
            "Yes, you can change the address before we ship.",
            "Returns are free within 30 days, I'll send you the link.",
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, steps: usize) -> Vec<Generated> {
        let mut traffic = Traffic::new(seed, &["acme".into(), "globex".into()], 5_000.0);
        let mut out = Vec::new();
        for _ in 0..steps {
            out.extend(traffic.step());
        }
        out
    }

    #[test]
    fn the_same_seed_makes_the_same_traffic() {
        assert_eq!(run(7, 500), run(7, 500));
        assert_ne!(run(7, 500), run(8, 500));
    }

    #[test]
    fn traffic_is_varied_unique_and_parses_as_chat2desk() {
        let events = run(42, 3_000);
        let mut kinds = std::collections::BTreeSet::new();
        let mut bodies = std::collections::HashSet::new();
        for generated in &events {
            kinds.insert(generated.hook_type);
            assert!(
                bodies.insert((generated.tenant.clone(), generated.body.to_string())),
                "a body repeats: {}",
                generated.body
            );
            let event = c2d_hooks::parse_delivery(
                &generated.tenant,
                generated.body.to_string().into(),
                prost_types::Timestamp::default(),
            )
            .unwrap_or_else(|e| panic!("{e}: {}", generated.body));
            assert_eq!(event.hook_type, generated.hook_type);
        }
        for kind in [
            "new_client",
            "inbox",
            "outbox",
            "outbox_status",
            "add_tag_to_client",
            "add_tag_to_request",
            "delete_tag_from_client",
            "close_request",
            "close_dialog",
            "dialog_transferred",
            "ai_hints_requested",
            "client_updated",
            "new_qr_code",
        ] {
            assert!(kinds.contains(kind), "{kind} never happens in {kinds:?}");
        }
        assert!(
            events.iter().any(|e| e.tenant == "acme")
                && events.iter().any(|e| e.tenant == "globex")
        );
    }
}
