//! Tests of loading a configuration.

mod secrets {
    use std::path::Path;

    use super::super::load::secret;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secrets_come_inline_from_the_environment_or_from_a_private_file() {
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(secret("t", Some("abc"), None, None, dir.path()).expect("inline"), "abc");
        // A variable every process has: setting one here would race with other test threads.
        let path = std::env::var("PATH").expect("PATH is set");
        assert_eq!(secret("t", None, Some("PATH"), None, dir.path()).expect("env"), path);
        let f = dir.path().join("pw");
        std::fs::write(&f, "from-file\n").expect("write");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(secret("t", None, None, Some(Path::new("pw")), dir.path()).expect("file"), "from-file");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(secret("t", None, None, Some(&f), dir.path()).is_err(), "a world-readable secret file is refused");
        assert!(secret("t", Some("a"), Some("B"), None, dir.path()).is_err(), "exactly one source");
        assert!(secret("t", None, Some("COCONNECT_TEST_UNSET_VARIABLE"), None, dir.path()).is_err());
    }
}

mod loading {
    use std::net::SocketAddr;
    use std::path::PathBuf;

    use super::super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A generated pair's KR configuration (as the tests and the demo use), and its folder.
    struct Fixture {
        dir: tempfile::TempDir,
        config: PathBuf,
        text: String,
    }

    fn fixture(tls: bool) -> Fixture {
        let dir = tempfile::tempdir().expect("tmp");
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let [kr, _] = crate::config::dev_pair::write_pair(&crate::config::dev_pair::PairSpec {
            dir: dir.path(),
            parties: ["KR", "ID"],
            addrs: [(addr(1), addr(2)), (addr(3), addr(4))],
            database_urls: ["sqlite:kr.db".into(), "sqlite:id.db".into()],
            profile: "sign-encrypt",
            tls,
            signing: Default::default(),
        })
        .expect("pair");
        let text = std::fs::read_to_string(&kr.config).expect("config");
        Fixture { dir, config: kr.config, text }
    }

    impl Fixture {
        /// Loads `text` as the configuration file (mode 0600).
        fn load(&self, text: &str) -> Result<Settings, ConfigError> {
            std::fs::write(&self.config, text).expect("write");
            std::fs::set_permissions(&self.config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
            load(&self.config)
        }

        fn replaced(&self, from: &str, to: &str) -> String {
            assert!(self.text.contains(from), "{from} not in the configuration");
            self.text.replacen(from, to, 1)
        }

        fn error(&self, text: &str) -> String {
            match self.load(text) {
                Ok(_) => panic!("accepted:\n{text}"),
                Err(e) => e.to_string(),
            }
        }
    }

    #[test]
    fn the_generated_configuration_loads() {
        let f = fixture(false);
        f.load(&f.text).expect("loads");
    }

    #[test]
    fn a_pair_with_ec_signing_keys_signs_with_ecdsa_and_accepts_only_that() {
        use crate::dev_pki::SigningKeyKind;
        use crate::wssec::profile::SignatureAlgorithm;
        let dir = tempfile::tempdir().expect("tmp");
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let files = crate::config::dev_pair::write_pair(&crate::config::dev_pair::PairSpec {
            dir: dir.path(),
            parties: ["KR", "ID"],
            addrs: [(addr(1), addr(2)), (addr(3), addr(4))],
            database_urls: ["sqlite:kr.db".into(), "sqlite:id.db".into()],
            profile: "sign-encrypt",
            tls: false,
            signing: SigningKeyKind::EcP256,
        })
        .expect("pair");
        for (gateway, partner) in files.iter().zip(["ID", "KR"]) {
            let settings = crate::config::load(&gateway.config).expect("loads");
            assert!(settings.signing.certificate.is_ec);
            let security = &settings.partners[partner].security;
            assert_eq!(security.outbound.signature.method, SignatureAlgorithm::EcdsaSha256);
            assert_eq!(security.inbound.signature.methods, vec![SignatureAlgorithm::EcdsaSha256]);
            assert!(security.encrypts(), "encryption stays RSA-OAEP");
        }
    }

    #[test]
    fn every_preset_loads_with_its_opt_ins_and_is_shown() {
        use crate::wssec::profile::Preset;
        let f = fixture(false);
        for preset in Preset::ALL {
            let weak = preset.profile(true).weaknesses();
            let profile = if preset == Preset::Zeep { "sign" } else { "sign-encrypt" };
            let allow: Vec<String> = weak.iter().map(|w| format!("\"{w}\"")).collect();
            let text = format!(
                "{}\n[partners.security]\npreset = \"{}\"\nallow_weak = [{}]\n",
                f.replaced("profile = \"sign-encrypt\"", &format!("profile = \"{profile}\"")),
                preset.name(),
                allow.join(", ")
            );
            let settings = f.load(&text).unwrap_or_else(|e| panic!("{preset:?}: {e}"));
            let partner = &settings.partners["ID"];
            assert_eq!(partner.security.preset, preset);
            let summary = settings.summary();
            assert!(summary.contains(&format!("security preset {}", preset.name())), "{summary}");
            assert_eq!(summary.contains("WEAK"), !weak.is_empty(), "{preset:?}: {summary}");
        }
    }

    #[test]
    fn backend_subscribers_are_checked_without_connecting_and_shown_without_secrets() {
        let f = fixture(false);
        let ca = f.dir.path().join("pki").join("ca.cert.pem");
        let webhook = |extra: &str| {
            format!(
                "{}\n[[backend.subscribers]]\nname = \"clearance\"\ntype = \"webhook\"\nurl = \"https://clearance.example:8443/hooks/s3cr3t-path\"\nsecret = \"{}\"\n{extra}",
                f.text,
                "k".repeat(40)
            )
        };
        let amqp = |extra: &str| {
            format!(
                "{}\n[[backend.subscribers]]\nname = \"broker\"\ntype = \"amqp\"\nurl = \"amqp://coconnect:hunter2@broker.example:5672/%2f\"\nexchange = \"customs.events\"\n{extra}",
                f.text
            )
        };
        // Nothing listens at these addresses: loading connects to nothing.
        let settings = f
            .load(&format!(
                "{}kinds = [\"document.received\"]\npartners = [\"ID\"]\nca_file = \"{}\"\n",
                webhook(""),
                ca.display()
            ))
            .expect("webhook");
        let s = &settings.backend.subscribers[0];
        assert_eq!((s.name.as_str(), s.kinds.len(), s.partners.as_slice()), ("clearance", 1, &["ID".to_owned()][..]));
        let summary = settings.summary();
        assert!(
            summary.contains("subscriber clearance")
                && summary.contains("https://clearance.example:8443 (path not shown)"),
            "{summary}"
        );
        assert!(!summary.contains("s3cr3t") && !summary.contains("kkkk"), "{summary}");
        let summary = f.load(&amqp("queue = \"clearance.inbox\"\n")).expect("amqp").summary();
        assert!(
            summary.contains("AMQP amqp://broker.example:5672, exchange customs.events (topic), queue clearance.inbox"),
            "{summary}"
        );
        assert!(!summary.contains("hunter2"), "{summary}");
        let feed_only = f.load(&f.text).expect("loads").summary();
        assert!(feed_only.contains("feed only"), "{feed_only}");

        for (text, expected) in [
            (webhook("kinds = [\"document.lost\"]\n"), "backend subscriber clearance: kinds: \"document.lost\" is not an event kind"),
            (webhook("partners = [\"XX\"]\n"), "backend subscriber clearance: partners: \"XX\" is not a configured partner"),
            (webhook("exchange = \"x\"\n"), "backend subscriber clearance: exchange: is not a key of a subscriber of type webhook"),
            (webhook("").replace("https://clearance.example:8443", "http://clearance.example"), "must be https://"),
            (webhook("").replace(&"k".repeat(40), "short"), "secret: must have at least 32 characters"),
            (webhook("").replace("name = \"clearance\"", "name = \"Clearance System\""), "a name is 1 to 64 of a-z"),
            (webhook("").replace("type = \"webhook\"", "type = \"kafka\""), "type: \"kafka\" is neither webhook nor amqp"),
            (format!("{}{}", webhook(""), "\n[[backend.subscribers]]\nname = \"clearance\"\ntype = \"webhook\"\nurl = \"https://b.example\"\nsecret_env = \"COCONNECT_TEST_UNSET_SECRET\"\n"), "COCONNECT_TEST_UNSET_SECRET is not set"),
            (amqp("").replace("amqp://", "http://"), "is neither amqp nor amqps"),
            (amqp("").replace("exchange = \"customs.events\"", "exchange = \"amq.topic\""), "not amq.*"),
            (amqp("exchange_type = \"x-delayed\"\n"), "exchange_type: \"x-delayed\" is not one of"),
            (amqp("batch = 0\n"), "batch: 0 is out of range"),
            (amqp("secret = \"x\"\n"), "secret: is not a key of a subscriber of type amqp"),
            (amqp(&format!("ca_file = \"{}\"\n", ca.display())), "ca_file: is for an amqps:// URL"),
            (amqp("timeout_seconds = 16\n"), "backend.lease_seconds: 30 s must be at least twice subscriber broker's timeout (16 s)"),
            (amqp("routing_key = \"\"\n"), "routing_key: is empty"),
            (amqp("binding_key = \"document.*\"\n"), "binding_key: binds the queue: give queue too"),
            (amqp("exchange_type = \"direct\"\nqueue = \"q\"\n"), "a direct exchange routes by exact key"),
            (amqp("").replace("broker.example", "[::1]"), "an IPv6 address literal is not supported"),
            (amqp("").replace("amqp://coconnect:hunter2@broker.example:5672/%2f", "amqp:coconnect:hunter2@broker"), "not an AMQP URL"),
            (format!("{}\n[backend]\nretry_initial_seconds = 10\nretry_max_seconds = 5\n", f.text), "backend.retry_max_seconds: must not be below"),
        ] {
            let e = f.error(&text);
            assert!(e.contains(expected), "expected {expected:?}, got {e:?}");
        }
        // A direct exchange with a routing key binds its queue with that key.
        let direct =
            f.load(&amqp("exchange_type = \"direct\"\nqueue = \"q\"\nrouting_key = \"coconnect\"\n")).expect("direct");
        match &direct.backend.subscribers[0].target {
            crate::config::backend::Target::Amqp(a) => assert_eq!(a.binding_key, "coconnect"),
            other => panic!("{other:?}"),
        }
        // No error shows the broker password.
        for text in [
            amqp("").replace("amqp://coconnect:hunter2@broker.example:5672/%2f", "amqp:coconnect:hunter2@broker"),
            amqp("").replace("broker.example", "[::1]"),
        ] {
            let e = f.error(&text);
            assert!(!e.contains("hunter2"), "{e}");
        }
        // Inline secrets make the file's permissions matter, like the other inline secrets.
        let raw: RawConfig = toml::from_str(&amqp("")).expect("parse");
        assert!(
            raw.inline_secrets().iter().any(|s| s.contains("backend subscriber broker: url password")),
            "{:?}",
            raw.inline_secrets()
        );
    }

    #[test]
    fn weak_algorithms_need_the_partners_opt_in_by_name() {
        let f = fixture(false);
        let e = f.error(&format!("{}\n[partners.security]\npreset = \"wss4j-defaults\"\n", f.text));
        assert!(e.contains("partner ID: security.allow_weak") && e.contains("allow_weak = [\"sha1\", \"cbc\"]"), "{e}");
        let e = f.error(&format!("{}\n[partners.security.inbound]\nsignature_algorithms = [\"rsa-sha1\"]\n", f.text));
        assert!(e.contains("allow_weak = [\"sha1\"]"), "{e}");
        let e = f.error(&format!("{}\n[partners.security.outbound]\ndata_encryption = \"aes128-cbc\"\n", f.text));
        assert!(e.contains("allow_weak = [\"cbc\"]"), "{e}");
        let e = f.error(&format!("{}\n[partners.security.inbound]\nkey_transport = [\"rsa-1_5\"]\n", f.text));
        assert!(e.contains("security.inbound.key_transport") && e.contains("never accepted"), "{e}");
        let e = f.error(&format!("{}\n[partners.security]\npreset = \"wcf\"\n", f.text));
        assert!(e.contains("security.preset") && e.contains("wcf-basic256sha256"), "{e}");
        let e = f.error(&format!("{}\n[partners.security]\nallow_weak = [\"md5\"]\n", f.text));
        assert!(e.contains("allow_weak") && e.contains("md5"), "{e}");
        let e = f.error(&format!("{}\n[partners.security]\npreset = \"zeep\"\nallow_weak = [\"sha1\"]\n", f.text));
        assert!(e.contains("zeep does not encrypt"), "{e}");
    }

    #[test]
    fn references_that_only_name_a_certificate_need_pinned_certificates() {
        let f = fixture(false);
        // The generated partner pins its signing certificate: issuer-serial resolves.
        let with_pins =
            format!("{}\n[partners.security.inbound]\nkey_references = [\"issuer-serial\", \"ski\"]\n", f.text);
        f.load(&with_pins).expect("pinned");
        // Trusted by CA and subject only: refused, naming the styles.
        // The global trust_anchors (the dev CA) apply to a partner with no pins of its own.
        let by_ca = f.replaced("signing_certs = [", "signing_subject = \"CN=x\"\n#signing_certs = [");
        let e = f.error(&format!("{by_ca}\n[partners.security.inbound]\nkey_references = [\"thumbprint\"]\n"));
        assert!(e.contains("security.inbound.key_references") && e.contains("thumbprint"), "{e}");
    }

    #[test]
    fn profile_options_are_checked_by_name_and_combination() {
        let f = fixture(false);
        let cases = [
            ("[partners.security.outbound]\nkey_reference = \"pkipath\"", "outbound.key_reference"),
            ("[partners.security.outbound]\nsignature_algorithm = \"ecdsa-sha256\"", "needs an EC signing key"),
            ("[partners.security.outbound]\nsoap_version = \"1.3\"", "outbound.soap_version"),
            ("[partners.security.outbound]\nsign_addressing = true", "needs outbound.addressing"),
            ("[partners.security.inbound]\nc14n = []", "at least one"),
            ("[partners.security.inbound]\ntimestamp = \"never\"", "inbound.timestamp"),
        ];
        for (section, expected) in cases {
            let e = f.error(&format!("{}\n{section}\n", f.text));
            assert!(e.contains(expected), "{section}: {e}");
        }
        let signed_only = f.replaced("profile = \"sign-encrypt\"", "profile = \"sign\"");
        let e = f.error(&format!("{signed_only}\n[partners.security.inbound]\ndata_encryption = [\"aes256-gcm\"]\n"));
        assert!(e.contains("profile is sign"), "{e}");
        let ok = format!(
            "{}\n[partners.security]\ntimestamp_ttl_seconds = 60\nclock_skew_seconds = 5\n[partners.security.outbound]\nsoap_version = \"1.2\"\naddressing = true\nsign_addressing = true\n",
            f.text
        );
        let settings = f.load(&ok).expect("loads");
        let p = &settings.partners["ID"];
        assert_eq!((p.timestamp_ttl.as_secs(), p.clock_skew.as_secs()), (60, 5));
        assert!(p.security.outbound.addressing && p.security.outbound.signature.sign_addressing);
    }

    #[test]
    fn limits_are_loaded_as_checked_values() {
        let f = fixture(false);
        let text = f.replaced(
            "requests_per_second = 1000.0",
            "requests_per_second = 1000.0\nheader_read_timeout_seconds = 7\nshutdown_grace_seconds = 0\nmax_connections = 5",
        );
        let l = f.load(&text).expect("loads").limits;
        assert_eq!(l.header_read_timeout.std(), std::time::Duration::from_secs(7));
        assert_eq!(l.body_read_timeout.std(), std::time::Duration::from_secs(30));
        assert_eq!(l.shutdown_grace.std(), std::time::Duration::ZERO, "0: cut at once");
        assert_eq!((l.max_connections, l.requests_per_second), (5, 1000.0));
    }

    #[test]
    fn out_of_range_numbers_are_refused_naming_the_key() {
        let f = fixture(false);
        let marks = "retry_marks_seconds = [2, 4, 6, 8, 10, 20, 40, 80, 160, 320]";
        let cases = [
            (
                f.text.clone() + "\n[security]\nclock_skew_seconds = 99999999999\n",
                "security.clock_skew_seconds: 99999999999 is out of range (0..=86400)",
            ),
            (
                f.text.clone() + "\n[security]\ntimestamp_ttl_seconds = -5\n",
                "security.timestamp_ttl_seconds: -5 is out of range",
            ),
            (
                f.text.clone() + "\n[security]\nmax_timestamp_age_seconds = 9223372036854775807\n",
                "security.max_timestamp_age_seconds: 9223372036854775807 is out of range",
            ),
            (
                f.replaced(marks, "retry_marks_seconds = [2, 99999999999]"),
                "delivery.retry_marks_seconds[1]: 99999999999",
            ),
            (f.replaced(marks, &format!("{marks}\nlease_seconds = 9223372036854775807")), "delivery.lease_seconds:"),
            (
                f.replaced(marks, &format!("{marks}\nundelivered_alert_seconds = -1")),
                "delivery.undelivered_alert_seconds:",
            ),
            (
                f.replaced(marks, &format!("{marks}\nrequest_timeout_seconds = 99999999999")),
                "delivery.request_timeout_seconds:",
            ),
            (f.replaced("poll_interval_millis = 100", "poll_interval_millis = 0"), "delivery.poll_interval_millis: 0"),
            (f.replaced(marks, &format!("{marks}\nworkers = 100000")), "delivery.workers: 100000 is out of range"),
            (
                f.text.clone() + "\n[retention]\nmessage_contents_days = 99999999999999\n",
                "retention.message_contents_days: 99999999999999 is out of range (1..=36500)",
            ),
            (f.text.clone() + "\n[alerts]\nwebhook_max_attempts = 0\n", "alerts.webhook_max_attempts: 0"),
            (
                f.replaced(
                    "requests_per_second = 1000.0",
                    "requests_per_second = 1000.0\nheader_read_timeout_seconds = 99999999999",
                ),
                "limits.header_read_timeout_seconds: 99999999999",
            ),
            (
                f.replaced(
                    "requests_per_second = 1000.0",
                    "requests_per_second = 1000.0\nmax_concurrent_requests = 4611686018427387904",
                ),
                "limits.max_concurrent_requests: 4611686018427387904",
            ),
            (
                f.replaced("requests_per_second = 1000.0", "requests_per_second = inf"),
                "limits.requests_per_second: inf",
            ),
            (
                f.replaced(
                    "requests_per_second = 1000.0",
                    "requests_per_second = 1000.0\nbody_read_timeout_seconds = 0",
                ),
                "limits.body_read_timeout_seconds: 0 is out of range (1..=3600)",
            ),
            (
                f.replaced("requests_per_second = 1000.0", "requests_per_second = 1000.0\nmax_connections = 0"),
                "limits.max_connections: 0 is out of range (1..=1000000)",
            ),
            (
                f.replaced(
                    "requests_per_second = 1000.0",
                    "requests_per_second = 1000.0\nshutdown_grace_seconds = 3601",
                ),
                "limits.shutdown_grace_seconds: 3601 is out of range (0..=3600)",
            ),
            // The partner's table is the last one of the file: these keys land in it.
            (f.text.clone() + "retry_marks_seconds = [0]\n", "partner ID: retry_marks_seconds[0]: 0 is out of range"),
            (f.text.clone() + "max_message_bytes = 0\n", "partner ID: max_message_bytes: 0 is out of range"),
        ];
        for (text, expected) in cases {
            let e = f.error(&text);
            assert!(e.contains(expected), "expected {expected:?}, got {e:?}");
        }
    }

    #[test]
    fn delivery_errors_are_not_blamed_on_a_partner() {
        let f = fixture(false);
        let marks = "retry_marks_seconds = [2, 4, 6, 8, 10, 20, 40, 80, 160, 320]";
        let e = f.error(&f.replaced(marks, "retry_marks_seconds = [5, 3]"));
        assert!(e.starts_with("delivery.retry_marks_seconds: must be strictly increasing"), "{e}");
        let e = f.error(&f.replaced("flush_rate_per_second = 500.0", "flush_rate_per_second = -1.0"));
        assert!(e.starts_with("delivery.flush_rate_per_second: -1 is out of range"), "{e}");
        // A partner's own value is the partner's.
        let e = f.error(&(f.text.clone() + "flush_rate_per_second = 0.0\n"));
        assert!(e.starts_with("partner ID: flush_rate_per_second:"), "{e}");
    }

    #[test]
    fn a_missing_top_level_key_is_named_as_such() {
        let f = fixture(false);
        let line = f.text.lines().find(|l| l.starts_with("database_url")).expect("database_url line").to_owned();
        let without = f.text.replacen(&format!("{line}\n"), "", 1);
        let e = f.error(&without);
        assert!(e.ends_with("database_url: missing (top-level key)"), "{e}");
        assert!(!e.contains("[[partners]]"), "{e}");
        // Written below a table header, it belongs to that table: say so.
        let e = f.error(&format!("{without}{line}\n"));
        assert!(e.contains("database_url: missing (top-level key; the database_url under [[partners]]"), "{e}");
    }

    #[test]
    fn an_unreadable_file_is_named_by_its_key_and_its_cause_said_once() {
        let f = fixture(false);
        let sk = f.text.lines().find(|l| l.starts_with("signing_key")).expect("signing_key").to_owned();
        let e = f.error(&f.text.replacen(&sk, "signing_key = \"missing.pem\"", 1));
        let path = f.dir.path().join("missing.pem");
        assert_eq!(
            e,
            format!("keys.signing_key: cannot read {}: No such file or directory (os error 2)", path.display())
        );
        // As main prints it (the whole chain): the OS error once.
        let chained = format!(
            "{:#}",
            anyhow::Error::from(
                f.load(&f.text.replacen(&sk, "signing_key = \"missing.pem\"", 1)).expect_err("refused")
            )
        );
        assert_eq!(chained.matches("os error 2").count(), 1, "{chained}");
        let e =
            f.error(&(f.text.clone() + "encryption_cert = \"nowhere.pem\"\n").replacen("encryption_cert", "# was", 1));
        assert!(e.starts_with("partner ID: encryption_cert: cannot read"), "{e}");
    }

    #[test]
    fn an_unsupported_database_url_fails_the_check() {
        let f = fixture(false);
        let line = f.text.lines().find(|l| l.starts_with("database_url")).expect("database_url").to_owned();
        let e = f.error(&f.text.replacen(&line, "database_url = \"mysql://u:secret@db/x\"", 1));
        assert!(e.starts_with("database_url: mysql: is not supported"), "{e}");
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn a_proxy_certificate_header_needs_each_partners_tls_identity() {
        let f = fixture(false);
        let proxy = "\n[proxy]\ntrusted = [\"127.0.0.1/32\"]\nclient_cert_header = \"X-SSL-Client-Cert\"\n";
        // [proxy] goes before [[partners]], whose keys follow it.
        let with_proxy = f.replaced("[[partners]]", &format!("{proxy}\n[[partners]]"));
        let e = f.error(&with_proxy);
        assert!(
            e.starts_with("partner ID: with [proxy] client_cert_header, give tls_client_certs or tls_client_subject"),
            "{e}"
        );
        let bound = with_proxy + "tls_client_subject = \"CN=ID tls,C=ID\"\n";
        f.load(&bound).expect("a partner with a TLS identity is accepted");
        // Believed from no one, the header would bind nobody.
        let e = f.error(&bound.replace("trusted = [\"127.0.0.1/32\"]", "trusted = []"));
        assert!(e.starts_with("proxy.client_cert_header:"), "{e}");
    }

    #[test]
    fn a_config_file_with_inline_secrets_must_be_private() {
        let f = fixture(false);
        std::fs::write(&f.config, &f.text).expect("write");
        std::fs::set_permissions(&f.config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = load(&f.config).expect_err("a world-readable file with secrets").to_string();
        assert!(e.starts_with(&format!("{}: holds secrets", f.config.display())), "{e}");
        assert!(e.contains("api token domestic-system: token"), "{e}");
        assert!(e.contains("partner ID: outbound_auth.password"), "{e}");
        assert!(e.contains(&format!("chmod 600 {}", f.config.display())), "{e}");
        std::fs::set_permissions(&f.config, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        assert!(load(&f.config).is_err(), "readable by the group is refused too");
        std::fs::set_permissions(&f.config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        load(&f.config).expect("private");

        // Without inline secrets (token from a file, no partner), a readable file is fine.
        let token_file = f.dir.path().join("token");
        std::fs::write(&token_file, "0123456789abcdef0123\n").expect("write");
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let head = &f.text[..f.text.find("[[partners]]").expect("partners")];
        let token_line = head.lines().find(|l| l.starts_with("token = ")).expect("token").to_owned();
        std::fs::write(&f.config, head.replacen(&token_line, "token_file = \"token\"", 1)).expect("write");
        std::fs::set_permissions(&f.config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        load(&f.config).expect("no inline secret: readable is fine");
        // A password in the database URL is a secret too.
        let line = head.lines().find(|l| l.starts_with("database_url")).expect("database_url").to_owned();
        let with_password = head.replacen(&token_line, "token_file = \"token\"", 1).replacen(
            &line,
            "database_url = \"postgres://coconnect:hunter2@db:5432/coconnect\"",
            1,
        );
        std::fs::write(&f.config, with_password).expect("write");
        let e = load(&f.config).expect_err("password in the URL").to_string();
        assert!(e.contains("database_url password") && !e.contains("hunter2"), "{e}");
    }

    /// The value of `key = "..."` in the fixture (inline tables included).
    fn quoted_value(text: &str, key: &str) -> String {
        let from = text.find(&format!("{key} = \"")).unwrap_or_else(|| panic!("{key} not in the configuration"));
        let rest = &text[from + key.len() + 4..];
        rest[..rest.find('"').expect("closing quote")].to_owned()
    }

    #[test]
    fn the_summary_says_what_was_loaded_and_no_secret() {
        let f = fixture(true);
        let line = f.text.lines().find(|l| l.starts_with("database_url")).expect("database_url").to_owned();
        let text =
            f.text.replacen(&line, "database_url = \"postgres://coconnect:hunter2@db.internal:5432/coconnect\"", 1)
                + "\n[retention]\nmessage_contents_days = 1825\n";
        let settings = f.load(&text).expect("loads");
        let summary = settings.summary();
        for expected in [
            "party           KR\n",
            "public URL      https://127.0.0.1:1/soap/v1\n",
            "database        PostgreSQL postgres://coconnect@db.internal:5432/coconnect (password in the URL, not shown)\n",
            "SOAP listener   127.0.0.1:1 (TLS, client certificate required)\n",
            "API listener    127.0.0.1:2 (plain HTTP, bearer tokens)\n",
            "TLS             certificate CN=KR tls",
            "proxy           none trusted\n",
            "security        clock skew 120 s, our Timestamps live 300 s, longest accepted Timestamp 3600 s",
            "delivery        8 workers, request timeout 30 s, lease 120 s, idle poll 100 ms",
            "limits          header read 10 s, body read 30 s",
            "retention       contents of closed messages purged after 1825 days\n",
            "alerts          stored and logged; no webhook\n",
            "API tokens      domestic-system\n",
            "partner ID\n",
            "  endpoint        https://127.0.0.1:3/soap/v1\n",
            "  profile         sign-encrypt (we encrypt to CN=ID encryption",
            "  signing trust   pinned CN=ID signing",
            "  inbound auth    Basic user ID (Argon2 hash); TLS client certificate pinned CN=ID tls",
            "  outbound auth   Basic user KR\n",
            "  networks        127.0.0.0/8, ::1/128\n",
            "  retry marks     2, 4, 6, 8, 10, 20, 40, 80, 160, 320 s after the first attempt\n",
            "  rates           send 500/s, accept 1000/s",
        ] {
            assert!(summary.contains(expected), "{expected:?} not in\n{summary}");
        }
        // Every secret of the fixture, inline in the file: the API token, our outbound password,
        // the partner's password hash.
        let token = quoted_value(&f.text, "token");
        let outbound_password = quoted_value(&f.text, "password");
        let hash = quoted_value(&f.text, "password_hash");
        assert!(outbound_password.len() >= 16 && hash.starts_with("$argon2id$"), "{outbound_password} {hash}");
        for secret in ["hunter2", &token, &outbound_password, &hash, "$argon2id", "Settings {", "Partner {"] {
            assert!(!summary.contains(secret), "{secret:?} in\n{summary}");
        }
    }

    #[test]
    fn the_summary_shows_no_secret_of_a_url() {
        let f = fixture(true);
        let db = f.text.lines().find(|l| l.starts_with("database_url")).expect("database_url").to_owned();
        let text = f
            .replaced(
                &db,
                "database_url = \"postgres://coconnect@db.internal:5432/coconnect?password=hunter3&sslmode=disable\"",
            )
            .replacen(
                "public_url = \"https://127.0.0.1:1/soap/v1\"",
                "public_url = \"https://kr:pubpass@127.0.0.1:1/soap/v1?key=pubquery#pubfragment\"",
                1,
            )
            .replacen(
                "endpoint = \"https://127.0.0.1:3/soap/v1\"",
                "endpoint = \"https://kr:endpass@127.0.0.1:3/soap/v1?key=endquery\"",
                1,
            )
            .replacen(
                "[[api_tokens]]",
                "[alerts]\nwebhook_url = \"http://hooks.internal:9099/services/T0/B0/pathsecret?token=hookquery\"\n\n\
                 [[api_tokens]]",
                1,
            );
        let summary = f.load(&text).expect("loads").summary();
        for expected in [
            "public URL      https://kr@127.0.0.1:1/soap/v1 (password, query, fragment not shown)\n",
            "database        PostgreSQL postgres://coconnect@db.internal:5432/coconnect (password in the URL, not \
             shown; query not shown)\n",
            "alerts          stored, logged and POSTed to http://hooks.internal:9099 (path not shown), at most 20 \
             attempts\n",
            "  endpoint        https://kr@127.0.0.1:3/soap/v1 (password, query not shown)\n",
        ] {
            assert!(summary.contains(expected), "{expected:?} not in\n{summary}");
        }
        for secret in [
            "hunter3",
            "sslmode",
            "pubpass",
            "pubquery",
            "pubfragment",
            "endpass",
            "endquery",
            "pathsecret",
            "hookquery",
        ] {
            assert!(!summary.contains(secret), "{secret:?} in\n{summary}");
        }
    }

    #[test]
    fn a_password_in_a_urls_query_is_an_inline_secret() {
        let f = fixture(false);
        let db = f.text.lines().find(|l| l.starts_with("database_url")).expect("database_url").to_owned();
        let raw = parse(&f.replaced(&db, "database_url = \"postgres://coconnect@db:5432/coconnect?password=hunter3\""))
            .expect("parses");
        let inline = raw.inline_secrets();
        assert!(inline.contains(&"database_url password".to_owned()), "{inline:?}");
        let raw = parse(&f.replaced(&db, "database_url = \"postgres://coconnect@db:5432/coconnect?sslmode=disable\""))
            .expect("parses");
        assert!(!raw.inline_secrets().contains(&"database_url password".to_owned()));
        let raw = parse(&f.replaced(
            "endpoint = \"http://127.0.0.1:3/soap/v1\"",
            "endpoint = \"http://kr:endpass@127.0.0.1:3/soap/v1\"",
        ))
        .expect("parses");
        assert!(raw.inline_secrets().contains(&"partner ID: endpoint password".to_owned()));
    }

    #[test]
    fn an_inbound_password_hash_can_live_outside_the_configuration() {
        let f = fixture(false);
        let private = |name: &str, text: &str| {
            let path = f.dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        };
        let hash = quoted_value(&f.text, "password_hash");
        let token = quoted_value(&f.text, "token");
        let password = quoted_value(&f.text, "password");
        private("id.hash", &format!("{hash}\n"));
        private("token", &token);
        private("id.password", &password);
        // Every secret in a file of its own: the configuration itself may then be readable.
        let text = f
            .replaced(&format!("password_hash = \"{hash}\""), "password_hash_file = \"id.hash\"")
            .replacen(&format!("token = \"{token}\""), "token_file = \"token\"", 1)
            .replacen(&format!("password = \"{password}\""), "password_file = \"id.password\"", 1);
        std::fs::write(&f.config, &text).expect("write");
        std::fs::set_permissions(&f.config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let settings = load(&f.config).expect("no inline secret: a readable file is fine");
        assert_eq!(settings.partners["ID"].inbound_password_hash, hash);
        // The hash file is held to a private key's permissions.
        std::fs::set_permissions(f.dir.path().join("id.hash"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = load(&f.config).expect_err("readable hash file").to_string();
        assert!(e.starts_with("partner ID: inbound_auth.password_hash: "), "{e}");
        assert!(e.contains("is readable by group or others"), "{e}");
        // From the environment; one source only.
        let e = f.error(&text.replacen(
            "password_hash_file = \"id.hash\"",
            "password_hash_env = \"COCONNECT_TEST_UNSET_VARIABLE\"",
            1,
        ));
        assert_eq!(
            e,
            "partner ID: inbound_auth.password_hash: environment variable COCONNECT_TEST_UNSET_VARIABLE is not set"
        );
        let e = f.error(&text.replacen(
            "password_hash_file = \"id.hash\"",
            &format!("password_hash_file = \"id.hash\", password_hash = \"{hash}\""),
            1,
        ));
        assert!(e.starts_with("partner ID: inbound_auth.password_hash: give exactly one of"), "{e}");
    }

    #[test]
    fn a_top_level_key_under_any_partner_is_pointed_out() {
        let text = "party = \"KR\"\npublic_url = \"https://kr/soap/v1\"\n\n[[partners]]\nparty = \"ID\"\n\
                    database_url = \"sqlite:kr.db\"\n\n[[partners]]\nparty = \"JP\"\n";
        let e = parse(text).expect_err("database_url is in the first partner's table");
        assert!(e.starts_with("database_url: missing (top-level key; the database_url under [[partners]]"), "{e}");
    }

    #[test]
    fn checked_durations_keep_to_their_range() {
        let d = CheckedDuration::seconds("k", 120, 0..=86_400).expect("in range");
        assert_eq!((d.as_secs(), d.chrono(), d.to_string()), (120, chrono::Duration::seconds(120), "120 s".into()));
        assert_eq!(CheckedDuration::millis("k", 500, 1..=1000).expect("ms").to_string(), "500 ms");
        assert_eq!(CheckedDuration::days("k", 2, 1..=10).expect("days").to_string(), "2 days");
        let e = CheckedDuration::seconds("a.b", i64::MAX, 0..=i64::MAX).expect_err("past 100 years").to_string();
        assert!(e.starts_with("a.b: 9223372036854775807 is out of range"), "{e}");
        assert!(CheckedDuration::days("k", i64::MAX, 0..=i64::MAX).is_err());
        assert!(CheckedDuration::seconds("k", -1, -5..=5).is_err(), "no negative duration");
        assert!(CheckedDuration::seconds("k", u64::MAX, 0..=10).is_err());
    }

    #[test]
    fn an_empty_password_is_not_hashed() {
        assert!(hash_password("").is_err());
        assert!(hash_password("x").is_ok());
    }
}
