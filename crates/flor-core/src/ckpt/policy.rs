//! The adaptive checkpoint policy: take an outer iteration's checkpoints only while the
//! time the training thread spends on checkpoints stays within `epsilon` of the time it
//! spends training. Cheap checkpoints are therefore taken at every iteration; expensive
//! ones every few iterations, spread evenly.

use std::time::Instant;

/// The default budget: checkpoints may cost 1/15 of training time.
pub const DEFAULT_EPSILON: f64 = 1.0 / 15.0;

/// Decides, at the start of each outer iteration, whether to checkpoint it.
#[derive(Debug, Clone)]
pub struct Policy {
    epsilon: f64,
    started: Instant,
    /// Seconds the training thread spent on checkpoints so far.
    spent: f64,
    /// What the last checkpointed iteration's checkpoints cost, all together.
    last_cost: Option<f64>,
    /// Cost of the current iteration's checkpoints so far.
    current: f64,
    pub taken: u64,
    pub skipped: u64,
}

impl Policy {
    /// A policy with budget `epsilon` (a fraction of training time), starting now.
    pub fn new(epsilon: f64) -> Self {
        Policy {
            epsilon: epsilon.max(0.0),
            started: Instant::now(),
            spent: 0.0,
            last_cost: None,
            current: 0.0,
            taken: 0,
            skipped: 0,
        }
    }

    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// Whether the iteration starting at `now` should be checkpointed. The first always
    /// is; `force` (the last iteration) always is.
    pub fn decide(&mut self, now: Instant, force: bool) -> bool {
        if self.current > 0.0 {
            self.last_cost = Some(self.current);
            self.current = 0.0;
        }
        let take = force
            || match self.last_cost {
                None => true,
                Some(cost) => {
                    let training = now.duration_since(self.started).as_secs_f64() - self.spent;
                    self.spent + cost <= self.epsilon * training
                }
            };
        if take {
            self.taken += 1;
        } else {
            self.skipped += 1;
        }
        take
    }

    /// Adds the training thread's time for one checkpoint.
    pub fn charge(&mut self, secs: f64) {
        self.spent += secs;
        self.current += secs;
    }

    /// Seconds spent on checkpoints so far.
    pub fn spent(&self) -> f64 {
        self.spent
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::new(DEFAULT_EPSILON)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cheap_checkpoints_every_iteration_expensive_ones_sparse() {
        let mut p = Policy::new(0.1);
        let t0 = p.started;
        // Iteration takes 1 s, checkpoint 0.01 s: always affordable.
        for i in 0..10 {
            assert!(p.decide(t0 + Duration::from_millis(1010 * i), false));
            p.charge(0.01);
        }
        let mut p = Policy::new(0.1);
        let t0 = p.started;
        // Checkpoint costs 0.5 s against 1 s iterations: about one in five.
        let mut now = t0;
        let mut taken = 0;
        for _ in 0..50 {
            if p.decide(now, false) {
                taken += 1;
                p.charge(0.5);
                now += Duration::from_millis(500);
            }
            now += Duration::from_secs(1);
        }
        assert!((6..=12).contains(&taken), "{taken}");
        assert!(p.spent() <= 0.1 * (now - t0).as_secs_f64() + 0.5);
        assert!(p.decide(now, true));
    }
}
