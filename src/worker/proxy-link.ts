/**
 * One proxied connection in message mode: the client's Connection (whose app is RELAY_APP
 * below, with the link as its `data`) and the UpstreamConnection, joined. Messages cross
 * whole, with their type; each leg answers its own pings; a close on one side closes the other
 * with the same code and reason (RFC 6455 §7.4.1): an upstream gone without one gives the
 * client 1014 (Bad Gateway), a client gone without one gives the upstream 1001.
 *
 * Backpressure both ways: when one leg passes its high-water mark, the other leg's socket stops
 * being read until it drains, so a slow upstream (or client) holds the gateway's memory to what
 * one read brought in, not to what the fast side can send.
 */
import type { Socket } from 'node:net';
import type { App, ServerWebSocket } from '../shared/app.ts';
import { ReadyState } from '../shared/app.ts';
import { CloseCode } from '../shared/close.ts';
import type { MessageCompression } from '../shared/message-compression.ts';
import type { Connection } from './connection.ts';
import { kHoldReading } from './connection.ts';
import { UpstreamConnection } from './upstream-connection.ts';
import type { UpstreamEvents, UpstreamSettings } from './upstream-connection.ts';

export interface LinkParts {
  /** The upgraded upstream socket and what came with its 101. */
  readonly socket: Socket;
  readonly head: Buffer;
  /** The upstream leg's permessage-deflate, when it negotiated one. */
  readonly compression: MessageCompression | null;
  readonly settings: UpstreamSettings;
  /** Called once, when the upstream leg is over (or never opened). */
  readonly ended: () => void;
}

/** A close code the other side can be sent: 1005 (no status) becomes 1000. */
const forwardable = (code: number): number => (code === CloseCode.NoStatus ? CloseCode.Normal : code);

export class ProxyLink {
  readonly #parts: LinkParts;
  #client: Connection | null = null;
  #upstream: UpstreamConnection<ProxyLink> | null = null;
  #ended = false;

  constructor(parts: LinkParts) {
    this.#parts = parts;
    // Nothing is read from the upstream until the client's leg is open.
    parts.socket.pause();
  }

  /** The client left before its 101: the upstream connection goes too. */
  abandon(): void {
    this.#parts.socket.destroy();
    this.#end();
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#parts.ended();
  }

  #open(client: Connection): void {
    this.#client = client;
    const { socket, head, compression, settings } = this.#parts;
    const upstream = new UpstreamConnection<ProxyLink>(socket, head, compression, ProxyLink.#upstreamEvents, this, settings);
    this.#upstream = upstream;
    upstream.start();
  }

  static readonly #upstreamEvents: UpstreamEvents<ProxyLink> = {
    message(link, data, isBinary) {
      const client = link.#client!;
      // 'buffered': the client is behind; read no more from the upstream until it drains.
      if (client.send(data, { binary: isBinary }) === 'buffered') link.#upstream!.hold(true);
    },
    drain(link) {
      link.#client?.[kHoldReading](false);
    },
    closing(link, code, reason) {
      link.#client?.close(forwardable(code), reason);
    },
    closed(link, code, reason) {
      link.#end();
      const client = link.#client;
      if (client === null || client.readyState !== ReadyState.Open) return;
      // RFC 6455 §7.4.1 / IANA: 1014, the gateway's upstream failed.
      if (code === CloseCode.Abnormal) client.close(CloseCode.BadGateway, 'upstream went away');
      else client.close(forwardable(code), reason);
    },
  };

  /** The app of every proxied client connection: it only relays. */
  static readonly app: App<unknown> = {
    open(ws) {
      linkOf(ws).#open(ws as Connection);
    },
    message(ws, data, isBinary) {
      const link = linkOf(ws);
      // The upstream is behind: read no more from the client until it drains.
      if (!link.#upstream!.send(data, isBinary)) (ws as Connection)[kHoldReading](true);
    },
    drain(ws) {
      linkOf(ws).#upstream?.hold(false);
    },
    close(ws, code, reason) {
      const upstream = linkOf(ws).#upstream;
      if (upstream === null) return;
      if (upstream.readyState !== ReadyState.Open) return;
      if (code === CloseCode.Abnormal) upstream.close(CloseCode.GoingAway, 'client went away');
      else upstream.close(forwardable(code), reason);
    },
  };
}

const linkOf = (ws: ServerWebSocket<unknown>): ProxyLink => ws.data as ProxyLink;
