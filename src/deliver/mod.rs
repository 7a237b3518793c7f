//! What happens to a product after its commands exit 0 and before anyone may see it:
//! verification with ffprobe, then the temp-then-rename publish.

pub mod verify;
