//! The seed page's `docker image history nginx` table, reproduced: an image
//! whose config history is nginx's as the seed shows it, with layers of the
//! seed's sizes (built by scripts/make_seed_image.py), prints the seed's
//! table column for column. The CREATED column and the image ID differ by
//! nature (the seed was taken in 2021 of an image we cannot rebuild byte
//! for byte) and are masked; the page wrote docker's `…` as `...` and
//! trimmed some trailing spaces, which the comparison undoes.

mod common;

use common::{Strata, fixture};

fn normalise(table: &str, id: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| {
            let l = l.replace("...", "…").replacen(id, "IMAGE-ID-HERE", 1);
            // CREATED is the second column, 14 characters in.
            let (head, rest) = l.split_at(15);
            let rest = if rest.starts_with("CREATED") {
                rest.to_string()
            } else {
                format!("~~~~~~~~~~~{}", &rest[11..])
            };
            format!("{head}{rest}").trim_end().to_string()
        })
        .collect()
}

#[test]
fn history_prints_the_seed_table() {
    let s = Strata::new();
    for archive in ["seed-nginx-docker.tar", "seed-nginx-oci.tar"] {
        s.run(&["load", "-i", fixture(archive).to_str().unwrap()])
            .ok();
    }
    let id = s
        .run(&["images", "-q", "nginx"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let ours = s.run(&["history", "nginx"]).ok().stdout;
    // Every row keeps its trailing padding, as docker prints it.
    assert!(ours.lines().skip(1).all(|l| l.ends_with("   ")), "{ours}");
    let seed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/seed-history.txt"
    ))
    .unwrap();
    assert_eq!(normalise(&ours, &id), normalise(&seed, "87a94228f133"));
    // `image history` is the same command.
    assert_eq!(s.run(&["image", "history", "nginx"]).ok().stdout, ours);
    // And `images` shows the seed's 133MB.
    let images = s.run(&["images", "nginx"]).ok().stdout;
    assert!(
        images.lines().nth(1).unwrap().ends_with("   133MB"),
        "{images}"
    );
}
