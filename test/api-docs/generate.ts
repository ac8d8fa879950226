import { writeFileSync } from 'node:fs';
import { appRouter } from '@tenantry/api';
import { createOpenApiDocument } from '../../apps/api/src/http/openapi.js';
import { renderApiReference } from './render.js';

/** Regenerate docs/api.md: `npx -y pnpm@10.34.8 docs:api`. */
export function generateApiReference(): string {
  return renderApiReference(createOpenApiDocument(appRouter, { version: '1.0.0' }) as never);
}

export const API_REFERENCE_PATH = new URL('../../docs/api.md', import.meta.url);

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(API_REFERENCE_PATH, generateApiReference());
  console.log('wrote docs/api.md');
}
