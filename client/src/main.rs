//! `cellkv-cli`: the admin tool for a cellkv node. `ping`, `info`, `status` (role, Raft
//! state and key counts at a glance), `ready` (a readiness probe: the cell has a leader and
//! this node caught up with it) and `raw` (any command, reply printed as `redis-cli` prints
//! it), and `cluster` (status, add-node, remove-node, transfer-leader, step-down, snapshot
//! over the node's Admin gRPC service; `--node` is then the node's Raft port).
//!
//! Exit status: 0 on success, 1 when the node cannot be reached, the call fails, the reply is
//! an error or the node is not ready, 2 on a usage error.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use cellkv_client::admin::{self, AdminClient, AdminOptions};
use cellkv_client::health::{self, Leader};
use cellkv_client::{format, info, Client, ClientOptions, Frame};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "cellkv-cli", version, about = "Admin tool for cellkv nodes")]
struct Cli {
    /// The node to talk to.
    #[arg(
        long,
        global = true,
        env = "CELLKV_NODE",
        default_value = "127.0.0.1:6379",
        value_name = "HOST:PORT"
    )]
    node: String,
    /// Seconds to wait for a connection.
    #[arg(long, global = true, default_value_t = 5.0, value_name = "SECS")]
    connect_timeout: f64,
    /// Seconds a command may take; 0 waits forever (for blocking commands).
    #[arg(long, global = true, default_value_t = 30.0, value_name = "SECS")]
    timeout: f64,
    /// `cluster` commands: the members speak mutual TLS (`tls-replication yes`), so connect
    /// with the certificate, key and CA below (the node's own settings and variables).
    #[arg(long, global = true, env = "CELLKV_TLS_REPLICATION", value_name = "yes|no",
          default_value = "no", value_parser = ["yes", "no"])]
    tls_replication: String,
    /// Certificate presented to the node (`tls-replication yes`).
    #[arg(long, global = true, env = "CELLKV_TLS_CERT_FILE", value_name = "PATH")]
    tls_cert_file: Option<std::path::PathBuf>,
    /// Private key of that certificate.
    #[arg(long, global = true, env = "CELLKV_TLS_KEY_FILE", value_name = "PATH")]
    tls_key_file: Option<std::path::PathBuf>,
    /// CA that signed the members' certificates.
    #[arg(
        long,
        global = true,
        env = "CELLKV_TLS_CA_CERT_FILE",
        value_name = "PATH"
    )]
    tls_ca_cert_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Checks that the node answers; prints PONG.
    Ping,
    /// Prints the INFO text: the default sections, or one section (`all`, `everything`, ...).
    Info {
        /// Section name, e.g. `replication` or `keyspace`.
        section: Option<String>,
    },
    /// Prints the node's role, its Raft state and the number of keys per database.
    Status,
    /// Readiness probe: succeeds when the cell has a leader and this node has applied what the
    /// leader had committed (a follower asks the leader over RESP); prints why otherwise.
    Ready {
        /// Seconds a follower may take to apply up to the leader's commit index.
        #[arg(long, default_value_t = 2.0, value_name = "SECS")]
        catch_up_wait: f64,
    },
    /// Cluster membership and maintenance; `--node` is the node's Raft port (HOST:RAFTPORT).
    /// Any member will do: followers forward to the leader. Calls wait at least 90 s (adding
    /// a node waits for it to catch up); a longer --timeout extends that.
    Cluster {
        #[command(subcommand)]
        action: ClusterCommand,
    },
    /// Sends any command and prints the reply as redis-cli does.
    Raw {
        /// The command and its arguments, e.g. `set k v`.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// The node's view of the cell: state, term, leader, indexes, voters and learners.
    Status,
    /// Adds a node (started with a fresh data directory) as a learner, waits until it caught
    /// up, then makes it a voter. Ids are never reused.
    AddNode {
        /// The new node's id (`--node-id` it was started with).
        id: u64,
        /// Its Raft address, HOST:RAFTPORT.
        addr: String,
    },
    /// Removes a node; removing the leader moves leadership first.
    RemoveNode {
        /// The node's id.
        id: u64,
    },
    /// Makes a voter the leader.
    TransferLeader {
        /// The voter's id.
        id: u64,
    },
    /// Moves leadership away from this node, if it leads, to another voter (tried in id
    /// order until one takes over); for a node about to stop. Does nothing on a follower.
    StepDown,
    /// Builds a snapshot on this node now.
    Snapshot,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cellkv-cli: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Cluster { action } = &cli.command {
        return cluster(&cli, action).await;
    }
    let options = ClientOptions {
        connect_timeout: seconds(cli.connect_timeout, "--connect-timeout")?,
        call_timeout: match seconds(cli.timeout, "--timeout")? {
            Duration::ZERO => None,
            limit => Some(limit),
        },
    };
    let mut client = Client::connect_with(&cli.node, options)
        .await
        .with_context(|| format!("cannot connect to {}", cli.node))?;
    match cli.command {
        Command::Ping => {
            let reply = call(&mut client, vec![b"PING".to_vec()]).await?;
            Ok(print_reply(&reply))
        }
        Command::Raw { args } => {
            let reply = call(&mut client, args.into_iter().map(arg_bytes).collect()).await?;
            Ok(print_reply(&reply))
        }
        Command::Info { section } => {
            let mut args = vec![b"INFO".to_vec()];
            args.extend(section.map(String::into_bytes));
            let text = info_text(&mut client, args).await?;
            print!("{}", text.replace("\r\n", "\n"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Cluster { .. } => Err(anyhow!("cluster commands go to the Raft port")),
        Command::Ready { catch_up_wait } => {
            let wait = seconds(catch_up_wait, "--catch-up-wait")?;
            match ready(&mut client, options, wait).await {
                Ok(text) => {
                    println!("ready: {text}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(text) => {
                    println!("not ready: {text}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Status => {
            let text =
                info_text(&mut client, vec![b"INFO".to_vec(), b"everything".to_vec()]).await?;
            println!("{:<26}{}", "node", cli.node);
            print!("{}", info::status_summary(&text));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs a `cluster` subcommand against the node's Admin service.
async fn cluster(cli: &Cli, action: &ClusterCommand) -> anyhow::Result<ExitCode> {
    // Adding a node waits for it to catch up, which takes longer than one command: a zero
    // (wait forever) or short --timeout still leaves the server's own deadlines in charge.
    let call_timeout = match seconds(cli.timeout, "--timeout")? {
        Duration::ZERO => AdminOptions::default().call_timeout,
        limit => limit.max(AdminOptions::default().call_timeout),
    };
    let options = AdminOptions {
        connect_timeout: seconds(cli.connect_timeout, "--connect-timeout")?,
        call_timeout,
    };
    let mut client = if cli.tls_replication == "yes" {
        let (Some(cert_file), Some(key_file), Some(ca_file)) = (
            cli.tls_cert_file.clone(),
            cli.tls_key_file.clone(),
            cli.tls_ca_cert_file.clone(),
        ) else {
            anyhow::bail!(
                "--tls-replication yes needs --tls-cert-file, --tls-key-file and --tls-ca-cert-file"
            );
        };
        let tls = admin::AdminTls {
            cert_file,
            key_file,
            ca_file,
        };
        AdminClient::connect_tls(&cli.node, options, &tls).await?
    } else {
        AdminClient::connect(&cli.node, options).await?
    };
    let reply = match action {
        ClusterCommand::Status => {
            let status = client.status().await?;
            print!("{}", admin::format_status(&status));
            return Ok(ExitCode::SUCCESS);
        }
        ClusterCommand::AddNode { id, addr } => client
            .add_node(*id, addr)
            .await
            .with_context(|| format!("add-node {id} {addr}"))?,
        ClusterCommand::RemoveNode { id } => client
            .remove_node(*id)
            .await
            .with_context(|| format!("remove-node {id}"))?,
        ClusterCommand::TransferLeader { id } => client
            .transfer_leader(*id)
            .await
            .with_context(|| format!("transfer-leader {id}"))?,
        ClusterCommand::Snapshot => client.snapshot().await.context("snapshot")?,
        ClusterCommand::StepDown => {
            let status = client.status().await?;
            if status.leader_id != status.node_id {
                println!(
                    "node {} does not lead (leader: {}); nothing to move",
                    status.node_id,
                    match status.leader_id {
                        0 => "none".to_string(),
                        id => id.to_string(),
                    }
                );
                return Ok(ExitCode::SUCCESS);
            }
            let mut failures = Vec::new();
            let mut moved = None;
            for &id in status.voters.iter().filter(|id| **id != status.node_id) {
                match client.transfer_leader(id).await {
                    Ok(reply) => {
                        moved = Some(reply);
                        break;
                    }
                    Err(e) => failures.push(format!("node {id}: {e}")),
                }
            }
            match moved {
                Some(reply) => reply,
                None if failures.is_empty() => {
                    return Err(anyhow!(
                        "node {} is the only voter; there is nobody to hand leadership to",
                        status.node_id
                    ))
                }
                None => return Err(anyhow!("no voter took over: {}", failures.join("; "))),
            }
        }
    };
    print!("{}", admin::format_reply(&reply));
    Ok(ExitCode::SUCCESS)
}

/// The readiness check of `cellkv-cli ready` (see [`health`]): `Ok` with what was found, or
/// `Err` with why the node is not ready.
async fn ready(
    client: &mut Client,
    options: ClientOptions,
    wait: Duration,
) -> Result<String, String> {
    let replication = || vec![b"INFO".to_vec(), b"replication".to_vec()];
    let own = info_text(client, replication())
        .await
        .map_err(|e| format!("{e:#}"))?;
    let (leader_id, addr) = match health::leader_of(&own)? {
        Leader::Itself { node_id } => return Ok(format!("node {node_id} leads")),
        Leader::Other { leader_id, addr } => (leader_id, addr),
    };
    let mut leader = Client::connect_with(&addr, options)
        .await
        .map_err(|e| format!("cannot reach the leader, node {leader_id}, at {addr}: {e}"))?;
    let theirs = info_text(&mut leader, replication())
        .await
        .map_err(|e| format!("asking the leader, node {leader_id}: {e:#}"))?;
    let commit = health::leader_commit(&theirs, leader_id)?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let own = info_text(client, replication())
            .await
            .map_err(|e| format!("{e:#}"))?;
        let applied = health::applied_index(&own).ok_or("INFO has no raft_applied_index")?;
        if health::caught_up(applied, commit) {
            return Ok(format!(
                "following node {leader_id}; applied {applied}, the leader had committed {commit}"
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "applied {applied}, behind the leader's (node {leader_id}) commit index {commit} after {wait:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A non-negative, finite number of seconds.
fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow!("{flag} must be a number of seconds >= 0"))
}

async fn call(client: &mut Client, args: Vec<Vec<u8>>) -> anyhow::Result<Frame> {
    client
        .command(&args)
        .await
        .with_context(|| format!("talking to {}", client.addr()))
}

/// Prints like redis-cli; an error reply fails the process so scripts notice.
fn print_reply(reply: &Frame) -> ExitCode {
    print!("{}", format::format_reply(reply));
    if reply.is_error() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The text of an `INFO` reply: a bulk string in RESP2, verbatim text in RESP3.
async fn info_text(client: &mut Client, args: Vec<Vec<u8>>) -> anyhow::Result<String> {
    match call(client, args).await? {
        Frame::Bulk(data) | Frame::Verbatim(_, data) => Ok(String::from_utf8_lossy(&data).into()),
        Frame::Error(text) => Err(anyhow!("(error) {text}")),
        other => Err(anyhow!(
            "unexpected INFO reply: {}",
            format::format_reply(&other).trim_end()
        )),
    }
}

/// Arguments reach the server byte for byte, even when they are not UTF-8.
fn arg_bytes(arg: OsString) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        arg.into_vec()
    }
    #[cfg(not(unix))]
    {
        arg.to_string_lossy().into_owned().into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The clap definition is internally consistent.
    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    /// `raw` takes dash-leading arguments as data, and global flags work after the subcommand.
    #[test]
    fn raw_keeps_dashes_and_global_flags_parse_anywhere() {
        let cli = Cli::try_parse_from(["cellkv-cli", "raw", "incrby", "k", "-5"]).expect("parse");
        match cli.command {
            Command::Raw { args } => assert_eq!(args, ["incrby", "k", "-5"]),
            other => panic!("parsed as {other:?}"),
        }
        let cli =
            Cli::try_parse_from(["cellkv-cli", "ping", "--node", "10.0.0.1:7000"]).expect("parse");
        assert_eq!(cli.node, "10.0.0.1:7000");
    }

    /// `cluster` subcommands parse their ids and addresses.
    #[test]
    fn cluster_subcommands_parse() {
        let cli = Cli::try_parse_from([
            "cellkv-cli",
            "--node",
            "127.0.0.1:16379",
            "cluster",
            "add-node",
            "4",
            "127.0.0.1:16382",
        ])
        .expect("parse");
        match cli.command {
            Command::Cluster {
                action: ClusterCommand::AddNode { id, addr },
            } => assert_eq!((id, addr.as_str()), (4, "127.0.0.1:16382")),
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["cellkv-cli", "cluster", "remove-node", "x"]).is_err());
    }

    /// Negative or non-finite timeouts are refused rather than wrapped.
    #[test]
    fn timeouts_must_be_non_negative() {
        assert_eq!(
            seconds(1.5, "--timeout").expect("ok"),
            Duration::from_millis(1500)
        );
        assert!(seconds(-1.0, "--timeout").is_err());
        assert!(seconds(f64::NAN, "--timeout").is_err());
    }
}
