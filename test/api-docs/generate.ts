import { writeFileSync } from 'node:fs';
import { appOpenApiDocument } from '@tenantry/api';
import { renderApiReference } from './render.js';

/** Regenerate docs/api.md: `npx -y pnpm@10.34.8 docs:api`. */
export function generateApiReference(): string {
  return renderApiReference(appOpenApiDocument() as never);
}

export const API_REFERENCE_PATH = new URL('../../docs/api.md', import.meta.url);

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(API_REFERENCE_PATH, generateApiReference());
  console.log('wrote docs/api.md');
}
