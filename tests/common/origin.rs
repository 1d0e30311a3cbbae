//! A small origin web server the tests control: it answers with a chosen
//! status after a chosen delay, on a thread inside a namespace.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Router;

#[derive(Clone, Copy, Debug)]
pub struct Behaviour {
    pub status: u16,
    pub delay: Duration,
}

pub struct OriginServer {
    /// Where it listens (the real port when started on port 0).
    pub addr: SocketAddr,
    pub behaviour: Arc<Mutex<Behaviour>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OriginServer {
    /// Serve on `addr` inside the namespace at `netns` (None: this one).
    pub fn start(netns: Option<&str>, addr: SocketAddr) -> OriginServer {
        let behaviour = Arc::new(Mutex::new(Behaviour {
            status: 200,
            delay: Duration::ZERO,
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let shared = Arc::clone(&behaviour);
        let path = netns.map(|n| format!("/var/run/netns/{n}"));
        let thread = std::thread::spawn(move || {
            if let Some(p) = path {
                super::enter(&p);
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .expect("bind origin");
                ready_tx
                    .send(listener.local_addr().expect("local addr"))
                    .expect("ready");
                let app = Router::new().fallback(answer).with_state(shared);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("origin server");
            });
        });
        let addr = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("origin server did not start");
        OriginServer {
            addr,
            behaviour,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn set(&self, status: u16, delay: Duration) {
        *self.behaviour.lock().unwrap() = Behaviour { status, delay };
    }
}

impl Drop for OriginServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        // Graceful shutdown waits for open connections; do not hang a
        // failing test on a slow request.
        if let Some(t) = self.thread.take() {
            let until = std::time::Instant::now() + Duration::from_secs(5);
            while !t.is_finished() && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

async fn answer(State(b): State<Arc<Mutex<Behaviour>>>) -> (StatusCode, &'static str) {
    let now = *b.lock().unwrap();
    if !now.delay.is_zero() {
        tokio::time::sleep(now.delay).await;
    }
    (
        StatusCode::from_u16(now.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        "origin\n",
    )
}
