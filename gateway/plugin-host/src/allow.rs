//! Host patterns: "api.example.com" (exact), "*.example.com" (subdomains), "*" (any).

#[derive(Debug, Clone, Default)]
pub struct HostPatterns(Vec<String>);

impl HostPatterns {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(patterns: I) -> Self {
        Self(patterns.into_iter().map(|p| p.into().trim().to_ascii_lowercase()).filter(|p| !p.is_empty()).collect())
    }

    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.0.iter().any(|p| {
            p == "*"
                || p == host
                || p.strip_prefix("*.")
                    .is_some_and(|suffix| host.len() > suffix.len() && host.ends_with(suffix) && host[..host.len() - suffix.len()].ends_with('.'))
        })
    }

    pub fn patterns(&self) -> &[String] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_wildcard_and_any() {
        let p = HostPatterns::new(["api.example.com", "*.dingtalk.com"]);
        assert!(p.allows("api.example.com"));
        assert!(p.allows("API.Example.com."));
        assert!(p.allows("oapi.dingtalk.com"));
        assert!(!p.allows("dingtalk.com"));
        assert!(!p.allows("evildingtalk.com"));
        assert!(!p.allows("example.com"));
        assert!(HostPatterns::new(["*"]).allows("anything.test"));
        assert!(!HostPatterns::default().allows("a"));
        assert!(HostPatterns::new(["::1"]).allows("[::1]"));
    }
}
