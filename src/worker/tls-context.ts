import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { SecureContext, TLSSocket, TlsOptions as NodeTlsOptions } from 'node:tls';
import type { TlsCertificate, TlsOptions } from '../shared/config.ts';

/**
 * What a worker wraps each TLS socket with: the default context, the contexts by server name
 * (SNI), and whether to ask for client certificates. Built at once from PEM text or files (read
 * now, so a reload picks up renewed certificates); throws with the file name when one cannot be
 * read or parsed, so a bad reload keeps the previous set whole.
 */
export interface TlsServerContext {
  readonly secureContext: SecureContext;
  /** Options for `new TLSSocket(socket, { isServer: true, ... })`. */
  readonly socketOptions: NodeTlsOptions & { readonly secureContext: SecureContext };
}

function read(file: string | undefined, pem: string | undefined): string | undefined {
  if (file === undefined) return pem;
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`cannot read TLS file ${file}: ${(error as Error).message}`);
  }
}

/** `http2`: offer h2 by ALPN before http/1.1 (RFC 7301), for WebSockets over HTTP/2. */
export function loadTlsContext(tls: TlsOptions, http2 = false): TlsServerContext {
  const ca = read(tls.caFile, tls.ca);
  // Every context carries the CA too: client certificates are checked against it whichever
  // certificate the server name chose.
  const contextOf = (certificate: TlsCertificate): SecureContext =>
    createSecureContext({ cert: read(certificate.certFile, certificate.cert), key: read(certificate.keyFile, certificate.key), ca, passphrase: certificate.passphrase });
  const secureContext = contextOf(tls);
  const byName = new Map<string, SecureContext>();
  for (const [name, certificate] of Object.entries(tls.sni ?? {})) byName.set(name.toLowerCase(), contextOf(certificate));
  const requestCert = tls.requestCert === true;
  return {
    secureContext,
    socketOptions: {
      secureContext,
      ALPNProtocols: http2 ? ['h2', 'http/1.1'] : ['http/1.1'],
      ...(byName.size > 0 ? { SNICallback: (servername: string, done: (error: Error | null, context?: SecureContext) => void) => done(null, contextForName(byName, servername)) } : {}),
      ...(requestCert ? { requestCert: true, rejectUnauthorized: tls.rejectUnauthorized !== false } : {}),
    },
  };
}

/**
 * The context for a server name: an exact entry, else a `*.` entry for its parent (one label,
 * RFC 6125 §6.4.3), else undefined (the default context).
 */
export function contextForName<C>(byName: ReadonlyMap<string, C>, servername: string): C | undefined {
  const name = servername.toLowerCase();
  const exact = byName.get(name);
  if (exact !== undefined) return exact;
  const dot = name.indexOf('.');
  return dot > 0 ? byName.get(`*${name.slice(dot)}`) : undefined;
}

/**
 * Sets `authorized` and `authorizationError` on a server TLSSocket that asked for a client
 * certificate, as Node's tls.Server does for its own sockets (a TLSSocket made directly gets
 * neither), so `upgrade(req)` and an app's `http` handler can read them. `this` is the socket.
 */
export function recordPeerVerification(this: TLSSocket): void {
  // The verify result of the handshake (tls.Server reads the same, lib/internal/tls/wrap.js).
  const handle = (this as unknown as { _handle: { verifyError(): (Error & { code?: string }) | null; hasPeerCertificate?(): boolean } | null })._handle;
  if (handle === null) return;
  const error = handle.verifyError();
  const socket = this as unknown as { authorized: boolean; authorizationError: string | undefined };
  if (error !== null) {
    socket.authorized = false;
    socket.authorizationError = error.code ?? error.message;
  } else if (handle.hasPeerCertificate !== undefined && !handle.hasPeerCertificate()) {
    socket.authorized = false;
    socket.authorizationError = 'NO_PEER_CERTIFICATE';
  } else {
    socket.authorized = true;
  }
  // OpenSSL already fails such a handshake (SSL_VERIFY_FAIL_IF_NO_PEER_CERT); a resumed TLS 1.3
  // session carries no certificate to fail on.
  if (!socket.authorized && (this as unknown as { _rejectUnauthorized?: boolean })._rejectUnauthorized === true) this.destroy();
}
