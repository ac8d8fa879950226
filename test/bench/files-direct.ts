/**
 * The direct side of test/bench/files.ts, in a process of its own like the api it is
 * compared with: the storage driver's write() and read() of the same bytes, timed here.
 *
 * Env: BENCH_DIRECT_STORAGE (the driver's config, JSON), BENCH_DIRECT_PAYLOAD (the bytes to
 * write, read into memory once). Commands come as JSON lines on stdin, {op: 'write' |
 * 'read', tenant, object}; each answer is a JSON line on stdout, {seconds, bytes} or {error}.
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { type FileStorageConfig, createFileStorage } from '@tenantry/files';

const MIB = 1024 * 1024;
const storage = createFileStorage(JSON.parse(process.env.BENCH_DIRECT_STORAGE!) as FileStorageConfig);
const data = readFileSync(process.env.BENCH_DIRECT_PAYLOAD!);

/** The bytes from memory in 1 MiB chunks, as the api's upload buffers hand them on. */
function chunks(): Readable {
  let offset = 0;
  return new Readable({
    read() {
      this.push(offset < data.length ? data.subarray(offset, (offset += MIB)) : null);
    },
  });
}

/** Read to the end, dropping the bytes, with data events (the cheapest consumer). */
function drain(stream: NodeJS.ReadableStream): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    stream.on('data', (chunk: Buffer) => (n += chunk.length));
    stream.on('end', () => resolve(n));
    stream.on('error', reject);
  });
}

for await (const line of createInterface({ input: process.stdin })) {
  const { op, tenant, object } = JSON.parse(line) as { op: 'write' | 'read'; tenant: string; object: string };
  try {
    const started = performance.now();
    let bytes = data.length;
    if (op === 'write') await storage.write(tenant, object, chunks(), data.length, 'application/octet-stream');
    else bytes = await drain(await storage.read(tenant, object));
    process.stdout.write(`${JSON.stringify({ seconds: (performance.now() - started) / 1000, bytes })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ error: (err as Error).message })}\n`);
  }
}
await storage.close();
