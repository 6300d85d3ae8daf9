//! Signals: SIGTERM or SIGINT to stop (an orchestrator, a terminal), SIGHUP to reload.
//!
//! Each listener is registered when its function is called, not when its
//! future is first polled: a signal that arrives once the exporter has said
//! it is listening must never meet the default action (which ends the
//! process).

use std::future::Future;

/// Listens for SIGTERM and SIGINT from now on; the future resolves when
/// either arrives. Call it inside the runtime, before announcing readiness.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal as listen};
        let listen = |kind: SignalKind, name: &'static str| match listen(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for {name}");
                None
            }
        };
        let terminate = listen(SignalKind::terminate(), "SIGTERM");
        let interrupt = listen(SignalKind::interrupt(), "SIGINT");
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => tracing::info!("SIGINT received, shutting down"),
                () = wait(terminate) => tracing::info!("SIGTERM received, shutting down"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("interrupt received, shutting down");
        } else {
            std::future::pending::<()>().await;
        }
    }
}

/// Listens for SIGHUP from now on; the future calls `reload` on each until
/// the process stops. Call it inside the runtime, before announcing readiness.
pub fn on_hangup<F: Future<Output = ()>>(
    mut reload: impl FnMut() -> F,
) -> impl Future<Output = ()> {
    #[cfg(unix)]
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    async move {
        #[cfg(unix)]
        match hangups {
            Ok(mut s) => {
                while s.recv().await.is_some() {
                    tracing::info!("SIGHUP received, reloading the config");
                    reload().await;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; reload with POST /-/reload")
            }
        }
        #[cfg(not(unix))]
        {
            let _ = &mut reload;
            std::future::pending::<()>().await;
        }
    }
}
