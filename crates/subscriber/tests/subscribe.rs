//! The subscriber SDK against a real nats-server, fed by a real gateway over HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use c2d_proto::events::{DLQ_STREAM, DeadLetter, Event, consumer_dlq_subject};
use c2d_subscriber::{Delivery, HandlerError, StartAt, Subscriber, SubscriberConfig};
use c2d_testkit::{Pipeline, inbox};
use c2d_testkit::{stored_events, stream_messages, webhook_fixtures};
use futures_util::StreamExt as _;
use prost::Message as _;
use tokio::sync::Notify;

/// Runs `handler` on `durable` until `done` is notified, and returns the subscriber's stats.
async fn run_until<F, Fut>(
    pipeline: &Pipeline,
    config: SubscriberConfig,
    done: Arc<Notify>,
    handler: F,
) -> Arc<c2d_subscriber::Stats>
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), HandlerError>> + Send,
{
    let subscriber = Subscriber::open(pipeline.client().await, config)
        .await
        .expect("subscriber opens");
    subscriber
        .run(handler, async move { done.notified().await })
        .await
        .expect("subscriber runs")
}

/// The `CHAT2DESK` stream, to read its consumers' state.
async fn events_stream(pipeline: &Pipeline) -> async_nats::jetstream::stream::Stream {
    let jetstream = pipeline.nats.jetstream().await;
    jetstream.get_stream("CHAT2DESK").await.unwrap()
}

fn fast_retries(durable: &str) -> SubscriberConfig {
    SubscriberConfig::new(durable).backoff(vec![Duration::from_millis(50)])
}

/// A service spawns its subscriber on the runtime: the loop must be `Send`.
#[allow(dead_code)]
fn the_run_future_is_send(subscriber: Subscriber) {
    fn spawnable<T: Send>(_: T) {}
    spawnable(subscriber.run(|_: Delivery| async { Ok::<(), HandlerError>(()) }, async {}));
}

#[tokio::test]
async fn a_fresh_durable_consumer_receives_every_event_once() {
    let pipeline = Pipeline::start().await;
    for (_, body) in webhook_fixtures() {
        pipeline.post(body).await;
    }
    let stored: BTreeSet<String> = stored_events(&pipeline.nats)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.event_id)
        .collect();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(Notify::new());
    let (seen_in, done_in) = (seen.clone(), done.clone());
    let stats = run_until(
        &pipeline,
        SubscriberConfig::new("everything"),
        done,
        move |delivery: Delivery| {
            let (seen, done) = (seen_in.clone(), done_in.clone());
            async move {
                let mut seen = seen.lock().unwrap();
                seen.push((
                    delivery.stream_sequence,
                    delivery.event.event_id.clone(),
                    delivery.event.hook_type.clone(),
                ));
                if delivery.pending == 0 && seen.len() == 15 {
                    done.notify_one();
                }
                Ok(())
            }
        },
    )
    .await;

    let seen = seen.lock().unwrap();
    let sequences: Vec<u64> = seen.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(sequences, (1..=15).collect::<Vec<_>>(), "in stream order");
    let ids: BTreeSet<String> = seen.iter().map(|(_, id, _)| id.clone()).collect();
    assert_eq!(ids, stored);
    assert!(
        seen.iter()
            .any(|(_, _, hook)| hook == "delete_tag_from_client")
    );
    assert_eq!(
        (stats.acked(), stats.retried(), stats.dead_lettered()),
        (15, 0, 0)
    );
}

#[tokio::test]
async fn a_transient_failure_is_retried_and_then_succeeds() {
    let pipeline = Pipeline::start().await;
    for n in 0..3 {
        pipeline.post(inbox(n)).await;
    }
    let attempts = Arc::new(Mutex::new(BTreeMap::<u64, Vec<u64>>::new()));
    let done = Arc::new(Notify::new());
    let (attempts_in, done_in) = (attempts.clone(), done.clone());
    let stats = run_until(
        &pipeline,
        fast_retries("flaky"),
        done,
        move |delivery: Delivery| {
            let (attempts, done) = (attempts_in.clone(), done_in.clone());
            async move {
                let mut attempts = attempts.lock().unwrap();
                attempts
                    .entry(delivery.stream_sequence)
                    .or_default()
                    .push(delivery.delivered);
                if delivery.stream_sequence == 2 && delivery.delivered == 1 {
                    return Err(HandlerError::transient("database unreachable"));
                }
                if attempts.values().all(|a| !a.is_empty())
                    && attempts.len() == 3
                    && attempts[&2].len() == 2
                {
                    done.notify_one();
                }
                Ok(())
            }
        },
    )
    .await;
    let attempts = attempts.lock().unwrap();
    assert_eq!(attempts[&1], [1]);
    assert_eq!(attempts[&2], [1, 2], "delivered again after the failure");
    assert_eq!(attempts[&3], [1]);
    assert_eq!(
        (stats.acked(), stats.retried(), stats.dead_lettered()),
        (3, 1, 0)
    );
}

#[tokio::test]
async fn concurrently_a_failed_event_is_retried_in_its_slot_and_acked_with_the_rest() {
    let pipeline = Pipeline::start().await;
    for n in 0..20 {
        pipeline.post(inbox(n)).await;
    }
    // (stream sequence, delivered) in the order the handler saw them.
    let seen = Arc::new(Mutex::new(Vec::<(u64, u64)>::new()));
    let done = Arc::new(Notify::new());
    let (seen_in, done_in) = (seen.clone(), done.clone());
    let stats = run_until(
        &pipeline,
        fast_retries("flaky-concurrent").concurrency(4),
        done,
        move |delivery: Delivery| {
            let (seen, done) = (seen_in.clone(), done_in.clone());
            async move {
                let mut seen = seen.lock().unwrap();
                seen.push((delivery.stream_sequence, delivery.delivered));
                if delivery.stream_sequence == 2 && delivery.delivered < 3 {
                    return Err(HandlerError::transient("database unreachable"));
                }
                let handled: BTreeSet<u64> = seen
                    .iter()
                    .filter(|(sequence, delivered)| *sequence != 2 || *delivered == 3)
                    .map(|(sequence, _)| *sequence)
                    .collect();
                if handled.len() == 20 {
                    done.notify_one();
                }
                Ok(())
            }
        },
    )
    .await;
    let seen = seen.lock().unwrap().clone();
    let attempts_of_2: Vec<u64> = seen
        .iter()
        .filter(|(sequence, _)| *sequence == 2)
        .map(|(_, delivered)| *delivered)
        .collect();
    assert_eq!(attempts_of_2, [1, 2, 3], "retried in its slot");
    let before_2_succeeded = seen.iter().position(|&seen| seen == (2, 3)).unwrap();
    assert!(
        seen[..before_2_succeeded]
            .iter()
            .any(|(sequence, _)| *sequence > 5),
        "the other slots went on while event 2 waited: {seen:?}"
    );
    assert_eq!(
        (stats.acked(), stats.retried(), stats.dead_lettered()),
        (20, 2, 0)
    );
    let stream = events_stream(&pipeline).await;
    // The last ack reached the server before `run` returned; JetStream applies it right after.
    c2d_testkit::eventually(
        "every event acked, event 2 too",
        Duration::from_secs(5),
        || {
            let stream = stream.clone();
            async move {
                let info = stream
                    .consumer_info("flaky-concurrent")
                    .await
                    .map_err(|e| e.to_string())?;
                let floor = (info.ack_floor.stream_sequence, info.num_ack_pending);
                (floor == (20, 0))
                    .then_some(())
                    .ok_or(format!("ack floor and pending: {floor:?}"))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn poison_messages_go_to_the_dead_letter_subject_while_the_rest_flows() {
    let pipeline = Pipeline::start().await;
    pipeline.post(inbox(0)).await; // seq 1: rejected as permanent
    pipeline.post(inbox(1)).await; // seq 2: fails every time
    // seq 3: not an event at all, published around the gateway.
    let jetstream = pipeline.nats.jetstream().await;
    jetstream
        .publish("chat2desk.events.acme.inbox", "garbage".into())
        .await
        .unwrap()
        .await
        .unwrap();
    pipeline.post(inbox(2)).await; // seq 4: panics
    for n in 3..10 {
        pipeline.post(inbox(n)).await; // seq 5..=11: fine
    }

    let handled = Arc::new(Mutex::new(Vec::new()));
    let handled_in = handled.clone();
    let subscriber = Subscriber::open(
        pipeline.client().await,
        fast_retries("picky").max_deliveries(3),
    )
    .await
    .unwrap();
    let stats = subscriber.stats();
    let (stats_seen, handled_seen) = (stats.clone(), handled.clone());
    // Stop once the seven good events are handled and the four poison ones are put aside.
    let finished = async move {
        c2d_testkit::eventually(
            "seven events handled, four dead-lettered",
            Duration::from_secs(60),
            || {
                let seen = (
                    stats_seen.dead_lettered(),
                    handled_seen.lock().unwrap().len(),
                );
                async move {
                    (seen.0 >= 4 && seen.1 >= 7)
                        .then_some(())
                        .ok_or(format!("{seen:?}"))
                }
            },
        )
        .await;
    };
    let handler = move |delivery: Delivery| {
        let handled = handled_in.clone();
        async move {
            match delivery.stream_sequence {
                1 => {
                    return Err(HandlerError::permanent(
                        "client 500 does not exist in this tenant",
                    ));
                }
                2 => return Err(HandlerError::transient("timeout")),
                4 => panic!("unexpected shape"),
                _ => {}
            }
            handled.lock().unwrap().push(delivery.stream_sequence);
            Ok(())
        }
    };
    subscriber.run(handler, finished).await.unwrap();
    assert_eq!(
        *handled.lock().unwrap(),
        (5..=11).collect::<Vec<_>>(),
        "the good events all flowed"
    );

    let letters = stream_messages(&jetstream, DLQ_STREAM).await.unwrap();
    assert_eq!(letters.len(), 4, "four poison messages");
    let mut reasons = BTreeMap::new();
    for letter in &letters {
        assert_eq!(letter.subject.as_str(), consumer_dlq_subject("picky"));
        let sequence: u64 = letter
            .headers
            .get("C2d-Stream-Sequence")
            .unwrap()
            .as_str()
            .parse()
            .unwrap();
        let dead = DeadLetter::decode(letter.payload.clone()).unwrap();
        if sequence != 3 {
            let event = Event::decode(dead.raw.clone()).expect("the raw event is kept");
            assert_eq!(event.event_id, dead.event_id);
        }
        reasons.insert(sequence, dead.reason);
    }
    assert!(
        reasons[&1].contains("rejected by the handler: client 500"),
        "{}",
        reasons[&1]
    );
    assert!(
        reasons[&2].contains("failed 3 deliveries") && reasons[&2].contains("timeout"),
        "{}",
        reasons[&2]
    );
    assert!(
        reasons[&3].contains("not a chat2desk.events.v1.Event"),
        "{}",
        reasons[&3]
    );
    assert!(
        reasons[&4].contains("panicked: unexpected shape"),
        "{}",
        reasons[&4]
    );
    assert_eq!(
        (stats.acked(), stats.retried(), stats.dead_lettered()),
        (7, 2, 4)
    );
}

#[tokio::test]
async fn a_consumer_restarted_mid_stream_resumes_without_loss() {
    let pipeline = Pipeline::start().await;
    for n in 0..200 {
        pipeline.post(inbox(n)).await;
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let collect = |seen: Arc<Mutex<Vec<u64>>>, stop_at: usize, done: Arc<Notify>| {
        move |delivery: Delivery| {
            let (seen, done) = (seen.clone(), done.clone());
            async move {
                let mut seen = seen.lock().unwrap();
                seen.push(delivery.stream_sequence);
                if seen.len() == stop_at {
                    done.notify_one();
                }
                Ok(())
            }
        }
    };
    let config = SubscriberConfig::new("restartable")
        .concurrency(8)
        .batch(16);
    let done = Arc::new(Notify::new());
    let first = run_until(
        &pipeline,
        config.clone(),
        done.clone(),
        collect(seen.clone(), 80, done),
    )
    .await;
    let after_first = seen.lock().unwrap().len();
    assert!(
        (80..200).contains(&after_first),
        "stopped mid-stream at {after_first}"
    );
    assert_eq!(
        first.acked() as usize,
        after_first,
        "every event in hand was finished and acked"
    );

    let done = Arc::new(Notify::new());
    run_until(
        &pipeline,
        config,
        done.clone(),
        collect(seen.clone(), 200, done),
    )
    .await;
    let seen = seen.lock().unwrap();
    let unique: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(
        unique,
        (1..=200).collect(),
        "nothing lost across the restart"
    );
    assert_eq!(
        seen.len(),
        200,
        "and nothing handled twice after a clean stop"
    );
}

/// A small projection: events per hook type and per client, with the last applied sequence.
#[derive(Debug, Default, PartialEq, Clone)]
struct Projection {
    per_hook_type: BTreeMap<String, u64>,
    per_client: BTreeMap<i64, u64>,
    last_sequence: u64,
}

impl Projection {
    fn apply(&mut self, delivery: &Delivery) {
        if delivery.stream_sequence <= self.last_sequence {
            return; // the idempotency rule: already applied
        }
        *self
            .per_hook_type
            .entry(delivery.event.hook_type.clone())
            .or_default() += 1;
        if let Some(c2d_proto::events::Payload::Inbox(m)) = &delivery.event.payload {
            *self
                .per_client
                .entry(m.client_id.unwrap_or_default())
                .or_default() += 1;
        }
        self.last_sequence = delivery.stream_sequence;
    }
}

async fn build(pipeline: &Pipeline, durable: &str, start_at: StartAt, last: u64) -> Projection {
    let projection = Arc::new(Mutex::new(Projection::default()));
    let done = Arc::new(Notify::new());
    let (state, done_in) = (projection.clone(), done.clone());
    run_until(
        pipeline,
        SubscriberConfig::new(durable).start_at(start_at),
        done,
        move |delivery: Delivery| {
            let (state, done) = (state.clone(), done_in.clone());
            async move {
                let mut state = state.lock().unwrap();
                state.apply(&delivery);
                if state.last_sequence == last {
                    done.notify_one();
                }
                Ok(())
            }
        },
    )
    .await;
    projection.lock().unwrap().clone()
}

#[tokio::test]
async fn a_replay_from_the_beginning_rebuilds_the_same_state() {
    let pipeline = Pipeline::start().await;
    for (_, body) in webhook_fixtures() {
        pipeline.post(body).await;
    }
    for n in 0..40 {
        pipeline.post(inbox(n)).await;
    }
    let built = build(&pipeline, "projection", StartAt::Beginning, 55).await;
    assert_eq!(built.per_hook_type["inbox"], 41);
    assert_eq!(built.per_client.values().sum::<u64>(), 41);

    // Drop the state and the durable, replay the whole log.
    Subscriber::reset(pipeline.client().await, "projection")
        .await
        .unwrap();
    let rebuilt = build(&pipeline, "projection", StartAt::Beginning, 55).await;
    assert_eq!(rebuilt, built);

    // A durable started at a sequence sees that event and the ones after it.
    let tail = build(&pipeline, "tail", StartAt::Sequence(51), 55).await;
    assert_eq!(tail.per_hook_type["inbox"], 5);
}

#[tokio::test]
async fn a_handler_that_keeps_its_position_reads_in_order_and_resumes_after_it() {
    let pipeline = Pipeline::start().await;
    for n in 0..60 {
        pipeline.post(inbox(n)).await;
    }
    let projection = Arc::new(Mutex::new(Projection::default()));
    let run = |start_at: StartAt, stop_at: u64| {
        let (projection, client) = (projection.clone(), pipeline.client());
        async move {
            let config = SubscriberConfig::new("self-positioned")
                .start_at(start_at)
                .position_kept_by_handler();
            let subscriber = Subscriber::open(client.await, config).await.unwrap();
            let done = Arc::new(Notify::new());
            let (state, done_in) = (projection.clone(), done.clone());
            subscriber
                .run(
                    move |delivery: Delivery| {
                        let (state, done) = (state.clone(), done_in.clone());
                        async move {
                            let mut state = state.lock().unwrap();
                            assert_eq!(
                                delivery.stream_sequence,
                                state.last_sequence + 1,
                                "in order, none skipped, none twice"
                            );
                            state.apply(&delivery);
                            if state.last_sequence == stop_at {
                                done.notify_one();
                            }
                            Ok(())
                        }
                    },
                    async move { done.notified().await },
                )
                .await
                .unwrap()
        }
    };
    run(StartAt::Beginning, 25).await;
    let after = projection.lock().unwrap().last_sequence;
    assert!(after >= 25);
    // No consumer state on the server: the handler says where to go on.
    let stats = run(StartAt::Sequence(after + 1), 60).await;
    assert_eq!(projection.lock().unwrap().last_sequence, 60);
    assert_eq!(projection.lock().unwrap().per_hook_type["inbox"], 60);
    assert_eq!(
        stats.acked(),
        60 - after,
        "counted as handled, without acks"
    );
    let stream = events_stream(&pipeline).await;
    assert!(
        stream.consumer_info("self-positioned").await.is_err(),
        "no durable was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_consumer_killed_mid_batch_loses_nothing_its_events_come_again() {
    killed_mid_batch("killable", 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_order_consumer_killed_mid_batch_loses_nothing_its_events_come_again() {
    killed_mid_batch("killable-in-order", 1).await;
}

/// Kills a subscriber with events in hand and handled but not acked yet, and starts another
/// instance of the same durable: every event is handled, none lost. (With cumulative acks, the
/// new instance's first ack would cover what the killed one had in hand, were they not
/// delivered again first.)
async fn killed_mid_batch(durable: &str, concurrency: usize) {
    let pipeline = Pipeline::start().await;
    for n in 0..200 {
        pipeline.post(inbox(n)).await;
    }
    let finished = Arc::new(Mutex::new(Vec::<u64>::new()));
    let started = Arc::new(Mutex::new(0usize));
    let config = SubscriberConfig::new(durable)
        .concurrency(concurrency)
        .batch(16)
        .ack_wait(Duration::from_secs(1));
    let handler = |finished: Arc<Mutex<Vec<u64>>>, started: Arc<Mutex<usize>>| {
        move |delivery: Delivery| {
            let (finished, started) = (finished.clone(), started.clone());
            async move {
                *started.lock().unwrap() += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
                finished.lock().unwrap().push(delivery.stream_sequence);
                Ok(())
            }
        }
    };
    // The consumer dies abruptly (its task aborted: no clean stop, no acks for what is in hand).
    let subscriber = Subscriber::open(pipeline.client().await, config.clone())
        .await
        .unwrap();
    let run = tokio::spawn(subscriber.run(
        handler(finished.clone(), started.clone()),
        std::future::pending(),
    ));
    c2d_testkit::eventually("60 events handled", Duration::from_secs(60), || {
        let done = finished.lock().unwrap().len();
        async move { (done >= 60).then_some(()).ok_or(format!("{done} handled")) }
    })
    .await;
    run.abort();
    let _ = run.await;
    let (done_before, in_hand) = {
        let done = finished.lock().unwrap().len();
        (done, *started.lock().unwrap() - done)
    };

    // A new instance of the same durable gets what was not acked, after ack_wait.
    let done = Arc::new(Notify::new());
    let all = Arc::new(Notify::new());
    let watcher = {
        let (finished, all) = (finished.clone(), all.clone());
        tokio::spawn(async move {
            c2d_testkit::eventually("all 200 events handled", Duration::from_secs(120), || {
                let unique: BTreeSet<u64> = finished.lock().unwrap().iter().copied().collect();
                async move {
                    (unique.len() == 200)
                        .then_some(())
                        .ok_or(format!("{} handled", unique.len()))
                }
            })
            .await;
            all.notify_one();
        })
    };
    let stop = done.clone();
    tokio::spawn(async move {
        all.notified().await;
        stop.notify_one();
    });
    run_until(
        &pipeline,
        config,
        done,
        handler(finished.clone(), started.clone()),
    )
    .await;
    watcher.await.unwrap();
    let finished = finished.lock().unwrap();
    let unique: BTreeSet<u64> = finished.iter().copied().collect();
    println!(
        "injected: consumer killed mid-batch after {done_before} events handled, {in_hand} in hand; after restart: 200 handled, {} handled twice (at least once), lost 0",
        finished.len() - unique.len()
    );
    assert_eq!(unique, (1..=200).collect());
}

#[tokio::test]
async fn open_waits_for_the_stream_the_gateway_creates() {
    use async_nats::jetstream::stream::Config;
    use c2d_proto::events::{STREAM, STREAM_SUBJECTS};
    use c2d_subscriber::SubscribeError;

    let nats = c2d_testkit::NatsServer::start().await.unwrap();
    let impatient = SubscriberConfig::new("impatient").stream_wait(Duration::ZERO);
    let missing = Subscriber::open(nats.client().await, impatient).await;
    assert!(
        matches!(missing, Err(SubscribeError::NoStream(_))),
        "no stream, no wait: an error at once"
    );

    // The test hears every time open asks JetStream for the stream.
    let mut asked = nats
        .client()
        .await
        .subscribe(format!("$JS.API.STREAM.INFO.{STREAM}"))
        .await
        .unwrap();
    let client = nats.client().await;
    let opening =
        tokio::spawn(
            async move { Subscriber::open(client, SubscriberConfig::new("patient")).await },
        );
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(10), asked.next())
            .await
            .expect("open asks for the stream again while it is missing");
    }
    assert!(
        !opening.is_finished(),
        "open waits while the stream is missing, asking again"
    );
    nats.jetstream()
        .await
        .create_stream(Config {
            name: STREAM.to_owned(),
            subjects: vec![STREAM_SUBJECTS.to_owned()],
            ..Config::default()
        })
        .await
        .unwrap();
    let opened = opening.await.unwrap();
    assert!(opened.is_ok(), "opens once the stream is there");
}

#[tokio::test]
async fn a_subscriber_is_caught_up_once_it_has_handled_what_the_log_held() {
    let pipeline = Pipeline::start().await;
    for n in 0..5 {
        pipeline.post(inbox(n)).await;
    }
    // A consumer whose filter matches nothing has nothing to catch up with.
    let idle = Subscriber::open(
        pipeline.client().await,
        SubscriberConfig::new("progress-idle").filters(["chat2desk.events.*.new_qr_code"]),
    )
    .await
    .unwrap();
    let idle_stats = idle.stats();
    let idle_done = Arc::new(Notify::new());
    let idle_stop = idle_done.clone();
    let idle_run = tokio::spawn(idle.run(
        |_: Delivery| async { Ok::<(), HandlerError>(()) },
        async move { idle_stop.notified().await },
    ));

    let subscriber = Subscriber::open(pipeline.client().await, SubscriberConfig::new("progress"))
        .await
        .unwrap();
    let stats = subscriber.stats();
    // Each event waits for a permit: the test decides when the consumer may go on.
    let permits = Arc::new(tokio::sync::Semaphore::new(0));
    let done = Arc::new(Notify::new());
    let (gate, stop) = (permits.clone(), done.clone());
    let run = tokio::spawn(subscriber.run(
        move |_: Delivery| {
            let gate = gate.clone();
            async move {
                gate.acquire().await.expect("open").forget();
                Ok::<(), HandlerError>(())
            }
        },
        async move { stop.notified().await },
    ));
    c2d_testkit::eventually("the log's length seen", Duration::from_secs(30), || {
        let pending = stats.pending();
        async move {
            (pending == 5)
                .then_some(())
                .ok_or(format!("pending {pending}"))
        }
    })
    .await;
    assert!(!stats.is_caught_up(), "caught up with 5 events in hand");

    permits.add_permits(5);
    tokio::time::timeout(Duration::from_secs(30), stats.caught_up())
        .await
        .expect("caught up once the 5 events are handled");
    assert_eq!((stats.handled(), stats.pending()), (5, 0));
    tokio::time::timeout(Duration::from_secs(30), idle_stats.caught_up())
        .await
        .expect("an empty read is caught up at once");
    assert_eq!(idle_stats.handled(), 0);
    done.notify_one();
    idle_done.notify_one();
    run.await.unwrap().unwrap();
    idle_run.await.unwrap().unwrap();
}
