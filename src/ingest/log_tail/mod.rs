//! Log tailing: files matched by globs, followed across rotation and
//! truncation ([`follow`]), each line read into a delivery ([`mod@line`]).
//!
//! Each batch of lines is recorded with a [`Mark`](crate::recorder::Mark) of every file's read
//! position, in the same log record and snapshot as its deliveries. A restart
//! resumes from the recorded mark: no line is skipped or counted twice, even
//! after `kill -9`, and no per-line id is needed.

mod config;
pub mod follow;
pub mod line;

use std::collections::HashSet;
use std::time::Duration;

use super::{Named, Refused, Source, SourceContext, Task};
use crate::fields::Problems;
use crate::recorder::Recorded;
use crate::sla::Sla;
use follow::{Follower, Polled};
use line::LineSpec;

pub use config::RawLogTail;

impl Named for LogTailConfig {
    type Raw = RawLogTail;
    const LABEL: &'static str = "log";
    const KEYS: &'static [&'static str] = config::KEYS;
    const SOURCE: Source = Source::LogTail;

    fn read(
        p: &mut Problems,
        at: &str,
        index: usize,
        raw: &RawLogTail,
        slas: &[Sla],
        names: &mut HashSet<String>,
    ) -> Option<Self> {
        config::log_tail(p, at, index, raw, slas, names)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn start(self, ctx: &SourceContext) -> Task<Self> {
        ctx.metrics().log_tail.register(&self.name);
        let config = self.clone();
        Task::spawn(Self::SOURCE, self, ctx, |ctx| run(config, ctx))
    }

    fn forget(&self, ctx: &SourceContext) {
        ctx.metrics().log_tail.unregister(&self.name);
    }
}

/// Where a file seen for the first time is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// Its first byte: every line it holds.
    Beginning,
    /// Its end: only lines written from now on.
    End,
}

/// One `sources.log_tail` entry: which files, how to read their lines.
#[derive(Debug, Clone)]
pub struct LogTailConfig {
    /// Names the checkpoint file; unique among log sources.
    pub name: String,
    /// Glob patterns of the files to follow.
    pub paths: Vec<String>,
    /// Where to start in files found at the first start (no checkpoint).
    pub start_at: StartAt,
    /// How each line becomes a reading.
    pub spec: LineSpec,
    /// How often files are checked for new lines.
    pub poll_interval: Duration,
    /// How long a rotated file must stay quiet, once a newer file is
    /// followed, before it is let go.
    pub rotate_wait: Duration,
    /// Longest line read; longer ones are skipped and counted.
    pub max_line_bytes: usize,
}

impl LogTailConfig {
    /// [`LogTailConfig::rotate_wait`] in polls, at least one.
    pub fn rotate_wait_polls(&self) -> u32 {
        let polls = self.rotate_wait.as_nanos() / self.poll_interval.as_nanos().max(1);
        u32::try_from(polls).unwrap_or(u32::MAX).max(1)
    }
}

impl PartialEq for LogTailConfig {
    fn eq(&self, other: &Self) -> bool {
        // Regexes compare by their source text.
        let fmt = |s: &LineSpec| match &s.format {
            line::Format::Regex(r) => r.as_str().to_owned(),
            line::Format::Json => "json".to_owned(),
        };
        self.name == other.name
            && self.paths == other.paths
            && self.start_at == other.start_at
            && self.poll_interval == other.poll_interval
            && self.rotate_wait == other.rotate_wait
            && self.max_line_bytes == other.max_line_bytes
            && fmt(&self.spec) == fmt(&other.spec)
            && self.spec.sla == other.spec.sla
            && self.spec.duration_field == other.spec.duration_field
            && self.spec.unit == other.spec.unit
            && self.spec.timestamp_field == other.spec.timestamp_field
            && self.spec.labels == other.spec.labels
            && self.spec.include.as_ref().map(line::Pattern::as_str)
                == other.spec.include.as_ref().map(line::Pattern::as_str)
            && self.spec.exclude.as_ref().map(line::Pattern::as_str)
                == other.spec.exclude.as_ref().map(line::Pattern::as_str)
            && self.spec.failed == other.spec.failed
    }
}

/// Counts what a poll read, refused and noticed.
fn count(ctx: &SourceContext, name: &str, polled: &Polled) {
    for e in &polled.refused {
        ctx.refuse(Source::LogTail, e.reason(), 1);
    }
    let m = &ctx.metrics().log_tail;
    m.files.with_label_values(&[name]).set(polled.files as i64);
    m.behind
        .with_label_values(&[name])
        .set(polled.behind as i64);
    m.read.with_label_values(&[name]).inc_by(polled.read);
    m.skipped.with_label_values(&[name]).inc_by(polled.skipped);
    m.rotations
        .with_label_values(&[name])
        .inc_by(polled.rotations);
    m.truncations
        .with_label_values(&[name])
        .inc_by(polled.truncations);
}

/// The name this source's mark is recorded under.
fn mark_source(name: &str) -> String {
    format!("log_tail/{name}")
}

/// Follows the files until shutdown. Reading the next lines overlaps
/// recording the previous ones, so both cores work.
pub async fn run(config: LogTailConfig, ctx: SourceContext) {
    let poll_interval = config.poll_interval;
    let name = config.name.clone();
    tracing::info!(%name, paths = ?config.paths, "log tail following");
    let mark = ctx.recorder().mark(&mark_source(&config.name));
    let mut follower = Follower::new(config, mark.as_deref());
    let mut shutdown = ctx.shutdown.clone();
    let mut inflight: Option<(Recording, Polled)> = None;
    loop {
        let polling = tokio::task::spawn_blocking(move || {
            let polled = follower.poll();
            (follower, polled)
        });
        // A read stuck in the kernel (a hung network mount) must not hold
        // up shutdown: the poll is then left behind, and what it read was
        // never recorded, so it is read again at the next start.
        let polled = tokio::select! {
            polled = polling => polled,
            () = shutdown.wait() => {
                if let Some((recording, _)) = inflight.take() {
                    let _ = recording.await;
                }
                tracing::info!(%name, "log tail stopped while reading");
                return;
            }
        };
        let Ok((f, polled)) = polled else {
            return;
        };
        follower = f;
        if let Some((recording, previous)) = inflight.take()
            && !finish(recording, &previous, &mut follower).await
        {
            // Read everything after the last committed line again.
            follower.rewind();
            tokio::time::sleep(poll_interval).await;
            continue;
        }
        count(&ctx, &name, &polled);
        let more = polled.more;
        if polled.readings.is_empty() && polled.refused.is_empty() && polled.skipped == 0 {
            // Nothing to record (blank lines at most): no need to move the mark.
            follower.committed(&polled.marks);
        } else {
            let mut polled = polled;
            let readings = std::mem::take(&mut polled.readings);
            let (ctx, mark) = (ctx.clone(), polled.mark.clone());
            let recording =
                tokio::spawn(
                    async move { ctx.deliver(Source::LogTail, &readings, Some(mark)).await },
                );
            inflight = Some((recording, polled));
        }
        if more {
            continue;
        }
        tokio::select! {
            () = shutdown.wait() => break,
            () = tokio::time::sleep(poll_interval) => {}
        }
    }
    if let Some((recording, previous)) = inflight.take() {
        finish(recording, &previous, &mut follower).await;
    }
    tracing::info!(%name, "log tail stopped");
}

type Recording = tokio::task::JoinHandle<Result<Recorded, Refused>>;

/// Waits for a batch to be recorded; false if it was not.
async fn finish(recording: Recording, polled: &Polled, follower: &mut Follower) -> bool {
    match recording.await {
        Ok(Ok(_)) => {
            follower.committed(&polled.marks);
            true
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "log lines not recorded; reading them again");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "log tail commit task failed");
            false
        }
    }
}
