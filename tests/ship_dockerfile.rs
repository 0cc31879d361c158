//! A static check of the Dockerfile (no container engine runs here): it
//! parses into stages, names only base images known to exist, installs only
//! Debian bookworm packages that exist, builds for amd64 and arm64 by
//! cross-compiling, and ends in a small non-root image with CA certificates.

mod ship_support;

use std::process::Command;

use ship_support::read;

/// One Dockerfile instruction, continuation lines joined.
#[derive(Debug, Clone)]
struct Instruction {
    line: usize,
    keyword: String,
    args: String,
}

fn parse(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending: Option<Instruction> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        // Comment and empty lines are dropped, also inside a continuation
        // (where they do not end the instruction), as Docker does.
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (body, continues) = match line.strip_suffix('\\') {
            Some(body) => (body.trim_end(), true),
            None => (line, false),
        };
        match pending.as_mut() {
            Some(p) => {
                p.args.push(' ');
                p.args.push_str(body);
            }
            None => {
                let (keyword, args) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
                pending = Some(Instruction {
                    line: i + 1,
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.trim().to_string(),
                });
            }
        }
        if !continues {
            out.extend(pending.take());
        }
    }
    out.extend(pending);
    out
}

/// A `FROM [--platform=…] image [AS name]`.
#[derive(Debug)]
struct Stage {
    image: String,
    name: Option<String>,
    platform: Option<String>,
    instructions: Vec<Instruction>,
}

fn stages(instructions: &[Instruction]) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in instructions {
        if instruction.keyword == "FROM" {
            let mut words = instruction.args.split_whitespace().peekable();
            let mut platform = None;
            while let Some(flag) = words.peek().and_then(|w| w.strip_prefix("--")) {
                if let Some(p) = flag.strip_prefix("platform=") {
                    platform = Some(p.to_string());
                }
                words.next();
            }
            let image = words.next().expect("FROM names an image").to_string();
            let name = match (words.next(), words.next()) {
                (Some(as_), Some(name)) if as_.eq_ignore_ascii_case("as") => Some(name.to_string()),
                (None, None) => None,
                other => panic!("line {}: cannot read FROM {other:?}", instruction.line),
            };
            stages.push(Stage {
                image,
                name,
                platform,
                instructions: Vec::new(),
            });
        } else {
            stages
                .last_mut()
                .unwrap_or_else(|| panic!("line {}: instruction before FROM", instruction.line))
                .instructions
                .push(instruction.clone());
        }
    }
    stages
}

const KNOWN_KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

/// Base images known to exist. Rust images are checked by pattern (and
/// against the toolchain this repository builds with).
const KNOWN_RUNTIME_IMAGES: &[&str] = &[
    // glibc, libgcc, CA certificates, tzdata, user 65532; no shell.
    "gcr.io/distroless/cc-debian12:nonroot",
    // The official Go image (Go 1.24 on Debian bookworm), to build kustomize.
    "golang:1.24-bookworm",
];

fn dockerfile() -> Vec<Stage> {
    let instructions = parse(&read("Dockerfile"));
    for i in &instructions {
        assert!(
            KNOWN_KEYWORDS.contains(&i.keyword.as_str()),
            "Dockerfile:{}: unknown instruction {}",
            i.line,
            i.keyword
        );
    }
    stages(&instructions)
}

/// `rust:1.95-bookworm` → (1, 95).
fn rust_image_version(image: &str) -> Option<(u32, u32)> {
    let tag = image.strip_prefix("rust:")?.strip_suffix("-bookworm")?;
    let mut parts = tag.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn local_rustc_version() -> Option<(u32, u32)> {
    let out = Command::new("rustc").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[test]
fn ship_dockerfile_names_only_images_that_exist() {
    let stages = dockerfile();
    assert!(
        stages.len() >= 2,
        "a multi-stage build: build, then runtime"
    );
    let names: Vec<&str> = stages.iter().filter_map(|s| s.name.as_deref()).collect();
    for stage in &stages {
        if names.contains(&stage.image.as_str()) {
            continue; // FROM an earlier stage
        }
        if let Some(version) = rust_image_version(&stage.image) {
            // Official rust images are published for every stable release;
            // one at least as new as the toolchain here builds Cargo.lock.
            if let Some(local) = local_rustc_version() {
                assert!(
                    version >= local,
                    "{} is older than the rustc {local:?} this repository is built with",
                    stage.image
                );
            }
            continue;
        }
        assert!(
            KNOWN_RUNTIME_IMAGES.contains(&stage.image.as_str()),
            "{} is not an image known to exist; add it to KNOWN_RUNTIME_IMAGES only after checking the registry",
            stage.image
        );
    }
}

#[test]
fn ship_dockerfile_cross_compiles_for_amd64_and_arm64() {
    let stages = dockerfile();
    let build = &stages[0];
    assert_eq!(
        build.platform.as_deref(),
        Some("$BUILDPLATFORM"),
        "the build stage runs natively and cross-compiles (no QEMU)"
    );
    let text: String = build
        .instructions
        .iter()
        .map(|i| format!("{} {}\n", i.keyword, i.args))
        .collect();
    assert!(text.contains("ARG TARGETARCH"));
    for (arch, target) in [
        ("amd64", "x86_64-unknown-linux-gnu"),
        ("arm64", "aarch64-unknown-linux-gnu"),
    ] {
        assert!(text.contains(&format!("{arch})")), "no case for {arch}");
        assert!(text.contains(target), "no Rust target {target}");
    }
    assert!(text.contains("--locked"), "the build must use Cargo.lock");
}

#[test]
fn ship_dockerfile_runtime_is_small_non_root_with_ca_certificates() {
    let stages = dockerfile();
    let runtime = stages.last().expect("a runtime stage");
    assert!(
        runtime.image.starts_with("gcr.io/distroless/") && runtime.image.ends_with(":nonroot"),
        "the runtime image is distroless (CA certificates, no shell), nonroot variant: {}",
        runtime.image
    );
    let user = runtime
        .instructions
        .iter()
        .rfind(|i| i.keyword == "USER")
        .expect("a USER instruction");
    let uid = user.args.split(':').next().unwrap_or_default();
    assert!(
        uid != "0" && uid != "root",
        "the runtime user must not be root: USER {}",
        user.args
    );
    assert!(
        runtime
            .instructions
            .iter()
            .any(|i| i.keyword == "ENTRYPOINT")
    );
    // Every COPY --from names an earlier stage.
    let names: Vec<&str> = stages.iter().filter_map(|s| s.name.as_deref()).collect();
    for copy in runtime.instructions.iter().filter(|i| i.keyword == "COPY") {
        if let Some(from) = copy
            .args
            .split_whitespace()
            .find_map(|w| w.strip_prefix("--from="))
        {
            assert!(names.contains(&from), "COPY --from={from}: no such stage");
        }
    }
    let ignore = read(".dockerignore");
    for entry in ["target", ".git"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore must exclude {entry} (build context size)"
        );
    }
}

/// In the cluster relbot has no kubectl: a kustomization beyond relbot's
/// native subset renders only if the image carries `kustomize`, pinned (a
/// rebuild must not change how manifests render) and built for the target
/// architecture without emulation.
#[test]
fn ship_dockerfile_runtime_carries_a_pinned_cross_built_kustomize() {
    let stages = dockerfile();
    let runtime = stages.last().expect("a runtime stage");
    let copy = runtime
        .instructions
        .iter()
        .find(|i| i.keyword == "COPY" && i.args.ends_with("/usr/local/bin/kustomize"))
        .expect("the runtime image has /usr/local/bin/kustomize");
    let from = copy
        .args
        .split_whitespace()
        .find_map(|w| w.strip_prefix("--from="))
        .expect("copied from a build stage");
    let stage = stages
        .iter()
        .find(|s| s.name.as_deref() == Some(from))
        .expect("the kustomize stage");
    assert_eq!(stage.platform.as_deref(), Some("$BUILDPLATFORM"));
    let text: String = stage
        .instructions
        .iter()
        .map(|i| format!("{} {}\n", i.keyword, i.args))
        .collect();
    assert!(text.contains("GOARCH=\"$TARGETARCH\""), "{text}");
    assert!(text.contains("CGO_ENABLED=0"), "a static binary: {text}");
    let version = text
        .lines()
        .find_map(|l| l.strip_prefix("ARG KUSTOMIZE_VERSION="))
        .expect("a pinned KUSTOMIZE_VERSION");
    assert!(
        version.starts_with("v5.") && version.split('.').count() == 3,
        "pin an exact kustomize v5 release, not {version}"
    );
    assert!(text.contains("sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}"));
}

/// Package names after `apt-get install` in any RUN.
fn apt_packages(stages: &[Stage]) -> Vec<String> {
    let mut packages = Vec::new();
    for instruction in stages.iter().flat_map(|s| &s.instructions) {
        if instruction.keyword != "RUN" {
            continue;
        }
        for command in instruction.args.split([';', '&', '|']) {
            let words: Vec<&str> = command.split_whitespace().collect();
            if let Some(at) = words.windows(2).position(|w| w == ["apt-get", "install"]) {
                packages.extend(
                    words[at + 2..]
                        .iter()
                        .filter(|w| !w.starts_with('-'))
                        .map(|w| w.to_string()),
                );
            }
        }
    }
    packages
}

#[test]
fn ship_dockerfile_installs_only_packages_that_exist_in_bookworm() {
    let stages = dockerfile();
    let packages = apt_packages(&stages);
    assert!(
        packages.contains(&"gcc-aarch64-linux-gnu".to_string()),
        "the arm64 cross linker is installed: {packages:?}"
    );
    let codename = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("VERSION_CODENAME=").map(str::to_string))
        });
    if codename.as_deref() != Some("bookworm") {
        eprintln!(
            "skipped: this machine is not Debian bookworm ({codename:?}); apt-cache would answer for another release"
        );
        return;
    }
    let probe = Command::new("apt-cache").args(["show", "bash"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: apt-cache is missing or has no package lists (run apt-get update)");
        return;
    }
    for package in packages {
        let shown = Command::new("apt-cache")
            .args(["show", &package])
            .output()
            .expect("run apt-cache");
        assert!(
            shown.status.success() && !shown.stdout.is_empty(),
            "Debian bookworm has no package {package}"
        );
    }
}

#[test]
fn ship_dockerfile_parser_reads_continuations_and_stages() {
    let text = "# c\nFROM --platform=$BUILDPLATFORM rust:1.95-bookworm AS build\nRUN a \\\n  && apt-get install -y --no-install-recommends x y \\\n  # note\n  && z\nFROM gcr.io/distroless/cc-debian12:nonroot\nCOPY --from=build /a /b\n";
    let stages = stages(&parse(text));
    assert_eq!(stages.len(), 2);
    assert_eq!(stages[0].name.as_deref(), Some("build"));
    assert_eq!(stages[0].platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(stages[0].instructions.len(), 1);
    assert_eq!(apt_packages(&stages), vec!["x", "y"]);
    assert_eq!(stages[1].instructions[0].keyword, "COPY");
}
