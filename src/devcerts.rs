//! `distpoint certs dev`: a development PKI made with rcgen.
//!
//! A dev CA, a server certificate for localhost/127.0.0.1/::1 and a client
//! certificate, as PEM files. The CA's private key is never written: to issue
//! more certificates, run the command again into a new folder. Tests use the
//! same [`DevCa`] to make certificates at test time.
//!
//! The certificates are shaped the way public path validators and TLS
//! scanners expect (sslyze's Mozilla "intermediate" and "modern" checks
//! pass): a CA valid for [`CA_DAYS`] with `basicConstraints` CA:TRUE
//! (pathlen 0), key usage keyCertSign/cRLSign and a subject key identifier;
//! leaf certificates valid for [`LEAF_DAYS`] (under the 398 days browsers
//! accept), with CA:FALSE, key usage digitalSignature, one extended key
//! usage (serverAuth or clientAuth), subject and authority key identifiers,
//! and for servers the names as subjectAltName. Validity starts an hour in
//! the past, so a client whose clock is a little behind still accepts them.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// How long the dev CA is valid, in days (10 years).
pub const CA_DAYS: i64 = 3650;
/// How long server and client certificates are valid, in days (at most 398
/// days is what browsers and Mozilla's TLS guidelines accept for a leaf).
pub const LEAF_DAYS: i64 = 365;

/// The CN of the client certificate `certs dev` makes.
pub const DEV_CLIENT_CN: &str = "client01";

/// An error while making or writing certificates.
#[derive(Debug)]
pub enum DevCertError {
    /// rcgen refused the parameters.
    Generate(rcgen::Error),
    /// A file could not be written.
    Write(PathBuf, std::io::Error),
}

impl fmt::Display for DevCertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevCertError::Generate(e) => write!(f, "cannot generate certificate: {e}"),
            DevCertError::Write(p, e) => write!(f, "cannot write {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for DevCertError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DevCertError::Generate(e) => Some(e),
            DevCertError::Write(_, e) => Some(e),
        }
    }
}

impl From<rcgen::Error> for DevCertError {
    fn from(e: rcgen::Error) -> Self {
        DevCertError::Generate(e)
    }
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct PemPair {
    /// The certificate, PEM.
    pub cert: String,
    /// The private key, PKCS#8 PEM.
    pub key: String,
}

impl fmt::Debug for PemPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the key.
        f.debug_struct("PemPair")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

/// A certificate authority that lives in memory.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

impl DevCa {
    /// Make a new self-signed CA named `cn`.
    pub fn new(cn: &str) -> Result<Self, DevCertError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(cn);
        // It signs leaf certificates only.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        valid_for(&mut params, CA_DAYS);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(DevCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate for `names` (DNS names or IP addresses), valid
    /// for [`LEAF_DAYS`].
    pub fn issue_server(&self, names: &[&str]) -> Result<PemPair, DevCertError> {
        self.issue_server_for_days(names, LEAF_DAYS)
    }

    /// A server certificate for `names` valid for `days` days (Mozilla's
    /// "modern" profile wants less than 90).
    pub fn issue_server_for_days(
        &self,
        names: &[&str],
        days: i64,
    ) -> Result<PemPair, DevCertError> {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name = name(names.first().copied().unwrap_or("localhost"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params, days)
    }

    /// A client certificate whose subject CN is `cn`.
    pub fn issue_client(&self, cn: &str) -> Result<PemPair, DevCertError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params, LEAF_DAYS)
    }

    fn issue(&self, mut params: CertificateParams, days: i64) -> Result<PemPair, DevCertError> {
        // ExplicitNoCa writes basicConstraints CA:FALSE, and with it (rcgen
        // writes the two together) the subject key identifier.
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        valid_for(&mut params, days);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(PemPair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

/// The organization every dev certificate's subject and issuer carry; it
/// marks the files [`renew_expired`] may replace.
pub const DEV_ORGANIZATION: &str = "distpoint dev";

/// Valid from an hour ago (clock skew) for `days` days.
fn valid_for(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, DEV_ORGANIZATION);
    dn
}

/// Where each dev PKI file goes.
#[derive(Debug, Clone)]
pub struct DevFiles {
    /// The CA certificate (what clients trust, and the server's `client_ca`).
    pub ca: PathBuf,
    /// The server certificate.
    pub server_cert: PathBuf,
    /// The server private key.
    pub server_key: PathBuf,
    /// The client certificate (CN [`DEV_CLIENT_CN`]).
    pub client_cert: PathBuf,
    /// The client private key.
    pub client_key: PathBuf,
}

impl DevFiles {
    /// The standard names inside one folder: ca.crt, server.crt/.key, client.crt/.key.
    pub fn in_folder(out: &Path) -> Self {
        DevFiles {
            ca: out.join("ca.crt"),
            server_cert: out.join("server.crt"),
            server_key: out.join("server.key"),
            client_cert: out.join("client.crt"),
            client_key: out.join("client.key"),
        }
    }

    /// Every path, certificates first.
    pub fn all(&self) -> [&Path; 5] {
        [
            &self.ca,
            &self.server_cert,
            &self.client_cert,
            &self.server_key,
            &self.client_key,
        ]
    }
}

/// Write a dev CA, a server certificate and a client certificate into `out`
/// under the standard names. Returns the paths written.
pub fn write_dev_certs(out: &Path) -> Result<DevFiles, DevCertError> {
    let files = DevFiles::in_folder(out);
    write_dev_files(&files)?;
    Ok(files)
}

/// Make a fresh dev PKI and write it to `files`. Keys get mode 0600.
pub fn write_dev_files(files: &DevFiles) -> Result<(), DevCertError> {
    let ca = DevCa::new("distpoint dev CA")?;
    let server = ca.issue_server(&["localhost", "127.0.0.1", "::1"])?;
    let client = ca.issue_client(DEV_CLIENT_CN)?;
    let contents: [(&Path, &str, bool); 5] = [
        (&files.ca, ca.cert_pem(), false),
        (&files.server_cert, &server.cert, false),
        (&files.client_cert, &client.cert, false),
        (&files.server_key, &server.key, true),
        (&files.client_key, &client.key, true),
    ];
    for (path, text, secret) in contents {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| DevCertError::Write(parent.to_path_buf(), e))?;
        }
        write_file(path, text, secret)?;
    }
    Ok(())
}

fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), DevCertError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e| DevCertError::Write(path.to_path_buf(), e);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 });
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)
}

/// What [`renew_expired`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// The dev certificates are still valid: nothing was written.
    Valid,
    /// The server or CA certificate had expired: a fresh dev PKI was written.
    Renewed,
    /// The server certificate is not one `certs dev` made (or cannot be
    /// read): it is never replaced.
    NotDev,
}

/// Renew dev files if the server cert is expired (`serve` with
/// `dev_certs = true`). The CA key is never kept, so renewing means a new CA,
/// server and client certificate, as on a first run. Only certificates issued
/// by a dev CA (issuer organization [`DEV_ORGANIZATION`]) are replaced: an
/// expired real certificate is left for its owner to renew.
pub fn renew_expired(
    files: &DevFiles,
    now: std::time::SystemTime,
) -> Result<Renewal, DevCertError> {
    let now = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let Some(server) = dev_cert_expiry(&files.server_cert) else {
        return Ok(Renewal::NotDev);
    };
    // A CA that has expired (or was replaced by a foreign one) makes the
    // server certificate useless to clients as well.
    let ca_expired = dev_cert_expiry(&files.ca).is_some_and(|not_after| not_after <= now);
    if server > now && !ca_expired {
        return Ok(Renewal::Valid);
    }
    write_dev_files(files)?;
    Ok(Renewal::Renewed)
}

/// The notAfter (Unix seconds) of a PEM certificate issued by a dev CA.
fn dev_cert_expiry(path: &Path) -> Option<i64> {
    let pem = std::fs::read(path).ok()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    let org = cert.issuer().iter_organization().next()?.as_str().ok()?;
    (org == DEV_ORGANIZATION).then(|| cert.validity().not_after.timestamp())
}

#[cfg(test)]
mod renew_tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    /// A dev-shaped PKI whose server certificate expired yesterday.
    fn write_expired(files: &DevFiles, org: &str) {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "distpoint dev CA");
        ca_params
            .distinguished_name
            .push(DnType::OrganizationName, org);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let yesterday = SystemTime::now() - Duration::from_secs(86_400);
        params.not_before = (yesterday - Duration::from_secs(86_400)).into();
        params.not_after = yesterday.into();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(&files.ca, ca_cert.pem()).unwrap();
        std::fs::write(&files.server_cert, cert.pem()).unwrap();
        std::fs::write(&files.server_key, key.serialize_pem()).unwrap();
    }

    #[test]
    fn an_expired_dev_certificate_is_renewed_and_a_valid_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let files = DevFiles::in_folder(dir.path());
        write_expired(&files, DEV_ORGANIZATION);
        let before = std::fs::read(&files.server_cert).unwrap();
        assert_eq!(
            renew_expired(&files, SystemTime::now()).unwrap(),
            Renewal::Renewed
        );
        let after = std::fs::read(&files.server_cert).unwrap();
        assert_ne!(before, after);
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(dev_cert_expiry(&files.server_cert).unwrap() > now);
        assert!(files.client_key.exists());
        assert_eq!(
            renew_expired(&files, SystemTime::now()).unwrap(),
            Renewal::Valid
        );
        assert_eq!(std::fs::read(&files.server_cert).unwrap(), after);
    }

    #[test]
    fn an_expired_certificate_from_another_ca_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let files = DevFiles::in_folder(dir.path());
        write_expired(&files, "Example Corp");
        let before = std::fs::read(&files.server_cert).unwrap();
        assert_eq!(
            renew_expired(&files, SystemTime::now()).unwrap(),
            Renewal::NotDev
        );
        assert_eq!(std::fs::read(&files.server_cert).unwrap(), before);
        assert!(!files.client_key.exists());
    }
}

/// The certificate profile (lifetimes, extensions).
#[cfg(test)]
mod profile_tests {
    use super::*;
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::prelude::*;

    fn parsed(pem: &str) -> Vec<u8> {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        p.contents
    }

    /// (validity in days, CA?, key usages, EKU server, EKU client, SKI, AKI, SAN count)
    fn profile(der: &[u8]) -> (i64, bool, String, bool, bool, Vec<u8>, Vec<u8>, usize) {
        let (_, c) = X509Certificate::from_der(der).unwrap();
        let v = c.validity();
        let days = (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400;
        let (mut ca, mut ku, mut srv, mut cli) = (false, String::new(), false, false);
        let (mut ski, mut aki, mut san) = (Vec::new(), Vec::new(), 0);
        for ext in c.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(b) => {
                    assert!(ext.critical, "basicConstraints is critical");
                    ca = b.ca;
                }
                ParsedExtension::KeyUsage(k) => {
                    assert!(ext.critical, "keyUsage is critical");
                    ku = k.to_string();
                }
                ParsedExtension::ExtendedKeyUsage(e) => (srv, cli) = (e.server_auth, e.client_auth),
                ParsedExtension::SubjectKeyIdentifier(k) => ski = k.0.to_vec(),
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    aki = a.key_identifier.as_ref().unwrap().0.to_vec()
                }
                ParsedExtension::SubjectAlternativeName(s) => san = s.general_names.len(),
                _ => {}
            }
        }
        (days, ca, ku, srv, cli, ski, aki, san)
    }

    #[test]
    fn dev_certificates_have_the_extensions_validators_expect() {
        let ca = DevCa::new("test CA").unwrap();
        let server = ca.issue_server(&["localhost", "127.0.0.1", "::1"]).unwrap();
        let client = ca.issue_client("client01").unwrap();

        let (days, is_ca, ku, _, _, ca_ski, _, _) = profile(&parsed(ca.cert_pem()));
        assert!((3649..=CA_DAYS).contains(&days), "CA valid {days} days");
        assert!(is_ca);
        assert!(
            ku.contains("Key Cert Sign") && ku.contains("CRL Sign"),
            "{ku}"
        );
        assert_eq!(
            ca_ski.len(),
            20,
            "CA has a subject key identifier (truncated SHA-256)"
        );

        let (days, is_ca, ku, srv, cli, ski, aki, san) = profile(&parsed(&server.cert));
        assert!(days <= 398, "server certificate valid {days} days");
        assert!(!is_ca && srv && !cli);
        assert_eq!(ku, "Digital Signature");
        assert!(!ski.is_empty());
        assert_eq!(aki, ca_ski, "authority key identifier names the CA");
        assert_eq!(san, 3);

        let (days, is_ca, _, srv, cli, ski, aki, _) = profile(&parsed(&client.cert));
        assert!(days <= 398);
        assert!(!is_ca && cli && !srv && !ski.is_empty());
        assert_eq!(aki, ca_ski);

        let short = ca.issue_server_for_days(&["localhost"], 89).unwrap();
        assert_eq!(profile(&parsed(&short.cert)).0, 89);
    }

    #[test]
    fn validity_starts_in_the_past() {
        let ca = DevCa::new("test CA").unwrap();
        let der = parsed(&ca.issue_client("c").unwrap().cert);
        let (_, c) = X509Certificate::from_der(&der).unwrap();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        assert!(c.validity().not_before.timestamp() <= now - 3000);
    }
}
