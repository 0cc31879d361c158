//! The registry client and tag policies against a real distribution v2
//! registry (Debian's `docker-registry`), anonymous and with htpasswd auth.

#[path = "support/registry.rs"]
mod registry_support;

use std::collections::HashSet;

use registry_support::{Auth, Media, RealRegistry};
use relbot::config::{FloatingTags, ImagePolicySpec, VersionRange};
use relbot::release::policy::select_tag;
use relbot::release::registry::{
    Credential, ImageRef, RegistryClient, RegistryCredentials, RegistryError, RegistrySettings,
};

const TAGS: &[&str] = &[
    // semver, including 0.0.10 > 0.0.9
    "0.0.9",
    "0.0.10",
    "1.2.3",
    "1.3.0",
    "1.10.0",
    "2.0.0",
    // pre-releases
    "1.11.0-rc.1",
    "2.1.0-beta.2",
    "2.1.0-rc1",
    // suffixed
    "1.3.0-alpine",
    "1.10.0-alpine",
    "2.0.0-arm64",
    // floating
    "latest",
    "stable",
    "1",
    "1.10",
    "2",
    // v-prefixed
    "v2.0.1",
    "v2.2.0",
    // prefixed (one repository, several components)
    "django-api-0.0.9",
    "django-api-0.0.17",
    "frontend-0.1.0",
];

fn policy(range: &str) -> ImagePolicySpec {
    ImagePolicySpec {
        image: String::new(),
        semver: VersionRange::parse(range).unwrap(),
        tag_prefix: String::new(),
        tag_suffix: None,
        pre_release: false,
        tag_pattern: None,
        floating_tags: FloatingTags::Keep,
        pin_digest: false,
        files: Vec::new(),
        schedule: None,
        automerge: None,
        application: None,
        rollback: Default::default(),
    }
}

fn client(credentials: RegistryCredentials) -> RegistryClient {
    RegistryClient::new(RegistrySettings::default(), credentials).unwrap()
}

fn pick(spec: &ImagePolicySpec, current: Option<&str>, tags: &[String]) -> Option<String> {
    select_tag(spec, current, tags).unwrap().map(|c| c.tag)
}

#[tokio::test]
async fn registry_real_anonymous_tags_feed_the_policies() {
    let registry = RealRegistry::start(Auth::Anonymous).await;
    registry.seed("acme/app", TAGS, Media::Docker).await;
    let client = client(RegistryCredentials::anonymous());
    let image = registry.image("acme/app");

    let tags = client.list_tags(&image).await.unwrap();
    let got: HashSet<&str> = tags.iter().map(String::as_str).collect();
    assert_eq!(got, TAGS.iter().copied().collect::<HashSet<_>>());
    let stats = client.stats().snapshot();
    assert_eq!(
        (stats.requests, stats.pages, stats.token_requests),
        (1, 1, 0),
        "{stats:?}"
    );

    assert_eq!(
        pick(&policy(">=0.0.1 <1.0.0"), Some("0.0.9"), &tags).as_deref(),
        Some("0.0.10")
    );
    assert_eq!(
        pick(&policy("^1.2"), Some("1.2.3"), &tags).as_deref(),
        Some("1.10.0")
    );
    assert_eq!(
        pick(&policy("^1.2"), Some("1.3.0-alpine"), &tags).as_deref(),
        Some("1.10.0-alpine")
    );
    assert_eq!(
        pick(&policy(">=2.0.0"), Some("v2.0.1"), &tags).as_deref(),
        Some("v2.2.0")
    );
    // `latest` in use is not a version: no version is proposed.
    assert_eq!(pick(&policy(">=1.0.0"), Some("latest"), &tags), None);
    assert_eq!(
        pick(&policy(">=1.0.0"), Some("1.0.0-arm64"), &tags).as_deref(),
        Some("2.0.0-arm64")
    );
    let mut pre = policy("^1.0");
    pre.pre_release = true;
    assert_eq!(
        pick(&pre, Some("1.10.0"), &tags).as_deref(),
        Some("1.11.0-rc.1")
    );
    // Floating tags keep their number of parts by default.
    let floating = policy(">=1.0.0");
    assert_eq!(pick(&floating, Some("1"), &tags).as_deref(), Some("2"));
    assert_eq!(pick(&floating, Some("1.2"), &tags).as_deref(), Some("1.10"));
    let mut prefixed = policy(">=0.0.1");
    prefixed.tag_prefix = "django-api-".into();
    assert_eq!(
        pick(&prefixed, Some("django-api-0.0.9"), &tags).as_deref(),
        Some("django-api-0.0.17")
    );
}

#[tokio::test]
async fn registry_real_manifest_digests_by_head_for_docker_and_oci_media() {
    let registry = RealRegistry::start(Auth::Anonymous).await;
    let docker = registry
        .seed("acme/docker", &["1.0.0"], Media::Docker)
        .await;
    let oci = registry
        .seed("acme/oci", &["1.0.0", "1.1.0"], Media::Oci)
        .await;
    let client = client(RegistryCredentials::anonymous());

    let got = client
        .manifest_digest(&registry.image("acme/docker"), "1.0.0")
        .await
        .unwrap();
    assert_eq!(got, docker["1.0.0"]);
    // Without the OCI media types in Accept this registry answers 404.
    let got = client
        .manifest_digest(&registry.image("acme/oci"), "1.1.0")
        .await
        .unwrap();
    assert_eq!(got, oci["1.1.0"]);
    assert_ne!(oci["1.0.0"], oci["1.1.0"]);

    match client
        .manifest_digest(&registry.image("acme/oci"), "9.9.9")
        .await
    {
        Err(RegistryError::NotFound { what, .. }) => assert!(what.contains("9.9.9"), "{what}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    match client.list_tags(&registry.image("acme/missing")).await {
        Err(e @ RegistryError::NotFound { .. }) => {
            assert!(e.to_string().contains("acme/missing"), "{e}")
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn registry_real_htpasswd_basic_auth() {
    let auth = Auth::Htpasswd {
        username: "relbot".into(),
        password: "s3cret-pass".into(),
    };
    let registry = RealRegistry::start(auth).await;
    registry
        .seed("team/api", &["0.1.0", "0.2.0"], Media::Docker)
        .await;
    let image = registry.image("team/api");

    let err = client(RegistryCredentials::anonymous())
        .list_tags(&image)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert!(
        text.contains("RELBOT_REGISTRY_127_0_0_1_") && text.contains("_USERNAME"),
        "{text}"
    );

    let mut wrong = RegistryCredentials::anonymous();
    wrong.insert(
        &registry.host,
        Credential {
            username: "relbot".into(),
            password: "wrong-guess".into(),
        },
    );
    let err = client(wrong).list_tags(&image).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err:?}");
    assert!(
        !format!("{err} {err:?}").contains("wrong-guess"),
        "the password leaked into {err:?}"
    );

    // From the environment, as a deployment would set it.
    let key = relbot::release::registry::credentials::env_key(&registry.host);
    let env = vec![
        (
            format!("RELBOT_REGISTRY_{key}_USERNAME"),
            "relbot".to_string(),
        ),
        (
            format!("RELBOT_REGISTRY_{key}_PASSWORD"),
            "s3cret-pass".to_string(),
        ),
    ];
    let client = client(RegistryCredentials::from_sources(env, None).unwrap());
    let mut tags = client.list_tags(&image).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["0.1.0", "0.2.0"]);
    // The 401 taught the client to send basic auth up front from then on.
    let before = client.stats().snapshot().requests;
    client.list_tags(&image).await.unwrap();
    assert!(
        client
            .manifest_digest(&image, "0.2.0")
            .await
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(client.stats().snapshot().requests - before, 2);
}

#[tokio::test]
async fn registry_real_credentials_from_a_docker_config_file() {
    let auth = Auth::Htpasswd {
        username: "ci".into(),
        password: "from-docker-config".into(),
    };
    let registry = RealRegistry::start(auth).await;
    registry.seed("team/web", &["3.0.0"], Media::Oci).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:from-docker-config");
    std::fs::write(
        &config,
        format!(
            r#"{{"auths":{{"http://{}":{{"auth":"{auth}"}}}}}}"#,
            registry.host
        ),
    )
    .unwrap();
    let client = client(RegistryCredentials::from_sources(Vec::new(), Some(&config)).unwrap());
    assert_eq!(
        client.list_tags(&registry.image("team/web")).await.unwrap(),
        ["3.0.0"]
    );
}

#[tokio::test]
async fn registry_real_reached_through_a_mirror() {
    // A K3s cluster pulls `registry.example.test/team/app` through a private
    // mirror; the bot must ask the mirror too.
    let registry = RealRegistry::start(Auth::Anonymous).await;
    registry
        .seed("team/app", &["1.0.0", "1.1.0"], Media::Docker)
        .await;
    let mut settings = RegistrySettings::default();
    settings.set_host("registry.example.test", Some(&registry.host), false);
    let client = RegistryClient::new(settings, RegistryCredentials::anonymous()).unwrap();
    let image = ImageRef::parse("registry.example.test/team/app:1.0.0").unwrap();
    let mut tags = client.list_tags(&image).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["1.0.0", "1.1.0"]);
}

#[tokio::test]
async fn registry_real_check_pins_digests_and_notices_a_repushed_tag() {
    use relbot::release::policy::check;
    let registry = RealRegistry::start(Auth::Anonymous).await;
    let digests = registry
        .seed("acme/pinned", &["1.0.0", "1.1.0", "latest"], Media::Oci)
        .await;
    let client = client(RegistryCredentials::anonymous());
    let mut spec = policy("^1.0");
    spec.image = format!("{}/acme/pinned", registry.host);
    spec.pin_digest = true;

    let current = ImageRef::parse(&format!("{}/acme/pinned:1.0.0", registry.host)).unwrap();
    let update = check(&client, &spec, Some(&current))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(update.tag, "1.1.0");
    assert_eq!(update.digest.as_deref(), Some(digests["1.1.0"].as_str()));
    assert_eq!(
        update.tag_and_digest(),
        format!("1.1.0@{}", digests["1.1.0"])
    );

    // Up to date and pinned to the right digest: nothing to do.
    let pinned = ImageRef::parse(&format!(
        "{}/acme/pinned:1.1.0@{}",
        registry.host, digests["1.1.0"]
    ))
    .unwrap();
    assert_eq!(check(&client, &spec, Some(&pinned)).await.unwrap(), None);

    // The tag is pushed again with other content: same tag, new digest.
    let repushed = registry
        .seed("acme/pinned", &["1.1.0"], Media::Docker)
        .await;
    assert_ne!(repushed["1.1.0"], digests["1.1.0"]);
    let update = check(&client, &spec, Some(&pinned)).await.unwrap().unwrap();
    assert_eq!(
        (update.tag.as_str(), update.version.as_ref()),
        ("1.1.0", None)
    );
    assert_eq!(update.digest.as_deref(), Some(repushed["1.1.0"].as_str()));

    // Without pinning a digest there is nothing to report for the same tag.
    spec.pin_digest = false;
    assert_eq!(check(&client, &spec, Some(&pinned)).await.unwrap(), None);
}
