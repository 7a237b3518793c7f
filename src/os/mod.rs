//! Thin wrappers over what Linux offers that the layers above share: process groups that
//! can be killed safely after a crash, a lock that names its owner, and systemd notifications.

pub mod dir_handle;
pub mod fs_kind;
pub mod lease;
pub mod machine_id;
pub mod mountinfo;
pub mod owner_lock;
pub mod path_text;
pub mod process;
pub mod program;
pub mod quote;
pub mod sd_notify;
pub mod version;
