//! The ceiling of this machine for the throughput benchmark: the same
//! 100-connection, 64-byte, one-in-flight echo as the WebSocket runs, over
//! plain TCP with no framing, on one single-threaded runtime per side.
//!
//! `raw_tcp server ADDR` echoes; `raw_tcp client ADDR CONNS SECONDS SIZE`
//! runs the ping-pong and prints `raw_tcp round_trips=N seconds=S`.
//!
//! `raw_tcp pipeline ADDR CONNS SECONDS SIZE INFLIGHT` is the ceiling for the
//! pipelined flood: each connection keeps INFLIGHT messages of SIZE bytes in
//! flight and, for every batch of replies read, writes as many new ones in
//! one write; nothing is framed, parsed or timed. Prints
//! `raw_tcp messages=N seconds=S`.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.get(1).map(String::as_str) {
        Some("server") => rt.block_on(server(&args[2])),
        Some("client") => {
            let conns: usize = args[3].parse().expect("connections");
            let secs: u64 = args[4].parse().expect("seconds");
            let size: usize = args[5].parse().expect("size");
            rt.block_on(client(&args[2], conns, Duration::from_secs(secs), size));
        }
        Some("pipeline") => {
            let conns: usize = args[3].parse().expect("connections");
            let secs: u64 = args[4].parse().expect("seconds");
            let size: usize = args[5].parse().expect("size");
            let inflight: usize = args[6].parse().expect("inflight");
            rt.block_on(pipeline(
                &args[2],
                conns,
                Duration::from_secs(secs),
                size,
                inflight,
            ));
        }
        _ => eprintln!(
            "usage: raw_tcp server ADDR | client ADDR CONNS SECONDS SIZE | \
             pipeline ADDR CONNS SECONDS SIZE INFLIGHT"
        ),
    }
}

async fn server(addr: &str) {
    let listener = TcpListener::bind(addr).await.expect("bind");
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        let _ = s.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}

async fn client(addr: &str, conns: usize, run: Duration, size: usize) {
    let deadline = Instant::now() + run;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let _ = s.set_nodelay(true);
        tasks.push(tokio::spawn(async move {
            let msg = vec![b'x'; size];
            let mut buf = vec![0u8; size];
            let mut n = 0u64;
            while Instant::now() < deadline {
                if s.write_all(&msg).await.is_err() || s.read_exact(&mut buf).await.is_err() {
                    break;
                }
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    println!("raw_tcp round_trips={total} seconds={}", run.as_secs());
}

async fn pipeline(addr: &str, conns: usize, run: Duration, size: usize, inflight: usize) {
    let deadline = Instant::now() + run;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let _ = s.set_nodelay(true);
        tasks.push(tokio::spawn(async move {
            let batch = vec![b'x'; size * inflight];
            let mut buf = vec![0u8; size * inflight];
            // Bytes of a message whose end has not come yet.
            let mut partial = 0usize;
            let mut n = 0u64;
            if s.write_all(&batch).await.is_err() {
                return 0;
            }
            while Instant::now() < deadline {
                let got = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(got) => got,
                };
                let whole = (partial + got) / size;
                partial = (partial + got) % size;
                n += whole as u64;
                if whole > 0 && s.write_all(&batch[..whole * size]).await.is_err() {
                    break;
                }
            }
            n
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    println!("raw_tcp messages={total} seconds={}", run.as_secs());
}
