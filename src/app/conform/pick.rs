//! Which published product of a rule a shot's conform uses: `--pick latest` is the highest
//! version written in the product's file name (`_v003` over `_v002`), and among products with
//! the same version (or none) the one published last. A product with a version beats one
//! without: a name without `_vNNN` is usually a scratch render. Pure: the caller lists the
//! products from the store.

use std::path::Path;

/// A product a done job of the rule published, as the store lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// The published file.
    pub path: String,
    /// The job that published it.
    pub job: i64,
    /// When the job finished (unix ms): the publish time.
    pub published_at: i64,
}

impl Product {
    /// The version its file name carries: the last `_v` or `.v` followed by digits
    /// (`sh010_comp_v003.mov` is 3).
    pub fn version(&self) -> Option<u32> {
        version_in(&file_name(&self.path))
    }
}

/// The file name of `path` (the whole text if it has none).
pub fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}

/// The last version token in `name`: `v` or `V` after `_`, `.` or `-` (or at the start), then
/// digits, then a non-digit or the end.
pub fn version_in(name: &str) -> Option<u32> {
    let bytes = name.as_bytes();
    let mut found = None;
    for (i, &b) in bytes.iter().enumerate() {
        if b != b'v' && b != b'V' {
            continue;
        }
        if i > 0 && !matches!(bytes[i - 1], b'_' | b'.' | b'-') {
            continue;
        }
        let digits = bytes[i + 1..]
            .iter()
            .take_while(|d| d.is_ascii_digit())
            .count();
        if digits == 0 {
            continue;
        }
        if let Ok(v) = name[i + 1..i + 1 + digits].parse() {
            found = Some(v);
        }
    }
    found
}

/// How to choose among a shot's products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pick {
    /// The highest version, else the latest published.
    #[default]
    Latest,
    /// The approved version: refused, the store keeps no approvals yet.
    Approved,
}

/// The product `--pick latest` takes among `products` (all of one shot).
pub fn latest(products: &[Product]) -> Option<&Product> {
    products
        .iter()
        .max_by_key(|p| (p.version(), p.published_at, p.job))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(path: &str, job: i64, at: i64) -> Product {
        Product {
            path: path.into(),
            job,
            published_at: at,
        }
    }

    #[test]
    fn the_version_is_the_last_v_token_of_the_file_name() {
        assert_eq!(version_in("sh010_comp_v003.mov"), Some(3));
        assert_eq!(version_in("sh010_v2_comp_v010.mov"), Some(10));
        assert_eq!(version_in("sh010.v7.mov"), Some(7));
        assert_eq!(version_in("v12_sh010.mov"), Some(12));
        assert_eq!(version_in("sh010_review.mov"), None);
        assert_eq!(
            version_in("dev3.mov"),
            None,
            "`v` inside a word is no version"
        );
        assert_eq!(version_in("sh010_v.mov"), None);
        assert_eq!(
            Product {
                path: "/a/v9_dir/sh010_v002.mov".into(),
                job: 1,
                published_at: 0
            }
            .version(),
            Some(2),
            "only the file name counts"
        );
    }

    #[test]
    fn latest_takes_the_highest_version_over_the_latest_published() {
        let products = [
            product("/r/sh010_v003.mov", 1, 100),
            product("/r/sh010_v002.mov", 2, 300),
            product("/r/sh010_scratch.mov", 3, 400),
        ];
        assert_eq!(latest(&products).unwrap().path, "/r/sh010_v003.mov");
    }

    #[test]
    fn without_versions_or_with_equal_ones_the_latest_published_wins() {
        let products = [
            product("/r/sh010_a.mov", 1, 100),
            product("/r/sh010_b.mov", 2, 300),
        ];
        assert_eq!(latest(&products).unwrap().job, 2);
        let republished = [
            product("/r/sh010_v004.mov", 5, 900),
            product("/r/sh010_v004.mov", 4, 100),
        ];
        assert_eq!(latest(&republished).unwrap().job, 5);
        assert_eq!(latest(&[]), None);
    }
}
