//! Decoders: what a log line says, as named fields. First the Docker
//! json-file wrapper (with Docker's 16 KiB partial lines put back together),
//! then the content: nginx/apache access logs, JSON, key=value, syslog, or a
//! user-defined decoder. Decoders send nothing and know no rule.

pub mod access;
pub mod docker;
pub mod fields;
pub mod pattern;
pub mod structured;
pub mod user;

pub use docker::{DockerLine, Reassembler, WrapperError};
pub use fields::Fields;
pub use user::{UserDecoder, UserDecoderSpec, UserDecoders};

/// Decodes a log message's content with the user's decoders first, then
/// the built-in ones; `Fields::decoder` names the one that matched.
pub fn decode<'a>(message: &'a str, user: &UserDecoders) -> Fields<'a> {
    if let Some(fields) = user.decode(message) {
        return fields;
    }
    if let Some(fields) = access::decode(message) {
        return fields;
    }
    if let Some(fields) = structured::json(message) {
        return fields;
    }
    if let Some(fields) = structured::syslog(message) {
        return fields;
    }
    if let Some(fields) = structured::key_value(message) {
        return fields;
    }
    let mut fields = Fields::new("plain");
    fields.set("message", message);
    fields
}
