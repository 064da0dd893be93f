//! Work done record by record on several threads and taken back in order: compressing records
//! in backup, decoding and checking them in restore and verify. On two cores this is what lets
//! zstd run beside the reading and hashing instead of after it.
//!
//! Jobs go to the workers in turn and their results are taken in the same turn, so results come
//! back in the order the jobs were given, whatever the workers' speeds. Memory is bounded by the
//! number of jobs in flight: a job is given only once the oldest results have been taken to make
//! room for it. The callers make their jobs of bounded size (runs of records up to 4 MiB), so
//! that a count bounds the bytes too.

use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;

use crate::error::{Error, Result};

/// The caller's end of a pool: give jobs, take results in order.
pub struct Pool<J, R> {
    jobs: Vec<Sender<J>>,
    results: Vec<Receiver<R>>,
    /// The most jobs given and not yet taken back.
    most_in_flight: u64,
    given: u64,
    taken: u64,
}

/// Runs `body` with a pool of `workers` threads, each with its own state from `state` (a
/// compressor, say), on which `work` turns each job into its result, with at most
/// `most_in_flight` jobs given and not taken back. The pool is drained and its threads joined
/// before this returns; `body`'s error, if any, is returned after that.
pub fn scoped<J, R, S, T>(
    workers: usize,
    most_in_flight: u64,
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
            most_in_flight: most_in_flight.max(1),
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
    /// Gives `job` to the next worker. First, if as many jobs as may be are in flight, takes
    /// the oldest result and hands it to `take`; an error from `take` is returned.
    pub fn give(&mut self, job: J, take: &mut impl FnMut(R) -> Result<()>) -> Result<()> {
        if self.in_flight() >= self.most_in_flight {
            let result = self.take_oldest()?;
            take(result)?;
        }
        let worker = (self.given % self.jobs.len() as u64) as usize;
        self.jobs[worker]
            .send(job)
            .map_err(|_| Error::Internal("a worker thread stopped early"))?;
        self.given += 1;
        Ok(())
    }

    fn in_flight(&self) -> u64 {
        self.given - self.taken
    }

    /// Takes every result still to come, in order.
    pub fn finish(&mut self, take: &mut impl FnMut(R) -> Result<()>) -> Result<()> {
        while self.in_flight() > 0 {
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
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order_with_few_jobs_in_flight() {
        let mut taken = Vec::new();
        let mut most_in_flight = 0;
        scoped(
            3,
            4,
            || 0u64,
            |jobs_done: &mut u64, job: u64| {
                *jobs_done += 1;
                // Uneven work, so that workers finish out of order.
                thread::sleep(std::time::Duration::from_micros((job * 7919) % 500));
                job * 2
            },
            |pool| {
                for job in 0..200u64 {
                    pool.give(job, &mut |result| {
                        taken.push(result);
                        Ok(())
                    })?;
                    most_in_flight = most_in_flight.max(pool.in_flight());
                }
                pool.finish(&mut |result| {
                    taken.push(result);
                    Ok(())
                })
            },
        )
        .unwrap();
        assert_eq!(taken, (0..200u64).map(|job| job * 2).collect::<Vec<_>>());
        assert_eq!(most_in_flight, 4, "jobs in flight");
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
                    pool.give(job, &mut take)?;
                }
                Err(pool.finish_after(Error::Internal("after job 4"), &mut take))
            },
        );
        assert!(matches!(outcome, Err(Error::Internal("job 3"))));
    }
}
