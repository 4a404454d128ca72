//! `dead-letters`: list or replay what consumers gave up on.
//!
//! ```text
//! dead-letters list   --stream events:order
//! dead-letters replay --stream events:order
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use service_kit::config::RedisConfig;

/// List or replay the dead letters of an event stream.
#[derive(Parser)]
#[command(name = "dead-letters", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    #[command(flatten)]
    redis: RedisConfig,

    /// Partitions of the stream, as the services are configured (each partition has
    /// dead letters of its own; all are listed or replayed).
    #[arg(long, env = "EVENT_PARTITIONS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024), hide_env_values = true)]
    partitions: u16,
}

#[derive(Subcommand)]
enum Command {
    /// Print each dead letter as one JSON line.
    List {
        /// The event stream, e.g. events:order.
        #[arg(long)]
        stream: String,
    },
    /// Append every dead letter to its stream again and remove it from the dead letters.
    Replay {
        /// The event stream, e.g. events:order.
        #[arg(long)]
        stream: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = service_kit::config::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let redis = cli.redis.connect().await?;
    let partitions = |stream: &str| event_bus::Stream::new(stream, cli.partitions).partitions();
    match cli.command {
        Command::List { stream } => {
            for partition in partitions(&stream) {
                list(&redis, &partition).await?;
            }
        }
        Command::Replay { stream } => {
            let mut replayed = 0;
            for partition in partitions(&stream) {
                replayed += event_bus::dead_letters::replay(&redis, &partition).await?;
            }
            println!("replayed {replayed} dead letter(s) to {stream}");
        }
    }
    Ok(())
}

/// Prints the dead letters of one partition, a JSON line each.
async fn list(redis: &service_kit::redis::Connection, partition: &str) -> anyhow::Result<()> {
    for letter in event_bus::dead_letters::list(redis, partition).await? {
        let line = serde_json::json!({
            "id": letter.id,
            "stream": letter.stream,
            "group": letter.group,
            "original_id": letter.original_id,
            "error": letter.error,
            "envelope": serde_json::from_str::<serde_json::Value>(&letter.envelope)
                .unwrap_or(serde_json::Value::String(letter.envelope)),
        });
        println!("{line}");
    }
    Ok(())
}
