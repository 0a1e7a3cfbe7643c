//! Channel throughput: 100-byte records in batches from one producer to one
//! consumer, through an in-process channel (how subtasks on one
//! TaskManager exchange data) and through a QUIC data stream on loopback
//! with mutual TLS, encoding and decoding included (how subtasks on two
//! TaskManagers do). Prints records/s and MB/s of record payload for both.
//!
//! `cargo run --release -p weir-rpc --example shuffle -- [RECORDS] [BATCH]`
//! (defaults: 5,000,000 records, batches of 1,024).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use weir_rpc::{DataChannelHeader, DataReceiver, DataSender, Liveness, NodeIdentity};
use weir_types::{Batch, Bytes, Origin, Record, StreamElement};

const VALUE_BYTES: usize = 100;

fn batch(n: usize, first: u64) -> StreamElement {
    let mut batch = Batch::with_capacity(n);
    let buffer = Bytes::from(vec![b'v'; VALUE_BYTES * n]);
    for i in 0..n {
        batch.push(
            Record {
                key: Some((first + i as u64).to_le_bytes().to_vec()),
                value: buffer.slice(i * VALUE_BYTES..(i + 1) * VALUE_BYTES),
                timestamp: Some((first + i as u64) as i64),
            },
            Origin {
                split: 0,
                position: first + i as u64,
            },
        );
    }
    StreamElement::Batch(batch)
}

fn report(name: &str, records: u64, elapsed: Duration) -> f64 {
    let rate = records as f64 / elapsed.as_secs_f64();
    println!(
        "{name:<22} {records} records in {:>7.3} s: {:>12.0} records/s, {:>8.1} MB/s of payload",
        elapsed.as_secs_f64(),
        rate,
        rate * VALUE_BYTES as f64 / 1e6
    );
    rate
}

fn in_process(records: u64, batch_size: usize) -> f64 {
    let (tx, rx) = crossbeam_channel::bounded::<(u32, StreamElement)>(64);
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        let mut sent = 0;
        while sent < records {
            tx.send((0, batch(batch_size, sent))).unwrap();
            sent += batch_size as u64;
        }
    });
    let mut got = 0u64;
    while let Ok((_, StreamElement::Batch(b))) = rx.recv() {
        got += b.len() as u64;
    }
    producer.join().unwrap();
    report("in-process channel", got, start.elapsed())
}

fn quic(records: u64, batch_size: usize) -> f64 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = std::env::temp_dir().join(format!("weir-shuffle-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        weir_rpc::init_dev_certs(&dir, &[]).unwrap();
        let identity = NodeIdentity::load(&dir).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let liveness = Liveness {
            keep_alive: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(10),
        };
        let server =
            weir_rpc::server_endpoint("127.0.0.1:0".parse().unwrap(), &identity, liveness).unwrap();
        let addr = server.local_addr().unwrap();
        let client =
            weir_rpc::client_endpoint("127.0.0.2:0".parse().unwrap(), &identity, liveness).unwrap();
        let (connection, server_side) = tokio::join!(weir_rpc::connect(&client, addr), async {
            server.accept().await.unwrap().await.unwrap()
        });
        let connection = connection.unwrap();
        let header = DataChannelHeader {
            epoch: 1,
            job: "bench".into(),
            attempt: 1,
            consumer: "sink".into(),
            subtask: 0,
            channel: 0,
        };
        let start = Instant::now();
        let producer = tokio::spawn(async move {
            let mut sender = DataSender::open(&connection, &header).await.unwrap();
            let mut sent = 0;
            while sent < records {
                sender.send(&batch(batch_size, sent)).await.unwrap();
                sent += batch_size as u64;
            }
            sender.send(&StreamElement::EndOfInput).await.unwrap();
            sender.finish().unwrap();
            connection
        });
        let (_, mut receiver) = DataReceiver::accept(&server_side).await.unwrap();
        let mut got = 0u64;
        while let Some(element) = receiver.recv().await.unwrap() {
            match element {
                StreamElement::Batch(b) => got += b.len() as u64,
                StreamElement::EndOfInput => break,
                _ => {}
            }
        }
        let elapsed = start.elapsed();
        let _connection = producer.await.unwrap();
        report("QUIC stream (mTLS)", got, elapsed)
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let records: u64 = args.next().map_or(5_000_000, |a| a.parse().unwrap());
    let batch_size: usize = args.next().map_or(1024, |a| a.parse().unwrap());
    println!(
        "{records} records of {VALUE_BYTES} bytes (8-byte key, timestamp, origin), batches of {batch_size}"
    );
    let local = in_process(records, batch_size);
    let remote = quic(records, batch_size);
    println!("QUIC / in-process: {:.2}", remote / local);
}
