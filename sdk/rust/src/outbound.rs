//! Outbound constructors and the "one request per delivery" build loop.

use crate::types::{Delivery, HttpRequest, Outbound, PluginError, Request};

impl Outbound {
    /// An HTTP request carrying the deliveries `deliveries` (in that order).
    pub fn http(deliveries: Vec<String>, request: HttpRequest) -> Self {
        Outbound { deliveries, request: Request::Http(request) }
    }

    /// An HTTP request carrying exactly one delivery.
    pub fn http_one(delivery_id: impl Into<String>, request: HttpRequest) -> Self {
        Self::http(vec![delivery_id.into()], request)
    }
}

/// One HTTP request per delivery, made by `request`, for providers that take
/// one message per call.
///
/// `request` returns `Err(PluginError::InvalidDelivery(reason))` for a
/// delivery that cannot be sent. A batch of exactly one delivery then fails
/// with that error, so the delivery gets its own reason. In larger batches (a
/// host ignoring `max-batch`) such deliveries are left out of the result and
/// the host fails them. Any other error fails the whole batch.
pub fn one_per_delivery(
    batch: &[Delivery],
    mut request: impl FnMut(&Delivery) -> Result<HttpRequest, PluginError>,
) -> Result<Vec<Outbound>, PluginError> {
    if let [d] = batch {
        return Ok(vec![Outbound::http_one(d.id.clone(), request(d)?)]);
    }
    let mut out = Vec::with_capacity(batch.len());
    for d in batch {
        match request(d) {
            Ok(req) => out.push(Outbound::http_one(d.id.clone(), req)),
            Err(PluginError::InvalidDelivery(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: &str, recipient: &str) -> Delivery {
        Delivery { id: id.into(), recipient: recipient.into(), subject: None, text: "hi".into(), html: None, metadata: vec![] }
    }

    fn req(d: &Delivery) -> Result<HttpRequest, PluginError> {
        match d.recipient.as_str() {
            "bad" => Err(PluginError::InvalidDelivery(format!("{} is bad", d.id))),
            "boom" => Err(PluginError::Internal("boom".into())),
            r => Ok(crate::http::get(&format!("https://x.test/{r}"))),
        }
    }

    fn ids(v: &[Outbound]) -> Vec<Vec<String>> {
        v.iter().map(|o| o.deliveries.clone()).collect()
    }

    #[test]
    fn delivery_meta_last_value_wins() {
        let mut d = delivery("d", "r");
        d.metadata = vec![("a".into(), "1".into()), ("b".into(), "2".into()), ("a".into(), "3".into())];
        assert_eq!(d.meta("a"), Some("3"));
        assert_eq!(d.meta("b"), Some("2"));
        assert_eq!(d.meta("c"), None);
    }

    #[test]
    fn constructors() {
        let o = Outbound::http_one("d1", crate::http::get("https://x.test/"));
        assert_eq!(o.deliveries, ["d1"]);
        assert!(matches!(&o.request, Request::Http(r) if r.url == "https://x.test/"));
        let o = Outbound::http(vec!["a".into(), "b".into()], crate::http::get("u"));
        assert_eq!(o.deliveries, ["a", "b"]);
    }

    #[test]
    fn single_delivery_fails_with_its_reason() {
        let out = one_per_delivery(&[delivery("d1", "ok")], req).unwrap();
        assert_eq!(ids(&out), [["d1"]]);
        assert_eq!(one_per_delivery(&[delivery("d1", "bad")], req), Err(PluginError::InvalidDelivery("d1 is bad".into())));
        assert_eq!(one_per_delivery(&[delivery("d1", "boom")], req), Err(PluginError::Internal("boom".into())));
    }

    #[test]
    fn larger_batches_leave_out_invalid_deliveries() {
        let batch = [delivery("a", "x"), delivery("b", "bad"), delivery("c", "y")];
        let out = one_per_delivery(&batch, req).unwrap();
        assert_eq!(ids(&out), [["a"], ["c"]]);
        let batch = [delivery("a", "x"), delivery("b", "boom")];
        assert_eq!(one_per_delivery(&batch, req), Err(PluginError::Internal("boom".into())));
        assert_eq!(one_per_delivery(&[], req).unwrap(), vec![]);
    }
}
