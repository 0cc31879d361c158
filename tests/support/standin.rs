//! The kubelet stand-in's (and kubesim's) failing images: a test lists an
//! image there and the pods of it stay in ImagePullBackOff, so a workload
//! never becomes available on any cluster the tests run on.

#![allow(dead_code)]

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

/// Lists `image` under the kubelet stand-in's failing images (kubesim reads
/// the same ConfigMap), or takes it off again. Other tests may share the
/// cluster, so the list is edited, never replaced, with the object's
/// resourceVersion (a conflict is retried).
pub async fn set_image_failing(client: kube::Client, image: &str, failing: bool) {
    use kube::api::PostParams;
    let api: Api<ConfigMap> = Api::namespaced(client, kubesim::FAILING_IMAGES_NAMESPACE);
    for _ in 0..10 {
        let existing = api
            .get_opt(kubesim::FAILING_IMAGES_CONFIG_MAP)
            .await
            .unwrap();
        let mut cm = existing.clone().unwrap_or_else(|| {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": kubesim::FAILING_IMAGES_CONFIG_MAP}
            }))
            .unwrap()
        });
        let data = cm.data.get_or_insert_with(Default::default);
        let mut lines: Vec<String> = data
            .get(kubesim::FAILING_IMAGES_KEY)
            .map(|l| l.lines().map(String::from).collect())
            .unwrap_or_default();
        lines.retain(|l| l.trim() != image);
        if failing {
            lines.push(image.to_string());
        }
        data.insert(kubesim::FAILING_IMAGES_KEY.into(), lines.join("\n"));
        let written = match existing {
            Some(_) => api
                .replace(
                    kubesim::FAILING_IMAGES_CONFIG_MAP,
                    &PostParams::default(),
                    &cm,
                )
                .await
                .map(|_| ()),
            None => api.create(&PostParams::default(), &cm).await.map(|_| ()),
        };
        match written {
            Ok(()) => return,
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => panic!("editing the failing images: {e}"),
        }
    }
    panic!("the failing images ConfigMap kept changing under this test");
}
