//! Password hashing on a bounded pool of its own.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Password hashing is deliberately expensive (Argon2id, 19 MiB and tens of
/// milliseconds of a core each), so it runs on a small pool of its own: at
/// most `workers` hashes at once, at most `4 × workers` more waiting, and
/// any further caller is told at once to come back ([`HashingBusy`]) rather
/// than queueing without end on Tokio's blocking pool (512 threads).
#[derive(Clone)]
pub struct PasswordHashing {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
}

/// Every password-hashing worker is busy and the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", HashingBusy::MESSAGE)]
pub struct HashingBusy;

impl HashingBusy {
    /// What the client is told.
    pub const MESSAGE: &'static str = "The server is busy checking passwords. Retry in a second.";
}

impl PasswordHashing {
    /// A pool of `workers` (at least one).
    pub fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        PasswordHashing {
            running: Arc::new(Semaphore::new(workers)),
            admitted: Arc::new(Semaphore::new(workers * 5)),
        }
    }

    /// Runs `work` on a hashing worker. The permits travel with the work, so
    /// a caller that gives up (a timed-out request) frees its slot only when
    /// the hash it started is done.
    pub async fn run<T, F>(&self, work: F) -> Result<T, HashingBusy>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let admitted = Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| HashingBusy)?;
        let running = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .map_err(|_| HashingBusy)?;
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            work()
        })
        .await
        .map_err(|_| HashingBusy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn password_hashing_admits_a_bounded_queue() {
        let pool = PasswordHashing::new(1);
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(std::sync::Mutex::new(wait));
        let mut running = Vec::new();
        // One running and four waiting fill it; the sixth is refused at once.
        for _ in 0..5 {
            let (pool, wait) = (pool.clone(), Arc::clone(&wait));
            running.push(tokio::spawn(async move {
                pool.run(move || wait.lock().unwrap().recv().unwrap()).await
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.run(|| ()).await, Err(HashingBusy));
        for _ in 0..5 {
            release.send(()).unwrap();
        }
        for task in running {
            task.await.unwrap().unwrap();
        }
        assert_eq!(pool.run(|| 7).await, Ok(7));
    }
}
