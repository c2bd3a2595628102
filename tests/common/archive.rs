//! Small docker archives made by the tests themselves (`docker save`'s
//! layout): images of chosen layers, creation times and labels.

#![allow(dead_code)]

use std::path::Path;

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// One image of a test archive.
pub struct Img<'a> {
    pub tag: Option<&'a str>,
    /// Each layer's one file, `(path, content)`.
    pub layers: Vec<(&'a str, Vec<u8>)>,
    pub created: &'a str,
    pub labels: Vec<(&'a str, &'a str)>,
}

pub fn layer_tar(path: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, content).unwrap();
    b.into_inner().unwrap()
}

/// Writes a docker archive (`docker save`'s layout) holding `images`.
pub fn docker_archive(path: &Path, images: &[Img]) {
    let mut out = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut put = |name: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        out.append_data(&mut h, name, bytes).unwrap();
    };
    let mut written = std::collections::HashSet::new();
    let mut manifest = Vec::new();
    for img in images {
        let mut diff_ids = Vec::new();
        let mut layer_names = Vec::new();
        for (file, content) in &img.layers {
            let tar = layer_tar(file, content);
            let hex = sha256_hex(&tar);
            let name = format!("{hex}/layer.tar");
            if written.insert(name.clone()) {
                put(&name, &tar);
            }
            diff_ids.push(format!("sha256:{hex}"));
            layer_names.push(name);
        }
        let labels: serde_json::Map<String, serde_json::Value> = img
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        let config = serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": img.created,
            "config": {"Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": img.layers.iter().map(|_| serde_json::json!({
                "created": img.created, "created_by": "strata test"
            })).collect::<Vec<_>>(),
        });
        let config = serde_json::to_vec(&config).unwrap();
        let config_name = format!("{}.json", sha256_hex(&config));
        if written.insert(config_name.clone()) {
            put(&config_name, &config);
        }
        manifest.push(serde_json::json!({
            "Config": config_name,
            "RepoTags": img.tag.map(|t| vec![t]).unwrap_or_default(),
            "Layers": layer_names,
        }));
    }
    put("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    out.into_inner().unwrap();
}
