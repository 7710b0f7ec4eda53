//! An AMQP 0-9-1 subscriber (RabbitMQ), through `lapin`: the configured exchange is declared
//! durable (and the queue, if one is configured, declared durable and bound), the channel put in
//! confirm mode, and each event published persistent (`delivery_mode` 2) and `mandatory`, with
//! `message_id` = the event ID (the consumer's de-duplication key), `type` = its kind,
//! `content_type` `application/json`, and the headers `x-coconnect-seq`,
//! `x-coconnect-partner` and `x-coconnect-certificate`. An event counts as delivered only when
//! the broker confirmed it (publisher confirms) and did not return it as unroutable.
//!
//! A batch is published and its confirms awaited in order: the confirmed prefix is reported
//! (also when the time runs out), so a failure in the middle loses nothing; while a subscriber
//! is failing, the worker sends one event at a time, so a message the broker returns or
//! refuses is not followed by copies of the rest of its batch on every retry. Any failure
//! drops the connection; the next attempt connects again.
//!
//! Must never: count an event delivered on a `nack`, a returned (unroutable) message, or a
//! confirm that did not arrive.

use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind};

use super::Pushed;
use crate::config::backend::Amqp;

/// One event to publish.
pub struct Message<'a> {
    pub event_id: &'a str,
    pub seq: i64,
    pub kind: &'a str,
    pub partner: &'a str,
    pub certificate_id: &'a str,
    pub body: &'a [u8],
}

pub struct Publisher {
    target: Amqp,
    /// Shown to the broker (management UI: who is connected).
    connection_name: String,
    open: Option<(Connection, Channel)>,
}

impl Publisher {
    pub fn new(target: &Amqp, connection_name: String) -> Self {
        Publisher { target: target.clone(), connection_name, open: None }
    }

    /// Publishes `messages` in order; reports how many from the start the broker confirmed
    /// within `timeout` (confirms that arrived before the time ran out still count).
    pub async fn publish(&mut self, messages: &[Message<'_>], timeout: Duration) -> Pushed {
        let deadline = tokio::time::Instant::now() + timeout;
        let pushed = match tokio::time::timeout_at(deadline, self.channel()).await {
            Ok(Ok(channel)) => publish_on(&channel, &self.target, messages, deadline).await,
            Ok(Err(e)) => Pushed { confirmed: 0, error: Some(e) },
            Err(_) => Pushed { confirmed: 0, error: Some(format!("no connection to the broker within {timeout:?}")) },
        };
        if pushed.error.is_some() {
            self.drop_connection().await;
        }
        pushed
    }

    /// The open channel, or a new connection with the exchange (and queue) declared.
    async fn channel(&mut self) -> Result<Channel, String> {
        if let Some((connection, channel)) = &self.open {
            if connection.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
            self.drop_connection().await;
        }
        let t = &self.target;
        let tls = OwnedTLSConfig { identity: None, cert_chain: t.ca_pem.clone() };
        let runtime = lapin::runtime::default_runtime().map_err(|e| format!("runtime: {e}"))?;
        let properties = ConnectionProperties::default().with_connection_name(self.connection_name.clone().into());
        let connection = Connection::connect_with_config(&t.url, properties, tls, runtime)
            .await
            .map_err(|e| scrub(&format!("connect to the broker: {e}"), &t.url))?;
        let channel = connection.create_channel().await.map_err(|e| format!("channel: {e}"))?;
        channel.confirm_select(ConfirmSelectOptions::default()).await.map_err(|e| format!("confirm mode: {e}"))?;
        let kind = match t.exchange_type.as_str() {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "headers" => ExchangeKind::Headers,
            _ => ExchangeKind::Topic,
        };
        let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        channel
            .exchange_declare(t.exchange.as_str().into(), kind, durable, FieldTable::default())
            .await
            .map_err(|e| format!("declare exchange {}: {e}", t.exchange))?;
        if let Some(queue) = &t.queue {
            let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
            channel
                .queue_declare(queue.as_str().into(), durable, FieldTable::default())
                .await
                .map_err(|e| format!("declare queue {queue}: {e}"))?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    t.exchange.as_str().into(),
                    t.binding_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| format!("bind queue {queue}: {e}"))?;
        }
        self.open = Some((connection, channel.clone()));
        Ok(channel)
    }

    async fn drop_connection(&mut self) {
        if let Some((connection, _)) = self.open.take() {
            // Best effort: a broker that is gone cannot be told.
            let _ = tokio::time::timeout(Duration::from_secs(1), connection.close(200, "coconnect reconnects".into()))
                .await;
        }
    }
}

/// `text` without the broker URL or its password (a client error may quote the URL, and the
/// text goes to the log, the subscriber's state and alerts).
fn scrub(text: &str, url: &str) -> String {
    let mut out = text.replace(url, "(the broker URL)");
    if let Ok(parsed) = url::Url::parse(url) {
        if let Some(password) = parsed.password().filter(|p| !p.is_empty()) {
            out = out.replace(password, "***");
            if let Ok(decoded) = percent_decode(password) {
                out = out.replace(&decoded, "***");
            }
        }
    }
    out
}

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes: Vec<u8> = url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    String::from_utf8(bytes)
}

/// Publishes `messages` on `channel` and awaits their confirms in order, all by `deadline`.
async fn publish_on(
    channel: &Channel,
    target: &Amqp,
    messages: &[Message<'_>],
    deadline: tokio::time::Instant,
) -> Pushed {
    let mut confirms = Vec::with_capacity(messages.len());
    let mut stopped = None;
    for m in messages {
        let mut headers = FieldTable::default();
        headers.insert("x-coconnect-seq".into(), AMQPValue::LongLongInt(m.seq));
        headers.insert("x-coconnect-partner".into(), AMQPValue::LongString(m.partner.into()));
        headers.insert("x-coconnect-certificate".into(), AMQPValue::LongString(m.certificate_id.into()));
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(m.event_id.into())
            .with_type(m.kind.into())
            .with_app_id("coconnect".into())
            .with_timestamp(u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default())
            .with_headers(headers);
        let routing_key = target.routing_key.as_deref().unwrap_or(m.kind);
        let options = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        let publish =
            channel.basic_publish(target.exchange.as_str().into(), routing_key.into(), options, m.body, properties);
        match tokio::time::timeout_at(deadline, publish).await {
            Ok(Ok(confirm)) => confirms.push((confirm, routing_key.to_owned())),
            // What was published before waits for its confirm below; the rest is not sent.
            Ok(Err(e)) => {
                stopped = Some(format!("publish: {e}"));
                break;
            }
            Err(_) => {
                stopped = Some("the broker did not take the message in time".to_owned());
                break;
            }
        }
    }
    let mut pushed = confirmed_prefix(confirms, &target.exchange, deadline).await;
    if pushed.error.is_none() {
        pushed.error = stopped;
    }
    pushed
}

/// Awaits `confirms` in order: how many from the start were confirmed, and why the next was not.
async fn confirmed_prefix<C>(confirms: Vec<(C, String)>, exchange: &str, deadline: tokio::time::Instant) -> Pushed
where
    C: std::future::Future<Output = lapin::Result<Confirmation>>,
{
    let mut confirmed = 0;
    for (confirm, routing_key) in confirms {
        let error = match tokio::time::timeout_at(deadline, confirm).await {
            Ok(Ok(Confirmation::Ack(None))) => {
                confirmed += 1;
                continue;
            }
            Ok(Ok(Confirmation::Ack(Some(returned)))) => format!(
                "the broker returned the message as unroutable ({} {}): no queue is bound to exchange {exchange} for routing key {routing_key} (set the subscriber's kinds to what the bindings route)",
                returned.reply_code, returned.reply_text
            ),
            Ok(Ok(Confirmation::Nack(_))) => "the broker refused the message (nack)".to_owned(),
            Ok(Ok(Confirmation::NotRequested)) => "the channel is not in confirm mode".to_owned(),
            Ok(Err(e)) => format!("no confirm: {e}"),
            Err(_) => "no broker confirm in time".to_owned(),
        };
        return Pushed { confirmed, error: Some(error) };
    }
    Pushed { confirmed, error: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_never_carry_the_broker_password() {
        let url = "amqp://coconnect:s%3Ecret@broker.example:5672/%2f";
        let text = format!("Invalid URL: '{url}' (s>cret, s%3Ecret)");
        let clean = scrub(&text, url);
        assert!(!clean.contains("s>cret") && !clean.contains("s%3Ecret"), "{clean}");
        assert!(clean.contains("(the broker URL)"), "{clean}");
    }
}
