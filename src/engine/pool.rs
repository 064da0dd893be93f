//! Work done record by record on several threads and taken back in order: compressing records
//! in backup, decoding and checking them in restore and verify. On two cores this is what lets
//! zstd run beside the reading and hashing instead of after it.
//!
//! Jobs go to the workers in turn and their results are taken in the same turn, so results come
//! back in the order the jobs were given, whatever the workers' speeds. Memory is bounded by a
//! byte budget on the jobs in flight (each job says what it weighs): a job is given only once
//! the oldest results have been taken to make room for it, and a job heavier than the budget
//! runs alone.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

use crate::error::{Error, Result};

/// The caller's end of a pool: give jobs, take results in order.
pub struct Pool<J, R> {
    jobs: Vec<Sender<J>>,
    results: Vec<Receiver<R>>,
    /// The weights of the jobs given and not yet taken back, oldest first.
    in_flight: VecDeque<u64>,
    in_flight_weight: u64,
    budget: u64,
    given: u64,
    taken: u64,
}

/// Runs `body` with a pool of `workers` threads, each with its own state from `state` (a
/// compressor, say), on which `work` turns each job into its result. The pool is drained and
/// its threads joined before this returns; `body`'s error, if any, is returned after that.
pub fn scoped<J, R, S, T>(
    workers: usize,
    budget: u64,
    state: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, J) -> R + Sync,
    body: impl FnOnce(&mut Pool<J, R>) -> Result<T>,
) -> Result<T>
where
    J: Send,
    R: Send,
{
    let workers = workers.max(1);
    thread::scope(|scope| {
        let mut pool = Pool {
            jobs: Vec::with_capacity(workers),
            results: Vec::with_capacity(workers),
            in_flight: VecDeque::new(),
            in_flight_weight: 0,
            budget,
            given: 0,
            taken: 0,
        };
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (job_sender, job_receiver) = mpsc::channel::<J>();
            let (result_sender, result_receiver) = mpsc::channel::<R>();
            pool.jobs.push(job_sender);
            pool.results.push(result_receiver);
            let (state, work) = (&state, &work);
            handles.push(scope.spawn(move || {
                let mut state = state();
                for job in job_receiver {
                    if result_sender.send(work(&mut state, job)).is_err() {
                        return; // The caller stopped taking results.
                    }
                }
            }));
        }
        let outcome = body(&mut pool);
        drop(pool); // Ends the workers' loops: no more jobs, nobody taking results.
        let mut joined = Ok(());
        for handle in handles {
            if handle.join().is_err() {
                joined = Err(Error::Internal("a worker thread failed unexpectedly"));
            }
        }
        joined.and(outcome)
    })
}

impl<J, R> Pool<J, R> {
    /// Gives `job`, which weighs `weight` bytes, to the next worker. First, while it would not
    /// fit the budget beside the jobs in flight, takes the oldest results and hands them to
    /// `take` in order; an error from `take` stops there and is returned.
    pub fn give(
        &mut self,
        job: J,
        weight: u64,
        take: &mut impl FnMut(R) -> Result<()>,
    ) -> Result<()> {
        while !self.in_flight.is_empty() && self.in_flight_weight + weight > self.budget {
            let result = self.take_oldest()?;
            take(result)?;
        }
        let worker = (self.given % self.jobs.len() as u64) as usize;
        self.jobs[worker]
            .send(job)
            .map_err(|_| Error::Internal("a worker thread stopped early"))?;
        self.given += 1;
        self.in_flight.push_back(weight);
        self.in_flight_weight += weight;
        Ok(())
    }

    /// Takes every result still to come, in order.
    pub fn finish(&mut self, take: &mut impl FnMut(R) -> Result<()>) -> Result<()> {
        while !self.in_flight.is_empty() {
            let result = self.take_oldest()?;
            take(result)?;
        }
        Ok(())
    }

    /// After the caller's own work failed with `error`: takes the results of the jobs given
    /// before it, which come first in order, and returns the first error among them, else
    /// `error`. So a fault is reported at the earliest place it is, as if one thread had done
    /// everything in order.
    pub fn finish_after(&mut self, error: Error, take: &mut impl FnMut(R) -> Result<()>) -> Error {
        match self.finish(take) {
            Ok(()) => error,
            Err(earlier) => earlier,
        }
    }

    fn take_oldest(&mut self) -> Result<R> {
        let worker = (self.taken % self.results.len() as u64) as usize;
        let result = self.results[worker]
            .recv()
            .map_err(|_| Error::Internal("a worker thread stopped early"))?;
        self.taken += 1;
        if let Some(weight) = self.in_flight.pop_front() {
            self.in_flight_weight -= weight;
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order_within_the_budget() {
        let mut taken = Vec::new();
        let mut most_in_flight = 0;
        scoped(
            3,
            10,
            || 0u64,
            |jobs_done: &mut u64, job: u64| {
                *jobs_done += 1;
                // Uneven work, so that workers finish out of order.
                thread::sleep(std::time::Duration::from_micros((job * 7919) % 500));
                job * 2
            },
            |pool| {
                for job in 0..200u64 {
                    pool.give(job, job % 4 + 1, &mut |result| {
                        taken.push(result);
                        Ok(())
                    })?;
                    most_in_flight = most_in_flight.max(pool.in_flight_weight);
                }
                pool.finish(&mut |result| {
                    taken.push(result);
                    Ok(())
                })
            },
        )
        .unwrap();
        assert_eq!(taken, (0..200u64).map(|job| job * 2).collect::<Vec<_>>());
        assert!(most_in_flight <= 10, "{most_in_flight} bytes in flight");
    }

    #[test]
    fn a_job_over_the_budget_runs_alone() {
        let mut taken = Vec::new();
        scoped(
            2,
            4,
            || (),
            |(), job: u64| job,
            |pool| {
                let mut take = |result| {
                    taken.push(result);
                    Ok(())
                };
                pool.give(1, 1, &mut take)?;
                pool.give(2, 100, &mut take)?;
                assert_eq!(pool.in_flight.len(), 1);
                pool.give(3, 1, &mut take)?;
                pool.finish(&mut take)
            },
        )
        .unwrap();
        assert_eq!(taken, vec![1, 2, 3]);
    }

    #[test]
    fn an_earlier_failure_is_reported_before_a_later_one() {
        let outcome: Result<()> = scoped(
            2,
            100,
            || (),
            |(), job: u64| job,
            |pool| {
                let mut take = |result: u64| {
                    if result == 3 {
                        Err(Error::Internal("job 3"))
                    } else {
                        Ok(())
                    }
                };
                for job in 0..5 {
                    pool.give(job, 1, &mut take)?;
                }
                Err(pool.finish_after(Error::Internal("after job 4"), &mut take))
            },
        );
        assert!(matches!(outcome, Err(Error::Internal("job 3"))));
    }
}
