//! Holdout lift statistics, pure: is a ritual's effect on repeat purchase (or revenue per
//! customer) real, or could chance explain it?
//!
//! - Repeat purchase, a difference of two proportions: treated (recipients) minus holdout,
//!   with Newcombe's hybrid score interval (Newcombe 1998, method 10: the difference's bounds
//!   from each group's Wilson score interval, no continuity correction). It stays inside
//!   [-1, 1] and behaves at 0 % and 100 %, where the Wald interval collapses.
//! - When the interval includes 0, how many more customers the test needs: the standard
//!   sample size for two proportions (two-sided alpha 0.05, power 80 %) for the effect seen,
//!   at the groups' current ratio.
//! - Revenue per customer, a difference of two means: Welch's interval (unequal variances,
//!   Welch–Satterthwaite degrees of freedom). It needs each group's sum of squares, which
//!   the report does not keep today: [`revenue_lift`] takes per-customer revenues,
//!   [`welch`] the summary statistics ([`MeanStats::from_sums`] from count, sum and sum of
//!   squares). [`outcome_lift`] reads a report row's counts as they are.
//!
//! Everything here is a function of its arguments; no I/O, no clock.

use serde::Serialize;

/// The normal quantile of 0.975: two-sided 95 %.
const Z_975: f64 = 1.959_963_984_540_054;
/// The normal quantile of 0.80: 80 % power.
const Z_80: f64 = 0.841_621_233_572_914_3;

/// Why a lift cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiftError {
    #[error("the {0} group has no customers")]
    Empty(&'static str),
    #[error("the {0} group has more repeat purchasers than customers")]
    MoreThanN(&'static str),
    #[error("the {0} group needs at least two customers for a variance")]
    TooFew(&'static str),
}

/// A group's size and how many of its customers bought again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub n: u64,
    pub x: u64,
}

/// Treated minus holdout repeat-purchase rate, in proportions (0.05 is 5 points).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProportionLift {
    pub treated_rate: f64,
    pub holdout_rate: f64,
    pub difference: f64,
    /// 95 % interval of the difference (Newcombe's hybrid score interval).
    pub low: f64,
    pub high: f64,
    pub method: &'static str,
    /// More customers (both groups, at their current ratio) the test needs to tell the
    /// effect seen from chance; `None` when the interval excludes 0 or no effect was seen.
    pub more_needed: Option<u64>,
    pub verdict: String,
}

/// The Wilson score interval of `x` successes in `n` (n > 0), at the normal quantile `z`.
pub fn wilson(x: u64, n: u64, z: f64) -> (f64, f64) {
    let (x, n) = (x as f64, n as f64);
    let p = x / n;
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

fn check(c: Counts, name: &'static str) -> Result<(), LiftError> {
    if c.n == 0 {
        return Err(LiftError::Empty(name));
    }
    if c.x > c.n {
        return Err(LiftError::MoreThanN(name));
    }
    Ok(())
}

/// Repeat purchase of the treated group minus the holdout's, with a 95 % interval and a
/// verdict people can read.
pub fn repeat_lift(treated: Counts, holdout: Counts) -> Result<ProportionLift, LiftError> {
    check(treated, "treated")?;
    check(holdout, "holdout")?;
    let p1 = treated.x as f64 / treated.n as f64;
    let p0 = holdout.x as f64 / holdout.n as f64;
    let d = p1 - p0;
    let (l1, u1) = wilson(treated.x, treated.n, Z_975);
    let (l0, u0) = wilson(holdout.x, holdout.n, Z_975);
    let low = d - ((p1 - l1).powi(2) + (u0 - p0).powi(2)).sqrt();
    let high = d + ((u1 - p1).powi(2) + (p0 - l0).powi(2)).sqrt();
    let significant = low > 0.0 || high < 0.0;
    let more_needed = if significant || d == 0.0 {
        None
    } else {
        Some(more_customers_needed(p1, p0, treated.n, holdout.n))
    };
    let verdict = proportion_verdict(d, low, high, more_needed);
    Ok(ProportionLift {
        treated_rate: p1,
        holdout_rate: p0,
        difference: d,
        low,
        high,
        method: "Newcombe hybrid score (Wilson) interval, 95%",
        more_needed,
        verdict,
    })
}

/// The repeat-purchase lift of a report row's outcome (recipients versus holdout), for the
/// report and the results page: `report` already counts both groups.
pub fn outcome_lift(o: &super::Outcome) -> Result<ProportionLift, LiftError> {
    repeat_lift(
        Counts {
            n: o.recipients.n,
            x: o.recipients.repeat_customers,
        },
        Counts {
            n: o.holdout.n,
            x: o.holdout.repeat_customers,
        },
    )
}

fn proportion_verdict(d: f64, low: f64, high: f64, more: Option<u64>) -> String {
    let pts = |v: f64| format!("{:.1}", v * 100.0);
    if low > 0.0 {
        format!("lifts repeat purchase by {}–{} points", pts(low), pts(high))
    } else if high < 0.0 {
        format!(
            "lowers repeat purchase by {}–{} points",
            pts(-high),
            pts(-low)
        )
    } else if d == 0.0 {
        "no evidence yet — no difference seen".into()
    } else {
        match more {
            Some(n) if n > 0 => format!("no evidence yet — {n} more customers needed"),
            _ => "no evidence yet — the difference seen is within chance at this size".into(),
        }
    }
}

/// Customers per group for 80 % power at two-sided alpha 0.05 to detect `p1 − p0`, with
/// the holdout `k` times the treated group's size: `(treated, holdout)`, rounded up.
pub fn sample_size(p1: f64, p0: f64, k: f64) -> (u64, u64) {
    let d = (p1 - p0).abs();
    let pbar = (p1 + k * p0) / (1.0 + k);
    let a = Z_975 * (pbar * (1.0 - pbar) * (1.0 + 1.0 / k)).sqrt();
    let b = Z_80 * (p1 * (1.0 - p1) + p0 * (1.0 - p0) / k).sqrt();
    let n1 = ((a + b) / d).powi(2);
    (n1.ceil() as u64, (k * n1).ceil() as u64)
}

/// How many customers beyond those measured the test needs, both groups together.
fn more_customers_needed(p1: f64, p0: f64, n1: u64, n0: u64) -> u64 {
    let k = n0 as f64 / n1 as f64;
    let (need1, need0) = sample_size(p1, p0, k);
    need1.saturating_sub(n1) + need0.saturating_sub(n0)
}

/// A group's summary for a difference of means: size, mean and sample variance.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanStats {
    pub n: u64,
    pub mean: f64,
    /// Sample variance (n − 1 in the denominator).
    pub variance: f64,
}

impl MeanStats {
    /// From the values themselves.
    pub fn of(values: &[f64]) -> MeanStats {
        let n = values.len();
        let mean = values.iter().sum::<f64>() / n.max(1) as f64;
        let ss: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
        MeanStats {
            n: n as u64,
            mean,
            variance: if n > 1 { ss / (n - 1) as f64 } else { 0.0 },
        }
    }

    /// From the sums a query can keep: count, sum and sum of squares.
    pub fn from_sums(n: u64, sum: f64, sum_sq: f64) -> MeanStats {
        let nf = n as f64;
        let mean = sum / nf.max(1.0);
        let variance = if n > 1 {
            ((sum_sq - nf * mean * mean) / (nf - 1.0)).max(0.0)
        } else {
            0.0
        };
        MeanStats { n, mean, variance }
    }
}

/// Treated minus holdout mean, with Welch's 95 % interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeanLift {
    pub difference: f64,
    pub low: f64,
    pub high: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    pub method: &'static str,
}

/// Welch's interval for the difference of two means (treated minus holdout).
pub fn welch(treated: MeanStats, holdout: MeanStats) -> Result<MeanLift, LiftError> {
    if treated.n < 2 {
        return Err(LiftError::TooFew("treated"));
    }
    if holdout.n < 2 {
        return Err(LiftError::TooFew("holdout"));
    }
    let v1 = treated.variance / treated.n as f64;
    let v0 = holdout.variance / holdout.n as f64;
    let se = (v1 + v0).sqrt();
    let d = treated.mean - holdout.mean;
    let df = if v1 + v0 == 0.0 {
        (treated.n + holdout.n - 2) as f64
    } else {
        (v1 + v0).powi(2) / (v1 * v1 / (treated.n - 1) as f64 + v0 * v0 / (holdout.n - 1) as f64)
    };
    let t = t_975(df);
    Ok(MeanLift {
        difference: d,
        low: d - t * se,
        high: d + t * se,
        df,
        method: "Welch t interval, 95%",
    })
}

/// Welch's interval for revenue per customer, from each customer's revenue in the window.
pub fn revenue_lift(treated: &[f64], holdout: &[f64]) -> Result<MeanLift, LiftError> {
    welch(MeanStats::of(treated), MeanStats::of(holdout))
}

/// Student's t quantile of 0.975 for `df` degrees of freedom. Below 5, the table's value
/// for df rounded down (which widens the interval: the quantile falls as df grows); from 5
/// on, the Cornish–Fisher expansion (Hill 1970), within 0.002 of the tables.
pub fn t_975(df: f64) -> f64 {
    const TABLE: [f64; 4] = [12.7062, 4.3027, 3.1824, 2.7764];
    if df < 5.0 {
        let i = (df.floor().max(1.0) as usize).min(4) - 1;
        return TABLE[i];
    }
    let z = Z_975;
    let (z2, v) = (z * z, df);
    let g1 = (z2 + 1.0) * z / 4.0;
    let g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0;
    let g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0;
    let g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92160.0;
    z + g1 / v + g2 / (v * v) + g3 / (v * v * v) + g4 / (v * v * v * v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn newcombe_1998_example_a_method_10() {
        // Newcombe (1998), Statistics in Medicine 17:873–890, table II, example (a):
        // 56/70 − 48/80 = 0.2000, method 10 (hybrid score) 0.0524 to 0.3339.
        let l = repeat_lift(Counts { n: 70, x: 56 }, Counts { n: 80, x: 48 }).unwrap();
        assert!(close(l.difference, 0.2, 1e-12), "{l:?}");
        assert!(close(l.low, 0.0524, 5e-5), "{l:?}");
        assert!(close(l.high, 0.3339, 5e-5), "{l:?}");
        assert_eq!(l.verdict, "lifts repeat purchase by 5.2–33.4 points");
        assert_eq!(l.more_needed, None);
    }

    /// #28: the repeat-purchase interval against an independent computation: each group's
    /// Wilson bounds found here as the roots of the score test's quadratic,
    /// (1 + z²/n)·p² − (2p̂ + z²/n)·p + p̂² = 0, by the quadratic formula (not the closed
    /// form `wilson` uses), combined by Newcombe's method 10; and, for large groups, the
    /// two-proportion normal (Wald) interval, which the score interval approaches.
    #[test]
    fn the_interval_matches_an_independent_reference() {
        let z = 1.959_963_984_540_054_f64;
        let roots = |x: u64, n: u64| {
            let (p, n) = (x as f64 / n as f64, n as f64);
            let (a, b, c) = (1.0 + z * z / n, -(2.0 * p + z * z / n), p * p);
            let d = (b * b - 4.0 * a * c).max(0.0).sqrt();
            ((-b - d) / (2.0 * a), (-b + d) / (2.0 * a))
        };
        for (x1, n1, x0, n0) in [
            (56, 70, 48, 80),
            (0, 10, 3, 10),
            (10, 10, 0, 25),
            (1, 2, 1, 3),
            (130, 1000, 100, 1000),
            (412, 5000, 371, 5200),
        ] {
            let l = repeat_lift(Counts { n: n1, x: x1 }, Counts { n: n0, x: x0 }).unwrap();
            let (p1, p0) = (x1 as f64 / n1 as f64, x0 as f64 / n0 as f64);
            let ((l1, u1), (l0, u0)) = (roots(x1, n1), roots(x0, n0));
            let d = p1 - p0;
            let low = d - ((p1 - l1).powi(2) + (u0 - p0).powi(2)).sqrt();
            let high = d + ((u1 - p1).powi(2) + (p0 - l0).powi(2)).sqrt();
            assert!(close(l.difference, d, 1e-12), "{x1}/{n1} {x0}/{n0}: {l:?}");
            assert!(
                close(l.low, low, 1e-9),
                "{x1}/{n1} {x0}/{n0}: {l:?} vs {low}"
            );
            assert!(
                close(l.high, high, 1e-9),
                "{x1}/{n1} {x0}/{n0}: {l:?} vs {high}"
            );
        }
        // 13 % versus 12 % of 200,000 each: the normal interval, to 1e-4.
        let n = 200_000u64;
        let l = repeat_lift(Counts { n, x: 26_000 }, Counts { n, x: 24_000 }).unwrap();
        let (p1, p0) = (0.13, 0.12);
        let se = (p1 * (1.0 - p1) / n as f64 + p0 * (1.0 - p0) / n as f64).sqrt();
        assert!(close(l.low, 0.01 - z * se, 1e-4), "{l:?}");
        assert!(close(l.high, 0.01 + z * se, 1e-4), "{l:?}");
        assert!(
            l.verdict
                .starts_with("lifts repeat purchase by 0.8–1.2 points"),
            "{l:?}"
        );
    }

    #[test]
    fn wilson_matches_the_closed_form_by_hand() {
        // 56/70 at z = 1.96, by hand: centre (0.8 + 3.8415/140) / (1 + 3.8415/70) = 0.78440,
        // half-width 1.96/1.05488 · √(0.16/70 + 3.8415/19600) = 0.09256.
        let (lo, hi) = wilson(56, 70, Z_975);
        assert!(
            close(lo, 0.69184, 5e-5) && close(hi, 0.87696, 5e-5),
            "{lo} {hi}"
        );
        // 0/10: lower bound 0, upper z²/(n+z²) = 3.8415/13.8415.
        let (lo, hi) = wilson(0, 10, Z_975);
        assert_eq!(lo, 0.0);
        assert!(close(hi, Z_975 * Z_975 / (10.0 + Z_975 * Z_975), 1e-12));
    }

    #[test]
    fn a_report_outcome_gives_its_lift() {
        let mut o = crate::app::Outcome::default();
        o.recipients.n = 70;
        o.recipients.repeat_customers = 56;
        o.holdout.n = 80;
        o.holdout.repeat_customers = 48;
        let l = outcome_lift(&o).unwrap();
        assert!(close(l.low, 0.0524, 5e-5) && close(l.high, 0.3339, 5e-5));
        o.holdout.n = 0;
        assert_eq!(outcome_lift(&o), Err(LiftError::Empty("holdout")));
    }

    #[test]
    fn a_fall_is_said_as_a_fall() {
        let l = repeat_lift(Counts { n: 80, x: 48 }, Counts { n: 70, x: 56 }).unwrap();
        assert!(close(l.low, -0.3339, 5e-5) && close(l.high, -0.0524, 5e-5));
        assert_eq!(l.verdict, "lowers repeat purchase by 5.2–33.4 points");
    }

    #[test]
    fn no_difference_and_too_small_a_sample_are_said_plainly() {
        let same = repeat_lift(Counts { n: 50, x: 10 }, Counts { n: 50, x: 10 }).unwrap();
        assert_eq!(same.verdict, "no evidence yet — no difference seen");
        assert_eq!(same.more_needed, None);
        // 12/100 vs 10/100: per group (1.96·√(2·.11·.89) + 0.8416·√(.12·.88 + .1·.9))² / .02²
        // = 3840.8 → 3841 each, so 2 × 3741 more.
        let small = repeat_lift(Counts { n: 100, x: 12 }, Counts { n: 100, x: 10 }).unwrap();
        let a = 1.959_963_985 * (2.0 * 0.11 * 0.89f64).sqrt();
        let b = 0.841_621_234 * (0.12 * 0.88 + 0.1 * 0.9f64).sqrt();
        let per_group = ((a + b) / 0.02).powi(2).ceil() as u64;
        assert_eq!(per_group, 3841);
        assert_eq!(small.more_needed, Some(2 * (per_group - 100)));
        assert_eq!(
            small.verdict,
            format!(
                "no evidence yet — {} more customers needed",
                2 * (per_group - 100)
            )
        );
    }

    #[test]
    fn empty_or_impossible_groups_are_errors() {
        let ok = Counts { n: 10, x: 1 };
        assert_eq!(
            repeat_lift(Counts { n: 0, x: 0 }, ok),
            Err(LiftError::Empty("treated"))
        );
        assert_eq!(
            repeat_lift(ok, Counts { n: 3, x: 4 }),
            Err(LiftError::MoreThanN("holdout"))
        );
        assert!(revenue_lift(&[1.0], &[1.0, 2.0]).is_err());
    }

    #[test]
    fn t_quantiles_match_the_tables() {
        for (df, t) in [
            (1.0, 12.7062),
            (2.0, 4.3027),
            (3.0, 3.1824),
            (4.0, 2.7764),
            (5.0, 2.5706),
            (7.0, 2.3646),
            (10.0, 2.2281),
            (30.0, 2.0423),
            (1000.0, 1.9623),
        ] {
            assert!(close(t_975(df), t, 2e-3), "df {df}: {} vs {t}", t_975(df));
        }
    }

    #[test]
    fn welch_matches_a_hand_computation() {
        // Treated 10, 20, 30 (mean 20, s² 100); holdout 5, 15 (mean 10, s² 50).
        // se = √(100/3 + 50/2) = √58.33; df = 58.33² / ((100/3)²/2 + 25²/1) = 2.9...
        let l = revenue_lift(&[10.0, 20.0, 30.0], &[5.0, 15.0]).unwrap();
        let v1: f64 = 100.0 / 3.0;
        let v0: f64 = 25.0;
        let df = (v1 + v0).powi(2) / (v1 * v1 / 2.0 + v0 * v0);
        assert!(close(l.df, df, 1e-9));
        assert!(close(l.difference, 10.0, 1e-12));
        let se = (v1 + v0).sqrt();
        assert!(close(l.high - l.difference, t_975(df) * se, 1e-9));
        let s = MeanStats::from_sums(3, 60.0, 1400.0);
        assert_eq!(s, MeanStats::of(&[10.0, 20.0, 30.0]));
    }

    proptest! {
        #[test]
        fn the_interval_holds_the_estimate(n1 in 1u64..2000, a in 0u64..2000, n0 in 1u64..2000, b in 0u64..2000) {
            let (x1, x0) = (a % (n1 + 1), b % (n0 + 1));
            let l = repeat_lift(Counts { n: n1, x: x1 }, Counts { n: n0, x: x0 }).unwrap();
            prop_assert!(l.low <= l.difference + 1e-12 && l.difference <= l.high + 1e-12, "{:?}", l);
            prop_assert!(l.low >= -1.0 - 1e-12 && l.high <= 1.0 + 1e-12, "{:?}", l);
        }

        #[test]
        fn more_customers_narrow_the_interval(n1 in 1u64..500, a in 0u64..500, n0 in 1u64..500, b in 0u64..500, k in 2u64..10) {
            let (x1, x0) = (a % (n1 + 1), b % (n0 + 1));
            let small = repeat_lift(Counts { n: n1, x: x1 }, Counts { n: n0, x: x0 }).unwrap();
            let big = repeat_lift(Counts { n: n1 * k, x: x1 * k }, Counts { n: n0 * k, x: x0 * k }).unwrap();
            prop_assert!(big.high - big.low < small.high - small.low, "{:?} {:?}", small, big);
        }

        #[test]
        fn welch_holds_the_estimate(xs in proptest::collection::vec(0.0f64..1000.0, 2..50), ys in proptest::collection::vec(0.0f64..1000.0, 2..50)) {
            let l = revenue_lift(&xs, &ys).unwrap();
            prop_assert!(l.low <= l.difference && l.difference <= l.high);
        }
    }
}
