//! Pure media arithmetic and naming: image sequences, SMPTE timecode, film KeyKode.
//! Nothing here reads rules or runs processes.

pub mod keykode;
pub mod sequence;
pub mod timecode;
