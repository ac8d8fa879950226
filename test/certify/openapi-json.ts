import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { appOpenApiDocument } from '@tenantry/api';

/** Write the api's OpenAPI document (what GET /v1/openapi.json serves) to the path given, for the linters. */
const out = process.argv[2];
if (!out) {
  console.error('usage: openapi-json.ts <file>');
  process.exit(2);
}
mkdirSync(path.dirname(out), { recursive: true });
const text = JSON.stringify(appOpenApiDocument());
writeFileSync(out, text);
console.log(`wrote ${out}: ${Object.keys(appOpenApiDocument().paths).length} paths, ${text.length} bytes`);
