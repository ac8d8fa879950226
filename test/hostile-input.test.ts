import { connect } from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import { request, validSignup, waitForSignup } from './support/http.js';
import { useStack } from './support/stack.js';

/**
 * Input that used to crash a request (500) or be stored altered: each case is refused with a
 * 4xx and a JSON code, changes nothing, and what is accepted is stored exactly as sent.
 */
const stack = useStack({ api: { REQUEST_TIMEOUT_MS: '1500' } });
let token: string;
const COLLECTION = 'hostile';

beforeAll(async () => {
  ({ token } = await stack.signUpTenant());
});

/** POST raw bytes to a route as the tenant. */
async function postRaw(path: string, body: string | Uint8Array, headers: Record<string, string> = {}) {
  const res = await fetch(stack.api.baseUrl + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers },
    // Bytes as they are: a Blob carries them unchanged (invalid UTF-8 included).
    body: typeof body === 'string' ? body : new Blob([body as Uint8Array<ArrayBuffer>]),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

const createPath = `/v1/collections/${COLLECTION}/documents`;

async function storedCount(): Promise<number> {
  const res = await request(stack.api.baseUrl, 'GET', `${createPath}?limit=100`, { token });
  expect(res.status).toBe(200);
  return res.body.items.length;
}

/** {"data": {"a": {"a": … 1 …}}} with `depth` levels of objects in all. */
function nested(depth: number): string {
  return `{"data":${'{"a":'.repeat(depth - 1)}1${'}'.repeat(depth - 1)}}`;
}

describe('hostile JSON over REST', () => {
  const refusals: Array<[string, string | Uint8Array, string]> = [
    ['10,000 levels of nesting', `{"data":${'['.repeat(10_000)}${']'.repeat(10_000)}}`, 'json_too_deep'],
    ['65 levels of nesting', nested(65), 'json_too_deep'],
    ['a lone surrogate in a value', '{"data":{"s":"\\ud800"}}', 'invalid_string'],
    ['a lone surrogate in a key', '{"data":{"\\udc00":1}}', 'invalid_string'],
    ['invalid UTF-8', new Uint8Array([...Buffer.from('{"data":{"s":"'), 0xff, 0xfe, ...Buffer.from('"}}')]), 'invalid_utf8'],
    ['an overlong UTF-8 encoding', new Uint8Array([...Buffer.from('{"data":{"s":"'), 0xc0, 0xaf, ...Buffer.from('"}}')]), 'invalid_utf8'],
    ['1e400', '{"data":{"n":1e400}}', 'number_not_exact'],
    ['-1e400', '{"data":{"n":-1e400}}', 'number_not_exact'],
    ['1e-400', '{"data":{"n":1e-400}}', 'number_not_exact'],
    ['a 100,000-digit number', `{"data":{"n":${'9'.repeat(100_000)}}}`, 'number_not_exact'],
    ['an integer past 2^53 that would lose digits', '{"data":{"n":12345678901234567891}}', 'number_not_exact'],
    ['a decimal with too many digits', '{"data":{"n":0.10000000000000000001}}', 'number_not_exact'],
    ['a __proto__ key', '{"data":{"__proto__":{"admin":true}}}', 'forbidden_key'],
    ['a nested __proto__ key', '{"data":{"a":[{"__proto__":1}]}}', 'forbidden_key'],
    ['a top-level __proto__ key', '{"__proto__":{},"data":{}}', 'forbidden_key'],
    ['malformed JSON', '{"data":', 'invalid_json'],
  ];

  it.each(refusals)('%s → 400 with a code, nothing stored', async (_name, body, code) => {
    const before = await storedCount();
    const res = await postRaw(createPath, body);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe(code);
    expect(typeof res.body.message).toBe('string');
    expect(await storedCount()).toBe(before);
  });

  it('64 levels of nesting are accepted and stored whole', async () => {
    const res = await postRaw(createPath, nested(64));
    expect(res.status).toBe(201);
    // The body object itself, then each nested object under "data".
    let levels = 1;
    for (let node = res.body.data; typeof node === 'object'; node = node.a) levels++;
    expect(levels).toBe(64);
  });

  it('numbers that a double holds exactly, and text in any script, come back exactly as sent', async () => {
    const text = '{"data":{"tenth":0.1,"small":1.5e-7,"negZero":-0,"big":1e21,"maxSafe":9007199254740991,"float":1.7976931348623157e308,"asString":"12345678901234567891","unicode":"नमस्ते 🎉 Café"}}';
    const res = await postRaw(createPath, text);
    expect(res.status).toBe(201);
    const read = await request(stack.api.baseUrl, 'GET', `${createPath}/${res.body.id}`, { token });
    expect(read.body.data).toEqual({
      tenth: 0.1,
      small: 1.5e-7,
      negZero: 0,
      big: 1e21,
      maxSafe: 9007199254740991,
      float: 1.7976931348623157e308,
      asString: '12345678901234567891',
      unicode: 'नमस्ते 🎉 Café',
    });
  });

  it('invalid percent-encoding in the path or the query → 400, never U+FFFD', async () => {
    const path = await request(stack.api.baseUrl, 'GET', '/v1/collections/%FF/documents', { token });
    expect(path.status).toBe(400);
    expect(path.body.code).toBe('invalid_encoding');
    const query = await request(stack.api.baseUrl, 'GET', `${createPath}?where[name]=%C0%AF`, { token });
    expect(query.status).toBe(400);
    expect(query.body.code).toBe('invalid_encoding');
  });
});

describe('hostile input over tRPC', () => {
  it('the same JSON rules hold for tRPC bodies and ?input=, in tRPC\'s error shape', async () => {
    const deep = await postRaw('/trpc/documents.create', `{"collection":"${COLLECTION}","data":${'['.repeat(10_000)}${']'.repeat(10_000)}}`);
    expect(deep.status).toBe(400);
    expect(deep.body.error.data.code).toBe('json_too_deep');
    const surrogate = await postRaw('/trpc/documents.create', `{"collection":"${COLLECTION}","data":{"s":"\\ud800"}}`);
    expect(surrogate.body.error.data.code).toBe('invalid_string');
    const input = encodeURIComponent(`{"collection":"${COLLECTION}","where":{"n":1e400}}`);
    const get = await request(stack.api.baseUrl, 'GET', `/trpc/documents.list?input=${input}`, { token });
    expect(get.status).toBe(400);
    expect(get.body.error.data.code).toBe('number_not_exact');
  });

  it(`a batch is capped at 10 calls: 1,000 logins in one request are refused at once, before any password is hashed`, async () => {
    const calls = 1_000;
    const body: Record<string, unknown> = {};
    for (let i = 0; i < calls; i++) body[i] = { email: `victim${i}@example.com`, password: 'guess-guess' };
    const started = performance.now();
    const res = await fetch(`${stack.api.baseUrl}/trpc/${Array(calls).fill('auth.login').join(',')}?batch=1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const elapsed = performance.now() - started;
    expect(res.status).toBe(400);
    const answer = (await res.json()) as Array<{ error: { data: { code: string } } }>;
    expect(answer[0]!.error.data.code).toBe('batch_too_large');
    // One argon2id hash alone takes tens of milliseconds here; 1,000 took 25 s.
    expect(elapsed).toBeLessThan(2_000);

    const eleven = await fetch(`${stack.api.baseUrl}/trpc/${Array(11).fill('auth.me').join(',')}?batch=1`, { headers: { authorization: `Bearer ${token}` } });
    expect(eleven.status).toBe(400);
    const ten = await fetch(`${stack.api.baseUrl}/trpc/${Array(10).fill('auth.me').join(',')}?batch=1`, { headers: { authorization: `Bearer ${token}` } });
    expect(ten.status).toBe(200);
    expect(((await ten.json()) as unknown[]).length).toBe(10);
  });
});

describe('requests refused by the HTTP layer', () => {
  async function fiveHundreds(): Promise<number> {
    const text = await (await fetch(stack.api.metricsUrl)).text();
    return text
      .split('\n')
      .filter((l) => l.startsWith('tenantry_http_request_duration_seconds_count') && l.includes('status_class="5xx"'))
      .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
  }

  /** Write raw bytes on a socket; resolve with everything the server sends back before closing. */
  function rawExchange(payload: string, options: { waitMs?: number } = {}): Promise<string> {
    const { port } = new URL(stack.api.baseUrl);
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1');
      let answer = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (answer += chunk));
      socket.on('close', () => resolve(answer));
      socket.on('error', reject);
      socket.write(payload);
      setTimeout(() => socket.destroy(), options.waitMs ?? 10_000);
    });
  }

  it('headers over the limit → 431 with a JSON body, counted as a 4xx', async () => {
    const before = await fiveHundreds();
    const answer = await rawExchange(`GET /v1/me HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 431 /);
    expect(answer).toMatch(/content-type: application\/json/i);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).code).toBe('headers_too_large');
    expect(await fiveHundreds()).toBe(before);
  });

  it('a body that stalls → 408 with a JSON body, logged and counted as a 4xx, not a 500', async () => {
    const before = await fiveHundreds();
    const answer = await rawExchange(
      `POST ${createPath} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${token}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"data":`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).code).toBe('request_timeout');
    expect(await fiveHundreds()).toBe(before);
    const metrics = await (await fetch(stack.api.metricsUrl)).text();
    expect(metrics).toMatch(/tenantry_http_request_duration_seconds_count\{[^}]*route="\/v1\/collections\/\{collection\}\/documents"[^}]*status_class="4xx"[^}]*\} [1-9]/);
  });
});

describe('organisation names in any script', () => {
  it.each([
    ['Hindi', 'नमस्ते दुनिया', 'नमस्ते दुनिया'],
    ['Thai', 'สวัสดีครับ', 'สวัสดีครับ'],
    ['decomposed Latin, stored composed (NFC)', 'Cafe\u0301 Noir', 'Caf\u00e9 Noir'],
  ])('%s is accepted', async (_script, orgName, stored) => {
    const accepted = await request(stack.api.baseUrl, 'POST', '/v1/signup', { body: validSignup({ orgName }) });
    expect(accepted.status).toBe(202);
    const final = await waitForSignup(stack.api.baseUrl, accepted.body.signupId);
    expect(final.status).toBe('ready');
    const tenant = await stack.admin('GET', `/v1/tenants/${final.tenantId}`);
    expect(tenant.body.name).toBe(stored);
  });

  it('a name that starts with a combining mark is refused', async () => {
    const res = await request(stack.api.baseUrl, 'POST', '/v1/signup', { body: validSignup({ orgName: '\u0301abc' }) });
    expect(res.status).toBe(400);
    expect(res.body.fields[0].field).toBe('orgName');
  });
});
