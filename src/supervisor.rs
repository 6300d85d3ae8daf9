//! Running sources: started from the config, then started, stopped or
//! reconfigured to match each reloaded config. Each source runs with its
//! own stop signal, so one can stop (committing what it read, its read
//! positions included) while the others go on.

use std::fmt;
use std::sync::Arc;

use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::config::Sources;
use crate::ingest::log_tail::{self, LogTailConfig};
use crate::ingest::probe::{self, ProbeConfig};
use crate::ingest::statsd::{self, BindError, Mapping, StatsdConfig};
use crate::ingest::{Shutdown, Source, SourceContext, StopSources};

/// The sources that run, and how to change them.
pub struct Supervisor {
    ctx: SourceContext,
    running: Mutex<Running>,
}

/// The StatsD source and where its mappings are changed in place.
type StatsdTask = (Task<StatsdConfig>, watch::Sender<Arc<Vec<Mapping>>>);

#[derive(Default)]
struct Running {
    statsd: Option<StatsdTask>,
    log_tails: Vec<Task<LogTailConfig>>,
    probes: Vec<Task<ProbeConfig>>,
}

/// One running source: its config, its stop signal, its task.
struct Task<C> {
    config: C,
    stop: StopSources,
    handle: JoinHandle<()>,
}

impl<C> Task<C> {
    /// Stops it and waits until it has committed what it read.
    async fn stop(self) -> C {
        self.stop.stop();
        let _ = self.handle.await;
        self.config
    }
}

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

impl Supervisor {
    /// Starts every configured source, and pre-creates the counters of
    /// every source that can receive anything (HTTP push and open-delivery
    /// events always can). The one place a source is registered.
    pub async fn start(sources: Sources, ctx: SourceContext) -> Result<Supervisor, BindError> {
        let metrics = ctx.metrics();
        metrics.register_source(Source::Http);
        metrics.register_source(Source::Otlp);
        metrics.register_source(Source::Events);
        metrics.register_source(Source::Reload);
        let supervisor = Supervisor {
            ctx,
            running: Mutex::new(Running::default()),
        };
        let Sources {
            statsd: statsd_config,
            log_tail: log_tails,
            probes,
        } = sources;
        {
            let mut running = supervisor.running.lock().await;
            if let Some(config) = statsd_config {
                running.statsd = Some(supervisor.start_statsd(config).await?);
            }
            for config in log_tails {
                running.log_tails.push(supervisor.start_log_tail(config));
            }
            for config in probes {
                running.probes.push(supervisor.start_probe(config));
            }
        }
        Ok(supervisor)
    }

    /// Makes the running sources those of `sources`: new ones started, gone
    /// ones stopped, changed ones stopped and started again (a log source
    /// resumes where it stopped; StatsD mappings alone change in place, no
    /// datagram lost).
    pub async fn apply(&self, sources: Sources) -> Changes {
        let mut running = self.running.lock().await;
        let mut changes = Changes::default();
        let Sources {
            statsd: statsd_config,
            log_tail: log_tails,
            probes,
        } = sources;
        self.apply_statsd(&mut running, statsd_config, &mut changes)
            .await;
        let old = std::mem::take(&mut running.log_tails);
        let log = Kind {
            label: "log",
            name: |c: &LogTailConfig| &c.name,
            start: Supervisor::start_log_tail,
            forget: |s: &Supervisor, c: &LogTailConfig| {
                s.ctx.metrics().log_tail.unregister(&c.name)
            },
        };
        running.log_tails = self.apply_named(old, log_tails, &log, &mut changes).await;
        let old = std::mem::take(&mut running.probes);
        let probe = Kind {
            label: "probe",
            name: |c: &ProbeConfig| &c.name,
            start: Supervisor::start_probe,
            forget: |s: &Supervisor, c: &ProbeConfig| probe::unregister(&s.ctx.metrics().probe, c),
        };
        running.probes = self.apply_named(old, probes, &probe, &mut changes).await;
        changes
    }

    /// Stops every source, each after committing what it read.
    pub async fn stop(&self) {
        let mut running = self.running.lock().await;
        let Running {
            statsd,
            log_tails,
            probes,
        } = std::mem::take(&mut *running);
        let mut stopping: Vec<JoinHandle<()>> = Vec::new();
        for task in statsd.map(|(t, _)| t).into_iter() {
            task.stop.stop();
            stopping.push(task.handle);
        }
        for task in log_tails {
            task.stop.stop();
            stopping.push(task.handle);
        }
        for task in probes {
            task.stop.stop();
            stopping.push(task.handle);
        }
        for handle in stopping {
            let _ = handle.await;
        }
    }

    /// Starts and stops sources known by name to match `wanted`.
    async fn apply_named<C: PartialEq>(
        &self,
        mut old: Vec<Task<C>>,
        wanted: Vec<C>,
        kind: &Kind<C>,
        changes: &mut Changes,
    ) -> Vec<Task<C>> {
        let mut now = Vec::new();
        for config in wanted {
            let label = format!("{} {}", kind.label, (kind.name)(&config));
            match old
                .iter()
                .position(|t| (kind.name)(&t.config) == (kind.name)(&config))
            {
                Some(i) if old[i].config == config => now.push(old.swap_remove(i)),
                Some(i) => {
                    let stale = old.swap_remove(i).stop().await;
                    (kind.forget)(self, &stale);
                    now.push((kind.start)(self, config));
                    changes.reconfigured.push(label);
                }
                None => {
                    now.push((kind.start)(self, config));
                    changes.started.push(label);
                }
            }
        }
        for task in old {
            let label = format!("{} {}", kind.label, (kind.name)(&task.config));
            let gone = task.stop().await;
            (kind.forget)(self, &gone);
            changes.stopped.push(label);
        }
        now
    }

    async fn apply_statsd(
        &self,
        running: &mut Running,
        wanted: Option<StatsdConfig>,
        changes: &mut Changes,
    ) {
        let label = "statsd".to_owned();
        match (running.statsd.take(), wanted) {
            (None, None) => {}
            (Some((task, live)), Some(config)) if same_sockets(&task.config, &config) => {
                if task.config.mappings != config.mappings {
                    let _ = live.send(Arc::new(config.mappings.clone()));
                    changes.reconfigured.push(format!("{label} mappings"));
                }
                running.statsd = Some((
                    Task {
                        config,
                        stop: task.stop,
                        handle: task.handle,
                    },
                    live,
                ));
            }
            (Some((task, _)), wanted) => {
                // New addresses: the old sockets close first, as the new
                // may be on some of the same ports.
                let previous = task.stop().await;
                match wanted {
                    None => changes.stopped.push(label),
                    Some(config) => match self.start_statsd(config).await {
                        Ok(started) => {
                            running.statsd = Some(started);
                            changes.reconfigured.push(label);
                        }
                        Err(e) => {
                            changes.failed.push(format!("{label}: {e}"));
                            match self.start_statsd(previous).await {
                                Ok(kept) => running.statsd = Some(kept),
                                Err(e) => changes.failed.push(format!(
                                    "{label}: the previous settings failed too: {e}"
                                )),
                            }
                        }
                    },
                }
            }
            (None, Some(config)) => match self.start_statsd(config).await {
                Ok(started) => {
                    running.statsd = Some(started);
                    changes.started.push(label);
                }
                Err(e) => changes.failed.push(format!("{label}: {e}")),
            },
        }
    }

    fn context(&self) -> (StopSources, SourceContext) {
        let (stop, shutdown): (StopSources, Shutdown) = Shutdown::new();
        (stop, self.ctx.with_shutdown(shutdown))
    }

    async fn start_statsd(&self, config: StatsdConfig) -> Result<StatsdTask, BindError> {
        let listeners = statsd::bind(&config).await?;
        self.ctx.metrics().register_source(Source::Statsd);
        let (live, mappings) = watch::channel(Arc::new(config.mappings.clone()));
        let (stop, ctx) = self.context();
        let handle = tokio::spawn(statsd::run(listeners, mappings, ctx));
        Ok((
            Task {
                config,
                stop,
                handle,
            },
            live,
        ))
    }

    fn start_log_tail(&self, config: LogTailConfig) -> Task<LogTailConfig> {
        self.ctx.metrics().register_source(Source::LogTail);
        self.ctx.metrics().log_tail.register(&config.name);
        let (stop, ctx) = self.context();
        let handle = tokio::spawn(log_tail::run(config.clone(), ctx));
        Task {
            config,
            stop,
            handle,
        }
    }

    fn start_probe(&self, config: ProbeConfig) -> Task<ProbeConfig> {
        self.ctx.metrics().register_source(Source::Probe);
        probe::register(&self.ctx.metrics().probe, &config);
        let (stop, ctx) = self.context();
        let handle = tokio::spawn(probe::run(config.clone(), ctx));
        Task {
            config,
            stop,
            handle,
        }
    }
}

/// A kind of source known by name: how to name, start and forget one.
struct Kind<C> {
    label: &'static str,
    name: fn(&C) -> &String,
    start: fn(&Supervisor, C) -> Task<C>,
    /// Removes the series of one that stopped for good.
    forget: fn(&Supervisor, &C),
}

/// Whether two StatsD configs listen on the same sockets.
fn same_sockets(a: &StatsdConfig, b: &StatsdConfig) -> bool {
    a.listen == b.listen && a.tcp_listen == b.tcp_listen && a.unix_listen == b.unix_listen
}
