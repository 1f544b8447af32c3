//! The body of a response: whole (almost every answer) or streamed (the
//! ledger export, whose size grows with the books).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use http_body::{Frame, SizeHint};

/// The chunks of a streamed body. An error ends the body early: the host
/// then aborts the response, so the client sees it incomplete rather than
/// complete and wrong.
pub type Chunks = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync>>;

/// A response body.
pub struct Body(Kind);

enum Kind {
    /// The whole body; `None` once sent.
    Full(Option<Bytes>),
    Stream(Chunks),
}

impl Body {
    /// An empty body.
    pub fn empty() -> Self {
        Body(Kind::Full(None))
    }

    /// A body sent chunk by chunk as `chunks` yields them.
    pub fn stream(
        chunks: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static,
    ) -> Self {
        Body(Kind::Stream(Box::pin(chunks)))
    }

    /// The whole body, unless it is streamed.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match &self.0 {
            Kind::Full(bytes) => Some(bytes.as_ref().unwrap_or(&EMPTY)),
            Kind::Stream(_) => None,
        }
    }

    /// The whole body as it is, or the stream of its chunks: what a host
    /// needs to hand it to its own body type.
    pub fn into_inner(self) -> Result<Bytes, Chunks> {
        match self.0 {
            Kind::Full(bytes) => Ok(bytes.unwrap_or_default()),
            Kind::Stream(chunks) => Err(chunks),
        }
    }
}

static EMPTY: Bytes = Bytes::from_static(b"");

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Full(bytes) => f
                .debug_tuple("Body")
                .field(&bytes.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Stream(_) => f.write_str("Body(stream)"),
        }
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body(Kind::Full((!bytes.is_empty()).then_some(bytes)))
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Bytes::from(text).into()
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes::from(bytes).into()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match &mut self.0 {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(chunks) => chunks
                .as_mut()
                .poll_next(cx)
                .map(|chunk| chunk.map(|chunk| chunk.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.0, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    /// Reads a body to its end, or its first error.
    async fn collect(mut body: Body) -> Result<Vec<u8>, std::io::Error> {
        let mut out = Vec::new();
        while let Some(frame) =
            futures::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            out.extend_from_slice(&frame?.into_data().expect("data frames only"));
        }
        Ok(out)
    }

    #[tokio::test]
    async fn whole_and_streamed_bodies_yield_their_bytes() {
        let whole = Body::from(Bytes::from_static(b"abc"));
        assert_eq!(whole.size_hint().exact(), Some(3));
        assert_eq!(collect(whole).await.unwrap(), b"abc");
        assert!(Body::empty().is_end_stream());

        let chunks = futures::stream::iter([Ok(Bytes::from("a")), Ok(Bytes::from("b"))]);
        let streamed = Body::stream(chunks);
        assert!(streamed.as_bytes().is_none());
        assert_eq!(collect(streamed).await.unwrap(), b"ab");

        let broken = futures::stream::iter([
            Ok(Bytes::from("a")),
            Err(std::io::Error::other("the export failed")),
        ]);
        assert!(collect(Body::stream(broken)).await.is_err());
    }
}
