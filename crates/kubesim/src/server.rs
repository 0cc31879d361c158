//! HTTP glue: one fallback handler parses Kubernetes paths (the set of served
//! resources changes with CRDs, so a static router would not fit), applies
//! injected faults, dispatches to the verbs and logs every request.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

use crate::api::{self, Params, Reply, Target, Writer};
use crate::status::{ApiError, ApiResult};
use crate::{RequestRecord, Sim, discovery, watch};

pub(crate) fn router(sim: Arc<Sim>) -> Router {
    Router::new().fallback(handle).with_state(sim)
}

const AGGREGATED_CT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

fn json_response(code: u16, body: &Value, warnings: &[String]) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {w:?}")) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

fn error_response(e: &ApiError) -> Response {
    let mut r = json_response(e.code, &e.to_status(), &[]);
    if let Some(s) = e.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

fn reply_response(r: ApiResult<Reply>) -> Response {
    match r {
        Ok(r) => json_response(r.code, &r.body, &r.warnings),
        Err(e) => error_response(&e),
    }
}

/// kube-apiserver's answer for a path under a group nobody serves: no handler
/// claims it, so Go's mux answers in plain text, not with a Status.
fn page_not_found() -> Response {
    let mut r = Response::new(Body::from("404 page not found\n"));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn not_found_path() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

async fn handle(State(sim): State<Arc<Sim>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let headers = req.headers();
    let header_str = |h: header::HeaderName| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let content_type = header_str(header::CONTENT_TYPE);
    let accept = header_str(header::ACCEPT);
    let user_agent = header_str(header::USER_AGENT);
    let params = Params(
        serde_urlencoded::from_str::<Vec<(String, String)>>(&query)
            .unwrap_or_default()
            .into_iter()
            .collect(),
    );
    let body = to_bytes(req.into_body(), 256 << 20)
        .await
        .unwrap_or_default();

    let planned_verb = classify(&method, &path, &params, &content_type);
    if let Some(d) = sim.faults.take_stall(planned_verb) {
        tokio::time::sleep(d).await;
    }
    let (verb, response) = match sim.faults.take_failure(planned_verb) {
        Some(e) => (planned_verb, error_response(&e)),
        None => {
            let ctx = Ctx {
                method: &method,
                path: &path,
                params: &params,
                body: &body,
                content_type: &content_type,
                accept: &accept,
                user_agent: &user_agent,
            };
            dispatch(&sim, ctx).await
        }
    };
    let dry_run = params.dry_run();
    let commits = matches!(
        verb,
        "create" | "update" | "patch" | "apply" | "delete" | "deletecollection"
    );
    if commits && !dry_run && response.status().is_success() && !sim.opts.write_latency.is_zero() {
        tokio::time::sleep(sim.opts.write_latency).await;
    }
    sim.log(RequestRecord {
        method: method.to_string(),
        path,
        query,
        verb: verb.to_string(),
        dry_run,
        status: response.status().as_u16(),
    });
    response
}

/// The verb a request would have had, for the log of failed (injected) requests.
fn classify(method: &Method, path: &str, params: &Params, content_type: &str) -> &'static str {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let resource_path = matches!(segs.first(), Some(&"api") if segs.len() > 2)
        || matches!(segs.first(), Some(&"apis") if segs.len() > 3);
    if !resource_path {
        return "discovery";
    }
    let rest = if segs[0] == "api" {
        &segs[2..]
    } else {
        &segs[3..]
    };
    let named = if rest.first() == Some(&"namespaces")
        && rest.len() >= 3
        && rest[2] != "status"
        && rest[2] != "finalize"
    {
        rest.len() >= 4
    } else {
        rest.len() >= 2
    };
    match *method {
        Method::GET if named => "get",
        Method::GET if params.get("watch").is_some_and(|w| w == "true" || w == "1") => "watch",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH if content_type.starts_with("application/apply-patch") => "apply",
        Method::PATCH => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

struct Ctx<'a> {
    method: &'a Method,
    path: &'a str,
    params: &'a Params,
    body: &'a [u8],
    content_type: &'a str,
    accept: &'a str,
    user_agent: &'a str,
}

async fn dispatch(sim: &Arc<Sim>, c: Ctx<'_>) -> (&'static str, Response) {
    let segs: Vec<&str> = c.path.split('/').filter(|s| !s.is_empty()).collect();
    let aggregated = c.accept.contains("as=APIGroupDiscoveryList");
    let get = c.method == Method::GET;
    let discovery_doc = {
        let inner = sim.store.lock();
        let rs = &inner.resources;
        if let ["apis", g, ..] = segs.as_slice()
            && !rs.iter().any(|r| r.group == *g)
        {
            let verb = classify(c.method, c.path, c.params, c.content_type);
            return (verb, page_not_found());
        }
        match segs.as_slice() {
            ["version"] if get => Some(Some(discovery::version_doc())),
            ["api"] if get && aggregated => Some(Some(discovery::aggregated(rs, true))),
            ["api"] if get => Some(Some(discovery::api_versions())),
            ["api", "v1"] if get => Some(discovery::resource_list(rs, "", "v1")),
            ["apis"] if get && aggregated => Some(Some(discovery::aggregated(rs, false))),
            ["apis"] if get => Some(Some(discovery::api_group_list(rs))),
            ["apis", g] if get => Some(discovery::api_group(rs, g)),
            ["apis", g, v] if get => Some(discovery::resource_list(rs, g, v)),
            ["healthz" | "readyz" | "livez"] => {
                return ("discovery", Response::new(Body::from("ok")));
            }
            _ => None,
        }
    };
    if let Some(doc) = discovery_doc {
        let resp = match doc {
            Some(d) => {
                let mut r = json_response(200, &d, &[]);
                if aggregated && matches!(segs.as_slice(), ["api"] | ["apis"]) {
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(AGGREGATED_CT),
                    );
                }
                r
            }
            None => error_response(&not_found_path()),
        };
        return ("discovery", resp);
    }

    let verb = classify(c.method, c.path, c.params, c.content_type);
    let target = match resolve(sim, &segs) {
        Ok(t) => t,
        Err(e) => return (verb, error_response(&e)),
    };
    let writer = Writer {
        params: c.params,
        user_agent: c.user_agent,
    };
    let named = target.name.is_some();
    let result: ApiResult<Reply> = match (c.method.clone(), named) {
        (Method::GET, true) => api::get(sim, &target),
        (Method::GET, false) if verb == "watch" => {
            return match watch::watch(sim.clone(), target, c.params) {
                Ok(body) => {
                    let mut r = Response::new(body);
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    (verb, r)
                }
                Err(e) => (verb, error_response(&e)),
            };
        }
        (Method::GET, false) => api::list(sim, &target, c.params),
        (Method::POST, false) if target.res.namespaced && target.ns.is_empty() => {
            Err(ApiError::method_not_allowed())
        }
        (Method::POST, false) => api::parse_body(c.body, c.content_type)
            .and_then(|b| api::create(sim, &target, &writer, b)),
        (Method::PUT, true) => api::parse_body(c.body, c.content_type)
            .and_then(|b| api::update(sim, &target, &writer, b)),
        (Method::PATCH, true) => api::patch(sim, &target, &writer, c.body, c.content_type),
        (Method::DELETE, true) => api::delete(sim, &target, c.params, delete_options(c.body)),
        (Method::DELETE, false) => {
            api::delete_collection(sim, &target, c.params, delete_options(c.body))
        }
        _ => Err(ApiError::method_not_allowed()),
    };
    (verb, reply_response(result))
}

fn delete_options(body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        None
    } else {
        serde_json::from_slice(body).ok()
    }
}

/// Maps the segments of a resource path to a [`Target`].
fn resolve(sim: &Sim, segs: &[&str]) -> ApiResult<Target> {
    let (group, version, rest) = match segs {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return Err(not_found_path()),
    };
    let inner = sim.store.lock();
    let namespaced = rest[0] == "namespaces"
        && rest.len() >= 3
        && inner
            .find(group, version, rest[2])
            .is_some_and(|r| r.namespaced);
    let (res, ns, name, sub) = if namespaced {
        let res = inner.find(group, version, rest[2]).expect("checked above");
        (res, rest[1], rest.get(3), rest.get(4))
    } else {
        let res = inner
            .find(group, version, rest[0])
            .ok_or_else(not_found_path)?;
        (res, "", rest.get(1), rest.get(2))
    };
    if rest.len() > if namespaced { 5 } else { 3 } {
        return Err(not_found_path());
    }
    if let Some(s) = sub {
        let ok = (*s == "status" && res.has_status) || (*s == "scale" && res.has_scale);
        if !ok {
            return Err(not_found_path());
        }
    }
    Ok(Target {
        res,
        ns: ns.to_string(),
        name: name.map(|s| s.to_string()),
        sub: sub.map(|s| s.to_string()),
    })
}
