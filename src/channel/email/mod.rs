//! Email: MIME assembly with lettre's builder, and an SMTP pool of connections opened here
//! (TCP_NODELAY: lettre's own pool leaves Nagle on and stalls ~40 ms per message) and handed to
//! `AsyncSmtpConnection`. Plain, STARTTLS and implicit TLS (ring); AUTH; a timeout on every step;
//! an idle connection is probed with NOOP before reuse so a relay's idle timeout never turns a
//! good message into a failure.
//!
//! DKIM: [`DkimSigner`] signs each message as it is built (rsa-sha256 or ed25519-sha256,
//! relaxed/relaxed) over From, To, Subject, Date, Message-ID, MIME-Version, Content-Type,
//! List-Unsubscribe and List-Unsubscribe-Post, so the stored bytes a retry resends carry the
//! same signature.
//!
//! Sending drives MAIL, RCPT, DATA and the message itself, so a 5xx reply is classified by the
//! command it answered ([`classify_rejection`]): a hard bounce of the recipient (5.1.1 user
//! unknown to RCPT) is told apart from a rejection of us or of the message (5.7.x policy, 5xx
//! to MAIL FROM), which must never suppress a customer; a 5xx to the greeting or EHLO (a
//! blocklist) refuses us before any recipient is named: about us too. When the relay offers
//! PIPELINING the three envelope commands share one write (their replies are still read one by
//! one); the dot-stuffed body goes out in one write ([`data_block`](stream::data_block)) while
//! the handover's `sending` commit runs, and the final dot once it is durable (a gate in the
//! stream holds it; under STARTTLS the commit comes before the body).
//!
//! A pooled connection the relay closed while idle is replaced once, before anything is handed
//! over. Failures of the relay itself feed a circuit [`Breaker`](breaker::Breaker): while it is
//! open, messages are not tried ([`SendFailure::Untried`](crate::channel::SendFailure::Untried))
//! and go back to the queue. The breaker and the idle connections read the pool's clock (a
//! [`SharedClock`](crate::clock::SharedClock)), never the system's.
//!
//! | module | what |
//! |---|---|
//! | `mime` | the message: MIME, CRLF, DKIM |
//! | `pool` | [`SmtpPool`]: reuse, rate limit and breaker around each message |
//! | `connect` | one session: TCP, TLS or STARTTLS, EHLO, AUTH |
//! | `transaction` | one message on a session: envelope, handover, body |
//! | `reply` | what a reply means: transient, permanent, hard bounce, about us |
//! | `stream` | the wire: implicit TLS, the `after_dot` failpoint, the DATA block, the dot gate |
//! | `breaker` | the relay's circuit breaker |

mod breaker;
mod connect;
mod mime;
mod pool;
mod reply;
mod stream;
mod transaction;

pub use mime::{DKIM_SIGNED_HEADERS, DkimSigner, EmailParts, build_email, normalize_crlf};
pub use pool::SmtpPool;
pub use reply::{Rejection, SmtpPhase, classify_rejection};
