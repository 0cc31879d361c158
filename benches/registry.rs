//! Choosing the newest matching tag among 10,000 tags.
//!
//! 1. against the real `docker-registry` (it ignores `n=`: one page);
//! 2. against the HTTP double serving pages of 1,000 with `Link` (10 pages);
//! 3. the same again with ETags: an unchanged list costs 10 × 304.
//!
//! Prints time, requests sent and peak memory (VmHWM). Target: under 2 s, one
//! request per page, nothing refetched when the list has not changed.
//!
//! `cargo bench --bench registry` (needs `docker-registry` + `apache2-utils`).

#[path = "../tests/support/registry_double.rs"]
mod registry_double;
#[path = "../tests/support/registry.rs"]
mod registry_support;

use std::time::{Duration, Instant};

use registry_double::{DoubleConfig, RegistryDouble};
use registry_support::{Auth, RealRegistry};
use relbot::config::{FloatingTags, ImagePolicySpec, VersionRange};
use relbot::release::policy::select_tag;
use relbot::release::registry::{ImageRef, RegistryClient, RegistryCredentials, RegistrySettings};

const TAG_COUNT: usize = 10_000;

/// 10,000 distinct tags of every shape a policy must sort through.
fn tags() -> Vec<String> {
    let mut tags: Vec<String> = ["latest", "stable", "1", "1.2", "9", "9.99", "main", "edge"]
        .map(String::from)
        .to_vec();
    let mut n = 0usize;
    while tags.len() < TAG_COUNT {
        let (major, minor, patch) = (n / 1000, (n / 10) % 100, n % 10);
        tags.push(match n % 10 {
            7 => format!("{major}.{minor}.{patch}-alpine"),
            8 => format!("{major}.{minor}.{patch}-rc.{}", n % 7),
            9 => format!("v{major}.{minor}.{patch}"),
            _ => format!("{major}.{minor}.{patch}"),
        });
        n += 1;
    }
    tags
}

fn policy() -> ImagePolicySpec {
    ImagePolicySpec {
        image: String::new(),
        semver: VersionRange::parse(">=1.0.0 <9.50.0").unwrap(),
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

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Run {
    elapsed: Duration,
    requests: u64,
    pages: u64,
    not_modified: u64,
    chosen: String,
    tags: usize,
}

async fn choose(client: &RegistryClient, image: &ImageRef) -> Run {
    let before = client.stats().snapshot();
    let started = Instant::now();
    let tags = client.list_tags(image).await.expect("listing tags");
    let chosen = select_tag(&policy(), Some("1.0.0"), &tags)
        .unwrap()
        .expect("a newer tag");
    let elapsed = started.elapsed();
    let after = client.stats().snapshot();
    Run {
        elapsed,
        requests: after.requests - before.requests,
        pages: after.pages - before.pages,
        not_modified: after.not_modified - before.not_modified,
        chosen: chosen.tag,
        tags: tags.len(),
    }
}

fn report(label: &str, run: &Run) {
    println!(
        "{label:<44} {:>8.1} ms  requests {:>3}  pages {:>3}  304s {:>3}  tags {:>6}  chosen {}  peak RSS {} KiB",
        run.elapsed.as_secs_f64() * 1000.0,
        run.requests,
        run.pages,
        run.not_modified,
        run.tags,
        run.chosen,
        peak_rss_kib()
    );
}

#[tokio::main]
async fn main() {
    relbot::tls::init();
    let tags = tags();
    assert_eq!(tags.len(), TAG_COUNT);

    let registry = RealRegistry::start(Auth::Anonymous).await;
    let seeding = Instant::now();
    registry.seed_bulk("bench/app", &tags, 8).await;
    println!(
        "seeded {TAG_COUNT} tags into docker-registry in {:.1} s (not measured below)",
        seeding.elapsed().as_secs_f64()
    );

    let client = RegistryClient::new(
        RegistrySettings::default(),
        RegistryCredentials::anonymous(),
    )
    .unwrap();
    let image = registry.image("bench/app");
    let real_first = choose(&client, &image).await;
    report("real registry, first run", &real_first);
    let real_again = choose(&client, &image).await;
    report("real registry, again (it sends no ETag)", &real_again);

    let mut config = DoubleConfig::default();
    config.repositories.insert("bench/app".into(), tags.clone());
    config.max_page = Some(1000);
    config.etags = true;
    let double = RegistryDouble::start(config).await;
    let mut settings = RegistrySettings::default();
    settings.page_size = Some(1000);
    let client = RegistryClient::new(settings, RegistryCredentials::anonymous()).unwrap();
    let image = double.image("bench/app");
    let paged = choose(&client, &image).await;
    report("double, n=1000 with Link, first run", &paged);
    let cached = choose(&client, &image).await;
    report("double, n=1000, unchanged (ETag → 304)", &cached);

    let ok = [&real_first, &real_again, &paged, &cached]
        .iter()
        .all(|r| r.elapsed < Duration::from_secs(2))
        && real_first.requests == 1
        && paged.requests == 10
        && cached.requests == 10
        && cached.not_modified == 10
        && [&real_first, &paged, &cached]
            .iter()
            .all(|r| r.chosen == real_again.chosen);
    println!(
        "target (each under 2 s, one request per page, unchanged pages all 304): {}",
        if ok { "met" } else { "MISSED" }
    );
    if !ok {
        std::process::exit(1);
    }
}
