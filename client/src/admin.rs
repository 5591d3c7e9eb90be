//! The cluster admin calls of `cellkv-cli cluster ...`: a node's `Admin` gRPC service on its
//! Raft port (status, add and remove a node, move leadership, build a snapshot), and the
//! human-readable text the tool prints for each answer.
//!
//! Membership calls may go to any member: a follower forwards them to the leader. Every call
//! has a deadline ([`AdminOptions`]).

use std::fmt::Write as _;
use std::time::Duration;

use cellkv_proto::v1::admin_client::AdminClient as GrpcAdminClient;
use cellkv_proto::v1::{
    AddNodeRequest, AdminReply, RemoveNodeRequest, SnapshotRequest, StatusReply, StatusRequest,
    TransferLeaderRequest,
};
use thiserror::Error;
use tonic::transport::{Channel, Endpoint};
use tonic::Request;

/// Why an admin call failed.
#[derive(Debug, Error)]
pub enum AdminError {
    /// The address is not a usable `host:port`.
    #[error("invalid node address '{0}': {1}")]
    Address(String, String),
    /// A TLS file could not be read.
    #[error("{0}: {1}")]
    TlsFile(String, String),
    /// The node could not be connected to.
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    /// The call failed on the way (or ran out of time).
    #[error("{0}: {1}")]
    Call(String, String),
    /// The cell refused or could not do what was asked.
    #[error("{0}")]
    Refused(String),
}

/// Deadlines of an [`AdminClient`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminOptions {
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long one call may take (adding a node waits for it to catch up).
    pub call_timeout: Duration,
}

impl Default for AdminOptions {
    fn default() -> Self {
        AdminOptions {
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(90),
        }
    }
}

/// A connection to one node's `Admin` service.
pub struct AdminClient {
    addr: String,
    client: GrpcAdminClient<Channel>,
    options: AdminOptions,
}

/// The PEM files that identify the tool to a cell whose members speak mutual TLS
/// (`tls-replication yes`): the same `tls-cert-file`, `tls-key-file` and `tls-ca-cert-file`
/// a node uses, or another certificate the cell's CA signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminTls {
    /// The client certificate chain.
    pub cert_file: std::path::PathBuf,
    /// Its private key.
    pub key_file: std::path::PathBuf,
    /// The CA that signed the members' certificates.
    pub ca_file: std::path::PathBuf,
}

#[cfg(not(madsim))]
impl AdminTls {
    fn client_config(&self) -> Result<tonic::transport::ClientTlsConfig, AdminError> {
        let read = |path: &std::path::Path| {
            std::fs::read(path)
                .map_err(|e| AdminError::TlsFile(path.display().to_string(), e.to_string()))
        };
        let identity =
            tonic::transport::Identity::from_pem(read(&self.cert_file)?, read(&self.key_file)?);
        Ok(tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(read(
                &self.ca_file,
            )?))
            .identity(identity))
    }
}

impl AdminClient {
    /// Connects to the Raft port at `addr` (`host:port`).
    pub async fn connect(addr: &str, options: AdminOptions) -> Result<AdminClient, AdminError> {
        Self::connect_endpoint(addr, format!("http://{addr}"), options, Ok).await
    }

    /// Connects to the Raft port at `addr` of a cell whose members require mutual TLS.
    #[cfg(not(madsim))]
    pub async fn connect_tls(
        addr: &str,
        options: AdminOptions,
        tls: &AdminTls,
    ) -> Result<AdminClient, AdminError> {
        let config = tls.client_config()?;
        let url = format!("https://{addr}");
        Self::connect_endpoint(addr, url, options, move |endpoint| {
            endpoint
                .tls_config(config)
                .map_err(|e| AdminError::Connect(addr.to_string(), e.to_string()))
        })
        .await
    }

    async fn connect_endpoint(
        addr: &str,
        url: String,
        options: AdminOptions,
        secure: impl FnOnce(Endpoint) -> Result<Endpoint, AdminError>,
    ) -> Result<AdminClient, AdminError> {
        let endpoint = Endpoint::from_shared(url)
            .map_err(|e| AdminError::Address(addr.to_string(), e.to_string()))?
            .connect_timeout(options.connect_timeout)
            .timeout(options.call_timeout);
        let endpoint = secure(endpoint)?;
        let channel = tokio::time::timeout(options.connect_timeout, endpoint.connect())
            .await
            .map_err(|_| AdminError::Connect(addr.to_string(), "timed out".to_string()))?
            .map_err(|e| AdminError::Connect(addr.to_string(), e.to_string()))?;
        Ok(AdminClient {
            addr: addr.to_string(),
            client: GrpcAdminClient::new(channel),
            options,
        })
    }

    /// The node's view of the cell.
    pub async fn status(&mut self) -> Result<StatusReply, AdminError> {
        let request = self.request(StatusRequest::default());
        let limit = self.options.call_timeout;
        let reply = tokio::time::timeout(limit, self.client.status(request)).await;
        let reply = self.unwrap(reply)?;
        if reply.error.is_empty() {
            Ok(reply)
        } else {
            Err(AdminError::Refused(reply.error))
        }
    }

    /// Adds node `id` at Raft address `addr`; returns once it is a voter.
    pub async fn add_node(&mut self, id: u64, addr: &str) -> Result<AdminReply, AdminError> {
        let request = self.request(AddNodeRequest {
            node_id: id,
            addr: addr.to_string(),
            cluster: String::new(),
        });
        let limit = self.options.call_timeout;
        let reply = tokio::time::timeout(limit, self.client.add_node(request)).await;
        checked(self.unwrap(reply)?)
    }

    /// Removes node `id` (leadership moves first when it leads).
    pub async fn remove_node(&mut self, id: u64) -> Result<AdminReply, AdminError> {
        let request = self.request(RemoveNodeRequest {
            node_id: id,
            cluster: String::new(),
        });
        let limit = self.options.call_timeout;
        let reply = tokio::time::timeout(limit, self.client.remove_node(request)).await;
        checked(self.unwrap(reply)?)
    }

    /// Makes node `id` the leader.
    pub async fn transfer_leader(&mut self, id: u64) -> Result<AdminReply, AdminError> {
        let request = self.request(TransferLeaderRequest {
            node_id: id,
            cluster: String::new(),
        });
        let limit = self.options.call_timeout;
        let reply = tokio::time::timeout(limit, self.client.transfer_leader(request)).await;
        checked(self.unwrap(reply)?)
    }

    /// Builds a snapshot on this node now.
    pub async fn snapshot(&mut self) -> Result<AdminReply, AdminError> {
        let request = self.request(SnapshotRequest::default());
        let limit = self.options.call_timeout;
        let reply = tokio::time::timeout(limit, self.client.snapshot(request)).await;
        checked(self.unwrap(reply)?)
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.options.call_timeout);
        request
    }

    fn unwrap<T>(
        &self,
        reply: Result<Result<tonic::Response<T>, tonic::Status>, tokio::time::error::Elapsed>,
    ) -> Result<T, AdminError> {
        match reply {
            Err(_) => Err(AdminError::Call(
                self.addr.clone(),
                format!("no answer within {:?}", self.options.call_timeout),
            )),
            Ok(Err(status)) => Err(AdminError::Call(
                self.addr.clone(),
                status.message().to_string(),
            )),
            Ok(Ok(reply)) => Ok(reply.into_inner()),
        }
    }
}

fn checked(reply: AdminReply) -> Result<AdminReply, AdminError> {
    if reply.error.is_empty() {
        Ok(reply)
    } else {
        Err(AdminError::Refused(reply.error))
    }
}

fn ids(ids: &[u64]) -> String {
    if ids.is_empty() {
        return "-".to_string();
    }
    ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// `cluster status` as people read it: one `name value` line per field.
pub fn format_status(status: &StatusReply) -> String {
    let leader = match status.leader_id {
        0 => "none".to_string(),
        id => id.to_string(),
    };
    let mut out = String::new();
    for (name, value) in [
        ("node_id", status.node_id.to_string()),
        ("cluster", status.cluster.clone()),
        ("raft_addr", status.raft_addr.clone()),
        ("resp_port", status.resp_port.to_string()),
        ("state", status.state.clone()),
        ("term", status.term.to_string()),
        ("leader", leader),
        ("commit_index", status.commit_index.to_string()),
        ("applied_index", status.applied_index.to_string()),
        ("voters", ids(&status.voters)),
        ("learners", ids(&status.learners)),
    ] {
        let _ = writeln!(out, "{name:<16}{value}");
    }
    out
}

/// The answer to a membership call: what was done, then the cell after it.
pub fn format_reply(reply: &AdminReply) -> String {
    let leader = match reply.leader_id {
        0 => "none".to_string(),
        id => id.to_string(),
    };
    let mut out = String::new();
    if !reply.message.is_empty() {
        let _ = writeln!(out, "{}", reply.message);
    }
    let _ = writeln!(out, "{:<16}{leader}", "leader");
    let _ = writeln!(out, "{:<16}{}", "voters", ids(&reply.voters));
    let _ = writeln!(out, "{:<16}{}", "learners", ids(&reply.learners));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lists_every_field_with_readable_ids() {
        let status = StatusReply {
            node_id: 2,
            state: "Follower".to_string(),
            leader_id: 1,
            voters: vec![1, 2, 3],
            ..StatusReply::default()
        };
        let text = format_status(&status);
        assert!(text.contains("node_id         2\n"), "{text}");
        assert!(text.contains("leader          1\n"), "{text}");
        assert!(text.contains("voters          1,2,3\n"), "{text}");
        assert!(text.contains("learners        -\n"), "{text}");
        let none = format_status(&StatusReply::default());
        assert!(none.contains("leader          none\n"), "{none}");
    }

    #[test]
    fn reply_says_what_was_done_first() {
        let reply = AdminReply {
            message: "node 4 caught up and is now a voter".to_string(),
            leader_id: 1,
            voters: vec![1, 2, 3, 4],
            ..AdminReply::default()
        };
        assert_eq!(
            format_reply(&reply),
            "node 4 caught up and is now a voter\nleader          1\nvoters          1,2,3,4\nlearners        -\n"
        );
    }
}
