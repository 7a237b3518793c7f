//! Box walking and header reading on hand-built movies: truncation, size 0, largesize, hostile
//! sizes, and the files this reader must refuse so ffprobe answers instead.

use super::*;

fn bx(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(payload);
    out
}

fn full(kind: &[u8; 4], version: u8, body: &[u32]) -> Vec<u8> {
    let mut payload = vec![version, 0, 0, 0];
    for v in body {
        payload.extend_from_slice(&v.to_be_bytes());
    }
    bx(kind, &payload)
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn hdlr(kind: &[u8; 4]) -> Vec<u8> {
    let mut p = vec![0u8; 8];
    p.extend_from_slice(kind);
    p.extend_from_slice(&[0u8; 12]);
    bx(b"hdlr", &p)
}

fn trak(
    handler: &[u8; 4],
    timescale: u32,
    entry: Vec<u8>,
    tables: Vec<u8>,
    edts: Vec<u8>,
) -> Vec<u8> {
    let mut stsd = vec![0u8; 4];
    stsd.extend_from_slice(&1u32.to_be_bytes());
    stsd.extend_from_slice(&entry);
    let stbl = bx(b"stbl", &cat(&[bx(b"stsd", &stsd), tables]));
    let mdhd = full(b"mdhd", 0, &[0, 0, timescale, 0, 0]);
    let mdia = bx(b"mdia", &cat(&[mdhd, hdlr(handler), bx(b"minf", &stbl)]));
    bx(b"trak", &cat(&[edts, mdia]))
}

fn video_trak(stts: &[u32], edts: Vec<u8>) -> Vec<u8> {
    let mut entry = vec![0u8; 16];
    entry.extend_from_slice(&[0u8; 16]);
    entry.extend_from_slice(&320u16.to_be_bytes());
    entry.extend_from_slice(&180u16.to_be_bytes());
    entry.extend_from_slice(&[0u8; 50]);
    let len = entry.len() as u32;
    entry[0..4].copy_from_slice(&len.to_be_bytes());
    entry[4..8].copy_from_slice(b"apch");
    let frames: u32 = stts.chunks(2).map(|c| c[0]).sum();
    let mut body = vec![(stts.len() / 2) as u32];
    body.extend_from_slice(stts);
    let tables = cat(&[full(b"stts", 0, &body), full(b"stsz", 0, &[1000, frames])]);
    trak(b"vide", 12288, entry, tables, edts)
}

/// A `tmcd` track whose one sample lies at `offset`.
fn tmcd_trak(flags: u32, timescale: u32, duration: u32, frames: u8, offset: u32) -> Vec<u8> {
    let mut entry = vec![0u8; 16];
    for v in [0, flags, timescale, duration] {
        entry.extend_from_slice(&v.to_be_bytes());
    }
    entry.extend_from_slice(&[frames, 0]);
    let len = entry.len() as u32;
    entry[0..4].copy_from_slice(&len.to_be_bytes());
    entry[4..8].copy_from_slice(b"tmcd");
    let tables = cat(&[
        full(b"stts", 0, &[1, 1, duration]),
        full(b"stsz", 0, &[4, 1]),
        full(b"stsc", 0, &[1, 1, 1, 1]),
        full(b"stco", 0, &[1, offset]),
    ]);
    trak(b"tmcd", timescale, entry, tables, Vec::new())
}

/// `ftyp`, `mdat` holding the timecode sample `value`, then `moov` of `traks`.
fn movie(traks: &[Vec<u8>], value: u32) -> Vec<u8> {
    let ftyp = bx(b"ftyp", b"qt  \0\0\0\0");
    let mdat = bx(b"mdat", &value.to_be_bytes());
    cat(&[ftyp, mdat, bx(b"moov", &traks.concat())])
}

/// The sample offset when [`movie`]'s `ftyp` is 16 bytes: after it and the `mdat` header.
const SAMPLE_AT: u32 = 24;

fn read_bytes(bytes: &[u8]) -> Option<Probed> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.mov");
    std::fs::write(&path, bytes).unwrap();
    read(&path)
}

#[test]
fn children_walk_size_zero_largesize_and_refuse_bad_sizes() {
    let two = cat(&[bx(b"free", b"ab"), bx(b"skip", b"")]);
    let kids = children(&two).unwrap();
    assert_eq!(kids, vec![(*b"free", &b"ab"[..]), (*b"skip", &b""[..])]);
    // Size 0: to the end of the parent.
    let mut zero = 0u32.to_be_bytes().to_vec();
    zero.extend_from_slice(b"mdatxyz");
    assert_eq!(children(&zero).unwrap(), vec![(*b"mdat", &b"xyz"[..])]);
    // Size 1: a 64-bit largesize after the type.
    let mut large = 1u32.to_be_bytes().to_vec();
    large.extend_from_slice(b"mdat");
    large.extend_from_slice(&19u64.to_be_bytes());
    large.extend_from_slice(b"xyz");
    assert_eq!(children(&large).unwrap(), vec![(*b"mdat", &b"xyz"[..])]);
    // Truncated: a box longer than what is there, a header cut short, a largesize cut short.
    assert_eq!(children(&bx(b"free", b"abcd")[..10]), None);
    assert_eq!(children(&[0, 0, 0, 8, b'f']), None);
    assert_eq!(children(&large[..12]), None);
    // Hostile: sizes below the header, a largesize of u64::MAX, a largesize below 16.
    assert_eq!(children(&[0, 0, 0, 4, b'f', b'r', b'e', b'e']), None);
    let mut huge = large.clone();
    huge[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(children(&huge), None);
    let mut small = large;
    small[8..16].copy_from_slice(&8u64.to_be_bytes());
    assert_eq!(children(&small), None);
}

#[test]
fn reads_a_plain_movie_with_moov_after_or_before_mdat() {
    let traks = [
        video_trak(&[48, 512], Vec::new()),
        tmcd_trak(2, 24, 1, 24, SAMPLE_AT),
    ];
    let want = Probed {
        width: Some(320),
        height: Some(180),
        fps: Some(Rate { num: 24, den: 1 }),
        frames: Some(48),
        timecode: Some("01:00:00:00".into()),
        ..Probed::default()
    };
    assert_eq!(read_bytes(&movie(&traks, 86_400)), Some(want.clone()));
    // faststart: moov first, so the sample moves by moov's length.
    let ftyp = bx(b"ftyp", b"qt  \0\0\0\0");
    let probe_moov = bx(b"moov", &traks.concat());
    let at = SAMPLE_AT + probe_moov.len() as u32;
    let traks = [
        video_trak(&[48, 512], Vec::new()),
        tmcd_trak(2, 24, 1, 24, at),
    ];
    let moov = bx(b"moov", &traks.concat());
    let bytes = cat(&[ftyp, moov, bx(b"mdat", &86_400u32.to_be_bytes())]);
    assert_eq!(read_bytes(&bytes), Some(want));
}

#[test]
fn labels_drop_frame_and_rescaled_counts_as_ffmpeg_does() {
    let tc = |flags, timescale, duration, frames| Tmcd {
        flags,
        timescale,
        frame_duration: duration,
        frames,
        offset: 0,
    };
    let df = tc(3, 30000, 1001, 30);
    assert_eq!(label(&df, 107_892).as_deref(), Some("01:00:00;00"));
    assert_eq!(label(&df, 1_799).as_deref(), Some("00:00:59;29"));
    assert_eq!(label(&df, 1_800).as_deref(), Some("00:01:00;02"));
    assert_eq!(
        label(&tc(0, 25, 1, 25), 90_000).as_deref(),
        Some("01:00:00:00")
    );
    // 60 fps described as 30 frames: ffmpeg doubles the frame number.
    assert_eq!(label(&tc(0, 60, 1, 30), 1).as_deref(), Some("00:00:00:02"));
    // Hours wrap only under flag 2.
    assert_eq!(
        label(&tc(0, 24, 1, 24), 24 * 3600 * 25).as_deref(),
        Some("25:00:00:00")
    );
    assert_eq!(
        label(&tc(2, 24, 1, 24), 24 * 3600 * 25).as_deref(),
        Some("01:00:00:00")
    );
    // Drop-frame at 25 fps does not exist; a zero rate is no rate.
    assert_eq!(label(&tc(1, 25, 1, 25), 0), None);
    assert_eq!(label(&tc(0, 0, 1, 25), 0), None);
}

#[test]
fn refuses_what_ffprobe_should_answer() {
    let tmcd = || tmcd_trak(0, 24, 1, 24, SAMPLE_AT);
    let plain = || video_trak(&[48, 512], Vec::new());
    // Variable frame durations.
    assert_eq!(
        read_bytes(&movie(
            &[video_trak(&[47, 512, 1, 256], Vec::new()), tmcd()],
            0
        )),
        None
    );
    // An edit list that trims, and one that is fine.
    let elst = |media_time: u32| {
        bx(
            b"edts",
            &full(b"elst", 0, &[1, 48, media_time, 0x0001_0000]),
        )
    };
    assert_eq!(
        read_bytes(&movie(&[video_trak(&[48, 512], elst(1024)), tmcd()], 0)),
        None
    );
    assert!(read_bytes(&movie(&[video_trak(&[48, 512], elst(0)), tmcd()], 0)).is_some());
    // Two video tracks, no timecode track, no video track.
    assert_eq!(read_bytes(&movie(&[plain(), plain(), tmcd()], 0)), None);
    assert_eq!(read_bytes(&movie(&[plain()], 0)), None);
    assert_eq!(read_bytes(&movie(&[tmcd()], 0)), None);
    // Fragmented: a moof at the top level, or mvex in moov.
    let mut frag = movie(&[plain(), tmcd()], 0);
    frag.extend(bx(b"moof", b""));
    assert_eq!(read_bytes(&frag), None);
    let mvex = bx(b"mvex", b"");
    assert_eq!(read_bytes(&movie(&[plain(), tmcd(), mvex], 0)), None);
    // The timecode sample beyond the end of the file.
    assert_eq!(
        read_bytes(&movie(&[plain(), tmcd_trak(0, 24, 1, 24, 1 << 30)], 0)),
        None
    );
    // No moov; two moovs; a truncated moov.
    assert_eq!(read_bytes(&bx(b"mdat", b"abcd")), None);
    let once = movie(&[plain(), tmcd()], 0);
    let moov = bx(b"moov", &[plain(), tmcd()].concat());
    assert_eq!(read_bytes(&cat(&[once.clone(), moov])), None);
    assert_eq!(read_bytes(&once[..once.len() - 3]), None);
    assert_eq!(read_bytes(b""), None);
}

#[test]
fn hostile_top_level_sizes_neither_panic_nor_allocate() {
    // A moov claiming 2^60 bytes by largesize, and one claiming more than MAX_MOOV by size 0
    // would need that much file behind it: refused before any buffer is made.
    let mut huge = 1u32.to_be_bytes().to_vec();
    huge.extend_from_slice(b"moov");
    huge.extend_from_slice(&(1u64 << 60).to_be_bytes());
    assert_eq!(read_bytes(&huge), None);
    // Size 0 moov to the end of the file works like any other.
    let traks = [
        video_trak(&[48, 512], Vec::new()),
        tmcd_trak(0, 24, 1, 24, SAMPLE_AT),
    ];
    let mut bytes = bx(b"ftyp", b"qt  \0\0\0\0");
    bytes.extend(bx(b"mdat", &86_400u32.to_be_bytes()));
    let mut moov = bx(b"moov", &traks.concat());
    moov[0..4].copy_from_slice(&0u32.to_be_bytes());
    bytes.extend(moov);
    assert_eq!(
        read_bytes(&bytes).and_then(|p| p.timecode).as_deref(),
        Some("01:00:00:00")
    );
    // An mdat whose size points past the end stops the walk.
    let mut bad = bx(b"mdat", b"ab");
    bad[0..4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(read_bytes(&bad), None);
}
