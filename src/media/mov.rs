//! Reads what conform needs (rate, frame count, size, start timecode) from a QuickTime/MP4
//! header in-process, so a 100-shot cut does not start 100 ffprobes (each ~0.09 s, nearly all
//! of it loading shared libraries).
//!
//! Deliberately narrow: it answers only for the plain files renderers and ffmpeg write (one
//! video track at a constant frame duration, no trimming edit list, one `tmcd` track, not
//! fragmented) and returns `None` for anything else, so the caller asks ffprobe. Only `moov`
//! is read; `mdat` is seeked over, and every declared size is checked against what is there.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::media::probe::Probed;
use crate::media::timecode::Rate;

/// Largest `moov` read: a header of several hours of frames is a few MB; more is not a header
/// we should trust enough to allocate for.
const MAX_MOOV: u64 = 64 << 20;

/// The values ffprobe would give for `path`'s first video stream and its `tmcd` timecode, or
/// `None` when the file is not one this reader is sure about (the caller then runs ffprobe).
pub fn read(path: &Path) -> Option<Probed> {
    let mut file = File::open(path).ok()?;
    let moov = find_moov(&mut file)?;
    let (mut probed, tmcd) = parse_moov(&moov)?;
    file.seek(SeekFrom::Start(tmcd.offset)).ok()?;
    let mut sample = [0u8; 4];
    file.read_exact(&mut sample).ok()?;
    probed.timecode = Some(label(&tmcd, u32::from_be_bytes(sample))?);
    Some(probed)
}

/// One box: its four-character type and its payload.
type Atom<'a> = ([u8; 4], &'a [u8]);

/// Walks the top level of the file with seeks and returns `moov`'s payload; `None` when there
/// is none, more than one, a `moof` (fragmented), or a size that does not fit the file.
fn find_moov(file: &mut File) -> Option<Vec<u8>> {
    let len = file.metadata().ok()?.len();
    let mut at = 0u64;
    let mut moov = None;
    while at < len {
        file.seek(SeekFrom::Start(at)).ok()?;
        let mut head = [0u8; 16];
        let got = read_up_to(file, &mut head)?;
        let (kind, header, size) = header(&head[..got], len - at)?;
        match &kind {
            b"moof" | b"mfra" => return None,
            b"moov" if moov.is_some() => return None,
            b"moov" => {
                let body = size - header;
                if body > MAX_MOOV {
                    return None;
                }
                file.seek(SeekFrom::Start(at + header)).ok()?;
                let mut buf = Vec::new();
                file.by_ref().take(body).read_to_end(&mut buf).ok()?;
                if buf.len() as u64 != body {
                    return None;
                }
                moov = Some(buf);
            }
            _ => {}
        }
        at += size;
    }
    moov
}

/// Reads as much of `buf` as the file has.
fn read_up_to(file: &mut File, buf: &mut [u8]) -> Option<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]).ok()? {
            0 => break,
            n => got += n,
        }
    }
    Some(got)
}

/// Parses a box header from `head` (at most 16 bytes) with `room` bytes left in its parent:
/// `(type, header length, box size)`. Size 0 runs to the end, 1 is a 64-bit largesize; a size
/// smaller than its header or larger than `room` is refused.
fn header(head: &[u8], room: u64) -> Option<([u8; 4], u64, u64)> {
    let size32 = u32::from_be_bytes(head.get(0..4)?.try_into().ok()?);
    let kind: [u8; 4] = head.get(4..8)?.try_into().ok()?;
    let (header, size) = match size32 {
        0 => (8, room),
        1 => (16, u64::from_be_bytes(head.get(8..16)?.try_into().ok()?)),
        n => (8, u64::from(n)),
    };
    (size >= header && size <= room).then_some((kind, header, size))
}

/// The child boxes of a payload; `None` if any is truncated or oversized.
fn children(data: &[u8]) -> Option<Vec<Atom<'_>>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (kind, header, size) = header(&rest[..rest.len().min(16)], rest.len() as u64)?;
        // size <= rest.len() was checked, so these fit in usize.
        out.push((kind, &rest[header as usize..size as usize]));
        rest = &rest[size as usize..];
    }
    Some(out)
}

/// The single child of `kind`; `None` if absent or repeated.
fn only<'a>(boxes: &[Atom<'a>], kind: &[u8; 4]) -> Option<&'a [u8]> {
    let mut found = boxes.iter().filter(|(k, _)| k == kind);
    let first = found.next()?.1;
    found.next().is_none().then_some(first)
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        data.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(
        data.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        data.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// What a `tmcd` track says before its sample is read: where the first sample is and how to
/// count it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tmcd {
    flags: u32,
    timescale: u32,
    frame_duration: u32,
    frames: u8,
    offset: u64,
}

/// A track reduced to what is needed, from its `stbl` and friends.
struct Track<'a> {
    handler: [u8; 4],
    timescale: u32,
    stbl: Vec<Atom<'a>>,
}

/// Reads the video track and the `tmcd` description from `moov`.
fn parse_moov(moov: &[u8]) -> Option<(Probed, Tmcd)> {
    let top = children(moov)?;
    if top.iter().any(|(k, _)| k == b"mvex") {
        return None;
    }
    let mut video = None;
    let mut tmcd = None;
    for (_, trak) in top.iter().filter(|(k, _)| k == b"trak") {
        let track = track(trak)?;
        match &track.handler {
            b"vide" if video.is_some() => return None,
            b"vide" => video = Some(track),
            b"tmcd" if tmcd.is_some() => return None,
            b"tmcd" => tmcd = Some(track),
            _ => {}
        }
    }
    let (video, tmcd) = (video?, tmcd?);
    Some((video_values(&video)?, tmcd_values(&tmcd)?))
}

/// Opens a `trak` down to its `stbl`; `None` when an edit list does more than play the media
/// once from its start (ffprobe would then count and time it differently).
fn track(trak: &[u8]) -> Option<Track<'_>> {
    let boxes = children(trak)?;
    for (_, edts) in boxes.iter().filter(|(k, _)| k == b"edts") {
        for (_, elst) in children(edts)?.iter().filter(|(k, _)| k == b"elst") {
            plain_edit_list(elst)?;
        }
    }
    let mdia = children(only(&boxes, b"mdia")?)?;
    let hdlr = only(&mdia, b"hdlr")?;
    let handler: [u8; 4] = hdlr.get(8..12)?.try_into().ok()?;
    let mdhd = only(&mdia, b"mdhd")?;
    let timescale = match mdhd.first()? {
        0 => u32_at(mdhd, 12)?,
        1 => u32_at(mdhd, 20)?,
        _ => return None,
    };
    let minf = children(only(&mdia, b"minf")?)?;
    let stbl = children(only(&minf, b"stbl")?)?;
    Some(Track {
        handler,
        timescale,
        stbl,
    })
}

/// `Some` for an edit list of one entry that starts the media at 0 at normal speed.
fn plain_edit_list(elst: &[u8]) -> Option<()> {
    let version = *elst.first()?;
    if u32_at(elst, 4)? != 1 {
        return None;
    }
    let (media_time, rate_at) = match version {
        0 => (u64::from(u32_at(elst, 12)?), 16),
        1 => (u64_at(elst, 16)?, 24),
        _ => return None,
    };
    (media_time == 0 && u32_at(elst, rate_at)? == 0x0001_0000).then_some(())
}

/// Rate, frames and size of the video track, as ffprobe gives them for a constant-rate file.
fn video_values(track: &Track) -> Option<Probed> {
    let (duration, frames) = constant_stts(only(&track.stbl, b"stts")?)?;
    let stsz = only(&track.stbl, b"stsz")?;
    if u64::from(u32_at(stsz, 8)?) != frames {
        return None;
    }
    let entry = single_entry(only(&track.stbl, b"stsd")?)?;
    let width = u16_at(entry, 32)?;
    let height = u16_at(entry, 34)?;
    if track.timescale == 0 || duration == 0 || width == 0 || height == 0 {
        return None;
    }
    // As ffmpeg's r_frame_rate: the media timescale over the one sample duration, reduced.
    let fps = Rate::parse(&format!("{}/{duration}", track.timescale)).ok()?;
    Some(Probed {
        width: Some(width.into()),
        height: Some(height.into()),
        fps: Some(fps),
        frames: Some(frames),
        ..Probed::default()
    })
}

/// `(sample duration, sample count)` of an `stts` with one entry; several durations → `None`.
fn constant_stts(stts: &[u8]) -> Option<(u32, u64)> {
    if u32_at(stts, 4)? != 1 {
        return None;
    }
    let count = u32_at(stts, 8)?;
    let duration = u32_at(stts, 12)?;
    (count > 0).then_some((duration, count.into()))
}

/// The one sample entry of an `stsd` (the whole box, header included).
fn single_entry(stsd: &[u8]) -> Option<&[u8]> {
    if u32_at(stsd, 4)? != 1 {
        return None;
    }
    let size = usize::try_from(u32_at(stsd, 8)?).ok()?;
    stsd.get(8..8usize.checked_add(size)?)
}

/// The `tmcd` sample description and where its first sample lies (the first chunk's offset:
/// `stsc` must start at chunk 1, so the first sample opens it).
fn tmcd_values(track: &Track) -> Option<Tmcd> {
    let entry = single_entry(only(&track.stbl, b"stsd")?)?;
    if entry.get(4..8)? != b"tmcd" {
        return None;
    }
    let stsc = only(&track.stbl, b"stsc")?;
    if u32_at(stsc, 4)? == 0 || u32_at(stsc, 8)? != 1 || u32_at(stsc, 12)? == 0 {
        return None;
    }
    let offset = match (only(&track.stbl, b"stco"), only(&track.stbl, b"co64")) {
        (Some(stco), None) if u32_at(stco, 4)? > 0 => u64::from(u32_at(stco, 8)?),
        (None, Some(co64)) if u32_at(co64, 4)? > 0 => u64_at(co64, 8)?,
        _ => return None,
    };
    Some(Tmcd {
        flags: u32_at(entry, 20)?,
        timescale: u32_at(entry, 24)?,
        frame_duration: u32_at(entry, 28)?,
        frames: *entry.get(32)?,
        offset,
    })
}

/// Labels frame number `value` as ffmpeg does (`mov_read_timecode_track`, then
/// `av_timecode_make_string`): rescaled from the description's frames per second to the
/// rounded rate, drop-frame adjusted when flag 1 is set, hours wrapped only under flag 2.
fn label(t: &Tmcd, value: u32) -> Option<String> {
    let (num, den) = (u64::from(t.timescale), u64::from(t.frame_duration));
    let mut nb = u64::from(t.frames);
    if num == 0 || den == 0 || nb == 0 {
        return None;
    }
    let fps = (num + den / 2) / den;
    if nb == num / den && num % den != 0 {
        nb = fps;
    }
    let drop = t.flags & 1 != 0;
    let rate = Rate::parse(&format!("{num}/{den}")).ok()?;
    if fps == 0 || (drop && !rate.allows_drop()) {
        return None;
    }
    // av_rescale rounds to nearest; ffmpeg then holds the frame number in an int.
    let mut frame = (u64::from(value) * fps + nb / 2) / nb;
    if frame > i32::MAX as u64 {
        return None;
    }
    if drop {
        let d = fps / 15; // labels dropped per minute: 2 at 29.97, 4 at 59.94
        let per_ten = fps * 600 - d * 9; // frames in ten minutes
        let (tens, rest) = (frame / per_ten, frame % per_ten);
        frame += 9 * d * tens
            + if rest > d {
                d * ((rest - d) / (fps * 60 - d))
            } else {
                0
            };
    }
    let mut hours = frame / (fps * 3600);
    if t.flags & 2 != 0 {
        hours %= 24;
    }
    Some(format!(
        "{hours:02}:{:02}:{:02}{}{:02}",
        frame / (fps * 60) % 60,
        frame / fps % 60,
        if drop { ';' } else { ':' },
        frame % fps
    ))
}

#[cfg(test)]
mod tests;
