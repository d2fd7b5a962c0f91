//! Hiding secrets in text that is printed or logged: database URLs in
//! `kefu config print`, the `migrate` message and the database-open error.
//! One function, so that every place that shows a URL hides the same things.

/// Shown instead of a secret.
pub const MASK: &str = "****";

/// A URL with its secrets replaced by `****`: the password of the userinfo
/// (`postgres://kefu:secret@db/kefu`) and the value of every query
/// parameter whose name looks secret (`?password=`, `sslpassword`,
/// `passfile`, `api_key`, `token`…; see [`is_secret_name`]). Everything else
/// is kept as given, so the operator still sees which host and database
/// are meant. Never fails: text that is not a URL is masked the same way
/// as far as it looks like one.
pub fn mask_url_secrets(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    // The last '@' before the query ends the userinfo: a raw '@', ':' or '/'
    // in a password (not percent-encoded, as people type them) stays inside
    // it. A raw '?' or '#' would end the password for the database driver
    // too, so those must be encoded anyway.
    let shown_before = match (scheme, before_query.rsplit_once('@')) {
        (Some(_), Some((userinfo, host))) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{MASK}@{host}"),
            None => before_query.to_string(),
        },
        _ => before_query.to_string(),
    };
    let mut out = String::with_capacity(url.len());
    if let Some(s) = scheme {
        out.push_str(s);
        out.push_str("://");
    }
    out.push_str(&shown_before);
    if let Some(q) = query {
        out.push('?');
        out.push_str(&mask_query(q));
    }
    out
}

/// `a=1&password=x` → `a=1&password=****` (also `;`-separated pairs; a
/// fragment after `#` goes with the value before it and is masked with it).
fn mask_query(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    loop {
        let end = rest.find(['&', ';']).unwrap_or(rest.len());
        let (pair, tail) = rest.split_at(end);
        match pair.split_once('=') {
            Some((name, _)) if is_secret_name(&percent_decode(name)) => {
                out.push_str(name);
                out.push('=');
                out.push_str(MASK);
            }
            _ => out.push_str(pair),
        }
        let mut chars = tail.chars();
        match chars.next() {
            Some(sep) => {
                out.push(sep);
                rest = chars.as_str();
            }
            None => return out,
        }
    }
}

/// Whether a setting's name says its value is secret: it contains `pass`
/// (password, sslpassword, passfile, passphrase), `pwd`, `secret`, `token`,
/// `key` (api_key, sslkey…) or `auth`, in any case.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "auth",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// `%70ass` → `pass`, so an encoded name is recognised too; bad escapes
/// are kept as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_in_a_url_is_masked() {
        let cases = [
            // userinfo
            (
                "postgres://kefu:s3cret@db:5432/kefu",
                "postgres://kefu:****@db:5432/kefu",
            ),
            (
                "postgresql://kefu:p%40ss@db/kefu",
                "postgresql://kefu:****@db/kefu",
            ),
            (
                "postgres://kefu:pa@s/s:w@db/kefu",
                "postgres://kefu:****@db/kefu",
            ),
            (
                "postgres://kefu@azure-srv:s3cret@db/kefu",
                "postgres://kefu@azure-srv:****@db/kefu",
            ),
            ("postgres://kefu:@db/kefu", "postgres://kefu:****@db/kefu"),
            ("postgres://kefu@db/kefu", "postgres://kefu@db/kefu"),
            // query parameters libpq and sqlx read
            (
                "postgres://kefu@db/kefu?password=hunter2",
                "postgres://kefu@db/kefu?password=****",
            ),
            (
                "postgres://db/kefu?user=kefu&password=hunter2&sslmode=require",
                "postgres://db/kefu?user=kefu&password=****&sslmode=require",
            ),
            (
                "postgres://db/kefu?sslpassword=x&sslkey=/k.pem&sslrootcert=/ca.pem",
                "postgres://db/kefu?sslpassword=****&sslkey=****&sslrootcert=/ca.pem",
            ),
            (
                "postgres://db/kefu?passfile=/home/k/.pgpass",
                "postgres://db/kefu?passfile=****",
            ),
            (
                "postgres://db/kefu?PASSWORD=x;Api_Key=y",
                "postgres://db/kefu?PASSWORD=****;Api_Key=****",
            ),
            (
                "postgres://db/kefu?pass%77ord=x",
                "postgres://db/kefu?pass%77ord=****",
            ),
            (
                "postgres://db/kefu?access_token=x&client_secret=y&pwd=z&authorization=w",
                "postgres://db/kefu?access_token=****&client_secret=****&pwd=****&authorization=****",
            ),
            (
                "postgres://u:a@db/kefu?password=b&application_name=kefu",
                "postgres://u:****@db/kefu?password=****&application_name=kefu",
            ),
            ("postgres://db/kefu?password", "postgres://db/kefu?password"),
            (
                "postgres://db/kefu?password=x#frag",
                "postgres://db/kefu?password=****",
            ),
            // nothing secret
            ("sqlite://data/kefu.db", "sqlite://data/kefu.db"),
            (
                "sqlite:data/kefu.db?mode=rwc",
                "sqlite:data/kefu.db?mode=rwc",
            ),
            ("mysql://x", "mysql://x"),
            ("", ""),
            ("not a url?password=x", "not a url?password=****"),
            (
                "postgres://用户:密码@db/客服",
                "postgres://用户:****@db/客服",
            ),
        ];
        for (url, shown) in cases {
            assert_eq!(mask_url_secrets(url), shown, "{url}");
        }
    }
}
