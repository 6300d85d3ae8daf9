//! Running sources: started from the config, then started, stopped or
//! reconfigured to match each reloaded config. Each source runs with its
//! own stop signal, so one can stop (committing what it read, its read
//! positions included) while the others go on. What each kind of source
//! does on a change is its own ([`Kind`](crate::ingest::Kind)); this holds
//! them together.

use tokio::sync::Mutex;

use crate::ingest::{Changes, RunningSources, Source, SourceContext, Sources, StartError};

/// The sources that run, and how to change them.
pub struct Supervisor {
    ctx: SourceContext,
    running: Mutex<RunningSources>,
}

impl Supervisor {
    /// Starts every configured source, and pre-creates the counters of
    /// every source that can receive anything (HTTP push, OTLP and
    /// open-delivery events always can; a reload can be refused).
    pub async fn start(sources: Sources, ctx: SourceContext) -> Result<Supervisor, StartError> {
        let metrics = ctx.metrics();
        for source in [Source::Http, Source::Otlp, Source::Events, Source::Reload] {
            metrics.register_source(source);
        }
        let running = RunningSources::start(sources, &ctx).await?;
        Ok(Supervisor {
            ctx,
            running: Mutex::new(running),
        })
    }

    /// Makes the running sources those of `sources`: new ones started, gone
    /// ones stopped, changed ones stopped and started again (a log source
    /// resumes where it stopped; StatsD mappings alone change in place, no
    /// datagram lost).
    pub async fn apply(&self, sources: Sources) -> Changes {
        self.running.lock().await.apply(sources, &self.ctx).await
    }

    /// Stops every source, each after committing what it read.
    pub async fn stop(&self) {
        let running = std::mem::take(&mut *self.running.lock().await);
        running.stop().await;
    }
}
