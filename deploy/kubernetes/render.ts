/**
 * `pnpm k8s:render --tag <tag> [--image <repository>] [--namespace <ns>] [--secret <name>] [--out <dir>|-]`
 * Writes deploy/kubernetes/rendered/<tag>/tenantry.yaml (or stdout with `--out -`): the
 * manifests of manifests.ts for that image tag, each validated against the Kubernetes
 * schemas first. Nothing is applied.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { RenderError, renderManifests, toYaml } from './manifests.js';

const here = path.dirname(fileURLToPath(import.meta.url));

try {
  const { values } = parseArgs({
    options: { tag: { type: 'string' }, image: { type: 'string' }, namespace: { type: 'string' }, secret: { type: 'string' }, out: { type: 'string' } },
    strict: true,
  });
  if (!values.tag) throw new RenderError('--tag is required: the image tag to run (manifests never say latest)');
  const objects = renderManifests({ tag: values.tag, image: values.image, namespace: values.namespace, secretName: values.secret });
  const shown = ['pnpm k8s:render', '--tag', values.tag, ...(values.image ? ['--image', values.image] : []), ...(values.namespace ? ['--namespace', values.namespace] : []), ...(values.secret ? ['--secret', values.secret] : [])].join(' ');
  const yaml = toYaml(objects, shown);
  if (values.out === '-') {
    process.stdout.write(yaml);
  } else {
    const dir = path.resolve(values.out ?? path.join(here, 'rendered', values.tag));
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'tenantry.yaml');
    writeFileSync(file, yaml);
    console.log(`${objects.length} objects (${objects.map((o) => `${o.kind}/${o.metadata?.name}`).join(', ')}) → ${file}`);
  }
} catch (err) {
  // A bad option or an object the schemas refuse: one line, exit 1.
  const message = err instanceof RenderError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') ? (err as Error).message : String((err as Error).stack ?? err);
  console.error(`k8s:render: ${message}`);
  process.exit(1);
}
