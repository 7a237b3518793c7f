//! Media arithmetic and naming: image sequences, SMPTE timecode, film KeyKode, and what
//! ffprobe says a file is, and whether ffmpeg decodes it. Nothing here reads rules, binds template
//! variables or publishes.

pub mod avid;
pub mod decode;
pub mod image_header;
pub mod keykode;
pub mod mov;
pub mod probe;
pub mod sequence;
pub mod timecode;
