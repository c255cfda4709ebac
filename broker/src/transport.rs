//! The byte stream under a connection, and what the broker knows about who is on the other end.
//!
//! A [`Transport`] is plain TCP or TLS over TCP; the connection code reads and writes it
//! without knowing which. A [`Session`] is the per-connection security state: the listener the
//! client came in on (so Metadata can advertise that listener back) and the authenticated
//! [`KafkaPrincipal`] that authorization decisions are made for.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::security::{KafkaPrincipal, Listener};

/// One accepted connection's byte stream.
#[derive(Debug)]
pub(crate) enum Transport {
    /// PLAINTEXT and SASL_PLAINTEXT listeners.
    Plain(TcpStream),
    /// SSL and SASL_SSL listeners, after the TLS handshake.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            Self::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The security state of one connection, shared by the requests it carries.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The listener the connection was accepted on.
    pub(crate) listener: Arc<Listener>,
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// Who the client is: `User:ANONYMOUS` until authenticated (PLAINTEXT listeners stay so),
    /// the SASL user name, or the subject of a TLS client certificate.
    pub(crate) principal: KafkaPrincipal,
}

impl Session {
    /// A session that has not authenticated (yet).
    pub(crate) fn anonymous(listener: Arc<Listener>, peer: SocketAddr) -> Self {
        Self {
            listener,
            peer,
            principal: KafkaPrincipal::anonymous(),
        }
    }
}
