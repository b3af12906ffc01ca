import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { SecureContext } from 'node:tls';
import type { TlsOptions } from '../shared/config.ts';

/**
 * Builds the worker's TLS context from PEM text or files (read now, so a reload picks up
 * renewed certificates). Throws with the file name when one cannot be read or parsed.
 */
export function loadSecureContext(tls: TlsOptions): SecureContext {
  const read = (file: string | undefined, pem: string | undefined): string | undefined => {
    if (file === undefined) return pem;
    try {
      return readFileSync(file, 'utf8');
    } catch (error) {
      throw new Error(`cannot read TLS file ${file}: ${(error as Error).message}`);
    }
  };
  return createSecureContext({
    cert: read(tls.certFile, tls.cert),
    key: read(tls.keyFile, tls.key),
    ca: read(tls.caFile, tls.ca),
    passphrase: tls.passphrase,
  });
}
