//! Durations as a mergeable quantile sketch (DDSketch).
//!
//! A contact-center lead asks for "p90 first-response time this month": a quantile over any
//! range. Averages of per-bucket percentiles are wrong, and keeping every sample is too big.
//! A DDSketch keeps counts in logarithmic bins: any quantile it answers is within
//! [`RELATIVE_ERROR`] of the true value, sketches of different buckets merge exactly (add the
//! counts), and a sample can be removed again (a late event that changes a first response).

use serde::{Deserialize, Serialize};

/// Every quantile is within 1% of the exact value.
pub const RELATIVE_ERROR: f64 = 0.01;
/// Durations below this (10 ms) count as zero: no contact center measures finer.
const MIN_VALUE: f64 = 0.01;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ERROR) / (1.0 - RELATIVE_ERROR)
}

/// Counts of durations (seconds) in logarithmic bins, stored densely from the lowest bin in
/// use: merging two sketches is adding two short arrays, which keeps month-long summaries fast.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    /// The bin of `counts[0]`.
    offset: i32,
    counts: Vec<u64>,
    zeros: u64,
    count: u64,
}

impl Sketch {
    pub fn add(&mut self, seconds: f64) {
        match bin_of(seconds) {
            Some(bin) => *self.slot(bin) += 1,
            None => self.zeros += 1,
        }
        self.count += 1;
    }

    /// Takes back one sample added earlier; a sample that was never added is ignored.
    pub fn remove(&mut self, seconds: f64) {
        let slot = match bin_of(seconds) {
            Some(bin) => usize::try_from(bin - self.offset)
                .ok()
                .and_then(|i| self.counts.get_mut(i)),
            None => Some(&mut self.zeros),
        };
        if let Some(n) = slot.filter(|n| **n > 0) {
            *n -= 1;
            self.count -= 1;
            self.trim();
        }
    }

    /// Drops empty bins at both ends, so equal contents are equal sketches.
    fn trim(&mut self) {
        while self.counts.last() == Some(&0) {
            self.counts.pop();
        }
        let leading = self.counts.iter().take_while(|n| **n == 0).count();
        if leading > 0 {
            self.counts.drain(..leading);
            self.offset += leading as i32;
        }
        if self.counts.is_empty() {
            self.offset = 0;
        }
    }

    pub fn merge(&mut self, other: &Sketch) {
        if let (Some(first), Some(last)) = (other.first_bin(), other.last_bin()) {
            self.slot(first);
            self.slot(last);
            let start = (other.offset - self.offset) as usize;
            for (mine, theirs) in self.counts[start..].iter_mut().zip(&other.counts) {
                *mine += theirs;
            }
        }
        self.zeros += other.zeros;
        self.count += other.count;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q` quantile (0 < q <= 1) in seconds, by nearest rank; 0 for an empty sketch.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        if rank <= self.zeros {
            return 0.0;
        }
        let mut seen = self.zeros;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return value_of(self.offset + i as i32);
            }
        }
        self.last_bin().map_or(0.0, value_of)
    }

    /// The share of samples at most `limit` seconds, 0 to 1 (0 for an empty sketch): an SLA
    /// ratio. Samples in `limit`'s own bin count as within it, so a sample within
    /// [`RELATIVE_ERROR`] above `limit` may count too.
    pub fn fraction_at_most(&self, limit: f64) -> f64 {
        if self.count == 0 || limit < 0.0 {
            return 0.0;
        }
        let within = match bin_of(limit) {
            None => self.zeros,
            Some(bin) => {
                let bins = usize::try_from(bin - self.offset + 1)
                    .unwrap_or(0)
                    .min(self.counts.len());
                self.zeros + self.counts[..bins].iter().sum::<u64>()
            }
        };
        within as f64 / self.count as f64
    }

    fn first_bin(&self) -> Option<i32> {
        (!self.counts.is_empty()).then_some(self.offset)
    }

    fn last_bin(&self) -> Option<i32> {
        (!self.counts.is_empty()).then(|| self.offset + self.counts.len() as i32 - 1)
    }

    /// The counter of `bin`, growing the array to reach it.
    fn slot(&mut self, bin: i32) -> &mut u64 {
        if self.counts.is_empty() {
            self.offset = bin;
            self.counts.push(0);
        } else if bin < self.offset {
            let grow = (self.offset - bin) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = bin;
        } else if bin - self.offset >= self.counts.len() as i32 {
            self.counts.resize((bin - self.offset) as usize + 1, 0);
        }
        &mut self.counts[(bin - self.offset) as usize]
    }
}

/// The bin of a duration: values in (gamma^(i-1), gamma^i] share bin i.
fn bin_of(seconds: f64) -> Option<i32> {
    if !seconds.is_finite() || seconds < MIN_VALUE {
        return None;
    }
    Some((seconds.ln() / gamma().ln()).ceil() as i32)
}

/// The value a bin stands for, within the relative error of every value in it.
fn value_of(bin: i32) -> f64 {
    2.0 * gamma().powi(bin) / (gamma() + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_within_a_limit_counts_every_sample_at_or_below_it() {
        let mut sketch = Sketch::default();
        assert_eq!(sketch.fraction_at_most(60.0), 0.0);
        for seconds in [0.0, 30.0, 59.0, 120.0, 900.0] {
            sketch.add(seconds);
        }
        assert_eq!(sketch.fraction_at_most(60.0), 3.0 / 5.0);
        assert_eq!(sketch.fraction_at_most(0.0), 1.0 / 5.0);
        assert_eq!(sketch.fraction_at_most(1_000.0), 1.0);
        assert_eq!(sketch.fraction_at_most(10.0), 1.0 / 5.0);
    }

    fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    #[test]
    fn quantiles_are_within_the_stated_relative_error() {
        let values: Vec<f64> = (1..=10_000)
            .map(|i| (i as f64 * 0.731).powf(1.3) % 7_200.0 + 0.5)
            .collect();
        let mut sketch = Sketch::default();
        values.iter().for_each(|v| sketch.add(*v));
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for q in [0.01, 0.25, 0.5, 0.9, 0.99, 1.0] {
            let (exact, estimate) = (exact_quantile(&sorted, q), sketch.quantile(q));
            assert!(
                (estimate - exact).abs() <= RELATIVE_ERROR * exact + 1e-9,
                "q{q}: {estimate} vs {exact}"
            );
        }
    }

    #[test]
    fn merged_sketches_answer_as_one() {
        let (mut a, mut b, mut all) = (Sketch::default(), Sketch::default(), Sketch::default());
        for i in 1..=500 {
            let v = f64::from(i) * 3.0;
            if i % 3 == 0 {
                a.add(v)
            } else {
                b.add(v)
            }
            all.add(v);
        }
        a.merge(&b);
        assert_eq!(a, all);
    }

    #[test]
    fn removing_a_sample_undoes_adding_it() {
        let mut sketch = Sketch::default();
        sketch.add(30.0);
        sketch.add(600.0);
        sketch.remove(600.0);
        let mut expected = Sketch::default();
        expected.add(30.0);
        assert_eq!(sketch, expected);
        sketch.remove(5.0); // never added
        assert_eq!(sketch.count(), 1);
    }

    #[test]
    fn zero_durations_and_empty_sketches() {
        let mut sketch = Sketch::default();
        assert_eq!(sketch.quantile(0.5), 0.0);
        sketch.add(0.0);
        sketch.add(0.0);
        sketch.add(100.0);
        assert_eq!(sketch.quantile(0.5), 0.0);
        assert!((sketch.quantile(1.0) - 100.0).abs() <= 1.0);
    }
}
