// The stamp itself, free of the plugin bindings so that node runs its tests
// (`node --test` in this folder).

/** The settings stamp takes, and the OCI label each one sets. */
export const LABELS = {
  source: 'org.opencontainers.image.source',
  revision: 'org.opencontainers.image.revision',
  date: 'org.opencontainers.image.created',
};

// RFC 3339 date-time, as the OCI image spec asks of `created`.
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * The image config JSON `config` with the labels that `settings` (a list of
 * [key, value] pairs) give added to `config.Labels`; everything else kept.
 * Without labels to add, `config` comes back as it is, byte for byte.
 * Throws an Error naming the problem.
 */
export function stamp(config, settings) {
  const labels = [];
  for (const [key, value] of settings) {
    if (!Object.hasOwn(LABELS, key)) {
      throw new Error(`unknown setting \`${key}\` (stamp takes ${Object.keys(LABELS).join(', ')})`);
    }
    if (key === 'date' && !RFC3339.test(value)) {
      throw new Error(`setting \`date\`: \`${value}\` is not an RFC 3339 time (2026-01-31T12:00:00Z)`);
    }
    labels.push([LABELS[key], value]);
  }
  let image;
  try {
    image = JSON.parse(config, (key, value) => {
      // A whole number beyond 2^53 would come back changed: refuse it
      // rather than write a different config.
      if (typeof value === 'number' && Number.isInteger(value) && !Number.isSafeInteger(value)) {
        throw new Error(`config: the number at \`${key}\` is too large to rewrite exactly`);
      }
      return value;
    });
  } catch (e) {
    throw e instanceof SyntaxError ? new Error(`config: not JSON (${e.message})`) : e;
  }
  if (image === null || typeof image !== 'object' || Array.isArray(image)) {
    throw new Error('config: not a JSON object');
  }
  if (image.config === undefined || image.config === null) {
    image.config = {};
  } else if (typeof image.config !== 'object' || Array.isArray(image.config)) {
    throw new Error('config: `config` is not an object');
  }
  if (image.config.Labels === undefined || image.config.Labels === null) {
    image.config.Labels = {};
  } else if (typeof image.config.Labels !== 'object' || Array.isArray(image.config.Labels)) {
    throw new Error('config: `config.Labels` is not an object');
  }
  if (labels.length === 0) {
    return { json: config, added: [] };
  }
  for (const [label, value] of labels) {
    image.config.Labels[label] = value;
  }
  return { json: JSON.stringify(image), added: labels.map(([l]) => l) };
}
