use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::adapters::sqlite::SqliteStore;
use crate::pipeline::intake::{Intake, IntakeSettings};
use crate::pipeline::poll::{PollError, PollReport};
use crate::pipeline::{Pipeline, worker};
use crate::ports::{CursorStore, WorkQueue};

/// How the local runner runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where webhooks and outbound messages are received (port 0: a free one).
    pub listen: SocketAddr,
    /// How often the poller reads the change feeds; none: only when asked.
    pub poll_interval: Option<Duration>,
    pub workers: usize,
    /// References a worker takes per batch.
    pub batch_size: usize,
}

/// References per worker batch: enough that a batch's reads and writes fill the APIs'
/// batches (HubSpot's 100, Salesforce's 200) after splitting by pair and side. A
/// worker takes what is waiting, up to this, so small changes do not wait for more.
pub const DEFAULT_BATCH_SIZE: usize = 1_000;

/// Workers a local run starts. A worker's batch spends most of its time waiting on
/// round trips one step after another (read, match, write, link); four batches in
/// flight keep HubSpot's allowance busy (10,000 people per side: 97 s to the last write
/// with two, 71 s with four (before the ack fix), 46 s once acks stopped scanning the
/// queue), and they share one rate limiter.
pub const DEFAULT_WORKERS: usize = 4;

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            poll_interval: Some(Duration::from_secs(30)),
            workers: DEFAULT_WORKERS,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

/// The pipeline running in this process.
pub struct LocalRunner {
    pub addr: SocketAddr,
    pub pipeline: Pipeline,
    pub store: Arc<SqliteStore>,
    served: Served,
}

/// How long an idle worker waits before looking at the queue again.
const IDLE: Duration = Duration::from_millis(25);

impl LocalRunner {
    /// Binds the listener and starts the intake, the poller and the workers.
    pub async fn start(
        pipeline: Pipeline,
        intake: IntakeSettings,
        store: Arc<SqliteStore>,
        options: RunOptions,
    ) -> std::io::Result<Self> {
        // This process owns the store: what a crashed predecessor held is free again.
        let (items, claims) = store
            .recover_after_restart()
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if items + claims > 0 {
            tracing::info!(
                message = "recovered work from a previous run",
                items,
                claims
            );
        }
        let served = Served::start(
            pipeline.clone(),
            intake,
            store.clone(),
            store.clone(),
            options,
        )
        .await?;
        Ok(LocalRunner {
            addr: served.addr,
            pipeline,
            store,
            served,
        })
    }

    pub fn url(&self) -> String {
        self.served.url()
    }

    /// Reads every change feed now.
    pub async fn poll_now(&self) -> Result<PollReport, PollError> {
        self.pipeline
            .poll(self.store.as_ref(), self.store.as_ref())
            .await
    }

    /// Stops taking work, lets running batches finish, and returns. Queued work stays
    /// in the store for the next start.
    pub async fn stop(self) {
        self.served.stop().await;
    }
}

/// The intake over HTTP, the poller and the workers, on any queue and cursor store:
/// the embedded store's ([`LocalRunner`]), or DynamoDB's and SQS's as the benchmark
/// runs them.
pub struct Served {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Served {
    /// Binds the listener and starts the intake, the poller and the workers.
    pub async fn start(
        pipeline: Pipeline,
        mut intake: IntakeSettings,
        queue: Arc<dyn WorkQueue>,
        cursors: Arc<dyn CursorStore>,
        options: RunOptions,
    ) -> std::io::Result<Served> {
        let listener = TcpListener::bind(options.listen).await?;
        let addr = listener.local_addr()?;
        if intake.public_url.is_empty() {
            intake.public_url = format!("http://{addr}");
        }
        let (stop, _) = watch::channel(false);
        let mut tasks = Vec::new();

        let app = super::server::router(Intake {
            settings: intake,
            pipeline: pipeline.clone(),
            queue: queue.clone(),
            cursors: cursors.clone(),
        });
        let mut stopped = stop.subscribe();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(message = "intake server stopped", error = %e);
            }
        }));

        if let Some(interval) = options.poll_interval {
            let (pipeline, queue, cursors, mut stopped) = (
                pipeline.clone(),
                queue.clone(),
                cursors.clone(),
                stop.subscribe(),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    match pipeline.poll(cursors.as_ref(), queue.as_ref()).await {
                        Ok(r) if r.enqueued() > 0 => {
                            tracing::info!(message = "poll queued changes", queued = r.enqueued());
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(message = "poll failed", error = %e),
                    }
                    tokio::select! {
                        _ = stopped.wait_for(|s| *s) => break,
                        () = tokio::time::sleep(interval) => {}
                    }
                }
            }));
        }

        for n in 0..options.workers {
            let mut pipeline = pipeline.clone();
            pipeline.worker = format!("{}-{n}", pipeline.worker);
            let (queue, mut stopped, batch) = (queue.clone(), stop.subscribe(), options.batch_size);
            tasks.push(tokio::spawn(async move {
                loop {
                    if *stopped.borrow() {
                        break;
                    }
                    let idle = match worker::run_once(&pipeline, queue.as_ref(), batch).await {
                        Ok(round) => round.received == 0,
                        Err(e) => {
                            tracing::warn!(message = "worker could not use the queue", error = %e);
                            true
                        }
                    };
                    if idle {
                        tokio::select! {
                            _ = stopped.wait_for(|s| *s) => break,
                            () = tokio::time::sleep(IDLE) => {}
                        }
                    }
                }
            }));
        }
        Ok(Served { addr, stop, tasks })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops taking work, lets running batches finish, and returns.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
