use super::*;

#[test]
fn modes_parse_and_show_as_libpq_names_them() {
    for name in [
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ] {
        assert_eq!(SslMode::parse(name).map(SslMode::as_str), Some(name));
    }
    assert_eq!(SslMode::parse("verify_full"), None);
}

#[test]
fn verifying_modes_need_their_ca_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let missing = dir.path().join("root.crt");
    let settings = |mode, given| TlsSettings {
        mode,
        rootcert: Some(RootCert::File(missing.clone())),
        rootcert_given: given,
    };
    // libpq: `require` checks the chain only when the default file exists.
    assert!(MakeRustls::new(&settings(SslMode::Require, false)).is_ok());
    for (mode, given) in [
        (SslMode::Require, true),
        (SslMode::VerifyCa, false),
        (SslMode::VerifyFull, true),
    ] {
        let err = MakeRustls::new(&settings(mode, given))
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }
    std::fs::write(&missing, "not a certificate\n").expect("write");
    let err = MakeRustls::new(&settings(SslMode::VerifyCa, true))
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("holds no PEM certificate"), "{err}");
    let weak = TlsSettings {
        mode: SslMode::Require,
        rootcert: Some(RootCert::System),
        rootcert_given: true,
    };
    let err = MakeRustls::new(&weak).err().expect("refused").to_string();
    assert!(err.contains("use `sslmode=verify-full`"), "{err}");
}

/// A CA certificate made by `openssl` in `dir`, as PEM.
fn ca_pem(dir: &Path) -> String {
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-days", "3", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=test ca",
        ])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("`openssl` runs ({e}); install it with `scripts/deps test`"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dir.join("ca.pem")).expect("ca.pem")
}

/// `sslrootcert=system` reads SSL_CERT_FILE and SSL_CERT_DIR as OpenSSL does, and passes
/// over a certificate it cannot parse instead of refusing the whole bundle; a CA file the
/// user named is still read strictly.
#[test]
fn system_roots_follow_ssl_cert_file_and_dir_and_pass_over_bad_certificates() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = ca_pem(dir.path());
    let junk = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, format!("{junk}{good}")).expect("bundle");
    let (junk_dir, good_dir) = (dir.path().join("junk"), dir.path().join("good"));
    for (folder, text) in [(&junk_dir, junk), (&good_dir, good.as_str())] {
        std::fs::create_dir(folder).expect("folder");
        std::fs::write(folder.join("cert.pem"), text).expect("cert");
    }
    let env = |vars: Vec<(&'static str, OsString)>| {
        move |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        }
    };

    let store = system_roots(&env(vec![("SSL_CERT_FILE", bundle.clone().into())]))
        .expect("the bundle's good certificate");
    assert_eq!(store.len(), 1);
    let dirs = std::env::join_paths([&junk_dir, &good_dir]).expect("joined");
    let store = system_roots(&env(vec![("SSL_CERT_DIR", dirs)])).expect("the folders");
    assert_eq!(store.len(), 1);

    let err = read_roots(&bundle).expect_err("a named CA file is read strictly");
    assert!(
        err.to_string().contains(&bundle.display().to_string()),
        "{err}"
    );

    let missing = dir.path().join("missing.pem");
    let err =
        system_roots(&env(vec![("SSL_CERT_FILE", missing.clone().into())])).expect_err("no roots");
    assert!(matches!(err, TlsError::NoSystemRoots { .. }), "{err}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}
