//! Who the caller is when a trusted reverse proxy stands in front: the client address
//! (`X-Forwarded-For`, else RFC 7239 `Forwarded`) and the client certificate the proxy verified
//! (the configured header), believed from the configured proxy addresses only.
//!
//! Must never: believe a forwarded header from an address that is not a configured proxy.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::Request;

use crate::config::ProxySettings;
use crate::wssec::material::Certificate;

/// The caller as the gateway sees it: its address and TLS client certificate, taken from a
/// trusted reverse proxy's headers, or from the connection itself. Forwarded headers from
/// anyone but a configured proxy are ignored.
pub fn effective_client(
    proxy: &ProxySettings,
    req: &Request<Incoming>,
    remote: SocketAddr,
    direct_cert: Option<Arc<Certificate>>,
) -> (SocketAddr, Option<Arc<Certificate>>) {
    if !proxy.trusts(remote.ip()) {
        return (remote, direct_cert);
    }
    // The entry the trusted proxy added is the rightmost one (earlier ones are the client's word).
    let forwarded_ip = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .or_else(|| req.headers().get("forwarded").and_then(|v| v.to_str().ok()).and_then(forwarded_for));
    let address = forwarded_ip.map(|ip| SocketAddr::new(ip, 0)).unwrap_or(remote);
    let cert = proxy
        .client_cert_header
        .as_deref()
        .and_then(|h| req.headers().get(h))
        .and_then(|v| v.to_str().ok())
        .and_then(|escaped| {
            url::form_urlencoded::parse(format!("c={}", escaped.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        })
        .and_then(|pem| Certificate::from_pem(pem.as_bytes()).ok())
        .map(Arc::new);
    (address, cert.or(direct_cert))
}

/// The `for=` address of the last element of an RFC 7239 `Forwarded` header
/// (`for=192.0.2.1`, `for="192.0.2.1:4711"`, `for="[2001:db8::1]:4711"`).
fn forwarded_for(header: &str) -> Option<std::net::IpAddr> {
    let last = header.rsplit(',').next()?;
    let value = last.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then(|| v.trim().trim_matches('"').to_owned())
    })?;
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    value.parse().ok().or_else(|| value.rsplit_once(':').and_then(|(ip, _)| ip.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_header_gives_the_last_hop() {
        assert_eq!(forwarded_for("for=192.0.2.60;proto=https"), "192.0.2.60".parse().ok());
        assert_eq!(forwarded_for("for=10.0.0.1, for=\"198.51.100.17:4711\""), "198.51.100.17".parse().ok());
        assert_eq!(forwarded_for("For=\"[2001:db8:cafe::17]:4711\""), "2001:db8:cafe::17".parse().ok());
        assert_eq!(forwarded_for("by=203.0.113.43"), None);
        assert_eq!(forwarded_for("for=unknown"), None);
    }
}
