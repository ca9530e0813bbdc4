//! A director's gRPC URL as configs write it (the agent's `director`/`directors`, the
//! director's `[[peer]] url`): `http://` or `https://`, a host, no path.

use http::Uri;

/// The director's gRPC address, checked to be an `http://` or `https://` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorUrl {
    uri: Uri,
}

impl DirectorUrl {
    pub fn parse(text: &str) -> Result<DirectorUrl, String> {
        let uri: Uri = text.parse().map_err(|e| {
            format!("is not a URL ({e}): write for example \"http://129.129.190.53:7700\"")
        })?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err("must start with http:// or https://".into()),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err("has no host: write for example \"http://129.129.190.53:7700\"".into());
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err("must not have a path: the director serves gRPC at its root".into());
        }
        Ok(DirectorUrl { uri })
    }

    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// `host:port` (or just `host` if the URL names no port), as an operator reads it in a status.
    pub fn authority(&self) -> &str {
        self.uri.authority().map_or("", |a| a.as_str())
    }

    pub fn is_https(&self) -> bool {
        self.uri.scheme_str() == Some("https")
    }
}

impl std::fmt::Display for DirectorUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.uri)
    }
}
