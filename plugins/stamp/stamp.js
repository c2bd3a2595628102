// stamp: a strata config transform that adds OCI labels to an image config
// (`config.Labels`, created when missing) from its settings: `source`,
// `revision` and `date`, each set only when given.

import { info } from 'strata:plugin/log@0.1.0';
import { stamp } from './labels.js';

export const configTransformer = {
  transform(config, settings) {
    let result;
    try {
      result = stamp(config, settings);
    } catch (e) {
      // A thrown string is the `err` of the result the host sees.
      throw e instanceof Error ? e.message : String(e);
    }
    info(result.added.length ? `added ${result.added.join(', ')}` : 'no label given: config unchanged');
    return result.json;
  },
};
