// Unit tests of the stamp: `node --test` in this folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stamp } from './labels.js';

const base = '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Labels":{"a":"b"}},"rootfs":{"type":"layers","diff_ids":[]}}';

test('adds the given labels and keeps the rest', () => {
  const { json, added } = stamp(base, [['source', 'https://example.com/x'], ['revision', 'abc123']]);
  const got = JSON.parse(json);
  assert.deepEqual(got.config.Labels, {
    a: 'b',
    'org.opencontainers.image.source': 'https://example.com/x',
    'org.opencontainers.image.revision': 'abc123',
  });
  assert.deepEqual(got.config.Env, ['PATH=/bin']);
  assert.deepEqual(got.rootfs, { type: 'layers', diff_ids: [] });
  assert.deepEqual(added, ['org.opencontainers.image.source', 'org.opencontainers.image.revision']);
});

test('creates config and Labels when missing or null', () => {
  assert.deepEqual(JSON.parse(stamp('{"os":"linux"}', [['date', '2026-01-31T12:00:00Z']]).json).config, {
    Labels: { 'org.opencontainers.image.created': '2026-01-31T12:00:00Z' },
  });
  assert.deepEqual(JSON.parse(stamp('{"config":{"Labels":null}}', [['revision', 'r']]).json).config.Labels, {
    'org.opencontainers.image.revision': 'r',
  });
});

test('no settings: the same bytes', () => {
  const spaced = '{ "os": "linux", "config": {} }';
  assert.equal(stamp(spaced, []).json, spaced);
});

test('refuses unknown settings, bad dates and bad configs', () => {
  assert.throws(() => stamp(base, [['sourc', 'x']]), /unknown setting `sourc`/);
  assert.throws(() => stamp(base, [['toString', 'x']]), /unknown setting `toString`/);
  assert.throws(() => stamp(base, [['date', 'yesterday']]), /not an RFC 3339 time/);
  assert.throws(() => stamp('[1]', []), /not a JSON object/);
  assert.throws(() => stamp('{"config":{"Labels":[]}}', [['revision', 'r']]), /`config.Labels` is not an object/);
  assert.throws(() => stamp('{"size":18446744073709551615}', []), /too large/);
  assert.throws(() => stamp('{', []), /^Error: config: not JSON/);
});
