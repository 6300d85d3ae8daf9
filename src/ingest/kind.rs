//! What a kind of source configured under `sources:` gives the config reader
//! and the supervisor ([`Kind`]), and the one list that registers each kind
//! (`sources!`): the YAML shape of `sources:`, its checked
//! settings and what runs are all generated from that list, so a kind is
//! read, started, reconfigured on reload and stopped once it is listed.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

use tokio::task::JoinHandle;

use super::{Source, SourceContext, StopSources};
use crate::fields::Problems;
use crate::sla::Sla;

/// A kind of source configured under `sources.<key>`.
pub trait Kind {
    /// Its YAML shape (absent from the file: `Default`).
    type Raw: serde::de::DeserializeOwned + Default + fmt::Debug;
    /// Its checked settings; a reload compares them to decide what changes.
    type Config: Clone + PartialEq + Default + fmt::Debug + Send + Sync + 'static;
    /// What runs while it is configured.
    type Running: Default + Send + Sync;
    /// Every key its shape takes at any depth, for "did you mean".
    const KEYS: &'static [&'static str];
    /// The `source` label its deliveries and refusals are counted under.
    const SOURCE: Source;

    /// Checks `raw`, found at `at` (`sources.<key>`), against the SLAs,
    /// recording every problem in `p`.
    fn validate(p: &mut Problems, at: &str, raw: &Self::Raw, slas: &[Sla]) -> Self::Config;

    /// Starts what `config` asks for when the exporter starts; an error
    /// stops the start.
    fn start(
        config: Self::Config,
        ctx: &SourceContext,
    ) -> impl Future<Output = Result<Self::Running, StartError>> + Send;

    /// Makes what runs match `wanted` on a reload, saying what it did in
    /// `changes`. A change that fails keeps what ran, when it can.
    fn apply(
        running: &mut Self::Running,
        wanted: Self::Config,
        ctx: &SourceContext,
        changes: &mut Changes,
    ) -> impl Future<Output = ()> + Send;

    /// Tells everything that runs to stop; each handle ends once its task
    /// has committed what it read.
    fn stop(running: Self::Running) -> Vec<JoinHandle<()>>;
}

/// A source could not start: a socket could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct StartError {
    /// The address (or socket path) that failed.
    pub addr: String,
    /// Why.
    pub source: std::io::Error,
}

/// Registers the kinds of source configured under `sources:`, one line each
/// (`key in module: Kind`, with its doc), and generates from the list:
/// - `pub mod module;` for each;
/// - `RawSources`: the YAML shape of `sources:`;
/// - `Sources`: the checked settings of every kind, and `RawSources::validate`;
/// - `RunningSources`: what runs, started, reconfigured and stopped as one;
/// - `SOURCE_KEYS`: every key the section takes;
/// - `CONFIGURED`: the `source` label of each.
macro_rules! sources {
    ($($(#[doc = $doc:expr])* $key:ident in $module:ident: $kind:ty,)*) => {
        $(pub mod $module;)*

        /// `sources:` as written: each registered kind's shape under its key.
        #[derive(Debug, Default, serde::Deserialize)]
        pub struct RawSources {
            $($(#[doc = $doc])* #[serde(default)] pub $key: <$kind as $crate::ingest::Kind>::Raw,)*
        }

        /// The checked settings of every registered kind of source.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct Sources {
            $($(#[doc = $doc])* pub $key: <$kind as $crate::ingest::Kind>::Config,)*
        }

        impl RawSources {
            /// Every kind's settings checked against `slas`, every problem
            /// recorded in `p`.
            pub fn validate(&self, p: &mut $crate::fields::Problems, slas: &[$crate::sla::Sla]) -> Sources {
                Sources {
                    $($key: <$kind as $crate::ingest::Kind>::validate(
                        p,
                        concat!("sources.", stringify!($key)),
                        &self.$key,
                        slas,
                    ),)*
                }
            }
        }

        /// What runs for every registered kind of source.
        #[derive(Default)]
        pub struct RunningSources {
            $($key: <$kind as $crate::ingest::Kind>::Running,)*
        }

        impl RunningSources {
            /// Starts every configured source.
            pub async fn start(sources: Sources, ctx: &SourceContext) -> Result<RunningSources, $crate::ingest::StartError> {
                Ok(RunningSources {
                    $($key: <$kind as $crate::ingest::Kind>::start(sources.$key, ctx).await?,)*
                })
            }

            /// Makes what runs match `sources`, saying what changed.
            pub async fn apply(&mut self, sources: Sources, ctx: &SourceContext) -> $crate::ingest::Changes {
                let mut changes = $crate::ingest::Changes::default();
                $(<$kind as $crate::ingest::Kind>::apply(&mut self.$key, sources.$key, ctx, &mut changes).await;)*
                changes
            }

            /// Stops every source at once and waits until each has committed
            /// what it read.
            pub async fn stop(self) {
                let mut stopping = Vec::new();
                $(stopping.extend(<$kind as $crate::ingest::Kind>::stop(self.$key));)*
                for handle in stopping {
                    let _ = handle.await;
                }
            }
        }

        /// The `source` label of every kind configured under `sources:`.
        pub const CONFIGURED: &[$crate::source::Source] = &[$(<$kind as $crate::ingest::Kind>::SOURCE,)*];

        /// Every key `sources:` takes at any depth.
        pub const SOURCE_KEYS: &[&[&str]] = &[
            &[$(stringify!($key),)*],
            $(<$kind as $crate::ingest::Kind>::KEYS,)*
        ];
    };
}

pub(crate) use sources;

/// What a reload did to the sources, for its answer and the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Sources added.
    pub started: Vec<String>,
    /// Sources taken away.
    pub stopped: Vec<String>,
    /// Sources whose settings changed: stopped and started again, or (StatsD
    /// mappings alone) changed in place.
    pub reconfigured: Vec<String>,
    /// Changes that could not be made, and why; the source runs as before
    /// when it could be kept.
    pub failed: Vec<String>,
}

impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            ("started", &self.started),
            ("stopped", &self.stopped),
            ("reconfigured", &self.reconfigured),
            ("failed", &self.failed),
        ];
        let said: Vec<String> = parts
            .iter()
            .filter(|(_, list)| !list.is_empty())
            .map(|(what, list)| format!("{what} {}", list.join(", ")))
            .collect();
        if said.is_empty() {
            f.write_str("sources unchanged")
        } else {
            write!(f, "sources: {}", said.join("; "))
        }
    }
}

/// One running source: its settings, its own stop signal, its task.
pub struct Task<C> {
    /// The settings it runs with.
    pub config: C,
    stop: StopSources,
    handle: JoinHandle<()>,
}

impl<C> Task<C> {
    /// Spawns `run` with a stop signal of its own, so it can stop while the
    /// other sources go on, once `source`'s counters show (every reason it
    /// can give, at zero).
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(
        source: Source,
        config: C,
        ctx: &SourceContext,
        run: impl FnOnce(SourceContext) -> F,
    ) -> Task<C> {
        ctx.metrics().register_source(source);
        let (stop, ctx) = ctx.with_own_stop();
        let handle = tokio::spawn(run(ctx));
        Task {
            config,
            stop,
            handle,
        }
    }

    /// The same task, now known to run with `config` (changed in place).
    pub fn with_config(self, config: C) -> Task<C> {
        Task { config, ..self }
    }

    /// Tells it to stop; the handle ends once it has committed what it read.
    pub fn signal(self) -> JoinHandle<()> {
        self.stop.stop();
        self.handle
    }

    /// Stops it and waits until it has committed what it read.
    pub async fn stop(self) -> C {
        self.stop.stop();
        let _ = self.handle.await;
        self.config
    }
}

/// One entry of a kind of source that is a list known by name (log tails,
/// probes): how it is read, named, started and forgotten. [`ListOf`] makes
/// the kind.
pub trait Named: Clone + PartialEq + fmt::Debug + Send + Sync + 'static {
    /// One entry's YAML shape.
    type Raw: serde::de::DeserializeOwned + fmt::Debug;
    /// The word for it in reload answers (`log`, `probe`).
    const LABEL: &'static str;
    /// Every key its shape takes at any depth.
    const KEYS: &'static [&'static str];
    /// The `source` label it is counted under.
    const SOURCE: Source;

    /// Checks the entry at `at`, the `index`-th of the list; `names` holds
    /// the names taken so far.
    fn read(
        p: &mut Problems,
        at: &str,
        index: usize,
        raw: &Self::Raw,
        slas: &[Sla],
        names: &mut HashSet<String>,
    ) -> Option<Self>;
    /// Its configured name.
    fn name(&self) -> &str;
    /// Registers its own series and spawns it with [`Task::spawn`].
    fn start(self, ctx: &SourceContext) -> Task<Self>;
    /// Removes the series of one that stopped for good.
    fn forget(&self, ctx: &SourceContext);
}

/// The kind of source that is a list of `C` known by name: new entries
/// started, gone ones stopped, changed ones stopped and started again.
pub struct ListOf<C>(PhantomData<C>);

impl<C: Named> Kind for ListOf<C> {
    type Raw = Vec<C::Raw>;
    type Config = Vec<C>;
    type Running = Vec<Task<C>>;
    const KEYS: &'static [&'static str] = C::KEYS;
    const SOURCE: Source = C::SOURCE;

    fn validate(p: &mut Problems, at: &str, raw: &Vec<C::Raw>, slas: &[Sla]) -> Vec<C> {
        let mut names = HashSet::new();
        raw.iter()
            .enumerate()
            .filter_map(|(i, r)| C::read(p, &format!("{at}[{i}]"), i, r, slas, &mut names))
            .collect()
    }

    async fn start(wanted: Vec<C>, ctx: &SourceContext) -> Result<Vec<Task<C>>, StartError> {
        Ok(wanted.into_iter().map(|c| c.start(ctx)).collect())
    }

    async fn apply(
        running: &mut Vec<Task<C>>,
        wanted: Vec<C>,
        ctx: &SourceContext,
        changes: &mut Changes,
    ) {
        let mut old = std::mem::take(running);
        for config in wanted {
            let label = format!("{} {}", C::LABEL, config.name());
            match old.iter().position(|t| t.config.name() == config.name()) {
                Some(i) if old[i].config == config => running.push(old.swap_remove(i)),
                Some(i) => {
                    let stale = old.swap_remove(i).stop().await;
                    stale.forget(ctx);
                    running.push(config.start(ctx));
                    changes.reconfigured.push(label);
                }
                None => {
                    running.push(config.start(ctx));
                    changes.started.push(label);
                }
            }
        }
        for task in old {
            let label = format!("{} {}", C::LABEL, task.config.name());
            let gone = task.stop().await;
            gone.forget(ctx);
            changes.stopped.push(label);
        }
    }

    fn stop(running: Vec<Task<C>>) -> Vec<JoinHandle<()>> {
        running.into_iter().map(Task::signal).collect()
    }
}
