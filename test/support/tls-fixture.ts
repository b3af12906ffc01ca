/** The self-signed test certificate (CN=localhost, SAN localhost and 127.0.0.1) and its key, as PEM text and as paths. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const tlsFixturePath = (name: string): string => fileURLToPath(new URL(`../fixtures/tls/${name}`, import.meta.url));
export const testCert = readFileSync(tlsFixturePath('cert.pem'), 'utf8');
export const testKey = readFileSync(tlsFixturePath('key.pem'), 'utf8');
