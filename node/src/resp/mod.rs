//! RESP wire format: the [`Frame`] every reply is built from, the request parser
//! (multibulk and inline, with bounded sizes) and the encoder for RESP2 and RESP3.
//!
//! Frames are protocol-neutral: a [`Frame::Map`] is written as a map to a RESP3
//! client and as a flat array to a RESP2 client, so command code never asks which
//! protocol a connection speaks.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

mod decode;
mod encode;
mod inline;
#[cfg(test)]
mod proptests;
mod reply;

pub use decode::{
    parse_frame, parse_request, string2ll, ProtocolError, RequestLimits, RequestParser,
};
pub use encode::{encode, format_double};
pub use inline::split_command_line;

/// One RESP value, as a reply or as a parsed reply on the client side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// `+text` (status reply).
    Simple(String),
    /// `-text`; the text includes the error code, e.g. `ERR syntax error`.
    Error(String),
    /// `:n`.
    Integer(i64),
    /// `$len` bulk string.
    Bulk(Bytes),
    /// Null: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// Null where RESP2 writes a null array: `*-1` in RESP2, `_` in RESP3.
    NullArray,
    /// `*n` array.
    Array(Vec<Frame>),
    /// RESP3 map; a flat array of key, value, ... in RESP2.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 set; an array in RESP2.
    Set(Vec<Frame>),
    /// RESP3 double; a bulk string in RESP2.
    Double(f64),
    /// RESP3 boolean; `:1`/`:0` in RESP2.
    Boolean(bool),
    /// RESP3 verbatim string with its three-letter format (`txt`, `mkd`); a bulk string in RESP2.
    Verbatim(String, Bytes),
    /// RESP3 big number; a bulk string in RESP2.
    BigNumber(String),
    /// RESP3 out-of-band push; an array in RESP2.
    Push(Vec<Frame>),
    /// Pairs that Redis 7 nests only in RESP3 (`ZRANGE ... WITHSCORES`, `ZPOPMIN key
    /// count`, `HRANDFIELD ... WITHVALUES`): an array of two-element arrays in RESP3, one
    /// flat array of first, second, ... in RESP2.
    Pairs(Vec<(Frame, Frame)>),
}

impl Frame {
    /// `+OK`.
    pub fn ok() -> Frame {
        Frame::Simple("OK".to_string())
    }

    /// An error reply from a full Redis error text (`ERR ...`, `WRONGTYPE ...`).
    pub fn error(text: impl Into<String>) -> Frame {
        Frame::Error(text.into())
    }

    /// A bulk string copied from any byte slice.
    pub fn bulk(data: impl AsRef<[u8]>) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(data.as_ref()))
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }
}
