use super::*;

fn check(text: &str) -> Vec<String> {
    match parse("p.yaml", text, &[]) {
        Ok(_) => Vec::new(),
        Err(LoadError(d)) => d.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_good_pipeline_loads() {
    let p = parse(
        "p.yaml",
        "version: 1\nname: demo\nvars:\n  tag: v1\nsteps:\n  - id: get\n    pull: {image: 'nginx:${{ vars.tag }}'}\n  - if: ${{ steps.get.outputs.id }}\n    tag: {source: nginx, target: mine/nginx}\n  - for_each: [a, b]\n    parallel: 2\n    retry: {attempts: 3, backoff: 2s}\n    timeout: 5m\n    inspect: {image: '${{ item }}'}\n",
        &[],
    )
    .unwrap();
    assert_eq!(p.steps.len(), 3);
    assert_eq!(p.steps[0].id.as_deref(), Some("get"));
    assert_eq!(p.steps[2].parallel, 2);
    assert_eq!(p.steps[2].retry.attempts, 3);
    assert_eq!(p.steps[2].retry.backoff, Duration::from_secs(2));
    assert_eq!(p.steps[2].timeout, Some(Duration::from_secs(300)));
}

#[test]
fn unknown_keys_are_reported_where_they_are() {
    let e = check("version: 1\nsteps:\n  - pull: {image: nginx, colour: red}\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("p.yaml:3:26: pull: unknown key `colour`"),
        "{e:?}"
    );
    let e = check("version: 1\nstep:\n  - images:\n");
    assert!(
        e.iter()
            .any(|m| m.starts_with("p.yaml:2:1: unknown key `step`")),
        "{e:?}"
    );
    let e = check("version: 1\nsteps:\n  - images:\n    colour: red\n");
    assert!(
        e[0].starts_with("p.yaml:4:5: unknown step key `colour`"),
        "{e:?}"
    );
}

#[test]
fn wrong_types_are_reported_where_they_are() {
    let e = check("version: 1\nsteps:\n  - pull: {image: nginx, quiet: maybe}\n");
    assert!(e[0].starts_with("p.yaml:3:33: pull: "), "{e:?}");
    let e = check("version: 1\nsteps:\n  - images:\n    parallel: many\n");
    assert!(e[0].starts_with("p.yaml:4:15: `parallel` must be"), "{e:?}");
}

#[test]
fn a_step_has_exactly_one_action() {
    let e = check("version: 1\nsteps:\n  - id: x\n");
    assert!(
        e[0].starts_with("p.yaml:3:5: this step has no action"),
        "{e:?}"
    );
    let e = check("version: 1\nsteps:\n  - images:\n    history: {image: x}\n");
    assert!(
        e[0].starts_with("p.yaml:4:5: a step has one action; this one also has `history`"),
        "{e:?}"
    );
}

#[test]
fn bad_references_are_refused_before_running() {
    let e = check("version: 1\nsteps:\n  - pull: {image: 'UPPER/Case:x'}\n");
    assert!(e[0].starts_with("p.yaml:3:19: pull: "), "{e:?}");
    // An expression is checked when it has a value.
    assert!(
        check("version: 1\nvars: {i: x}\nsteps:\n  - pull: {image: '${{ vars.i }}'}\n").is_empty()
    );
}

#[test]
fn expressions_name_what_exists() {
    let e = check(
        "version: 1\nsteps:\n  - pull: {image: '${{ steps.later.outputs.id }}'}\n  - id: later\n    images:\n",
    );
    assert!(e[0].contains("step `later` runs after this one"), "{e:?}");
    let e = check("version: 1\nsteps:\n  - pull: {image: '${{ steps.nope.outputs.id }}'}\n");
    assert!(
        e[0].starts_with("p.yaml:3:24: step 1 (pull): unknown step `nope`"),
        "{e:?}"
    );
    let e = check(
        "version: 1\nsteps:\n  - id: a\n    images:\n  - if: ${{ steps.a.outputs.bogus }}\n    images:\n",
    );
    assert!(
        e[0].contains("step `a` (images) has no output `bogus`"),
        "{e:?}"
    );
    let e = check("version: 1\nsteps:\n  - pull: {image: '${{ vars.missing }}'}\n");
    assert!(e[0].contains("unknown variable `missing`"), "{e:?}");
    let e = check("version: 1\nsteps:\n  - pull: {image: '${{ item }}'}\n");
    assert!(
        e[0].contains("`item` exists only in a step with `for_each`"),
        "{e:?}"
    );
    let e = check("version: 1\nsteps:\n  - pull: {image: '${{ vars.x'}\n");
    assert!(e[0].starts_with("p.yaml:3:"), "{e:?}");
}

#[test]
fn command_line_vars_define_and_override() {
    let text = "version: 1\nvars: {tag: a}\nsteps:\n  - pull: {image: 'x:${{ vars.tag }}${{ vars.extra }}'}\n";
    assert!(parse("p.yaml", text, &[]).is_err());
    let p = parse("p.yaml", text, &[("extra".into(), "b".into())]).unwrap();
    assert_eq!(p.vars.len(), 2);
}

#[test]
fn version_and_shape() {
    assert!(check("version: 2\nsteps:\n  - images:\n")[0].contains("unsupported version"));
    assert!(check("steps:\n  - images:\n")[0].contains("missing key `version`"));
    assert!(check("- images\n")[0].contains("a pipeline is a mapping"));
    assert!(check("version: 1\nsteps: []\n")[0].contains("`steps` is empty"));
    let e = check("version: 1\nsteps:\n  - id: a\n    images:\n  - id: a\n    images:\n");
    assert!(e[0].contains("two steps have the id `a`"), "{e:?}");
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let e = check(
        "version: 1\nsteps:\n  - pull: {image: nginx, x: 1}\n  - tag: {source: a}\n  - bogus: {}\n",
    );
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].starts_with("p.yaml:3:"));
    assert!(e[1].starts_with("p.yaml:4:"));
    assert!(e[2].starts_with("p.yaml:5:"));
}

#[test]
fn durations() {
    assert_eq!(duration("90s").unwrap(), Duration::from_secs(90));
    assert_eq!(duration("1.5m").unwrap(), Duration::from_secs(90));
    assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
    assert!(duration("soon").is_err());
    assert!(duration("5").is_err());
}

#[test]
fn a_plugin_image_must_be_pinned_by_digest() {
    let steps = "steps:\n  - load: {input: a.tar, transform: [stamp]}\n";
    let e = check(&format!(
        "version: 1\nplugins:\n  stamp:\n    image: 127.0.0.1:5000/p/stamp:v1\n{steps}"
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "p.yaml:4:12: plugin stamp: 127.0.0.1:5000/p/stamp:v1: not pinned by digest"
        ),
        "{e:?}"
    );
    let hex = "d".repeat(64);
    let e = check(&format!(
        "version: 1\nplugins:\n  stamp: {{image: '127.0.0.1:5000/p/stamp:v1@sha256:{hex}'}}\n{steps}"
    ));
    assert!(e.is_empty(), "{e:?}");
    // An image from an expression is checked once its value is known.
    let e = check(&format!(
        "version: 1\nvars: {{ref: x}}\nplugins:\n  stamp: {{image: '${{{{ env.STAMP }}}}'}}\n{steps}"
    ));
    assert!(e.is_empty(), "{e:?}");
}
