//! Loading the editorial keys (`avid:`, `ale:`, `keykode:` codes) and the variables they give:
//! every mistake is a load error at its file:line:column, with the rule and a hint.

use std::path::Path;

use super::*;
use crate::rules::diag::Diagnostics;

fn load(text: &str) -> Result<RuleFile, Diagnostics> {
    parse(Path::new("rules.yaml"), text, Path::new("/show"))
}

/// The whole rendered report of a file that must fail to load.
fn report(text: &str) -> String {
    load(text).expect_err("expected errors").to_string()
}

const HEAD: &str = "version: 1\nwatch: [shots]\nrules:\n";

#[test]
fn avid_names_give_ffmpeg_values() {
    let file = load(&format!(
        "{HEAD}  - name: avid\n    match: \"**/*.mov\"\n    avid: {{codec: \"DNxHD 220x\", fps: 29.97}}\n    run: [ffmpeg, -b:v, \"{{avid.bitrate}}\", -pix_fmt, \"{{avid.pix_fmt}}\", -profile:v, \"{{avid.profile}}\"]\n"
    ))
    .expect("valid");
    let avid = file.rules[0].avid.as_ref().expect("avid");
    assert_eq!(
        (
            avid.bitrate.as_deref(),
            avid.pix_fmt.as_str(),
            avid.profile.as_str()
        ),
        (Some("175M"), "yuv422p10le", "dnxhd")
    );
}

#[test]
fn an_avid_name_that_does_not_exist_at_the_rate_is_a_positioned_error() {
    let text = format!(
        "{HEAD}  - name: avid\n    match: \"**/*.mov\"\n    avid: {{codec: \"DNxHD 175x\", fps: 25}}\n    run: [ffmpeg]\n"
    );
    assert_eq!(
        report(&text),
        "error: `DNxHD 175x` is not an Avid DNxHD name at 25 fps; at 25 fps: DNxHD 36, DNxHD 120, DNxHD 185, DNxHD 185x
 --> rules.yaml:6:19
  |
6 |     avid: {codec: \"DNxHD 175x\", fps: 25}
  |                   ^
  = note: in rules[0].avid.codec (rule `avid`)
  = help: an Avid DNxHD name is its bit rate at one frame rate: pick one listed, or change `fps`

1 error in rules.yaml"
    );
}

#[test]
fn avid_mistakes_point_at_the_value_at_fault() {
    // (avid mapping, column, message start)
    let cases = [
        (
            "{codec: \"DNxHD 100\", fps: 24}",
            19,
            "unknown Avid codec `DNxHD 100`",
        ),
        (
            "{codec: \"DNxHD 36\", fps: 48}",
            36,
            "Avid has no DNxHD names at 48 fps",
        ),
        (
            "{codec: \"DNxHR HQX\", fps: 2x4}",
            37,
            "unknown frame rate `2x4`",
        ),
        ("{codec: \"DNxHR HQX\"}", 12, "missing `fps`"),
        ("{codec: \"DNxHR HQX\", fsp: 24}", 32, "unknown key `fsp`"),
    ];
    for (avid, column, start) in cases {
        let text = format!(
            "{HEAD}  - name: avid\n    match: \"**/*.mov\"\n    avid: {avid}\n    run: [ffmpeg]\n"
        );
        let errors = load(&text).expect_err(avid).items;
        let d = errors
            .iter()
            .find(|d| d.message.starts_with(start))
            .unwrap_or_else(|| panic!("{avid}: {errors:#?}"));
        assert_eq!((d.span.line, d.span.column), (6, column), "{avid}");
        assert_eq!(d.rule.as_deref(), Some("avid"));
    }
}

#[test]
fn dnxhr_has_no_bitrate_variable() {
    let text = format!(
        "{HEAD}  - name: avid\n    match: \"**/*.mov\"\n    avid: {{codec: \"DNxHR HQ\", fps: 24}}\n    run: [ffmpeg, -b:v, \"{{avid.bitrate}}\"]\n"
    );
    let errors = load(&text).expect_err("no bitrate").items;
    assert_eq!(
        errors[0].message,
        "unknown template variable `{avid.bitrate}`"
    );
    assert_eq!((errors[0].span.line, errors[0].span.column), (7, 26));
    assert!(
        errors[0]
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("-profile:v {avid.profile}")
    );
}

#[test]
fn keykode_parts_need_the_stock_codes_for_mfg_and_type() {
    let rule = |keykode: &str, arg: &str| {
        format!(
            "{HEAD}  - name: stamp\n    match: \"**/*.dpx\"\n    keykode: {keykode}\n    run: [oiiotool, \"{arg}\"]\n"
        )
    };
    let parts = "{keykode.prefix},{keykode.count},{keykode.perf_offset},{keykode.perfs_per_frame},{keykode.perfs_per_count},{frame.keykode}";
    load(&rule(
        "{start: \"KU 22 9012 1234+05\", format: 35mm-4perf}",
        parts,
    ))
    .expect("parts without codes");
    load(&rule(
        "{start: \"KU 22 9012 1234+05\", format: 35mm-4perf, mfg: 1, type: 22}",
        "{keykode.mfg},{keykode.type}",
    ))
    .expect("codes given");
    let errors = load(&rule(
        "{start: \"KU 22 9012 1234+05\", format: 35mm-4perf}",
        "{keykode.mfg}",
    ))
    .expect_err("no codes")
    .items;
    assert_eq!(
        errors[0].message,
        "unknown template variable `{keykode.mfg}`"
    );
    assert!(
        errors[0]
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("give `mfg:` and `type:`")
    );

    let errors = load(&rule(
        "{start: \"KU 22 9012 1234+05\", format: 35mm-4perf, mfg: 1}",
        "{keykode.count}",
    ))
    .expect_err("half the codes")
    .items;
    assert_eq!(errors[0].message, "`mfg` without `type`");
    assert_eq!(errors[0].span.line, 6);

    let errors = load(&format!(
        "{HEAD}  - name: stamp\n    match: \"**/*.dpx\"\n    run: [oiiotool, \"{{frame.timecode}}\", \"{{keykode.count}}\"]\n"
    ))
    .expect_err("no timecode, no keykode")
    .items;
    let hints: Vec<_> = errors
        .iter()
        .map(|d| d.hint.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        hints,
        [
            "give the rule (or the file) a `timecode:` mapping",
            "give the rule (or the file) a `keykode:` mapping"
        ]
    );
}

#[test]
fn ale_needs_a_sequence_an_output_and_a_timecode() {
    let text = format!(
        "{HEAD}  - name: avid\n    match: \"**/*.dpx\"\n    ale: \"{{dir}}/{{stem}}.ale\"\n    run: [ffmpeg]\n"
    );
    assert_eq!(
        report(&text),
        "error: `ale` needs `sequence:` and `output:` and `timecode:` (on the rule or the file)
 --> rules.yaml:6:10
  |
6 |     ale: \"{dir}/{stem}.ale\"
  |          ^
  = note: in rules[0].ale (rule `avid`)
  = help: the ALE describes the sequence's product as one clip: its `Start`/`End` come from the timecode

1 error in rules.yaml"
    );
    load(&format!(
        "{HEAD}  - name: avid\n    match: \"**/*.dpx\"\n    sequence: true\n    timecode: {{fps: 24, start: \"01:00:00:00\"}}\n    output: \"{{dir}}/{{seq.name}}.mxf\"\n    ale: \"{{dir}}/{{seq.name}}.ale\"\n    run: [ffmpeg, \"{{out}}\"]\n"
    ))
    .expect("complete");
}

#[test]
fn new_keys_leave_the_hash_of_rules_without_them_alone_and_change_it_when_set() {
    let base = format!(
        "{HEAD}  - name: r\n    match: \"**/*.mov\"\n    keykode: {{start: \"KU 22 9012 1234+05\", format: 35mm-4perf}}\n    run: [ffmpeg]\n"
    );
    let with_codes = base.replace("35mm-4perf}", "35mm-4perf, mfg: 1, type: 22}");
    let with_avid = base.replace(
        "    run:",
        "    avid: {codec: \"DNxHD 36\", fps: 24}\n    run:",
    );
    let hash = |t: &str| load(t).expect("valid").rules[0].definition_hash.clone();
    assert_ne!(hash(&base), hash(&with_codes));
    assert_ne!(hash(&base), hash(&with_avid));
    // The text hashed for a spec without codes is the one hashed before codes existed.
    let spec = &load(&base).expect("valid").rules[0];
    assert!(!format!("{:?}", spec.keykode).contains("codes"));
}

#[test]
fn a_typo_in_an_editorial_variable_gets_a_did_you_mean() {
    let text = format!(
        "{HEAD}  - name: r\n    match: \"**/*.dpx\"\n    keykode: {{start: \"KU 22 9012 1234+05\", format: 35mm-4perf}}\n    avid: {{codec: \"DNxHD 36\", fps: 24}}\n    run: [x, \"{{keykode.cout}}\", \"{{avid.bitrat}}\", \"{{avid.pix_fmt}}\"]\n"
    );
    let hints: Vec<_> = load(&text)
        .expect_err("typos")
        .items
        .into_iter()
        .map(|d| (d.message, d.hint.unwrap_or_default()))
        .collect();
    assert_eq!(
        hints,
        [
            (
                "unknown template variable `{keykode.cout}`".to_string(),
                "did you mean `{keykode.count}`?".to_string()
            ),
            (
                "unknown template variable `{avid.bitrat}`".to_string(),
                "did you mean `{avid.bitrate}`?".to_string()
            ),
        ]
    );
    let without =
        format!("{HEAD}  - name: r\n    match: \"**/*.dpx\"\n    run: [x, \"{{avid.pix_fmt}}\"]\n");
    let errors = load(&without).expect_err("no avid").items;
    assert!(
        errors[0]
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("need `avid:"),
        "{errors:#?}"
    );
}
