//! `[devices]` and `[licenses]` → [`DeviceSettings`]: device licensing is on when `[devices]` is
//! present; every problem goes to the caller's error list, naming its field.

use std::path::PathBuf;
use std::time::Duration;

use super::raw::{without_credentials, Raw};
use crate::drm::{DeviceLicenses, Drm};
use crate::license::device::DeviceSettings;

/// Default registry: the embedded SQLite file.
pub const DEFAULT_REGISTRY: &str = "sqlite:state/devices.sqlite3";

pub(super) fn build_devices(raw: &Raw, drm: &Drm, errors: &mut Vec<String>) -> Option<DeviceSettings> {
    let uses = drm
        .rules
        .iter()
        .map(|(_, p)| p)
        .chain(std::iter::once(&drm.default_policy))
        .find(|p| p.device_licenses != DeviceLicenses::None);
    let Some(d) = &raw.devices else {
        if raw.licenses.is_some() {
            errors.push("licenses: needs a [devices] section (device licensing is off without it)".to_owned());
        }
        if let Some(p) = uses {
            errors.push(format!("policies.{}.device_licenses: needs a [devices] section", p.name));
        }
        return None;
    };
    let l = raw.licenses.as_ref();
    let registry = d.registry.clone().unwrap_or_else(|| DEFAULT_REGISTRY.to_owned());
    let pg = registry.starts_with("postgres://") || registry.starts_with("postgresql://");
    let sqlite_path = registry.strip_prefix("sqlite:");
    if !pg && sqlite_path.is_none_or(str::is_empty) {
        errors.push(format!(
            "devices.registry: '{}' is neither sqlite:PATH nor postgres://…",
            without_credentials(&registry)
        ));
    }
    let max_devices = d.max_devices_per_subject.unwrap_or(5);
    if !(1..=10_000).contains(&max_devices) {
        errors.push(format!("devices.max_devices_per_subject: {max_devices} is outside 1..=10000"));
    }
    let max_members = d.max_domain_members.unwrap_or(6);
    if !(1..=1000).contains(&max_members) {
        errors.push(format!("devices.max_domain_members: {max_members} is outside 1..=1000"));
    }
    let skew = d.request_skew_secs.unwrap_or(120);
    if !(1..=3600).contains(&skew) {
        errors.push(format!("devices.request_skew_secs: {skew} is outside 1..=3600"));
    }
    let grace = d.entitlement_grace_secs.unwrap_or(7 * 86_400);
    if grace > 366 * 86_400 {
        errors.push(format!("devices.entitlement_grace_secs: {grace} is above a year"));
    }
    let ttl = match (l.and_then(|l| l.direct_ttl_days), l.and_then(|l| l.direct_ttl_secs)) {
        (Some(_), Some(_)) => {
            errors.push("licenses.direct_ttl_secs: set direct_ttl_days or direct_ttl_secs, not both".to_owned());
            7 * 86_400
        }
        (Some(days), None) => days.saturating_mul(86_400),
        (None, Some(secs)) => secs,
        (None, None) => 7 * 86_400,
    };
    if !(60..=366 * 86_400).contains(&ttl) {
        errors.push(format!("licenses.direct_ttl_secs: {ttl} s is outside 60 s ..= 366 days"));
    }
    let every = l.and_then(|l| l.regenerate_every_secs).unwrap_or(3600);
    if !(1..=86_400).contains(&every) {
        errors.push(format!("licenses.regenerate_every_secs: {every} is outside 1..=86400"));
    }
    let public_url = l.and_then(|l| l.public_url.clone());
    if let Some(u) = &public_url {
        if !(u.starts_with("https://") || u.starts_with("http://"))
            || u.contains('"')
            || u.chars().any(char::is_whitespace)
        {
            errors.push(format!("licenses.public_url: '{u}' is not an http(s) URL"));
        }
    }
    Some(DeviceSettings {
        registry_url: registry,
        secret_file: d.secret_file.clone().unwrap_or_else(|| PathBuf::from("state/device-master.key")),
        signing_key: d.signing_key.clone().unwrap_or_else(|| PathBuf::from("state/origin-signing.pem")),
        max_devices_per_subject: max_devices,
        max_domain_members: max_members,
        request_skew_secs: i64::try_from(skew).unwrap_or(120),
        register_claims: d.register_claims.clone(),
        entitlement_grace_secs: i64::try_from(grace).unwrap_or(0),
        licenses_dir: l.and_then(|l| l.dir.clone()).unwrap_or_else(|| PathBuf::from("licenses")),
        direct_ttl_secs: i64::try_from(ttl).unwrap_or(7 * 86_400),
        regenerate_every: Duration::from_secs(every),
        public_url,
        fsync: l.and_then(|l| l.fsync).unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::super::raw::without_credentials;
    use super::super::{Config, Overrides};

    fn load(text: &str) -> Result<Config, super::super::ConfigError> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!("drm-origin-devcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("{}.toml", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
        std::fs::write(&p, text).unwrap();
        Config::load(Some(&p), Overrides::default())
    }

    const POLICY: &str = "[auth]\nhmac_secret = \"ZHJtLW9yaWdpbiBkZXZpY2UgdGVzdCBzZWNyZXQgKHB1YmxpYyEpISE=\"\n\
        [keystore]\npath = \"/tmp/k.json\"\n[policies.p]\ndash = [\"cenc\"]\nhls = [\"aes128\"]\n\
        keys = { video = \"auto\", envelope = \"auto\" }\n";

    #[test]
    fn device_sections_validate_and_report_every_error() {
        let ok = load(&format!("{POLICY}device_licenses = \"direct\"\n[devices]\n[licenses]\ndirect_ttl_secs = 600\n"))
            .unwrap();
        let d = ok.devices.unwrap();
        assert_eq!(
            (d.direct_ttl_secs, d.max_devices_per_subject, d.registry_url.as_str()),
            (600, 5, super::DEFAULT_REGISTRY)
        );
        // aes128 without key_delivery is fine for a device-licensed policy, not otherwise.
        assert!(load(POLICY).is_err());
        let e = load(&format!(
            "{POLICY}device_licenses = \"direct\"\nroot_keys = [{{ version = 0 }}]\n[devices]\nregistry = \"mysql://x\"\nmax_domain_members = 0\n\
             [licenses]\ndirect_ttl_days = 7\ndirect_ttl_secs = 60\n"
        ))
        .unwrap_err();
        let text = e.to_string();
        for want in ["only a chained policy", "devices.registry", "max_domain_members", "not both"] {
            assert!(text.contains(want), "{want} missing from:\n{text}");
        }
        let e = load(&format!(
            "{POLICY}device_licenses = \"chained\"\nroot_keys = [{{ version = 1 }}, {{ version = 1 }}, \
             {{ version = 2, not_before = 9, not_after = 9 }}]\n[devices]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("listed twice") && e.contains("not_before is not before"), "{e}");
        let ok = load(&format!(
            "{POLICY}device_licenses = \"chained\"\nroot_keys = [{{ version = 2, not_before = 100 }}, \
             {{ version = 1, not_after = 200 }}]\n[[assets]]\nmatch = \"**\"\npolicy = \"p\"\n[devices]\n"
        ))
        .unwrap();
        let p = ok.drm.policy_for("x");
        assert_eq!(p.live_roots(150).iter().map(|r| r.version).collect::<Vec<_>>(), vec![1, 2], "overlap");
        assert_eq!(p.live_roots(250).iter().map(|r| r.version).collect::<Vec<_>>(), vec![2]);
        assert_eq!((ok.drm.root_epoch(50), ok.drm.root_epoch(150), ok.drm.root_epoch(250)), (1, 2, 3));
        let e = load(&format!("{POLICY}device_licenses = \"direct\"\n[licenses]\n")).unwrap_err().to_string();
        assert!(e.contains("needs a [devices] section"), "{e}");
    }

    #[test]
    fn registry_urls_lose_their_password_in_messages() {
        assert_eq!(without_credentials("postgres://u:secret@db:5432/x?sslmode=require"), "postgres://…@db:5432/x");
        assert_eq!(without_credentials("sqlite:state/devices.sqlite3"), "sqlite:state/devices.sqlite3");
    }
}
