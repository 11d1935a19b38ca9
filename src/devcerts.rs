//! `distpoint certs dev`: a development PKI made with rcgen.
//!
//! A dev CA, a server certificate for localhost/127.0.0.1/::1 and a client
//! certificate, as PEM files. The CA's private key is never written: to issue
//! more certificates, run the command again into a new folder. Tests use the
//! same [`DevCa`] to make certificates at test time.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

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
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
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

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn issue_server(&self, names: &[&str]) -> Result<PemPair, DevCertError> {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name = name(names.first().copied().unwrap_or("localhost"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params)
    }

    /// A client certificate whose subject CN is `cn`.
    pub fn issue_client(&self, cn: &str) -> Result<PemPair, DevCertError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> Result<PemPair, DevCertError> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(PemPair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "distpoint dev");
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
