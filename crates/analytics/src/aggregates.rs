//! Time-bucketed aggregates of one tenant: what was counted, when, under which dimensions.
//!
//! Every counted event lands in one cell of a minute, an hour and a day bucket, keyed by what
//! is measured and the event's full set of dimensions (transport, channel, operator, tag,
//! failure, hook type). A query walks the buckets of its range and sums, or merges the
//! sketches of, the cells that pass its filters, grouped as asked: any group-by with any
//! filters, without precomputing every combination. A range is covered by whole days in the
//! middle and hours and minutes at its edges, so a month costs about thirty buckets.
//!
//! A cell is keyed by its measure and the id of its combination of dimensions: a tenant has few
//! distinct combinations (transports x channels x operators, a tag or a failure here and
//! there), so each is stored once ([`Combinations`]) and a cell key is eight bytes. That keeps
//! a month of minute buckets, and the request clocks that point at combinations too, a third
//! of the size they would be with the dimensions written out, which is what a rebuild's speed
//! depends on once the projection outgrows the CPU's caches.
//!
//! Buckets are found by their start in a hash map, not a tree: every event touches six cells
//! or more, so the lookup is the hot path of a rebuild, and a query knows the starts of the
//! buckets it wants (a time series steps through at most [`crate::query::MAX_BUCKETS`]).

use std::collections::{BTreeMap, HashMap};

use rustc_hash::FxHashMap;

use serde::{Deserialize, Serialize};

use crate::sketch::Sketch;

/// The sizes of buckets, each kept for every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
}

impl Granularity {
    pub const ALL: [Granularity; 3] = [Granularity::Minute, Granularity::Hour, Granularity::Day];

    pub const fn seconds(self) -> i64 {
        match self {
            Granularity::Minute => 60,
            Granularity::Hour => 3_600,
            Granularity::Day => 86_400,
        }
    }

    /// The start of the bucket holding unix second `at` (UTC).
    pub fn floor(self, at: i64) -> i64 {
        at.div_euclid(self.seconds()) * self.seconds()
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What a cell measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Measure {
    Inbound,
    Outbound,
    DeliveryFailures,
    NewClients,
    TagsAdded,
    TagsRemoved,
    Transfers,
    DialogsClosed,
    RequestsClosed,
    Events,
    FirstResponse,
    Resolution,
    /// [`Measure::FirstResponse`] in the tenant's business time.
    FirstResponseBusiness,
    /// [`Measure::Resolution`] in the tenant's business time.
    ResolutionBusiness,
}

impl Measure {
    /// Whether cells of this measure hold a sketch of durations rather than a count.
    pub fn is_duration(self) -> bool {
        matches!(
            self,
            Measure::FirstResponse
                | Measure::Resolution
                | Measure::FirstResponseBusiness
                | Measure::ResolutionBusiness
        )
    }
}

/// A dimension of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Transport,
    Channel,
    Operator,
    Tag,
    Failure,
    HookType,
}

/// The dimensions of one cell. Texts are interned per tenant ([`Names`]); 0 means "none".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dims {
    pub transport: u32,
    pub channel: Option<i64>,
    pub operator: Option<i64>,
    pub tag: u32,
    pub failure: u32,
    pub hook_type: u32,
}

/// Interned texts of one tenant (transports, tags, failures, hook types): cells stay small
/// and cheap to hash, and there are few distinct values.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Names {
    texts: Vec<String>,
    #[serde(skip)]
    index: FxHashMap<String, u32>,
}

impl Default for Names {
    fn default() -> Self {
        Names {
            texts: vec![String::new()],
            index: FxHashMap::default(),
        }
    }
}

impl Names {
    /// The id of `text`; 0 for none or empty.
    pub fn intern(&mut self, text: Option<&str>) -> u32 {
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            return 0;
        };
        if let Some(id) = self.index.get(text) {
            return *id;
        }
        let id = self.texts.len() as u32;
        self.texts.push(text.to_owned());
        self.index.insert(text.to_owned(), id);
        id
    }

    /// The id of `text` if it was ever seen.
    pub fn find(&self, text: &str) -> Option<u32> {
        self.index.get(text).copied()
    }

    pub fn text(&self, id: u32) -> &str {
        self.texts.get(id as usize).map_or("", String::as_str)
    }

    /// Rebuilds the lookup index after loading a snapshot.
    pub fn reindex(&mut self) {
        self.index = self
            .texts
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
    }
}

/// The id of a combination of dimensions in a tenant's [`Combinations`].
pub type DimsId = u32;

/// The distinct combinations of dimensions a tenant's cells and request clocks use, each
/// stored once and named by its position.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Combinations {
    all: Vec<Dims>,
    #[serde(skip)]
    index: FxHashMap<Dims, DimsId>,
}

impl Combinations {
    /// The id of `dims`, added when new.
    pub fn intern(&mut self, dims: Dims) -> DimsId {
        if let Some(id) = self.index.get(&dims) {
            return *id;
        }
        let id = self.all.len() as DimsId;
        self.all.push(dims);
        self.index.insert(dims, id);
        id
    }

    /// The dimensions of `id`; none for an id this tenant never gave out.
    pub fn get(&self, id: DimsId) -> Dims {
        self.all.get(id as usize).copied().unwrap_or_default()
    }

    /// Rebuilds the lookup index after loading a snapshot.
    pub fn reindex(&mut self) {
        self.index = self
            .all
            .iter()
            .enumerate()
            .map(|(id, dims)| (*dims, id as DimsId))
            .collect();
    }
}

/// One cell: a count, and for duration measures the sketch of the durations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub count: u64,
    pub sketch: Option<Box<Sketch>>,
}

type Bucket = FxHashMap<(Measure, DimsId), Cell>;

/// The aggregates of one tenant.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TenantAggregates {
    pub names: Names,
    pub combinations: Combinations,
    /// Per granularity, the buckets by their start (unix seconds).
    buckets: [FxHashMap<i64, Bucket>; 3],
}

/// A condition on one dimension of a cell, with the text already resolved to its id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    Transport(u32),
    Channel(i64),
    Operator(i64),
    Tag(u32),
    Failure(u32),
    HookType(u32),
}

impl Condition {
    fn holds(self, dims: &Dims) -> bool {
        match self {
            Condition::Transport(id) => dims.transport == id,
            Condition::Channel(id) => dims.channel == Some(id),
            Condition::Operator(id) => dims.operator == Some(id),
            Condition::Tag(id) => dims.tag == id,
            Condition::Failure(id) => dims.failure == id,
            Condition::HookType(id) => dims.hook_type == id,
        }
    }
}

/// Counts and durations summed over cells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Total {
    pub count: u64,
    pub sketch: Sketch,
}

impl Total {
    fn absorb(&mut self, cell: &Cell) {
        self.count += cell.count;
        if let Some(sketch) = &cell.sketch {
            self.sketch.merge(sketch);
        }
    }
}

impl TenantAggregates {
    /// Counts one event of `measure` at unix second `at`.
    pub fn count(&mut self, measure: Measure, at: i64, dims: Dims) {
        let dims = self.combinations.intern(dims);
        for granularity in Granularity::ALL {
            self.cell(granularity, measure, at, dims).count += 1;
        }
    }

    /// Adds a duration sample to the buckets of `at`.
    pub fn add_duration(&mut self, measure: Measure, at: i64, dims: DimsId, seconds: f64) {
        for granularity in Granularity::ALL {
            let cell = self.cell(granularity, measure, at, dims);
            cell.count += 1;
            cell.sketch
                .get_or_insert_with(Default::default)
                .add(seconds);
        }
    }

    /// Takes back a duration sample added with the same arguments.
    pub fn remove_duration(&mut self, measure: Measure, at: i64, dims: DimsId, seconds: f64) {
        for granularity in Granularity::ALL {
            let start = granularity.floor(at);
            let Some(cell) = self.buckets[granularity.index()]
                .get_mut(&start)
                .and_then(|b| b.get_mut(&(measure, dims)))
            else {
                continue;
            };
            cell.count = cell.count.saturating_sub(1);
            if let Some(sketch) = &mut cell.sketch {
                sketch.remove(seconds);
            }
        }
    }

    fn cell(
        &mut self,
        granularity: Granularity,
        measure: Measure,
        at: i64,
        dims: DimsId,
    ) -> &mut Cell {
        self.buckets[granularity.index()]
            .entry(granularity.floor(at))
            .or_default()
            .entry((measure, dims))
            .or_default()
    }

    /// Totals of `measure` per bucket of `granularity` overlapping `[start, end)`, grouped by
    /// `group` (one group `""` when `None`), over cells that meet every condition.
    pub fn series(
        &self,
        measure: Measure,
        granularity: Granularity,
        (start, end): (i64, i64),
        group: Option<Dimension>,
        conditions: &[Condition],
    ) -> BTreeMap<(i64, String), Total> {
        let mut totals: BTreeMap<(i64, String), Total> = BTreeMap::new();
        let buckets = &self.buckets[granularity.index()];
        let starts = (granularity.floor(start)..end).step_by(granularity.seconds() as usize);
        for bucket_start in starts {
            let Some(bucket) = buckets.get(&bucket_start) else {
                continue;
            };
            for ((cell_measure, dims), cell) in bucket {
                if *cell_measure != measure {
                    continue;
                }
                let dims = self.combinations.get(*dims);
                if !conditions.iter().all(|c| c.holds(&dims)) {
                    continue;
                }
                let key = group.map_or_else(String::new, |g| self.group_value(g, &dims));
                totals.entry((bucket_start, key)).or_default().absorb(cell);
            }
        }
        totals
    }

    /// Every measure over `[start, end)`, grouped by `group` (`None`: one group, keyed "",
    /// for the whole tenant): the cells of whole days, hours and minutes that tile the range.
    pub fn summary(
        &self,
        (start, end): (i64, i64),
        group: Option<Dimension>,
    ) -> HashMap<String, HashMap<Measure, Total>> {
        let mut totals: FxHashMap<GroupKey, FxHashMap<Measure, Total>> = FxHashMap::default();
        for (granularity, bucket_start) in tiles(start, end) {
            let Some(bucket) = self.buckets[granularity.index()].get(&bucket_start) else {
                continue;
            };
            for ((measure, dims), cell) in bucket {
                let key = match group {
                    Some(group) => group_key(group, &self.combinations.get(*dims)),
                    None => Some(GroupKey::Whole),
                };
                let Some(key) = key else {
                    continue;
                };
                totals
                    .entry(key)
                    .or_default()
                    .entry(*measure)
                    .or_default()
                    .absorb(cell);
            }
        }
        totals
            .into_iter()
            .map(|(key, measures)| (self.key_text(key), measures.into_iter().collect()))
            .collect()
    }

    fn key_text(&self, key: GroupKey) -> String {
        match key {
            GroupKey::Id(id) => id.to_string(),
            GroupKey::Text(id) => self.names.text(id).to_owned(),
            GroupKey::Whole => String::new(),
        }
    }

    /// Totals of every measure in one minute, for live updates.
    pub fn minute(&self, minute: i64) -> HashMap<Measure, u64> {
        let mut totals = HashMap::new();
        if let Some(bucket) = self.buckets[Granularity::Minute.index()].get(&minute) {
            for ((measure, _), cell) in bucket {
                *totals.entry(*measure).or_default() += cell.count;
            }
        }
        totals
    }

    fn group_value(&self, dimension: Dimension, dims: &Dims) -> String {
        match dimension {
            Dimension::Transport => self.names.text(dims.transport).to_owned(),
            Dimension::Channel => dims.channel.map(|c| c.to_string()).unwrap_or_default(),
            Dimension::Operator => dims.operator.map(|o| o.to_string()).unwrap_or_default(),
            Dimension::Tag => self.names.text(dims.tag).to_owned(),
            Dimension::Failure => self.names.text(dims.failure).to_owned(),
            Dimension::HookType => self.names.text(dims.hook_type).to_owned(),
        }
    }
}

/// A group's value before it is turned into text for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum GroupKey {
    Id(i64),
    Text(u32),
    /// Every cell: the tenant's total.
    Whole,
}

/// The group of a cell; `None` when the cell has no value for the dimension.
fn group_key(dimension: Dimension, dims: &Dims) -> Option<GroupKey> {
    let text = |id: u32| (id != 0).then_some(GroupKey::Text(id));
    match dimension {
        Dimension::Transport => text(dims.transport),
        Dimension::Channel => dims.channel.map(GroupKey::Id),
        Dimension::Operator => dims.operator.map(GroupKey::Id),
        Dimension::Tag => text(dims.tag),
        Dimension::Failure => text(dims.failure),
        Dimension::HookType => text(dims.hook_type),
    }
}

/// The fewest whole buckets that cover `[start, end)`: minutes up to the first hour, hours up
/// to the first day, days, then hours and minutes to the end. The edges are widened to whole
/// minutes.
///
/// Lazily, and with checked steps: a summary walks them under the projection's read lock, so
/// they cost no allocation, and a range at the edge of i64 ends instead of overflowing
/// (queries are bounded long before, see [`crate::query::range`]).
pub fn tiles(start: i64, end: i64) -> impl Iterator<Item = (Granularity, i64)> {
    let minute = Granularity::Minute.seconds();
    let mut at = Some(start.saturating_sub(start.rem_euclid(minute)));
    std::iter::from_fn(move || {
        let here = at.filter(|here| *here < end)?;
        let granularity = [Granularity::Day, Granularity::Hour, Granularity::Minute]
            .into_iter()
            .find(|g| {
                here % g.seconds() == 0
                    && here
                        .checked_add(g.seconds())
                        .is_some_and(|next| next <= end)
            })
            .unwrap_or(Granularity::Minute);
        at = here.checked_add(granularity.seconds());
        Some((granularity, here))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const T0: i64 = 1_709_251_200; // 2024-03-01T00:00:00Z

    #[test]
    fn a_month_is_covered_by_days_with_hours_and_minutes_at_the_edges() {
        let start = T0 - 90; // 23:58:30 the day before
        let end = T0 + 30 * DAY + 3_600 + 120; // 01:02 on the 31st
        let tiles: Vec<_> = tiles(start, end).collect();
        let count = |g| tiles.iter().filter(|(t, _)| *t == g).count();
        assert_eq!(
            (
                count(Granularity::Minute),
                count(Granularity::Hour),
                count(Granularity::Day)
            ),
            (4, 1, 30)
        );
        let covered: i64 = tiles.iter().map(|(g, _)| g.seconds()).sum();
        assert_eq!(covered, end - Granularity::Minute.floor(start));
    }

    #[test]
    fn tiles_at_the_edges_of_time_end_instead_of_overflowing() {
        let last: Vec<_> = tiles(i64::MAX - 90, i64::MAX).collect();
        assert!(!last.is_empty() && last.len() <= 3, "{last:?}");
        assert!(last.iter().all(|(g, _)| *g == Granularity::Minute));
        let first: Vec<_> = tiles(i64::MIN, i64::MIN + 120).collect();
        assert!(!first.is_empty() && first.len() <= 3, "{first:?}");
        assert_eq!(tiles(T0, T0).count(), 0, "an empty range has no tiles");
    }

    #[test]
    fn counts_are_grouped_and_filtered() {
        let mut tenant = TenantAggregates::default();
        let whatsapp = tenant.names.intern(Some("whatsapp"));
        let telegram = tenant.names.intern(Some("telegram"));
        let dims = |transport, operator| Dims {
            transport,
            operator: Some(operator),
            ..Dims::default()
        };
        tenant.count(Measure::Inbound, T0 + 10, dims(whatsapp, 1));
        tenant.count(Measure::Inbound, T0 + 70, dims(whatsapp, 2));
        tenant.count(Measure::Inbound, T0 + 80, dims(telegram, 2));
        tenant.count(Measure::Outbound, T0 + 80, dims(telegram, 2));

        let by_transport = tenant.series(
            Measure::Inbound,
            Granularity::Hour,
            (T0, T0 + 3_600),
            Some(Dimension::Transport),
            &[],
        );
        let counts: Vec<_> = by_transport
            .iter()
            .map(|((_, g), t)| (g.as_str(), t.count))
            .collect();
        assert_eq!(counts, [("telegram", 1), ("whatsapp", 2)]);

        let per_minute = tenant.series(
            Measure::Inbound,
            Granularity::Minute,
            (T0, T0 + 3_600),
            None,
            &[Condition::Operator(2)],
        );
        let counts: Vec<_> = per_minute
            .iter()
            .map(|((at, _), t)| (*at - T0, t.count))
            .collect();
        assert_eq!(counts, [(60, 2)]);
    }

    #[test]
    fn summaries_merge_sketches_across_granularities() {
        let mut tenant = TenantAggregates::default();
        let dims = tenant.combinations.intern(Dims {
            operator: Some(7),
            ..Dims::default()
        });
        for (i, seconds) in [30.0, 60.0, 90.0, 600.0].into_iter().enumerate() {
            tenant.add_duration(
                Measure::FirstResponse,
                T0 + i as i64 * DAY + 5,
                dims,
                seconds,
            );
        }
        tenant.remove_duration(Measure::FirstResponse, T0 + 3 * DAY + 5, dims, 600.0);
        let summary = tenant.summary((T0, T0 + 4 * DAY), Some(Dimension::Operator));
        let frt = &summary["7"][&Measure::FirstResponse];
        assert_eq!((frt.count, frt.sketch.count()), (3, 3));
        assert!((frt.sketch.quantile(1.0) - 90.0).abs() < 1.0);
        let other = tenant.combinations.intern(Dims::default());
        tenant.add_duration(Measure::FirstResponse, T0 + 5, other, 45.0);
        let whole = tenant.summary((T0, T0 + 4 * DAY), None);
        assert_eq!(whole.len(), 1, "one group for the tenant");
        assert_eq!(whole[""][&Measure::FirstResponse].count, 4);
    }

    #[test]
    fn a_combination_of_dimensions_is_stored_once() {
        let mut combinations = Combinations::default();
        let on = |operator| Dims {
            operator: Some(operator),
            ..Dims::default()
        };
        let first = combinations.intern(on(1));
        assert_eq!(combinations.intern(on(2)), first + 1);
        assert_eq!(combinations.intern(on(1)), first);
        assert_eq!(combinations.get(first), on(1));
        assert_eq!(
            combinations.get(99),
            Dims::default(),
            "an unknown id has no dimensions"
        );
        let bytes = postcard::to_stdvec(&combinations).unwrap();
        let mut loaded: Combinations = postcard::from_bytes(&bytes).unwrap();
        loaded.reindex();
        assert_eq!(loaded.intern(on(2)), first + 1);
    }

    #[test]
    fn names_survive_a_snapshot_round_trip() {
        let mut names = Names::default();
        assert_eq!(names.intern(Some("whatsapp")), 1);
        assert_eq!(names.intern(None), 0);
        let bytes = postcard::to_stdvec(&names).unwrap();
        let mut loaded: Names = postcard::from_bytes(&bytes).unwrap();
        loaded.reindex();
        assert_eq!(loaded.find("whatsapp"), Some(1));
        assert_eq!(loaded.intern(Some("telegram")), 2);
    }
}
