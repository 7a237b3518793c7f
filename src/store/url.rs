//! The text of a store URL and of a password file, as libpq writes them: percent-encoding,
//! `host:port` with bracketed IPv6, password-file lines with `\:` escapes, and the redaction
//! of a password from a URL or a message.

/// `text` with every occurrence of the password replaced by `***`.
pub(super) fn scrub(text: &str, password: Option<&str>) -> String {
    match password {
        Some(p) if !p.is_empty() => text.replace(p, "***"),
        _ => text.to_string(),
    }
}

/// One line of a password file split into its fields, `\:` and `\\` unescaped.
pub(super) fn passfile_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next()
                    && let Some(field) = fields.last_mut()
                {
                    field.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => {
                if let Some(field) = fields.last_mut() {
                    field.push(c);
                }
            }
        }
    }
    fields
}

pub(super) fn split_host_port(hostport: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(inner) = hostport.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| "an IPv6 address lacks its closing `]`".to_string())?;
        return Ok((host, after.strip_prefix(':')));
    }
    Ok(match hostport.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (hostport, None),
    })
}

pub(super) fn parse_port(text: &str) -> Result<u16, String> {
    text.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("`{text}` is not a port number"))
}

/// Percent-decodes a URL part; it must be UTF-8.
pub(super) fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a `%` is not followed by two hex digits".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a percent-encoded part is not UTF-8".to_string())
}

/// Percent-encodes what would change the meaning of a URL part.
pub(super) fn encode(text: &str) -> String {
    encode_keeping(text, b"-._~")
}

/// Percent-encodes a query parameter's value, keeping `/` (paths read better).
pub(super) fn encode_value(text: &str) -> String {
    encode_keeping(text, b"-._~/")
}

fn encode_keeping(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether the part of a URL after `scheme://` has its `@` beyond where the authority ends (the
/// first `/` or `?`), before any parameter's `=`: a user or password holding an unencoded `/`,
/// `?` or `@`, which libpq would read as a host and port.
pub(super) fn userinfo_misplaced(rest: &str) -> bool {
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    if rest[..end].contains('@') {
        return false;
    }
    let upto = rest.find('=').unwrap_or(rest.len());
    rest[end..upto.max(end)].contains('@')
}

/// Whether a `postgres://` URL holds a password: in its user part (`user:password@`, an empty
/// one too) or as a `password=` parameter.
pub(super) fn holds_password(value: &str) -> bool {
    let Some((_, rest)) = value.split_once("://") else {
        return false;
    };
    if userinfo_misplaced(rest) {
        return rest
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    }
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    let in_userinfo = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    in_userinfo
        || query
            .split('&')
            .any(|pair| pair.split_once('=').map_or(pair, |(key, _)| key) == "password")
}

/// A URL as given, its password (in the user part or a `password=` parameter) as `***`; for
/// error messages about a URL that may not parse.
pub(super) fn redact_url(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_string();
    };
    // A password with an unencoded `/`, `?` or `@` would end the authority early: everything
    // up to the last `@` of the URL is the user part, so nothing of such a password shows.
    if userinfo_misplaced(rest)
        && let Some((userinfo, after)) = rest.rsplit_once('@')
    {
        let user = userinfo.split([':', '/', '?']).next().unwrap_or_default();
        return format!("{scheme}://{user}:***@{after}");
    }
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (rest, None),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let mut out = format!("{scheme}://{authority}");
    if let Some(path) = path {
        out.push('/');
        out.push_str(path);
    }
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some(("password", _)) => "password=***".to_string(),
                _ => pair.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}
