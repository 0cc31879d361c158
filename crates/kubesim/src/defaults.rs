//! Defaults kube-apiserver fills in, so that clients diffing applied against
//! live objects meet the same extra fields they would on a real cluster.
//! Defaults are filled after ownership is computed, so no manager owns them.

use serde_json::{Map, Value, json};

use crate::discovery::ResourceInfo;
use crate::status::{ApiError, ApiResult};
use crate::store::Inner;

fn obj(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

/// Sets `key` to `val` in `m` when absent.
fn dflt(m: &mut Map<String, Value>, key: &str, val: Value) {
    m.entry(key.to_string()).or_insert(val);
}

fn container_defaults(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or_default().to_string();
    let Some(m) = obj(c) else { return };
    dflt(m, "terminationMessagePath", json!("/dev/termination-log"));
    dflt(m, "terminationMessagePolicy", json!("File"));
    let tag = image.rsplit('/').next().unwrap_or_default();
    let latest = !image.contains('@') && (!tag.contains(':') || tag.ends_with(":latest"));
    dflt(
        m,
        "imagePullPolicy",
        json!(if latest { "Always" } else { "IfNotPresent" }),
    );
    dflt(m, "resources", json!({}));
    if let Some(ports) = m.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(obj) {
            dflt(p, "protocol", json!("TCP"));
        }
    }
}

fn pod_spec_defaults(spec: &mut Value, restart: &str) {
    let Some(m) = obj(spec) else { return };
    dflt(m, "restartPolicy", json!(restart));
    dflt(m, "terminationGracePeriodSeconds", json!(30));
    dflt(m, "dnsPolicy", json!("ClusterFirst"));
    dflt(m, "securityContext", json!({}));
    dflt(m, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
            cs.iter_mut().for_each(container_defaults);
        }
    }
}

fn template_defaults(spec: &mut Value, restart: &str) {
    if let Some(t) = spec.get_mut("template")
        && t.get("spec").is_some()
    {
        pod_spec_defaults(&mut t["spec"], restart);
    }
}

/// Fills defaults for `res` into `o`. `create` is true for new objects.
pub fn apply(res: &ResourceInfo, o: &mut Value, inner: &mut Inner, create: bool) -> ApiResult<()> {
    if res.custom {
        return Ok(());
    }
    quantities_as_strings(o, false);
    let name = o["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let spec_present = o.get("spec").is_some_and(Value::is_object);
    match res.kind.as_str() {
        "Namespace" => {
            o["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            if o.get("spec").is_none() {
                o["spec"] = json!({});
            }
            if o["spec"].get("finalizers").is_none() {
                o["spec"]["finalizers"] = json!(["kubernetes"]);
            }
            if o["status"].get("phase").is_none() {
                o["status"] = json!({"phase": "Active"});
            }
        }
        "Secret" => {
            let m = obj(o).expect("objects are maps");
            dflt(m, "type", json!("Opaque"));
            if let Some(Value::Object(sd)) = m.remove("stringData") {
                let data = m.entry("data").or_insert_with(|| json!({}));
                for (k, v) in sd {
                    data[k] = json!(base64(v.as_str().unwrap_or_default().as_bytes()));
                }
            }
        }
        "Pod" if spec_present => {
            pod_spec_defaults(&mut o["spec"], "Always");
            if create && o["status"].get("phase").is_none() {
                o["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
            }
        }
        "Deployment" if spec_present => {
            let m = obj(&mut o["spec"]).expect("spec is a map");
            dflt(m, "replicas", json!(1));
            dflt(m, "revisionHistoryLimit", json!(10));
            dflt(m, "progressDeadlineSeconds", json!(600));
            dflt(
                m,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
            );
            template_defaults(&mut o["spec"], "Always");
        }
        "StatefulSet" if spec_present => {
            let m = obj(&mut o["spec"]).expect("spec is a map");
            dflt(m, "replicas", json!(1));
            dflt(m, "revisionHistoryLimit", json!(10));
            dflt(m, "podManagementPolicy", json!("OrderedReady"));
            dflt(
                m,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            dflt(
                m,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            template_defaults(&mut o["spec"], "Always");
        }
        "DaemonSet" if spec_present => {
            let m = obj(&mut o["spec"]).expect("spec is a map");
            dflt(m, "revisionHistoryLimit", json!(10));
            dflt(
                m,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
            template_defaults(&mut o["spec"], "Always");
        }
        "ReplicaSet" if spec_present => {
            dflt(
                obj(&mut o["spec"]).expect("spec is a map"),
                "replicas",
                json!(1),
            );
            template_defaults(&mut o["spec"], "Always");
        }
        "Job" if spec_present => {
            job_defaults(o, create);
        }
        "CronJob" if spec_present => {
            let m = obj(&mut o["spec"]).expect("spec is a map");
            dflt(m, "concurrencyPolicy", json!("Allow"));
            dflt(m, "suspend", json!(false));
            dflt(m, "successfulJobsHistoryLimit", json!(3));
            dflt(m, "failedJobsHistoryLimit", json!(1));
            if let Some(js) = m.get_mut("jobTemplate").and_then(|j| j.get_mut("spec")) {
                template_defaults(js, "Never");
            }
        }
        "Service" => service_defaults(o, inner, create)?,
        "PersistentVolumeClaim" if spec_present => {
            dflt(
                obj(&mut o["spec"]).expect("spec is a map"),
                "volumeMode",
                json!("Filesystem"),
            );
            if create && o["status"].get("phase").is_none() {
                o["status"] = json!({"phase": "Pending"});
            }
        }
        _ => {}
    }
    Ok(())
}

/// `resource.Quantity` fields are strings on the wire; the real server accepts
/// `cpu: 1` and returns `cpu: "1"`.
pub(crate) fn quantities_as_strings(v: &mut Value, in_quantity_map: bool) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                let quantity_map = matches!(
                    k.as_str(),
                    "requests" | "limits" | "capacity" | "hard" | "overhead" | "allocatable"
                );
                if in_quantity_map || k == "sizeLimit" {
                    let text = match child {
                        Value::Number(n) => Some(n.to_string()),
                        Value::String(s) => Some(s.clone()),
                        _ => None,
                    };
                    if let Some(t) = text {
                        *child = json!(canonical_quantity(&t).unwrap_or(t));
                    }
                } else {
                    quantities_as_strings(child, quantity_map);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| quantities_as_strings(c, false)),
        _ => {}
    }
}

const BINARY: [(&str, u32); 7] = [
    ("", 0),
    ("Ki", 1),
    ("Mi", 2),
    ("Gi", 3),
    ("Ti", 4),
    ("Pi", 5),
    ("Ei", 6),
];
const DECIMAL: [(&str, i32); 10] = [
    ("n", -9),
    ("u", -6),
    ("m", -3),
    ("", 0),
    ("k", 3),
    ("M", 6),
    ("G", 9),
    ("T", 12),
    ("P", 15),
    ("E", 18),
];

/// The canonical form kube-apiserver stores a quantity in (`0.5` → `500m`,
/// `1024Mi` → `1Gi`, `1000` → `1k`). `None` leaves the text alone
/// (exponent forms, negative or unparsable values).
pub fn canonical_quantity(s: &str) -> Option<String> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    if num.is_empty() {
        return None;
    }
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = format!("{int}{frac}");
    let mantissa: i128 = digits.parse().ok()?;
    let scale = frac.len() as u32;
    if scale > 18 {
        return None;
    }
    // Binary suffixes stay binary while the value is a whole number of bytes.
    if let Some(&(_, k)) = BINARY.iter().skip(1).find(|(b, _)| *b == suffix) {
        let numer = mantissa.checked_mul(1024i128.checked_pow(k)?)?;
        let denom = 10i128.pow(scale);
        if numer % denom == 0 {
            let bytes = numer / denom;
            let (name, k) = BINARY
                .iter()
                .rev()
                .find(|(_, k)| bytes % 1024i128.pow(*k) == 0)?;
            return Some(format!("{}{name}", bytes / 1024i128.pow(*k)));
        }
        let nanos = numer.checked_mul(1_000_000_000)? / denom;
        return Some(decimal(nanos));
    }
    let &(_, exp) = DECIMAL.iter().find(|(d, _)| *d == suffix)?;
    let shift = exp + 9 - scale as i32;
    let nanos = if shift >= 0 {
        mantissa.checked_mul(10i128.checked_pow(shift as u32)?)?
    } else {
        // Finer than a nano: the real server rounds up.
        let d = 10i128.pow((-shift) as u32);
        (mantissa + d - 1) / d
    };
    Some(decimal(nanos))
}

/// A quantity's value in billionths, to compare quantities as the real server
/// does (`1` > `500m`, `1Gi` > `1000Mi`). `None` for text it would not parse here.
pub fn quantity_nanos(s: &str) -> Option<i128> {
    let canonical = canonical_quantity(s)?;
    let split = canonical
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(canonical.len());
    let (num, suffix) = canonical.split_at(split);
    let n: i128 = num.parse().ok()?;
    if let Some(&(_, k)) = BINARY.iter().skip(1).find(|(b, _)| *b == suffix) {
        return n
            .checked_mul(1024i128.checked_pow(k)?)?
            .checked_mul(1_000_000_000);
    }
    let &(_, exp) = DECIMAL.iter().find(|(d, _)| *d == suffix)?;
    let shift = exp + 9;
    n.checked_mul(10i128.checked_pow(shift as u32)?)
}

fn decimal(nanos: i128) -> String {
    if nanos == 0 {
        return "0".into();
    }
    let (name, exp) = DECIMAL
        .iter()
        .rev()
        .find(|(_, e)| nanos % 10i128.pow((e + 9) as u32) == 0)
        .expect("n divides everything");
    format!("{}{name}", nanos / 10i128.pow((exp + 9) as u32))
}

fn job_defaults(o: &mut Value, create: bool) {
    let uid = o["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = o["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let m = obj(&mut o["spec"]).expect("spec is a map");
    dflt(m, "completions", json!(1));
    dflt(m, "parallelism", json!(1));
    dflt(m, "backoffLimit", json!(6));
    dflt(m, "completionMode", json!("NonIndexed"));
    dflt(m, "suspend", json!(false));
    dflt(m, "podReplacementPolicy", json!("TerminatingOrFailed"));
    if create && m.get("selector").is_none() {
        // The Job controller's generated selector, as the real server writes it.
        m.insert(
            "selector".into(),
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
        );
        let labels = &mut o["spec"]["template"]["metadata"]["labels"];
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", &uid),
            ("batch.kubernetes.io/job-name", &name),
            ("controller-uid", &uid),
            ("job-name", &name),
        ] {
            labels[k] = json!(v);
        }
    }
    template_defaults(&mut o["spec"], "Never");
}

fn service_defaults(o: &mut Value, inner: &mut Inner, create: bool) -> ApiResult<()> {
    if o.get("spec").is_none() {
        o["spec"] = json!({});
    }
    let name = o["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let spec = obj(&mut o["spec"]).expect("spec is a map");
    dflt(spec, "type", json!("ClusterIP"));
    dflt(spec, "sessionAffinity", json!("None"));
    let ty = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
    if ty != "ExternalName" {
        dflt(spec, "ipFamilies", json!(["IPv4"]));
        dflt(spec, "ipFamilyPolicy", json!("SingleStack"));
        dflt(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" || ty == "NodePort" {
        dflt(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        dflt(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    let needs_node_port = ty == "NodePort"
        || (ty == "LoadBalancer" && spec["allocateLoadBalancerNodePorts"] != json!(false));
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(obj) {
            dflt(p, "protocol", json!("TCP"));
            let port = p.get("port").cloned().unwrap_or(json!(0));
            dflt(p, "targetPort", port);
            if needs_node_port && p.get("nodePort").is_none() {
                let np = (30000u16..=32767)
                    .find(|n| !inner.node_ports.contains(n))
                    .ok_or_else(|| {
                        ApiError::internal("failed to allocate a nodePort: range is full")
                    })?;
                inner.node_ports.insert(np);
                p.insert("nodePort".into(), json!(np));
            }
        }
    }
    if create && ty != "ExternalName" {
        match spec.get("clusterIP").and_then(Value::as_str) {
            Some("None") => {
                spec.insert("clusterIPs".into(), json!(["None"]));
            }
            Some(ip) if !ip.is_empty() => {
                let ip = ip.to_string();
                inner.ips.reserve(&ip).map_err(|why| {
                    ApiError::invalid(
                        "Service",
                        &name,
                        &[("spec.clusterIPs".into(), format!("Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: {why}"))],
                    )
                })?;
                spec.insert("clusterIPs".into(), json!([ip]));
            }
            _ => {
                let ip = inner.ips.allocate().ok_or_else(|| {
                    ApiError::internal("failed to allocate a serviceIP: range is full")
                })?;
                spec.insert("clusterIP".into(), json!(ip));
                spec.insert("clusterIPs".into(), json!([ip]));
            }
        }
    }
    if create && ty == "LoadBalancer" && o.get("status").is_none() {
        o["status"] = json!({"loadBalancer": {}});
    }
    Ok(())
}

/// Standard base64 with padding (Secret `stringData` → `data`).
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn quantities_are_canonical() {
        let c = |s: &str| super::canonical_quantity(s).unwrap();
        assert_eq!(c("0.5"), "500m");
        assert_eq!(c("1024Mi"), "1Gi");
        assert_eq!(c("1536Mi"), "1536Mi");
        assert_eq!(c("1.5Gi"), "1536Mi");
        assert_eq!(c("1000"), "1k");
        assert_eq!(c("100m"), "100m");
        assert_eq!(c("1000m"), "1");
        assert_eq!(c("64Mi"), "64Mi");
        assert_eq!(c("1"), "1");
        assert_eq!(c("0"), "0");
        assert_eq!(c("128974848"), "128974848");
        assert_eq!(super::canonical_quantity("1e3"), None);
    }

    #[test]
    fn quantities_compare_by_value() {
        let n = |s: &str| super::quantity_nanos(s).unwrap();
        assert_eq!(n("500m"), 500_000_000);
        assert!(n("1") > n("500m"));
        assert_eq!(n("1Gi"), n("1024Mi"));
        assert!(n("1Gi") > n("1000Mi"));
        assert_eq!(n("0.5"), n("500m"));
        assert_eq!(super::quantity_nanos("1e3"), None);
    }

    #[test]
    fn base64_pads() {
        assert_eq!(super::base64(b"hello"), "aGVsbG8=");
        assert_eq!(super::base64(b"hi!"), "aGkh");
        assert_eq!(super::base64(b"h"), "aA==");
    }
}
