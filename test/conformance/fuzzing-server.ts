/**
 * The fuzzing server: plays Autobahn's fuzzingserver against a WebSocket client. The client under
 * test connects to `/runCase?case=<id>&delivery=<mode>&run=<n>` and echoes every message; the
 * server does the opening handshake itself, answers a permessage-deflate offer the way the case
 * says (Autobahn's accept functions), runs the case with unmasked frames and closes TCP after the
 * closing handshake, as a server must (RFC 6455 §7.1.1).
 */
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { formatExtension, parseExtensionHeader } from '../../src/shared/extension-header.ts';
import type { ExtensionOffer } from '../../src/shared/extension-header.ts';
import { buildErrorResponse, buildUpgradeResponse, validateUpgradeRequest } from '../../src/shared/handshake.ts';
import type { DeflateParams, WindowBits } from '../../src/shared/permessage-deflate.ts';
import { PERMESSAGE_DEFLATE, PerMessageDeflate } from '../../src/shared/permessage-deflate.ts';
import { CaseSession } from './case-session.ts';
import type { DeflateSetup, Delivery, FuzzingCase } from './fuzzing-case.ts';
import { readHead } from './http-head.ts';
import type { Verdict } from './judge.ts';
import { handshakeFailure, judge } from './judge.ts';

const MAX_MESSAGE = 64 * 1024 * 1024;

interface PendingRun {
  readonly kase: FuzzingCase;
  readonly delivery: Delivery;
  readonly resolve: (verdict: Verdict) => void;
}

export class FuzzingServer {
  readonly #server: Server;
  readonly #runs = new Map<string, PendingRun>();
  readonly #sockets = new Set<Socket>();
  #next = 0;

  private constructor(server: Server) {
    this.#server = server;
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
      socket.on('error', () => {});
      void this.#accept(socket);
    });
  }

  static async start(): Promise<FuzzingServer> {
    const server = createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new FuzzingServer(server);
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Registers one run of `kase`; the client under test must connect to `url`. */
  expect(kase: FuzzingCase, delivery: Delivery): { url: string; verdict: Promise<Verdict> } {
    const run = String(++this.#next);
    const verdict = new Promise<Verdict>((resolve) => this.#runs.set(run, { kase, delivery, resolve }));
    const query = new URLSearchParams({ case: kase.id, delivery, run });
    return { url: `ws://127.0.0.1:${this.port}/runCase?${query}`, verdict };
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #accept(socket: Socket): Promise<void> {
    let pending: PendingRun | undefined;
    let codec: PerMessageDeflate | null = null;
    try {
      const head = await readHead(socket);
      const [method, target, version] = head.startLine.split(' ');
      const url = new URL(target ?? '/', 'http://fuzzer');
      pending = this.#runs.get(url.searchParams.get('run') ?? '');
      if (pending === undefined || url.pathname !== '/runCase') {
        socket.end(buildErrorResponse(404, 'no such run'), 'latin1');
        return;
      }
      this.#runs.delete(url.searchParams.get('run')!);
      const info = validateUpgradeRequest({ method, httpVersion: (version ?? '').replace('HTTP/', ''), headers: head.headers });
      const { kase, delivery } = pending;
      let extensions: string | undefined;
      if (kase.kind === 'echo' && kase.deflate !== undefined && info.extensionsHeader !== undefined) {
        const answer = acceptOffer(parseExtensionHeader(info.extensionsHeader), kase.deflate);
        if (answer !== null) {
          extensions = answer.response;
          codec = new PerMessageDeflate('server', answer.params, { maxMessageSize: MAX_MESSAGE, threshold: 0 });
        }
      }
      socket.write(buildUpgradeResponse({ key: info.key, extensions }), 'latin1');
      const observation = await new CaseSession(socket, { role: 'server', delivery, codec }).run(kase, head.rest);
      pending.resolve(judge(kase, delivery, 'server', observation));
    } catch (error) {
      socket.destroy();
      pending?.resolve(handshakeFailure(pending.kase, pending.delivery, error as Error));
    } finally {
      codec?.close();
    }
  }
}

/**
 * Answers the client's first permessage-deflate offer as Autobahn's fuzzing server does: grant
 * what the client asked for its own direction (server_no_context_takeover, server_max_window_bits)
 * and request from the client what the first applicable policy says. Null declines.
 */
function acceptOffer(offers: readonly ExtensionOffer[], setup: DeflateSetup): { response: string; params: DeflateParams } | null {
  const offer = offers.find((o) => o.name === PERMESSAGE_DEFLATE);
  if (offer === undefined) return null;
  const p = offer.params;
  const bits = (name: string): WindowBits | undefined => {
    const value = p.get(name);
    return typeof value === 'string' ? (Number(value) as WindowBits) : undefined;
  };
  const policy = setup.accept.find(
    (a) => (!a.requestNoContextTakeover || p.has('client_no_context_takeover')) && (a.requestMaxWindowBits === 0 || p.has('client_max_window_bits')),
  );
  if (policy === undefined) return null;
  const response: [string, string | true][] = [];
  const serverNoContextTakeover = p.has('server_no_context_takeover');
  if (serverNoContextTakeover) response.push(['server_no_context_takeover', true]);
  const serverBits = bits('server_max_window_bits');
  if (serverBits !== undefined) response.push(['server_max_window_bits', String(serverBits)]);
  if (policy.requestNoContextTakeover) response.push(['client_no_context_takeover', true]);
  let clientBits: WindowBits = 15;
  if (policy.requestMaxWindowBits !== 0) {
    const offered = bits('client_max_window_bits');
    clientBits = offered !== undefined && offered < policy.requestMaxWindowBits ? offered : policy.requestMaxWindowBits;
    response.push(['client_max_window_bits', String(clientBits)]);
  }
  return {
    response: formatExtension(PERMESSAGE_DEFLATE, response),
    params: {
      serverNoContextTakeover,
      // Inflate with context unless we required the client to drop it: then a client that
      // keeps it anyway produces back references we cannot resolve, and fails.
      clientNoContextTakeover: policy.requestNoContextTakeover,
      serverMaxWindowBits: serverBits ?? 15,
      clientMaxWindowBits: clientBits,
    },
  };
}
