//! Reading a plain-HTTP registry's API directly, to check what a command
//! left there.

use serde_json::Value;

/// A client for the loopback registries.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().build().unwrap()
}

/// Every manifest and index media type, as a registry client asks.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// The tags of a repository (none when it does not exist).
pub fn tag_list(registry: &str, repo: &str) -> Vec<String> {
    let resp = http()
        .get(format!("http://{registry}/v2/{repo}/tags/list"))
        .send()
        .unwrap();
    if resp.status() == 404 {
        return Vec::new();
    }
    let body: Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
    body["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The digest a tag or digest reference names, if any.
pub fn manifest_digest(registry: &str, repo: &str, reference: &str) -> Option<String> {
    let resp = http()
        .head(format!("http://{registry}/v2/{repo}/manifests/{reference}"))
        .header("accept", ACCEPT)
        .send()
        .unwrap();
    resp.status().is_success().then(|| {
        resp.headers()["docker-content-digest"]
            .to_str()
            .unwrap()
            .to_string()
    })
}

fn get_manifest(registry: &str, repo: &str, reference: &str) -> reqwest::blocking::Response {
    http()
        .get(format!("http://{registry}/v2/{repo}/manifests/{reference}"))
        .header("accept", ACCEPT)
        .send()
        .unwrap()
}

/// What the registry answers for a manifest, whatever its status.
pub fn manifest_bytes(registry: &str, repo: &str, reference: &str) -> Vec<u8> {
    get_manifest(registry, repo, reference)
        .bytes()
        .unwrap()
        .to_vec()
}

/// A manifest, parsed; the registry must have it.
pub fn manifest(registry: &str, repo: &str, reference: &str) -> Value {
    let body = get_manifest(registry, repo, reference)
        .error_for_status()
        .unwrap()
        .bytes()
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// Whether the repository has the blob.
pub fn has_blob(registry: &str, repo: &str, digest: &str) -> bool {
    http()
        .head(format!("http://{registry}/v2/{repo}/blobs/{digest}"))
        .send()
        .unwrap()
        .status()
        .is_success()
}

/// Every blob a manifest (and, for an index, its children) needs.
pub fn blobs_needed(registry: &str, repo: &str, reference: &str) -> Vec<String> {
    let m = manifest(registry, repo, reference);
    let mut out = Vec::new();
    if let Some(children) = m["manifests"].as_array() {
        for c in children {
            out.extend(blobs_needed(registry, repo, c["digest"].as_str().unwrap()));
        }
        return out;
    }
    out.push(m["config"]["digest"].as_str().unwrap().to_string());
    for l in m["layers"].as_array().unwrap() {
        out.push(l["digest"].as_str().unwrap().to_string());
    }
    out
}
