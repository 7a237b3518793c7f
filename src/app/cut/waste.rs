//! `shotrouter cut waste [NAME]`'s table; the figures are [`crate::engine::waste`]'s.

pub use crate::engine::waste::{CutWaste, waste};

/// The table `cut waste` prints.
pub fn render_waste(waste: &CutWaste) -> String {
    let mut out = format!(
        "cut `{}` rev {}: frames outside head_in..tail_out, and missing inside cut_in..cut_out\n",
        super::render::shown(&waste.cut),
        waste.revision
    );
    for s in &waste.shots {
        out.push_str(&format!(
            "  {}  {}-{} (cut {}-{})  outside {} ({})  missing {}{}\n",
            super::render::shown(&s.shot),
            s.head_in,
            s.tail_out,
            s.cut_in,
            s.cut_out,
            s.outside_frames,
            crate::app::human::size(s.outside_bytes),
            s.missing_frames,
            if s.missing.is_empty() {
                String::new()
            } else {
                format!(" ({})", s.missing)
            }
        ));
    }
    out.push_str(&format!(
        "show: outside {} ({}), missing {}\n",
        waste.outside_frames,
        crate::app::human::size(waste.outside_bytes),
        waste.missing_frames
    ));
    out
}
