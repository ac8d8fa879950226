import { request as httpRequest, type IncomingMessage } from 'node:http';

export interface SseEvent {
  id: string | undefined;
  event: string;
  data: any;
  /** performance.now() when it arrived. */
  at: number;
}

export interface SseStream {
  status: number;
  headers: IncomingMessage['headers'];
  /** The body of a refusal (JSON), when status is not 200. */
  error?: any;
  events: SseEvent[];
  /** Every id line seen, in order (bare ids included). */
  ids: string[];
  comments: number;
  ended: boolean;
  /** Resolve with the first event (after those already seen) that `match`es. */
  next(match?: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  close(): void;
  /** Stop reading (the socket stays open): a slow consumer. */
  pause(): void;
  resume(): void;
  closed: Promise<void>;
}

/** Open a Server-Sent Events stream over node:http and parse it as it comes. */
export function openSse(baseUrl: string, path: string, options: { token?: string; lastEventId?: string } = {}): Promise<SseStream> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(baseUrl);
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.lastEventId) headers['last-event-id'] = options.lastEventId;
    const req = httpRequest({ hostname, port, path, headers }, (res) => {
      let closedResolve!: () => void;
      const stream: SseStream = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        events: [],
        ids: [],
        comments: 0,
        ended: false,
        closed: new Promise<void>((r) => (closedResolve = r)),
        next(match = () => true, timeoutMs = 10_000) {
          const seen = cursor;
          return new Promise((resolveNext, rejectNext) => {
            const check = () => {
              for (let i = seen; i < stream.events.length; i++) {
                if (match(stream.events[i]!)) {
                  cursor = i + 1;
                  clearTimeout(timer);
                  waiters.delete(check);
                  resolveNext(stream.events[i]!);
                  return;
                }
              }
              if (stream.ended) {
                clearTimeout(timer);
                waiters.delete(check);
                rejectNext(new Error('the stream ended'));
              }
            };
            const timer = setTimeout(() => {
              waiters.delete(check);
              rejectNext(new Error(`no matching event within ${timeoutMs} ms (got ${stream.events.map((e) => e.event).join(', ')})`));
            }, timeoutMs);
            waiters.add(check);
            check();
          });
        },
        close: () => req.destroy(),
        pause: () => res.pause(),
        resume: () => res.resume(),
      };
      let cursor = 0;
      const waiters = new Set<() => void>();
      const socket = res.socket;
      const finish = () => {
        // A kept-alive socket serves the next request: leave no listener of this one on it.
        socket?.off('close', finish);
        stream.ended = true;
        closedResolve();
        for (const w of [...waiters]) w();
      };
      res.on('close', finish);
      res.on('error', finish);
      // A paused response does not report its connection closing; its socket does.
      socket?.once('close', finish);
      if (stream.status !== 200) {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          stream.error = text ? JSON.parse(text) : undefined;
          resolve(stream);
        });
        return;
      }
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let id: string | undefined;
          let event = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) stream.comments++;
            else if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (id !== undefined) stream.ids.push(id);
          if (data.length > 0) stream.events.push({ id, event, data: JSON.parse(data.join('\n')), at: performance.now() });
        }
        for (const w of [...waiters]) w();
      });
      resolve(stream);
    });
    req.on('error', reject);
    req.end();
  });
}
