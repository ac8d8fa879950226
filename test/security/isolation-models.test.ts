import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ISOLATION_MODELS } from '@tenantry/db';
import { describe, expect, it } from 'vitest';
import { suiteModel } from './suite/models.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * The isolation suite runs once per model of the registry, one file each (so vitest runs
 * them in parallel), and once more for tenants moved to each model from another: a driver
 * added to the registry without its suite files, or without the suite's fixture for it,
 * fails here rather than going untested.
 */
describe('the isolation suite covers every model of the registry', () => {
  it.each(ISOLATION_MODELS)('%s: has a suite fixture, and a file security/isolation-<model>.test.ts running the suite for it', (model) => {
    expect(() => suiteModel(model)).not.toThrow();
    const file = path.join(here, `isolation-${model}.test.ts`);
    const source = readFileSync(file, 'utf8');
    expect(source).toContain(`defineIsolationSuite('${model}')`);
  });

  it.each(ISOLATION_MODELS)('%s: tenants moved to it from another model get the suite too (security/moved-to-<model>.test.ts)', (model) => {
    const source = readFileSync(path.join(here, `moved-to-${model}.test.ts`), 'utf8');
    expect(source).toMatch(new RegExp(`defineIsolationSuite\\('${model}', \\{ movedFrom: '(?!${model}')[a-z]+' \\}\\)`));
  });

  it('no suite file for a model the registry does not have', () => {
    const files = readdirSync(here).filter((f) => /^isolation-.+\.test\.ts$/.test(f) && f !== 'isolation-models.test.ts');
    expect(files.sort()).toEqual(ISOLATION_MODELS.map((m) => `isolation-${m}.test.ts`).sort());
  });
});
